"""``mcbench run --executor ray``: a grid of tiny runs on a local Ray instance with 2 CPUs gives
the records and the table of the same grid run locally, a second invocation skips every run, an
interrupted run is resumed from its checkpoint by a Ray task, and a failing run is recorded
while the others go on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcbench.cli import main

ray = pytest.importorskip("ray", reason='the ray extra is not installed (pip install -e ".[ray]")')

TINY = ["--dataset-param", "n_clips=40", "--dataset-param", "seconds=2.0"]

# A small CNN. While the file named by $MCBENCH_TEST_STOP exists, its training stops with
# KeyboardInterrupt (what Ctrl-C raises) in the second epoch, after the first epoch's checkpoint:
# the state a run killed mid-way leaves behind. The file changes nothing else (not the identity).
PLUGIN = '''
import os
from mcbench import hookimpl
from mcbench.specs import ModelSpec


def build(input_shape, n_outputs, *, task, variant, **params):
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, n_outputs))
            self.evaluated = False

        def forward(self, x):
            stop = os.environ.get("MCBENCH_TEST_STOP", "")
            if not self.training:
                self.evaluated = True
            elif self.evaluated and stop and os.path.exists(stop):
                raise KeyboardInterrupt
            return self.net(x)

    return Tiny()


def broken(input_shape, n_outputs, *, task, variant, **params):
    raise RuntimeError("this model cannot be built")


@hookimpl
def mcbench_models():
    return [ModelSpec(name="tiny_cnn", summary="tiny", build=build),
            ModelSpec(name="broken_cnn", summary="always fails", build=broken)]
'''


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """One local Ray instance with 2 CPUs for the module (starting Ray takes seconds); the CLI
    joins it instead of starting its own."""
    stop = tmp_path_factory.mktemp("stop") / "stop-now"
    os.environ["MCBENCH_TEST_STOP"] = str(stop)  # inherited by the Ray workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield stop
    ray.shutdown()
    os.environ.pop("MCBENCH_TEST_STOP", None)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    (root / "plugins").mkdir()
    (root / "plugins" / "tiny.py").write_text(PLUGIN)
    return root


def invoke(ws: Path, results: str, *extra: str, models: str = "tiny_cnn"):
    args = ["--plugins-dir", str(ws / "plugins"), "run", "--models", models, "--seeds", "4",
            "--epochs", "2", "--batch-size", "8", "--dataset", "synthetic",
            "--data-dir", str(ws / "data"), "--results-dir", str(ws / results),
            "--device", "cpu", "--no-progress", "--format", "plain", *TINY, *extra]
    return CliRunner().invoke(main, args)


def records(ws: Path, results: str) -> dict[str, dict]:
    out = {}
    for p in sorted((ws / results / "runs" / "synthetic").glob("*.json")):
        rec = json.loads(p.read_text())
        out[rec["run_id"]] = rec
    return out


def table_of(output: str) -> str:
    """The table printed at the end of a run (after the last blank line)."""
    return output.rstrip().rsplit("\n\n", 1)[-1]


@pytest.fixture(scope="module")
def local_grid(ws):
    """The grid run locally with one torch thread, as each Ray task trains here
    (--ray-cpus-per-run 1): the same thread count gives the same float rounding, so the numbers
    are equal, not close (with 2 threads the losses differ in the 7th digit)."""
    result = invoke_one_thread(ws, "local")
    assert result.exit_code == 0, result.output
    return result


def invoke_one_thread(ws: Path, results: str, *extra: str):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return invoke(ws, results, *extra)
    finally:
        torch.set_num_threads(threads)


def test_a_grid_through_ray_writes_the_local_records_and_table(ws, ray_session, local_grid):
    result = invoke(ws, "ray", "--executor", "ray")
    assert result.exit_code == 0, result.output
    assert "ray: 4/4 done, 0 running, 0 waiting, 0 failed" in result.output
    local, remote = records(ws, "local"), records(ws, "ray")
    assert len(remote) == 4 and set(remote) == set(local)
    for run_id, rec in remote.items():
        assert rec["status"] == "complete"
        assert (ws / "ray" / "runs" / "synthetic" / rec["scores_path"]).exists()
        # deterministic on CPU under a seed: the same losses and test metrics as locally
        assert [h["loss"] for h in rec["history"]] == [h["loss"] for h in local[run_id]["history"]]
        assert rec["test"]["roc_auc"]["value"] == local[run_id]["test"]["roc_auc"]["value"]
        assert rec["test"]["roc_auc"]["per_label"] == local[run_id]["test"]["roc_auc"]["per_label"]
    assert table_of(result.output) == table_of(local_grid.output)
    assert "tiny_cnn" in table_of(result.output)

    again = invoke(ws, "ray", "--executor", "ray")
    assert again.exit_code == 0, again.output
    assert "4 run(s) already complete; skipping them" in again.output
    assert "ray:" not in again.output  # nothing handed to Ray
    assert records(ws, "ray") == remote  # every record written once
    assert table_of(again.output) == table_of(local_grid.output)


def test_an_interrupted_run_is_resumed_by_a_ray_task(ws, ray_session, local_grid):
    ray_session.write_text("stop")
    stopped = invoke_one_thread(ws, "resume")  # locally: the first run stops in its second epoch
    assert stopped.exit_code == 130, stopped.output
    ((run_id, rec),) = records(ws, "resume").items()
    assert rec["status"] == "running"
    import torch

    last = ws / "resume" / "work" / run_id / "last.pt"
    state = torch.load(last, weights_only=True)["state"]
    assert state["epoch"] == 0 and len(state["history"]) == 1
    ray_session.unlink()

    result = invoke(ws, "resume", "--executor", "ray")
    assert result.exit_code == 0, result.output
    resumed = records(ws, "resume")
    assert len(resumed) == 4 and all(r["status"] == "complete" for r in resumed.values())
    # the first epoch is the interrupted process's (its timing is kept), the rest was trained
    # by the Ray task, and the result is the uninterrupted run's
    assert resumed[run_id]["history"][0] == state["history"][0]
    local = records(ws, "local")[run_id]
    assert [h["loss"] for h in resumed[run_id]["history"]] == [h["loss"] for h in local["history"]]
    assert resumed[run_id]["test"]["roc_auc"]["value"] == local["test"]["roc_auc"]["value"]


def test_a_failing_run_is_recorded_and_the_others_go_on(ws, ray_session, local_grid):
    result = invoke(ws, "fail", "--executor", "ray", "--seeds", "1", models="broken_cnn,tiny_cnn")
    assert result.exit_code == 1
    assert "✗ broken_cnn (default), seed 0 failed: RuntimeError while building the model: this " \
           "model cannot be built" in result.output
    assert "ray: 1/2 done, 0 running, 0 waiting, 1 failed" in result.output
    by_model = {r["identity"]["model"]["name"]: r for r in records(ws, "fail").values()}
    assert by_model["broken_cnn"]["status"] == "failed"
    assert by_model["tiny_cnn"]["status"] == "complete"
    assert "tiny_cnn" in result.output.split("0 failed")[-1].split("1 failed")[-1]


def test_executor_ray_without_ray_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    result = CliRunner().invoke(main, ["run", "--models", "fcn", "--dataset", "synthetic",
                                       "--executor", "ray"])
    assert result.exit_code == 2
    assert 'pip install -c constraints.txt -e ".[ray]"' in result.output


def test_help_and_plugins_do_not_import_ray():
    from plugin_files import modules_loaded_by_cli

    for args in (["--help"], ["run", "--help"], ["reproduce", "--help"], ["plugins"]):
        assert modules_loaded_by_cli(args, ("ray",)) == [], args


RECIPE = """
[artifact]
name = "tinyfolds"
title = "One model over five folds"
metrics = ["accuracy"]

