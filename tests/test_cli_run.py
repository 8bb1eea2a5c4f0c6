"""End to end through the CLI: the README's plugin example, resume after an interruption,
tables from stored records, a broken model not breaking the run, data check/prepare."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcbench.cli import main

REPO = Path(__file__).resolve().parents[1]
# A tiny synthetic dataset: a few short clips keep the end-to-end tests fast.
TINY = ["--dataset-param", "n_clips=40", "--dataset-param", "seconds=2.0"]


def readme_plugin_source() -> str:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- plugin-example:start -->")[1].split("<!-- plugin-example:end -->")[0]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


@pytest.fixture
def workspace(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_cnn.py").write_text(readme_plugin_source())
    return tmp_path


def common_args(ws: Path) -> list[str]:
    return ["--dataset", "synthetic", "--data-dir", str(ws / "data"), "--results-dir", str(ws / "results"),
            "--device", "cpu", "--no-progress", *TINY]


def records(ws: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((ws / "results" / "runs" / "synthetic").glob("*.json"))]


def test_readme_plugin_is_picked_up_runs_and_table_regenerates(workspace):
    runner = CliRunner()
    args = ["--plugins-dir", str(workspace / "plugins")]
    validated = runner.invoke(main, [*args, "plugins", "validate", "my_cnn"])
    assert validated.exit_code == 0, validated.output
    assert "OK: the plugin honours the contract" in validated.output

    result = runner.invoke(main, [*args, "run", "--models", "my_cnn", "--epochs", "2", *common_args(workspace)])
    assert result.exit_code == 0, result.output
    assert "| my_cnn" in result.output and "ROC-AUC" in result.output
    (rec,) = records(workspace)
    assert rec["status"] == "complete" and rec["identity"]["model"]["name"] == "my_cnn"
    assert len(rec["history"]) == 2 and rec["n_params"] > 0
    auc = rec["test"]["roc_auc"]["value"]
    assert 0.0 <= auc <= 1.0 and len(rec["test"]["roc_auc"]["per_label"]) == len(rec["identity"]["dataset"]["labels"])
    assert (workspace / "results" / "runs" / "synthetic" / rec["scores_path"]).exists()

    again = runner.invoke(main, [*args, "run", "--models", "my_cnn", "--epochs", "2", *common_args(workspace)])
    assert again.exit_code == 0 and "already complete" in again.output
    assert len(records(workspace)) == 1

    latex = runner.invoke(main, ["table", "--dataset", "synthetic", "--results-dir",
                                 str(workspace / "results"), "--format", "latex"])
    assert latex.exit_code == 0, latex.output
    assert "\\begin{tabular}" in latex.output and "my\\_cnn" in latex.output
    assert f"{auc:.4f}" in latex.output


SLOW = '''
import time
from mcbench import hookimpl
from mcbench.specs import ModelSpec


def build(input_shape, n_outputs, *, task, variant, **params):
    from torch import nn

    class Slow(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, n_outputs))

        def forward(self, x):
            if self.training:
                time.sleep(0.4)  # slow enough to be interrupted mid-run
            return self.net(x)

    return Slow()


@hookimpl
def mcbench_models():
    return [ModelSpec(name="slow_cnn", summary="slow", build=build)]
'''


def test_interrupted_run_resumes_instead_of_starting_over(workspace):
    (workspace / "plugins" / "slow_cnn.py").write_text(SLOW)
    cmd = [sys.executable, "-m", "mcbench.cli", "--plugins-dir", str(workspace / "plugins"), "run",
           "--models", "slow_cnn", "--epochs", "8", "--batch-size", "8", *common_args(workspace)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A job started in the background (`cmd &`, as a CI runner may do) inherits SIGINT ignored,
    # and Python then never raises KeyboardInterrupt: give the child the default disposition.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    work = workspace / "results" / "work"
    while time.monotonic() < deadline and not list(work.glob("*/last.pt")):
        time.sleep(0.2)
    assert list(work.glob("*/last.pt")), "no epoch finished in time"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "run the same command again to resume" in out
    assert not [r for r in records(workspace) if r["status"] == "complete"]

    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert second.returncode == 0, second.stdout + second.stderr
    combined = second.stdout + second.stderr
    resumed_at = int(re.search(r"resuming from epoch (\d+)", combined).group(1))
    assert resumed_at >= 2
    (rec,) = [r for r in records(workspace) if r["status"] == "complete"]
    assert [h["epoch"] for h in rec["history"]] == list(range(8))


BROKEN = '''
from mcbench import hookimpl
from mcbench.specs import ModelSpec


def build(input_shape, n_outputs, *, task, variant, **params):
    raise RuntimeError("this model cannot be built")


@hookimpl
def mcbench_models():
    return [ModelSpec(name="broken_model", summary="always fails", build=build)]
'''


def test_one_failing_model_does_not_stop_the_others(workspace):
    (workspace / "plugins" / "broken_model.py").write_text(BROKEN)
    result = CliRunner().invoke(main, ["--plugins-dir", str(workspace / "plugins"), "run", "--models",
                                       "broken_model,my_cnn", "--epochs", "1", *common_args(workspace)])
    assert result.exit_code == 1
    assert "this model cannot be built" in result.output
    assert "| my_cnn" in result.output
    statuses = sorted((r["identity"]["model"]["name"], r["status"]) for r in records(workspace))
    assert statuses == [("broken_model", "failed"), ("my_cnn", "complete")]


def test_unknown_model_and_dataset_messages(workspace):
    runner = CliRunner()
    r = runner.invoke(main, ["run", "--models", "crnn_ft", "--dataset", "synthetic"])
    assert r.exit_code == 2 and "Did you mean 'crnn_tf'?" in r.output
    r = runner.invoke(main, ["run", "--models", "crnn_tf", "--dataset", "mtat", "--root", str(workspace / "nowhere")])
    assert r.exit_code == 2 and "mcbench datasets mtat" in r.output


def test_data_check_and_prepare_on_synthetic(workspace):
    runner = CliRunner()
    data = ["--data-dir", str(workspace / "data")]
    prep = runner.invoke(main, ["data", "prepare", "synthetic", *data, "--workers", "1", *TINY])
    assert prep.exit_code == 0, prep.output
    assert "train" in prep.output and "Next: mcbench run" in prep.output
    check = runner.invoke(main, ["data", "check", "synthetic", *data])
    assert check.exit_code == 0, check.output
    assert "problems: none" in check.output and "status: OK" in check.output


def test_epochs_per_model_win_over_epochs_for_all(workspace):
    result = CliRunner().invoke(main, [
        "--plugins-dir", str(workspace / "plugins"), "run", "--models", "my_cnn,end_to_end",
        "--epochs", "1", "--epochs", "my_cnn=2", "--batch-size", "end_to_end=4", *common_args(workspace)])
    assert result.exit_code == 0, result.output
    by_model = {r["identity"]["model"]["name"]: r for r in records(workspace)}
    assert len(by_model["my_cnn"]["history"]) == 2
    assert len(by_model["end_to_end"]["history"]) == 1
    assert by_model["end_to_end"]["identity"]["training"]["batch_size"] == 4
    assert by_model["my_cnn"]["identity"]["training"]["max_epochs"] == 2

    # The same run alone in a fresh results folder: same id, same numbers (the weights are
    # seeded from the run's seed, not from whatever ran before in the process).
    alone = CliRunner().invoke(main, [
        "run", "--models", "end_to_end", "--epochs", "1", "--batch-size", "end_to_end=4",
        *common_args(workspace), "--results-dir", str(workspace / "alone")])
    assert alone.exit_code == 0, alone.output
    (rec,) = [json.loads(p.read_text()) for p in (workspace / "alone" / "runs" / "synthetic").glob("*.json")]
    assert rec["run_id"] == by_model["end_to_end"]["run_id"]
    assert rec["history"][0]["loss"] == by_model["end_to_end"]["history"][0]["loss"]
    assert rec["test"]["roc_auc"]["value"] == by_model["end_to_end"]["test"]["roc_auc"]["value"]


@pytest.mark.parametrize("value, message", [
    ("fnc=2", "'fnc' is not among the models of this run"),
    ("two", "expects N or MODEL=N with an integer N"),
    ("my_cnn=0", "must be at least 1"),
])
def test_bad_per_model_epochs_are_refused_before_any_work(workspace, value, message):
    result = CliRunner().invoke(main, ["--plugins-dir", str(workspace / "plugins"), "run", "--models",
                                       "my_cnn", "--epochs", value, *common_args(workspace)])
    assert result.exit_code == 2 and message in result.output
    assert not (workspace / "data").exists()
