"""Numbers you can trust: each way of getting a wrong number, or foreign code run, that a new
user found — the run's identity comes from its data, invalid or edited records are never taken
for results, concurrent runs do not clobber each other, broken state says what to do, a full
disk and a read-only folder are reported before (or without) losing work."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mcbench.cli import main

TINY = ["--dataset-param", "n_clips=40", "--dataset-param", "seconds=2.0"]

PLUGIN = '''
import time
from mcbench import hookimpl
from mcbench.specs import ModelSpec, MetricSpec, MetricResult, Option


def build(input_shape, n_outputs, *, task, variant, hidden=8, sleep=0.0, **params):
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                     nn.Linear(32, hidden), nn.ReLU(), nn.Linear(hidden, n_outputs))

        def forward(self, x):
            if self.training and sleep:
                time.sleep(sleep)
            return self.net(x)

    return Tiny()


OPTIONS = {"hidden": Option(int, 8, "hidden units"), "sleep": Option(float, 0.0, "seconds per batch")}


@hookimpl
def mcbench_models():
    return [ModelSpec(name=n, summary="tiny", build=build, options=OPTIONS) for n in ("tiny", "tiny2")]
'''

STRING_METRIC = '''
from mcbench import hookimpl
from mcbench.specs import MetricSpec, MetricResult

@hookimpl
def mcbench_metrics():
    return [MetricSpec(key="stringly", name="Stringly", tasks=("multilabel",), headline=False,
                       compute=lambda y, s, labels: MetricResult("0.9")),
            MetricSpec(key="plain", name="Plain", tasks=("multilabel",), headline=False,
                       compute=lambda y, s, labels: np_mean(s))]

def np_mean(s):
    import numpy as np
    return np.float64(s.mean())
'''


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny synthetic dataset generated once for the module (tests copy it before changing it)."""
    folder = tmp_path_factory.mktemp("data")
    result = CliRunner().invoke(main, ["data", "prepare", "synthetic", "--data-dir", str(folder),
                                       "--workers", "1", *TINY])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def ws(tmp_path, data_dir):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tiny.py").write_text(textwrap.dedent(PLUGIN))
    shutil.copytree(data_dir, tmp_path / "data")
    return tmp_path


def args(ws: Path, *extra: str, models: str = "tiny") -> list[str]:
    return ["--plugins-dir", str(ws / "plugins"), "run", "--models", models, "--dataset",
            "synthetic", "--data-dir", str(ws / "data"), "--results-dir", str(ws / "results"),
            "--epochs", "1", "--batch-size", "8", "--workers", "1", "--no-progress", *TINY, *extra]


def run(ws: Path, *extra: str, **kw):
    return CliRunner().invoke(main, args(ws, *extra, **kw))


def records(ws: Path) -> list[dict]:
    folder = ws / "results" / "runs" / "synthetic"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def only_record(ws: Path) -> dict:
    (rec,) = records(ws)
    return rec


# --------------------------------------------------------------------------- identity


def test_a_copy_of_the_data_is_the_same_run_and_replaced_audio_is_not(ws):
    first = run(ws)
    assert first.exit_code == 0, first.output
    rid = only_record(ws)["run_id"]
    copy = ws / "copy"
    shutil.copytree(ws / "data" / "synthetic", copy)
    same = run(ws, "--root", str(copy))
    assert same.exit_code == 0 and "already complete" in same.output and rid in same.output

    # One training clip's audio replaced under the same clip id: a new run, never the old result.
    train = sorted(copy.glob("[0-9]/*.mp3")) or sorted(copy.glob("[0-9]/*"))
    shutil.copyfile(train[1], train[0])
    changed = run(ws, "--root", str(copy))
    assert changed.exit_code == 0, changed.output
    assert "already complete" not in changed.output and "▶ tiny" in changed.output
    ids = {r["run_id"] for r in records(ws)}
    assert len(ids) == 2
    contents = {r["identity"]["dataset"]["splits"]["train"]["content"] for r in records(ws)}
    assert len(contents) == 2
    fingerprints = {r["identity"]["dataset"]["splits"]["train"]["fingerprint"] for r in records(ws)}
    assert len(fingerprints) == 1  # the same clip ids
    table = CliRunner().invoke(main, ["table", "--results-dir", str(ws / "results"), "--format", "plain"])
    assert table.output.count("tiny [data ") == 2, table.output


def test_settings_that_cannot_change_a_result_keep_the_id(ws):
    assert run(ws).exit_code == 0
    for extra in (["--dataset-param", "seed=0"], ["--dataset-param", "workers=1"],
                  ["--param", "tiny.hidden=8"], ["--workers", "2"]):
        again = run(ws, *extra)
        assert again.exit_code == 0 and "already complete" in again.output, (extra, again.output)
    assert len(records(ws)) == 1
    other = run(ws, "--param", "tiny.hidden=9")
    assert "already complete" not in other.output and len(records(ws)) == 2


