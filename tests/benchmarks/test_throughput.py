"""Throughput benchmarks (pytest-benchmark). Skipped in the default test run; run them with
``tox -e bench`` or ``python -m pytest tests/benchmarks --benchmark-only``.

Compare figures as ratios within one run; absolute times only mean something on the machine
that produced them (record GPU figures with the GPU model under ``results/``).
"""

from __future__ import annotations

import numpy as np
import pytest

from mcbench import bench, compute
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
DEEP = [m.name for m in REGISTRY.specs("model") if "torch" in m.backends]


@pytest.mark.parametrize("name", DEEP)
def test_train_step_batch_of_4(benchmark, name):
    """One optimiser step (forward, BCE, backward, Adam) on 4 clips of the paper's input: the
    step ``mcbench bench`` times (:func:`mcbench.bench.torch_steps`)."""
    spec = REGISTRY.model(name)
    variant = spec.default_variant_for("torch")
    case = bench.Case(name, variant, "torch", "cpu", "fp32", batch_size=4)
    steps = bench.torch_steps(spec, case, compute.input_shape_of(spec, variant))
    steps.set_training(True)
    loss = benchmark.pedantic(lambda: float(steps.train()), rounds=3, warmup_rounds=1)
    assert np.isfinite(loss)
