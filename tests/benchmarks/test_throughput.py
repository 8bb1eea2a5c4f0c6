"""Throughput benchmarks (pytest-benchmark). Skipped in the default test run; run them with
``tox -e bench`` or ``python -m pytest tests/benchmarks --benchmark-only``.

Compare figures as ratios within one run; absolute times only mean something on the machine
that produced them (record GPU figures with the GPU model under ``results/``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mcbench.features import FrontEnd, LogMel, librosa_logmel
from mcbench.plugins import Registry

FE = FrontEnd()
WAVES = np.random.default_rng(0).normal(0, 0.1, size=(8, FE.n_samples)).astype(np.float32)


def test_logmel_torch_batch_of_8(benchmark):
    logmel = LogMel(FE)
    out = benchmark(logmel, WAVES)
    assert out.shape == (8, 96, 1360)


def test_logmel_librosa_batch_of_8(benchmark):
    out = benchmark(lambda: [librosa_logmel(w, FE) for w in WAVES])
    assert out[0].shape == (96, 1360)


REGISTRY = Registry()
DEEP = [m.name for m in REGISTRY.specs("model") if m.name != "mfcc_svm"]


@pytest.mark.parametrize("name", DEEP)
def test_train_step_batch_of_4(benchmark, name):
    """One optimiser step (forward, BCE, backward, Adam) on 4 clips of the paper's input."""
    spec = REGISTRY.model(name)
    fe = FrontEnd(spec.frontend(spec.default_variant))
    model = spec.build(fe.shape, 50, task="multilabel", variant=spec.default_variant)
    opt = torch.optim.Adam(model.parameters())
    x = torch.randn(4, *fe.shape)
    y = (torch.rand(4, 50) > 0.9).float()

    def step():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    assert np.isfinite(benchmark.pedantic(step, rounds=3, warmup_rounds=1))