# --------------------------------------------------------------------------- records


@pytest.mark.parametrize("content", ['{"status": "complete"}', "[]", "{not json"])
def test_an_invalid_record_is_set_aside_and_the_run_done_again(ws, content):
    assert run(ws).exit_code == 0
    path = ws / "results" / "runs" / "synthetic" / f"{only_record(ws)['run_id']}.json"
    path.write_text(content)
    again = run(ws)
    assert again.exit_code == 0, again.output
    assert "is not this run's result; moved it to" in again.output and "▶ tiny" in again.output
    assert only_record(ws)["status"] == "complete"
    (aside,) = path.parent.glob(f"{path.name}.invalid-*[0-9]")
    assert aside.read_text() == content  # nothing is deleted


def test_a_metric_returning_a_string_is_an_error_of_that_metric_not_a_hidden_run(ws):
    (ws / "plugins" / "string_metric.py").write_text(textwrap.dedent(STRING_METRIC))
    result = run(ws)
    assert result.exit_code == 0, result.output
    rec = only_record(ws)
    assert rec["status"] == "complete"
    assert rec["test"]["stringly"]["value"] is None
    assert "metric 'stringly' returned the value '0.9'" in rec["test"]["stringly"]["error"]
    # the console says so too, naming the plugin module (before: a silent ✓)
    assert "warning: TypeError in metric plugin mcbench_local_plugins.string_metric (metric 'stringly')" in result.output
    assert isinstance(rec["test"]["plain"]["value"], float)  # a plain number is accepted
    table = CliRunner().invoke(main, ["table", "--results-dir", str(ws / "results")])
    assert "| tiny" in table.output


def test_a_failure_to_write_one_record_does_not_stop_the_others(ws, monkeypatch):
    from mcbench import storage

    real = storage.write_record

    def flaky(path, record):
        status = record["status"] if isinstance(record, dict) else record.status
        if "tiny-default" in path.name and status == "complete" and "tiny2" not in path.name:
            raise OSError(5, "Input/output error")
        return real(path, record)

    monkeypatch.setattr(storage, "write_record", flaky)
    result = run(ws, models="tiny,tiny2")
    assert result.exit_code == 1
    assert "could not write the record" in result.output and "✓ tiny2" in result.output
    assert [r["status"] for r in records(ws) if r["identity"]["model"]["name"] == "tiny2"] == ["complete"]


# --------------------------------------------------------------------------- code in files


