"""One run across several processes (GPUs) with torch's DistributedDataParallel.

``torchrun --nproc-per-node N -m mcbench run ...`` starts the ``mcbench run`` command N times
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in the environment
(https://pytorch.org/docs/stable/elastic/run.html). :func:`setup` sees them and joins the
process group: NCCL on CUDA (rank ``r`` trains on ``cuda:LOCAL_RANK``), gloo on the CPU.

What each rank does:

* every rank plans the same runs; rank 0 prepares the features first, the others then read them
  from the feature store;
* for each run rank 0 alone takes the run's lock and decides (a finished run is skipped by all);
* the training split is read in the order a single process would use (a permutation seeded from
  the run seed and the epoch): each **global** batch of ``--batch-size`` clips is cut into one
  shard per rank (:func:`shard`), so the effective batch is the batch size given and each rank
  trains on ``batch size / world size`` clips per step; each rank's loss is weighted so that
  the gradients DistributedDataParallel averages are the mean over the global batch, as in one
  process;
* rank 0 alone validates, selects the checkpoint, writes ``last.pt``/``best.pt``, evaluates on
  the test split and writes the record; its decisions (the epoch's metric, early stopping) are
  broadcast so every rank runs the same epochs; resume reads rank 0's ``last.pt`` and
  broadcasts it to every rank.

What differs from one process with the same effective batch: batch normalisation normalises
each rank's shard by its own statistics (SyncBatchNorm needs NCCL, so it is not used on gloo/CPU;
the CPU and GPU paths stay the same), and float sums are taken in another order. The record's
``distributed`` section states the world size, the per-rank and the effective batch, and the
world size is part of the run's identity when it is above 1 (those differences change numbers),
so a data-parallel run never stands in for a single-process one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

_STATE: dict[str, Any] = {"active": False, "rank": 0, "world": 1, "local_rank": 0,
                          "backend": None, "device": None}


def requested() -> bool:
    """Whether this process was started by torchrun (or alike) as one of several ranks."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def active() -> bool:
    return bool(_STATE["active"])


def rank() -> int:
    return int(_STATE["rank"])


def world_size() -> int:
    return int(_STATE["world"])


def is_main() -> bool:
    """Rank 0, or a process that is not part of a data-parallel run."""
    return rank() == 0


def setup(device: str) -> str | None:
    """Join the process group torchrun describes (see the module docstring); returns the device
    this rank trains on, or ``None`` when not started as one of several ranks."""
    if not requested():
        return None
    if active():
        return _STATE["device"]
    import torch
    import torch.distributed as dist

    from .specs import OptionError

    world = int(os.environ["WORLD_SIZE"])
    me = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise OptionError(f"--device {device}: torch sees no CUDA device on rank {me}")
        if local >= torch.cuda.device_count():
            raise OptionError(f"rank {me} (local rank {local}) has no GPU: this node has "
                              f"{torch.cuda.device_count()}; start at most that many processes "
                              "per node (torchrun --nproc-per-node)")
        torch.cuda.set_device(local)
        backend, where = "nccl", f"cuda:{local}"
    else:
        backend, where = "gloo", "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    _STATE.update(active=True, rank=me, world=world, local_rank=local, backend=backend,
                  device=where)
    return where


def teardown() -> None:
    if active():
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        _STATE.update(active=False, rank=0, world=1, local_rank=0, backend=None, device=None)


def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first and the other ranks after it, so that they read what rank
    0 made there (generated data, computed features); one process: just the block."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects; tensors travel as bytes)."""
    if not active():
        return obj
    import torch.distributed as dist

    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(value: float) -> float:
    """The sum of ``value`` over the ranks."""
    if not active():
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64,
                     device=_STATE["device"] if _STATE["backend"] == "nccl" else "cpu")
    dist.all_reduce(t)
    return float(t.item())


def per_rank_batch(batch_size: int, world: int) -> int:
    """The clips each rank trains on per step for an effective (global) batch."""
    from .specs import OptionError

    if batch_size % world:
        raise OptionError(f"--batch-size {batch_size} is the effective batch of a data-parallel "
                          f"run and must be a multiple of the number of processes ({world}); "
                          f"use e.g. {max(world, batch_size - batch_size % world)}")
    return batch_size // world


def shard(global_batch: np.ndarray, rank: int, world: int) -> tuple[np.ndarray, float]:
    """This rank's clips of one global batch and the weight of its mean loss.

    The batch is cut into ``world`` contiguous, near-equal parts. Each rank's mean loss is
    weighted by ``world × (its clips / the batch's clips)``: DistributedDataParallel averages the
    ranks' gradients (divides their sum by ``world``), so the result is the gradient of the mean
    loss over the whole global batch, as one process computes it, also for a short last batch.
    A rank left without clips (a last batch smaller than the world) trains on the batch's first
    clip with weight 0, so that every rank takes part in the gradient exchange.
    """
    parts = np.array_split(np.asarray(global_batch), world)
    mine = parts[rank]
    if len(mine) == 0:
        return np.asarray(global_batch[:1]), 0.0
    return mine, world * len(mine) / len(global_batch)


def describe(batch_size: int) -> dict[str, Any] | None:
    """The record's ``distributed`` section (``None`` in a single process)."""
    if not active():
        return None
    return {"world_size": world_size(), "backend": _STATE["backend"],
            "per_rank_batch": batch_size // world_size(), "effective_batch": batch_size,
            "batch_norm": "per rank (not synchronised)"}
