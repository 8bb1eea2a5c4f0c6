"""`mcbench plugins validate` on dataset and metric plugins, and on a model's transfer groups:
each broken contract fails with a message naming the plugin and what to fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from torch import nn

from mcbench.specs import (
    MULTICLASS,
    DatasetSpec,
    HealthReport,
    MetricResult,
    MetricSpec,
    ModelSpec,
    Partition,
    Split,
    Track,
)
from mcbench.validate import validate_dataset, validate_metric, validate_model

LABELS = ["a", "b"]


def _clips(root: Path, n: int = 6) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = root / f"clip{i}.wav"
        sf.write(str(path), np.zeros(1600, dtype=np.float32), 16000)
        paths.append(path)
    return paths


def _dataset(split_of, labels_of, check=None) -> DatasetSpec:
    def tracks(root, protocol, fold, **params):
        paths = sorted(Path(root).glob("*.wav"))
        splits = {name: Split(name, [Track(p.stem, p, labels_of(i)) for i, p in enumerate(paths)
                                     if name in split_of(i)])
                  for name in ("train", "valid", "test")}
        return Partition("bad", protocol, fold, LABELS, splits)

    def health(root):
        return HealthReport("bad", Path(root), "flat", 6, 6)

    return DatasetSpec(name="bad", summary="a deliberately broken dataset", task=MULTICLASS,
                       tracks=tracks, check=check or health, labels=tuple(LABELS))


def _run(spec, root):
    lines: list[str] = []
    ok = validate_dataset(spec, root=root, echo=lines.append)
    return ok, "\n".join(lines)


def test_a_healthy_dataset_passes(tmp_path):
    _clips(tmp_path)
    spec = _dataset(lambda i: [("train", "train", "train", "valid", "test", "test")[i]],
                    lambda i: (i % 2,))
    ok, text = _run(spec, tmp_path)
    assert ok, text


def test_overlapping_splits_fail(tmp_path):
    _clips(tmp_path)
    spec = _dataset(lambda i: ["train", "test"] if i == 0 else [("train", "train", "train", "valid", "test", "test")[i]],
                    lambda i: (i % 2,))
    ok, text = _run(spec, tmp_path)
    assert not ok
    assert "[FAIL] train and test are disjoint" in text and "'clip0'" in text


def test_labels_out_of_range_or_several_on_a_multiclass_dataset_fail(tmp_path):
    _clips(tmp_path)
    spec = _dataset(lambda i: [("train", "train", "train", "valid", "test", "test")[i]],
                    lambda i: (5,) if i == 1 else ((0, 1) if i == 4 else (0,)))
    ok, text = _run(spec, tmp_path)
    assert not ok
    assert "[FAIL] train: labels are exactly one class index in 0..1" in text and "'clip1'" in text
    assert "[FAIL] test: labels are exactly one class index" in text and "'clip4'" in text


def test_check_that_does_not_return_a_health_report_fails(tmp_path):
    _clips(tmp_path)
    spec = _dataset(lambda i: [("train", "train", "train", "valid", "test", "test")[i]],
                    lambda i: (i % 2,), check=lambda root: {"ok": True})
    ok, text = _run(spec, tmp_path)
    assert not ok and "check() returned dict" in text


def _metric(compute, higher_is_better=True) -> MetricSpec:
    return MetricSpec(key="mine", name="Mine", tasks=(MULTICLASS,), compute=compute,
                      higher_is_better=higher_is_better, summary="a metric under test")


def _accuracy(y_true, y_score, labels):
    return MetricResult(float(np.mean(np.argmax(y_score, axis=1) == y_true)))


def test_a_metric_with_the_wrong_direction_fails():
    lines: list[str] = []
    assert validate_metric(_metric(_accuracy), echo=lines.append), "\n".join(lines)
    lines.clear()
    assert not validate_metric(_metric(_accuracy, higher_is_better=False), echo=lines.append)
    assert any("[FAIL] perfect scores are lower than reversed ones" in line for line in lines), lines


def test_a_metric_returning_nan_or_text_fails():
    for value in (float("nan"), "0.9"):
        lines: list[str] = []
        ok = validate_metric(_metric(lambda y, s, labels, v=value: MetricResult(v)), echo=lines.append)
        assert not ok, lines
        assert any("[FAIL]" in line and "'mine'" in line for line in lines), lines


class _Head(nn.Module):
    def __init__(self, n_outputs, groups):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, n_outputs)
        self.groups = groups

    def forward(self, x):
        return self.head(self.cnn(x))

    def parameter_groups(self):
        return self.groups(self)


def _model(groups) -> ModelSpec:
    return ModelSpec(name="grouped", summary="a model declaring transfer groups",
                     build=lambda shape, n, **kw: _Head(n, groups), tasks=(MULTICLASS,))


def test_transfer_groups_are_checked_when_declared():
    good = _model(lambda m: {"cnn": list(m.cnn.parameters()), "rnn": [], "head": list(m.head.parameters())})
    lines: list[str] = []
    assert validate_model(good, echo=lines.append), "\n".join(lines)
    assert any("[PASS] transfer groups" in line for line in lines)
    bad = _model(lambda m: {"cnn": [m.cnn[0].weight], "head": list(m.head.parameters())})
    lines.clear()
    assert not validate_model(bad, echo=lines.append)
    assert any("[FAIL] transfer groups" in line and "in no group, e.g. cnn.0.bias" in line
               for line in lines), lines


def test_validate_checks_the_build_of_the_backend_asked_for():
    from click.testing import CliRunner

    from mcbench.cli import main
    from mcbench.plugins import Registry

    lines: list[str] = []
    assert not validate_model(Registry().model("crnn"), backend="jax", echo=lines.append)
    assert any("[FAIL] backend has a build: 'jax'" in line and "'torch'" in line and "'keras'" in line
               for line in lines), lines
    refused = CliRunner().invoke(main, ["plugins", "validate", "synthetic", "--backend", "keras"])
    assert refused.exit_code != 0 and "--backend does not apply to dataset" in refused.output