[datasets]
main = "synthetic_genres"

[protocols]
main = "cv5"

[dataset_params.main]
n_per_genre = 5
seconds = 2.0

[training]
max_epochs = 1
batch_size = 6

[[rows]]
label = "Tiny CNN"
model = "tiny_cnn"
on = "main"
paper = { accuracy = 0.5 }
"""


def test_reproduce_fans_a_recipes_folds_out_over_ray(ws, ray_session):
    recipe = ws / "tinyfolds.toml"
    recipe.write_text(RECIPE)
    result = CliRunner().invoke(main, [
        "--plugins-dir", str(ws / "plugins"), "reproduce", str(recipe), "--executor", "ray",
        "--data-dir", str(ws / "data"), "--results-dir", str(ws / "recipe"), "--device", "cpu",
        "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "ray: 5/5 done, 0 running, 0 waiting, 0 failed" in result.output
    recs = list((ws / "recipe" / "runs" / "synthetic_genres").glob("*.json"))
    folds = sorted(json.loads(p.read_text())["identity"]["dataset"]["fold"] for p in recs)
    assert folds == [0, 1, 2, 3, 4]
    (row,) = [line for line in result.output.splitlines() if line.startswith("| Tiny CNN")]
    assert row.split("|")[-2].strip() == "5"  # the row averages the five folds
