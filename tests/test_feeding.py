"""Batches on the training device (mcbench.feeding): the resident and prefetched modes the
GPU path uses give exactly the batches of a plain read (forced here on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mcbench.feeding import SplitFeeder, fits_resident
from mcbench.specs import MULTICLASS, MULTILABEL, FeatureSplit


def _split(task: str, n: int = 23) -> FeatureSplit:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 1, 6, 10)).astype(np.float32)
    y = (rng.random((n, 3)) > 0.5).astype(np.float32) if task == MULTILABEL else rng.integers(0, 3, n)
    return FeatureSplit("s", [str(i) for i in range(n)], x, y, task, ["a", "b", "c"])


@pytest.mark.parametrize("task", [MULTILABEL, MULTICLASS])
@pytest.mark.parametrize("resident,prefetch", [(True, False), (False, True), (True, True)])
def test_every_mode_gives_the_plain_batches(task, resident, prefetch):
    split = _split(task)
    batches = [np.array(b) for b in ([5, 1, 9], [0, 22, 3, 4], [7], [12, 11])]
    plain = SplitFeeder(split, task, torch.device("cpu"), channels_last=True)
    assert not plain.resident and not plain.prefetch  # the CPU default: read in place
    other = SplitFeeder(split, task, torch.device("cpu"), channels_last=True,
                        resident=resident, prefetch=prefetch)
    got = list(other.batches(batches))
    assert len(got) == len(batches)
    for (idx, x, y), want in zip(got, batches):
        px, py = plain.batch(want)
        assert idx is want and torch.equal(x, px) and torch.equal(y, py)
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x[:, 0], torch.from_numpy(split.x[np.sort(want), 0]))
        assert y.dtype == (torch.float32 if task == MULTILABEL else torch.int64)


def test_prefetch_passes_an_error_on_and_stops_early():
    split = _split(MULTILABEL)
    feeder = SplitFeeder(split, MULTILABEL, torch.device("cpu"), prefetch=True)
    with pytest.raises(IndexError):
        list(feeder.batches([np.array([0]), np.array([999])]))
    it = feeder.batches([np.array([i]) for i in range(20)])
    assert next(it)[0].tolist() == [0]
    it.close()  # the consumer stops: the reading thread ends instead of blocking


def test_a_split_stays_resident_only_if_it_fits():
    assert fits_resident(400, 1000) and not fits_resident(401, 1000)
    assert fits_resident(900, 1000, fraction=0.9)