class Payload:
    """Unpickling this creates ``marker``: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _tiny_learner():
    import torch  # noqa: F401
    from torch import nn

    from mcbench.training import TorchLearner
    return TorchLearner(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), "multilabel")


def _splits():
    from mcbench.specs import FeatureSplit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 1, 3, 4)).astype(np.float32)
    y = (rng.random((8, 3)) > 0.5).astype(np.float32)
    y[0], y[1] = 1, 0
    split = FeatureSplit("s", [str(i) for i in range(8)], x, y, "multilabel", ["a", "b", "c"])
    return split, split


def _config(workdir: Path):
    from mcbench.specs import TrainConfig

    return TrainConfig(max_epochs=1, batch_size=4, workdir=workdir, progress=False, device="cpu",
                       select_metric=lambda y, s: float(np.mean(s)))


@pytest.mark.parametrize("name", ["last.pt", "best.pt", "load"])
def test_a_crafted_checkpoint_never_runs_its_code(tmp_path, name):
    import torch

    from mcbench.storage import StateError

    marker = tmp_path / "pwned"
    work = tmp_path / "work"
    learner = _tiny_learner()
    train, valid = _splits()
    if name == "best.pt":  # a finished run: fit goes straight to loading the selected epoch
        learner.fit(train, valid, _config(work))
        learner = _tiny_learner()
    work.mkdir(exist_ok=True)
    evil = work / ("last.pt" if name == "load" else name)
    torch.save({"model": Payload(marker), "optimizer": {}, "state": {}}, evil)
    with pytest.raises(StateError) as info:
        if name == "load":
            learner.load(evil)
        else:
            learner.fit(train, valid, _config(work))
    assert str(evil) in str(info.value) and "--restart" in str(info.value)
    assert not marker.exists()
    # the same file *would* run code if loaded the unsafe way: the test is meaningful
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_the_svm_learner_never_unpickles(tmp_path):
    pytest.importorskip("sklearn")
    from mcbench_plugins.models.impl.mfcc_svm import MfccSvmLearner

    marker = tmp_path / "pwned"
    for path in (tmp_path / "model.joblib", tmp_path / "model.npz"):
        if path.suffix == ".npz":
            np.savez(path, format=np.array([Payload(marker)], dtype=object))
        else:
            path.write_bytes(pickle.dumps({"format": Payload(marker)}))
        with pytest.raises(ValueError, match="is not a saved mfcc_svm model"):
            MfccSvmLearner(3).load(path)
        assert not marker.exists()


# --------------------------------------------------------------------------- broken state


def test_a_truncated_checkpoint_names_the_file_and_restart_recovers(ws):
    assert run(ws, "--epochs", "2").exit_code == 0
    rec = only_record(ws)
    (ws / "results" / "runs" / "synthetic" / f"{rec['run_id']}.json").unlink()
    last = ws / "results" / "work" / rec["run_id"] / "last.pt"
    last.write_bytes(last.read_bytes()[:200])
    broken = run(ws, "--epochs", "2")
    assert broken.exit_code == 1
    assert f"checkpoint {last} cannot be used" in broken.output and "pass --restart" in broken.output
    assert only_record(ws)["status"] == "failed"
    fixed = run(ws, "--epochs", "2", "--restart")
    assert fixed.exit_code == 0, fixed.output
    assert "--restart: removed the checkpoints" in fixed.output
    assert only_record(ws)["status"] == "complete"


@pytest.mark.parametrize("which", ["part", "index"])
def test_a_corrupt_feature_cache_file_names_itself_and_the_fix(ws, which):
    assert run(ws).exit_code == 0
    cache = ws / "data" / ".cache" / "features"
    # the newest folder is this root's (the module's data was prepared under another path)
    folder = max(cache.glob("synthetic/*/"), key=lambda p: p.stat().st_mtime)
    if which == "part":
        (target,) = folder.glob("*.npy")
        target.write_bytes(target.read_bytes()[:1000])
    else:
        (target,) = folder.glob("*.index.json")
        target.write_text(target.read_text()[:300])
    result = run(ws, "--seed", "1")
    assert result.exit_code == 2
    assert f"feature cache file {target} is corrupt" in result.output
    assert f"Delete the folder {target.parent}" in result.output


FSIZE = textwrap.dedent('''
    import resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from mcbench.cli import main
    main(sys.argv[2:])
''')


def _limited(limit: int, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FSIZE, str(limit), *argv], capture_output=True,
                          text=True, timeout=300)


def test_a_full_results_disk_is_reported_and_leaves_no_partial_files(ws):
    prepared = CliRunner().invoke(main, ["data", "prepare", "synthetic", "--data-dir",
                                         str(ws / "data"), "--workers", "1", *TINY])
    assert prepared.exit_code == 0, prepared.output  # only the run's own files meet the limit
    out = _limited(256 * 1024, args(ws, "--param", "tiny.hidden=4000"))
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "no space left to write in" in text and str(ws / "results" / "work") in text
    assert "Traceback" not in text
    assert not list((ws / "results").rglob("*.tmp"))
    assert only_record(ws)["status"] == "failed"
    assert "no space left" in only_record(ws)["error"]


def test_a_full_data_disk_during_prepare_is_reported_not_a_bus_error(ws):
    shutil.rmtree(ws / "data" / ".cache")
    out = _limited(1024 * 1024, ["data", "prepare", "synthetic", "--data-dir", str(ws / "data"),
                                 "--workers", "1", *TINY])
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert out.returncode != -7  # SIGBUS
    assert "no space left to write in" in text and "features" in text
    assert not list((ws / "data" / ".cache").rglob("*.npy"))


def test_a_read_only_results_folder_is_reported_before_any_work(ws, monkeypatch):
    import builtins

    real_open = builtins.open
    results = str(ws / "results")

    def read_only(path, mode="r", *a, **k):
        if any(c in mode for c in "wax") and str(path).startswith(results):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", read_only)
    shutil.rmtree(ws / "data" / ".cache")
    result = run(ws)
    assert result.exit_code == 2
    assert f"the results folder {ws / 'results' / 'runs' / 'synthetic'} is not writable" in result.output
    assert "nothing was run" in result.output
    assert not (ws / "data" / ".cache").exists()  # no features were computed


# --------------------------------------------------------------------------- concurrency


def test_two_processes_on_one_run_train_it_once(ws):
    shutil.rmtree(ws / "data" / ".cache")
    cmd = [sys.executable, "-m", "mcbench.cli", *args(ws, "--param", "tiny.sleep=0.3", "--epochs", "3")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(3)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    trained = [o for o in outs if "▶ tiny" in o]
    assert len(trained) == 1, outs
    waited = [o for o in outs if "is being trained by process" in o]
    assert waited and all("already complete" in o for o in waited), outs
    rec = only_record(ws)
    assert rec["status"] == "complete" and len(rec["history"]) == 3
    assert not list((ws / "results").rglob("*.tmp"))
