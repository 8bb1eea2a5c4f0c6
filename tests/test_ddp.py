"""One run across two processes with DistributedDataParallel (torchrun, gloo on CPU): it
completes, rank 0 alone writes the record and checkpoints, the record states the effective
batch, and the metrics agree with a single-process run of the same effective batch within the
tolerance measured here (batch norm is per rank, float sums in another order)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mcbench.cli import main
from mcbench.distributed import shard

# While the file named by $MCBENCH_TEST_STOP exists, training stops with KeyboardInterrupt (what
# Ctrl-C raises) on every rank in the second epoch, after the first epoch's checkpoint: the state
# a run killed mid-way leaves. The file changes nothing else (not the identity).
PLUGIN = '''
import os
from mcbench import hookimpl
from mcbench.specs import ModelSpec


def build(input_shape, n_outputs, *, task, variant, **params):
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, n_outputs))
            self.steps = 0

        def forward(self, x):
            stop = os.environ.get("MCBENCH_TEST_STOP", "")
            if self.training:
                self.steps += 1
                if self.steps > 4 and stop and os.path.exists(stop):  # 4 steps per epoch
                    raise KeyboardInterrupt
            return self.net(x)

    return Tiny()


@hookimpl
def mcbench_models():
    return [ModelSpec(name="ddp_cnn", summary="tiny", build=build)]
'''

TINY = ["--dataset-param", "n_clips=40", "--dataset-param", "seconds=2.0"]
#: Measured on this 2-core CPU (synthetic, 40 clips, 3 epochs, effective batch 8 = 2 x 4): the
#: test ROC-AUC of the 2-process run was 0.5043 against 0.4992 in one process (a difference of
#: 0.0051) and the epoch losses differed by at most 0.0008 (0.12 %); the bounds are about 4x
#: and 25x those, for other thread counts and platforms.
AUC_TOLERANCE = 0.02
LOSS_TOLERANCE = 0.02


def args(ws: Path, results: str) -> list[str]:
    return ["--plugins-dir", str(ws / "plugins"), "run", "--models", "ddp_cnn", "--epochs", "3",
            "--batch-size", "8", "--dataset", "synthetic", "--data-dir", str(ws / "data"),
            "--results-dir", str(ws / results), "--device", "cpu", "--no-progress",
            "--format", "plain", *TINY]


def only_record(ws: Path, results: str) -> dict:
    (path,) = (ws / results / "runs" / "synthetic").glob("*.json")
    return json.loads(path.read_text())


def torchrun(ws: Path, results: str, stop: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "MCBENCH_TEST_STOP": str(stop or "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "mcbench", *args(ws, results)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ws)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    (root / "plugins").mkdir()
    (root / "plugins" / "ddp_cnn.py").write_text(PLUGIN)
    single = CliRunner().invoke(main, args(root, "single"))  # also prepares the features
    assert single.exit_code == 0, single.output
    return root


def test_shards_cover_each_global_batch_and_weights_give_its_mean():
    for size, world in ((8, 2), (7, 2), (1, 2), (10, 4)):
        batch = np.arange(100, 100 + size)
        parts = [shard(batch, r, world) for r in range(world)]
        real = [p for p, w in parts if w > 0]
        assert np.array_equal(np.concatenate(real), batch)
        # DDP divides the sum of the ranks' gradients by the world size: the weights make the
        # average of (weight x rank mean) the mean over the global batch
        assert sum(w * len(p) / len(p) for p, w in parts) / world == pytest.approx(1.0)
        assert all(len(p) >= 1 for p, _ in parts)


def test_two_processes_on_gloo_agree_with_one_process(ws):
    done = torchrun(ws, "ddp")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert out.count("▶ ddp_cnn") == 1  # rank 0 alone reports
    assert "on 2 processes (4 per process)" in out
    assert out.count("Model ") == 1  # one table, printed by rank 0
    rec, single = only_record(ws, "ddp"), only_record(ws, "single")
    assert rec["status"] == "complete"
    assert rec["distributed"] == {"world_size": 2, "backend": "gloo", "per_rank_batch": 4,
                                  "effective_batch": 8, "batch_norm": "per rank (not synchronised)"}
    assert single["distributed"] is None
    # the world size is part of the identity: the data-parallel run is another run
    assert rec["identity"]["training"]["data_parallel_world_size"] == 2
    assert rec["run_id"] != single["run_id"]
    assert rec["identity"]["training"]["batch_size"] == single["identity"]["training"]["batch_size"]
    # only rank 0 wrote: one record, one score file, the run's two checkpoints and nothing else
    files = sorted(p.name for p in (ws / "ddp").rglob("*") if p.is_file())
    assert files == sorted([f"{rec['run_id']}.json", rec["scores_path"], "best.pt", "last.pt",
                            f"{rec['run_id']}.lock"]), files
    # the same clips per step as one process: the numbers agree within the measured tolerance
    assert len(rec["history"]) == len(single["history"]) == 3
    for a, b in zip(rec["history"], single["history"]):
        assert abs(a["loss"] - b["loss"]) <= LOSS_TOLERANCE, (a, b)
    auc, auc1 = rec["test"]["roc_auc"]["value"], single["test"]["roc_auc"]["value"]
    assert abs(auc - auc1) <= AUC_TOLERANCE, (auc, auc1)
    print(f"DDP vs single: ROC-AUC {auc:.4f} vs {auc1:.4f}; losses "
          f"{[round(h['loss'], 4) for h in rec['history']]} vs "
          f"{[round(h['loss'], 4) for h in single['history']]}")

    # started again, the finished run is skipped on every rank
    again = torchrun(ws, "ddp")
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert "already complete" in again.stdout
    assert only_record(ws, "ddp") == rec


def test_an_interrupted_data_parallel_run_resumes_from_rank_0s_checkpoint(ws):
    whole = only_record(ws, "ddp")  # the uninterrupted 2-process run of the test above
    stop = ws / "stop-now"
    stop.write_text("stop")
    stopped = torchrun(ws, "resume", stop)
    assert stopped.returncode != 0
    rec = only_record(ws, "resume")
    assert rec["status"] == "running" and rec["run_id"] == whole["run_id"]
    import torch

    state = torch.load(ws / "resume" / "work" / rec["run_id"] / "last.pt", weights_only=True)["state"]
    assert state["epoch"] == 0
    stop.unlink()

    resumed = torchrun(ws, "resume")
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-4000:]
    assert out.count("resuming from epoch 2") == 1  # said by rank 0 only
    rec = only_record(ws, "resume")
    assert rec["status"] == "complete"
    assert rec["history"][0] == state["history"][0]  # the interrupted process's first epoch
    # every rank continued from rank 0's checkpoint: the uninterrupted run's numbers
    assert [h["loss"] for h in rec["history"]] == pytest.approx(
        [h["loss"] for h in whole["history"]], abs=1e-6)
    assert rec["test"]["roc_auc"]["value"] == pytest.approx(whole["test"]["roc_auc"]["value"],
                                                            abs=1e-6)


def test_run_nproc_starts_torchrun_itself(ws):
    """``mcbench run --nproc 2`` is the torchrun command: the 2-process run of the test above,
    found complete (same identity, world size 2), not trained again."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "mcbench", *args(ws, "ddp"), "--nproc", "2"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ws)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "torch.distributed.run --standalone --nproc-per-node 2" in done.stderr
    assert done.stdout.count("already complete") == 1 and "▶" not in done.stdout
