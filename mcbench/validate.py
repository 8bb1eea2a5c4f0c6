"""``mcbench plugins validate NAME``: does a model plugin honour the contract?

For every variant and task the model declares, on the CPU and in seconds:

1. metadata: a summary, known tasks, a front end the harness can compute;
2. build: ``build(input_shape, n_outputs, task=…, variant=…)`` succeeds for a small input (or the
   default 29-s input when the design needs it) and returns an ``nn.Module`` or a learner;
3. outputs: predictions have shape ``(N, K)``, are finite, and are probabilities for the task
   (in [0, 1]; rows summing to 1 for multiclass) unless the learner declares
   ``scores_are_probabilities = False`` (e.g. SVM decision values);
4. learning: a few optimiser steps on a tiny fixed batch lower the loss (torch models), or
   fitting a tiny separable set beats chance (other learners);
5. persistence: save → load into a freshly built model gives identical predictions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .features import FRONTEND_NAMES, FrontEnd
from .specs import MULTICLASS, MULTILABEL, FeatureSplit, ModelSpec, TrainConfig

SMALL_SECONDS = 4.0
N_OUTPUTS = 5


class Check:
    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self.failures = 0

    def __call__(self, ok: bool, what: str, detail: str = "") -> bool:
        mark = "PASS" if ok else "FAIL"
        self.echo(f"  [{mark}] {what}" + (f": {detail}" if detail else ""))
        if not ok:
            self.failures += 1
        return ok


def _tiny_split(shape: tuple[int, ...], task: str, n: int, rng: np.random.Generator) -> FeatureSplit:
    """A separable toy set: the label is written into the input as an offset."""
    y_idx = np.arange(n) % N_OUTPUTS
    x = rng.normal(0.0, 1.0, size=(n, *shape)).astype(np.float32)
    x += (y_idx[:, None] / N_OUTPUTS).reshape(n, *([1] * len(shape))).astype(np.float32) * 3.0
    if task == MULTILABEL:
        y = np.zeros((n, N_OUTPUTS), dtype=np.float32)
        y[np.arange(n), y_idx] = 1.0
    else:
        y = y_idx.astype(np.int64)
    labels = [f"label{i}" for i in range(N_OUTPUTS)]
    return FeatureSplit("validate", [f"c{i}" for i in range(n)], x, y, task, labels)


def _build(spec: ModelSpec, variant: str, task: str, check: Check):
    """Try a small input first, then the default 29-s input (some designs need it)."""
    errors = []
    for seconds in (SMALL_SECONDS, 29.0):
        shape = FrontEnd(spec.frontend(variant), seconds=seconds).shape
        try:
            return spec.create(shape, N_OUTPUTS, task=task, variant=variant), shape
        except Exception as exc:
            errors.append(f"input {shape}: {type(exc).__name__}: {exc}")
    check(False, "build", " | ".join(errors))
    return None, None


def validate_model(spec: ModelSpec, task: str | None = None, variant: str | None = None,
                   echo: Callable[[str], None] = print) -> bool:
    import torch

    from .training import TorchLearner, as_learner

    check = Check(echo)
    echo(f"validating model plugin {spec.name!r}")
    check(bool(spec.summary.strip()), "has a one-line summary")
    variants = [variant] if variant else list(spec.variants)
    unknown = [v for v in variants if v not in spec.variants]
    if unknown:
        check(False, "variant exists", f"{unknown} not in {list(spec.variants)}")
        return False
    tasks = [task] if task else list(spec.tasks)
    for v in variants:
        fe = spec.frontend(v)
        check(fe in FRONTEND_NAMES, f"variant {v}: front end {fe!r} is one the harness computes",
              "" if fe in FRONTEND_NAMES else f"known: {FRONTEND_NAMES}")
        for t in tasks:
            echo(f"variant {v}, task {t}")
            torch.manual_seed(0)
            built, shape = _build(spec, v, t, check)
            if built is None:
                continue
            try:
                learner = as_learner(built, t)
            except TypeError as exc:
                check(False, "build returns an nn.Module or a learner", str(exc))
                continue
            check(True, "build", f"input {shape} → {type(built).__name__}")
            rng = np.random.default_rng(0)
            data = _tiny_split(shape, t, 20, rng)
            if isinstance(learner, TorchLearner):
                _check_torch(learner, data, t, check)
            else:
                _check_learner(learner, data, t, check)
            _check_persistence(spec, v, t, shape, learner, data, check)
    echo("OK: the plugin honours the contract" if check.failures == 0 else
         f"{check.failures} check(s) failed; see the FAIL lines above")
    return check.failures == 0


def _check_outputs(scores: np.ndarray, n: int, task: str, probabilities: bool, check: Check) -> None:
    ok_shape = check(scores.shape == (n, N_OUTPUTS), "output shape",
                     f"expected ({n}, {N_OUTPUTS}), got {scores.shape}")
    if not ok_shape:
        return
    finite = check(bool(np.all(np.isfinite(scores))), "outputs are finite")
    if not (finite and probabilities):
        return
    in_range = bool(np.all((scores >= 0) & (scores <= 1)))
    check(in_range, "outputs are probabilities in [0, 1]")
    if task == MULTICLASS:
        sums = scores.sum(axis=1)
        check(bool(np.allclose(sums, 1.0, atol=1e-4)), "class probabilities sum to 1",
              f"row sums range {sums.min():.4f}..{sums.max():.4f}")


def _check_torch(learner, data: FeatureSplit, task: str, check: Check) -> None:
    import torch

    module = learner.module
    x = torch.from_numpy(np.ascontiguousarray(data.x[:4]))
    try:
        logits = module.eval()(x)
    except Exception as exc:
        check(False, "forward pass", f"{type(exc).__name__}: {exc}")
        return
    if not check(isinstance(logits, torch.Tensor) and tuple(logits.shape) == (4, N_OUTPUTS),
                 "forward returns logits (B, K)",
                 f"got {getattr(logits, 'shape', type(logits).__name__)}"):
        return
    _check_outputs(learner.predict(data, batch_size=8), len(data), task, True, check)
    y = torch.from_numpy(data.y[:4])

    def loss_now() -> float:
        torch.manual_seed(123)  # same dropout masks before and after
        module.train()
        with torch.no_grad():
            return float(learner._loss(module(x), y))

    before = loss_now()
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    module.train()
    for step in range(8):
        torch.manual_seed(step)
        loss = learner._loss(module(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_now()
    check(after < before, "a few training steps lower the loss", f"{before:.4f} → {after:.4f}")


def _check_learner(learner, data: FeatureSplit, task: str, check: Check) -> None:
    probabilities = getattr(learner, "scores_are_probabilities", True)
    config = TrainConfig(max_epochs=2, batch_size=8, progress=False,
                         select_metric=lambda yt, ys: 0.0, workdir=None)
    try:
        learner.fit(data, data, config)
    except Exception as exc:
        check(False, "fit on a tiny set", f"{type(exc).__name__}: {exc}")
        return
    scores = np.asarray(learner.predict(data))
    _check_outputs(scores, len(data), task, probabilities, check)
    if scores.shape == (len(data), N_OUTPUTS):
        truth = data.y.argmax(1) if task == MULTILABEL else data.y
        acc = float(np.mean(scores.argmax(1) == truth))
        check(acc > 1.5 / N_OUTPUTS, "fitting a separable tiny set beats chance",
              f"training accuracy {acc:.2f} (chance {1 / N_OUTPUTS:.2f})")


def _check_persistence(spec, variant, task, shape, learner, data, check: Check) -> None:
    import torch

    from .training import as_learner

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.bin"
        try:
            before = np.asarray(learner.predict(data))
            learner.save(path)
            torch.manual_seed(999)  # a different initialisation, to prove load() restores it all
            fresh = as_learner(spec.create(shape, N_OUTPUTS, task=task, variant=variant), task)
            fresh.load(path)
            after = np.asarray(fresh.predict(data))
        except Exception as exc:
            check(False, "save → load", f"{type(exc).__name__}: {exc}")
            return
    same = before.shape == after.shape and np.allclose(before, after, atol=1e-6, rtol=0)
    check(same, "save → load gives identical predictions",
          "" if same else f"max difference {np.max(np.abs(before - after)) if before.shape == after.shape else 'shape'}")
