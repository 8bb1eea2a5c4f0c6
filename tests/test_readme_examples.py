"""The README's dataset and metric plugin examples, extracted from the README exactly as written
and run through the CLI; and what the README says a learner receives, checked on real runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mcbench.cli import main

REPO = Path(__file__).resolve().parents[1]
SR = 22_050  # the WAV files' native rate; the front end resamples to 12 kHz
SECONDS = 2.0  # --dataset-param seconds: short clips keep the runs fast

PROBE = '''
import json, os
from pathlib import Path

import numpy as np

from mcbench import hookimpl
from mcbench.specs import ModelSpec


def describe(split):
    return {"x_shape": list(split.x.shape), "x_dtype": str(split.x.dtype),
            "y_shape": list(split.y.shape), "y_dtype": str(split.y.dtype),
            "y_values": sorted(set(np.asarray(split.y).ravel().tolist())),
            "labels": list(split.labels), "ids": list(split.ids), "task": split.task}


class Oracle:
    """Records what it is given; predicts the true labels (one-hot), so metrics are perfect."""

    def __init__(self, input_shape, n_outputs):
        self.input_shape, self.n_outputs = list(input_shape), n_outputs

    def fit(self, train, valid, config):
        seen = {"input_shape": self.input_shape, "n_outputs": self.n_outputs,
                "train": describe(train), "valid": describe(valid)}
        Path(os.environ["PROBE_OUT"]).write_text(json.dumps(seen))
        return [{"epoch": 1}]

    def predict(self, split):
        y = np.asarray(split.y)
        if y.ndim == 2:
            return y.astype(np.float64)
        return np.eye(self.n_outputs)[y]

    def save(self, path):
        Path(path).write_text("oracle")

    def load(self, path):
        pass


@hookimpl
def mcbench_models():
    return [ModelSpec(name="oracle", summary="records its input, predicts the truth",
                      build=lambda input_shape, n_outputs, **kw: Oracle(input_shape, n_outputs),
                      backend="none", variants={"logmel": "", "waveform": ""},
                      input={"logmel": "logmel", "waveform": "waveform"})]
'''


def readme_block(marker: str) -> str:
    """The python code between ``<!-- {marker}:start -->`` and ``:end`` in the README."""
    text = (REPO / "README.md").read_text()
    block = text.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


def write_wav(path: Path, seconds: float, seed: int) -> None:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    y = 0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")


# labels.csv of the tiny root: (file, genre, split); "missing" has no file, "junk" is not audio,
# "short" lasts 1 s.
ROWS = [
    *[(f"rock/{i}.wav", "rock", s) for i, s in enumerate(["train"] * 3 + ["valid"] * 2 + ["test"] * 2)],
    *[(f"folk/{i}.wav", "folk", s) for i, s in enumerate(["train"] * 3 + ["valid"] * 2 + ["test"] * 2)],
    ("folk/short.wav", "folk", "train"),
    ("rock/missing.wav", "rock", "train"),
    ("rock/junk.wav", "rock", "test"),
]


@pytest.fixture
def ws(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_clips.py").write_text(readme_block("dataset-example"))
    (plugins / "my_metrics.py").write_text(readme_block("metric-example"))
    (plugins / "my_cnn.py").write_text(readme_block("plugin-example"))
    root = tmp_path / "clips"
    for n, (file, _, _) in enumerate(ROWS):
        if "missing" in file:
            continue
        if "junk" in file:
            (root / file).write_bytes(b"these bytes are not audio " * 20)
        else:
            write_wav(root / file, 1.0 if "short" in file else 3.0, n)
    (root / "labels.csv").write_text("file,genre,split\n" + "".join(f"{f},{g},{s}\n" for f, g, s in ROWS))
    return tmp_path


def cli(ws: Path, *args: str):
    return CliRunner().invoke(main, ["--plugins-dir", str(ws / "plugins"), *args])


def run_args(ws: Path, *extra: str) -> list[str]:
    return ["run", "--dataset", "my_clips", "--root", str(ws / "clips"), "--data-dir", str(ws / "data"),
            "--results-dir", str(ws / "results"), "--device", "cpu", "--no-progress", "--workers", "1",
            "--dataset-param", f"seconds={SECONDS}", *extra]


def records(ws: Path, dataset: str = "my_clips") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((ws / "results" / "runs" / dataset).glob("*.json"))]


def test_readme_dataset_and_metric_plugins_list_check_and_run(ws):
    listed = cli(ws, "datasets")
    assert listed.exit_code == 0, listed.output
    assert re.search(r"my_clips: .*\n\s+task: multiclass · protocols: fixed \(1 fold\)", listed.output)
    shown = cli(ws, "datasets", "my_clips")
    assert shown.exit_code == 0, shown.output
    assert "seconds:" in shown.output and "min_seconds:" in shown.output
    assert "ROOT/labels.csv with the columns file,genre,split" in shown.output  # its LAYOUT

    metrics = cli(ws, "metrics")
    assert metrics.exit_code == 0, metrics.output
    assert re.search(r"balanced_accuracy\s+Balanced acc\.\s+\[multiclass\]", metrics.output)

    # check: headers only; the listed file that is absent and the one that is not audio are
    # problems (each clip skipped), so the command exits 1.
    checked = cli(ws, "data", "check", "my_clips", "--root", str(ws / "clips"), "--data-dir", str(ws / "data"))
    assert checked.exit_code == 1, checked.output
    assert f"files:   {len(ROWS) - 1} found of {len(ROWS)} listed" in checked.output
    assert "rock/missing.wav" in checked.output and "rock/junk.wav" in checked.output
    assert "missing: 1" in checked.output and "not readable as audio: 1" in checked.output
    assert '"22050": 15' in checked.output  # stats: sample rates of the readable files

    result = cli(ws, *run_args(ws, "--models", "my_cnn", "--epochs", "1"))
    assert result.exit_code == 0, result.output
    assert "Balanced acc." in result.output  # the metric plugin's table column
    (rec,) = records(ws)
    assert rec["status"] == "complete"
    ds = rec["identity"]["dataset"]
    assert ds["labels"] == ["folk", "rock"] and ds["fold"] is None and ds["protocol"] == "fixed"
    assert ds["frontend"]["seconds"] == SECONDS  # Partition.clip_seconds from the parameter
    assert rec["split"]["sizes"] == {"train": 7, "valid": 4, "test": 4}
    dropped = {d["id"]: d["step"] for d in rec["split"]["dropped"]}
    assert dropped == {"rock/missing.wav": "tracks", "rock/junk.wav": "decode"}
    assert rec["split"]["notes"] == {"n_listed": len(ROWS)}

    # The metric's value is scikit-learn's balanced accuracy of the run's stored test scores.
    from sklearn.metrics import balanced_accuracy_score, recall_score

    scores = np.load(ws / "results" / "runs" / "my_clips" / rec["scores_path"])
    y_pred = scores["y_score"].argmax(axis=1)
    entry = rec["test"]["balanced_accuracy"]
    assert entry["value"] == pytest.approx(balanced_accuracy_score(scores["y_true"], y_pred))
    assert [r["label"] for r in entry["per_label"]] == ["folk", "rock"]
    assert [r["value"] for r in entry["per_label"]] == pytest.approx(
        recall_score(scores["y_true"], y_pred, average=None))


def test_readme_dataset_plugin_reports_an_unusable_root(ws):
    (ws / "clips" / "labels.csv").unlink()
    checked = cli(ws, "data", "check", "my_clips", "--root", str(ws / "clips"), "--data-dir", str(ws / "data"))
    assert checked.exit_code == 1
    assert "labels.csv not found" in checked.output and "cannot be used" in checked.output
    (ws / "clips" / "labels.csv").write_text("file,genre,split\nrock/0.wav,rock,training\n")
    result = cli(ws, *run_args(ws, "--models", "my_cnn", "--epochs", "1"))
    assert result.exit_code != 0
    assert "line 2: need file, genre and a split" in result.output
    assert not (ws / "results" / "runs" / "my_clips").exists() or not records(ws)


def test_what_a_learner_receives_is_what_the_readme_says(ws, monkeypatch):
    (ws / "plugins" / "oracle.py").write_text(PROBE)
    out = ws / "seen.json"
    monkeypatch.setenv("PROBE_OUT", str(out))
    samples = round(12000 * SECONDS)

    # genres, log-mel: y (N,) int64 class indices into the sorted label names; x (N, 1, 96, T)
    result = cli(ws, *run_args(ws, "--models", "oracle"))
    assert result.exit_code == 0, result.output
    seen = json.loads(out.read_text())
    train, valid = seen["train"], seen["valid"]
    assert seen["input_shape"] == [1, 96, 1 + samples // 256] and seen["n_outputs"] == 2
    assert train["x_shape"] == [7, 1, 96, 1 + samples // 256] and train["x_dtype"] == "float32"
    assert train["y_shape"] == [7] and train["y_dtype"] == "int64" and train["y_values"] == [0, 1]
    assert train["labels"] == valid["labels"] == ["folk", "rock"] and train["task"] == "multiclass"
    # ids: Track.id in split order, the missing clip left out
    assert train["ids"] == [f for f, _, s in ROWS if s == "train" and "missing" not in f]
    (rec,) = records(ws)
    assert rec["test"]["balanced_accuracy"]["value"] == 1.0  # the oracle's one-hot scores

    # min_seconds: the 1-s clip decodes shorter than 1.5 s and is dropped
    result = cli(ws, *run_args(ws, "--models", "oracle", "--dataset-param", "min_seconds=1.5"))
    assert result.exit_code == 0, result.output
    assert "folk/short.wav" not in json.loads(out.read_text())["train"]["ids"]
    assert len(json.loads(out.read_text())["train"]["ids"]) == 6

    # waveform input: (N, 1, round(12000 * seconds)) samples
    result = cli(ws, *run_args(ws, "--models", "oracle", "--variant", "oracle=waveform"))
    assert result.exit_code == 0, result.output
    seen = json.loads(out.read_text())
    assert seen["input_shape"] == [1, samples] and seen["train"]["x_shape"] == [7, 1, samples]

    # tagging: y (N, L) float32 multi-hot, L = the number of tag names
    result = CliRunner().invoke(main, [
        "--plugins-dir", str(ws / "plugins"), "run", "--models", "oracle", "--dataset", "synthetic",
        "--data-dir", str(ws / "data"), "--results-dir", str(ws / "results"), "--device", "cpu",
        "--no-progress", "--dataset-param", "n_clips=20", "--dataset-param", "seconds=2.0"])
    assert result.exit_code == 0, result.output
    seen = json.loads(out.read_text())
    train = seen["train"]
    n_tags = len(train["labels"])
    assert seen["n_outputs"] == n_tags and train["task"] == "multilabel"
    assert train["y_shape"] == [train["x_shape"][0], n_tags] and train["y_dtype"] == "float32"
    assert train["y_values"] == [0.0, 1.0]


def test_readme_dataset_and_metric_plugins_validate_clean(ws):
    if "dataset" not in cli(ws, "plugins", "validate", "--help").output:
        pytest.skip("`mcbench plugins validate` checks model plugins only in this version")
    dataset = cli(ws, "plugins", "validate", "my_clips", "--root", str(ws / "clips"),
                  "--dataset-param", f"seconds={SECONDS}")
    assert dataset.exit_code == 0, dataset.output
    assert "OK: the plugin honours the contract" in dataset.output
    assert "train and test are disjoint" in dataset.output  # tracks() was read at the root
    metric = cli(ws, "plugins", "validate", "balanced_accuracy")
    assert metric.exit_code == 0, metric.output
    assert "OK: the plugin honours the contract" in metric.output
    assert "perfect scores are higher than reversed ones" in metric.output
