"""What a planned run will cost before it runs: clips, multiply-accumulates and, where this
device has measured the model, hours.

A run of ``E`` epochs over ``N_train`` training clips, validating on ``N_valid`` clips after
each epoch and testing once on ``N_test``, costs about

    MACs = M · (3 · E · N_train + E · N_valid + N_test)

where ``M`` is the model's multiply-accumulates per clip (:func:`mcbench.compute.macs_per_clip`)
and a training step costs three forward passes (forward, input and weight gradients). The clip
counts come from the dataset plugin (:attr:`mcbench.specs.DatasetSpec.expected_split`: the
published split lists, or a generator's parameters), so no data is needed.

Time comes only from measurements on this machine: the training throughput (clips/s) recorded
per epoch in the run records of the same model, variant, backend, batch size and device, else
the training throughput of a ``mcbench bench`` result under ``<results>/bench/`` with the same
keys (any batch size when none matches). Validation and test passes are counted at three times
the training rate (one forward pass instead of three). A run with no measurement has no time;
the listing says how to measure it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compute import TRAIN_FORWARD_PASSES, macs_per_clip


@dataclass(frozen=True)
class RunCost:
    """The estimate of one planned run."""

    train_clips: int | None
    macs: int | None
    seconds: float | None
    #: Where the throughput came from: ``records`` or ``bench`` (None: not measured).
    measured_by: str | None = None


def _device_kind(device: str | None) -> str:
    """``cpu`` or ``cuda`` from a device name as given or as recorded (``cuda:0``)."""
    return "cuda" if device and str(device).startswith("cuda") else "cpu"


def resolved_device(device: str) -> str:
    """``auto`` as the trainer resolves it (CUDA when available), otherwise the kind named (an
    estimate for CUDA may be asked for on a machine without it)."""
    if device != "auto":
        return _device_kind(device)
    from .training import resolve_device

    return resolve_device(device).type


def record_rates(records: Iterable[Any]) -> dict[tuple, list[float]]:
    """Training clips/s of every epoch of every record, keyed by (model, variant, backend,
    batch size, device kind)."""
    rates: dict[tuple, list[float]] = {}
    for r in records:
        ident = r.identity_dict()
        model = ident["model"]
        key = (model["name"], model["variant"], model.get("backend", "torch"),
               ident["training"].get("batch_size"), _device_kind(r.device))
        rates.setdefault(key, []).extend(
            float(h.clips_per_s) for h in r.history if h.clips_per_s)
    return {k: v for k, v in rates.items() if v}


def bench_rates(results_dir: Path) -> dict[tuple, list[float]]:
    """Training clips/s of the fp32 rows of every ``mcbench bench`` document under
    ``<results_dir>/bench/``, keyed as :func:`record_rates`; a file that is not one is skipped."""
    from .bench import BenchError, load_document

    rates: dict[tuple, list[float]] = {}
    for path in sorted((Path(results_dir) / "bench").glob("*.json")):
        try:
            rows = load_document(path)["rows"]
        except BenchError:
            continue
        for row in rows:
            if not isinstance(row, dict) or row.get("precision", "fp32") != "fp32":
                continue
            rate = row.get("train_clips_per_s")
            if isinstance(rate, (int, float)) and rate > 0:
                key = (row.get("model"), row.get("variant"), row.get("backend", "torch"),
                       row.get("batch_size"), _device_kind(row.get("device")))
                rates.setdefault(key, []).append(float(rate))
    return rates


def _rate(plan: Any, device: str, by_records: dict, by_bench: dict) -> tuple[float, str] | None:
    key = (plan.model, plan.variant, plan.backend, plan.training.get("batch_size"), device)
    if key in by_records:
        return statistics.median(by_records[key]), "records"
    if key in by_bench:
        return statistics.median(by_bench[key]), "bench"
    near = [v for k, vs in by_bench.items() if k[:3] == key[:3] and k[4] == device for v in vs]
    return (statistics.median(near), "bench") if near else None


def run_cost(registry: Any, plan: Any, device: str, by_records: dict, by_bench: dict) -> RunCost:
    """The estimate of one :class:`mcbench.runner.RunPlan` (module docstring)."""
    from .features import FrontEnd

    spec = registry.dataset(plan.dataset)
    if spec.expected_split is None:
        return RunCost(None, None, None)
    split = spec.expected_split(plan.protocol, **spec.resolve_params(plan.data_params))
    epochs = int(plan.training.get("max_epochs", 1))
    mspec = registry.model(plan.model)
    seconds = split.clip_seconds or spec.clip_seconds
    shape = FrontEnd(plan.frontend, seconds=seconds).shape
    macs = macs_per_clip(mspec, plan.variant, len(spec.labels) or 50, plan.task, input_shape=shape)
    total = None if macs is None else macs * (
        TRAIN_FORWARD_PASSES * epochs * split.train + epochs * split.valid + split.test)
    measured = _rate(plan, device, by_records, by_bench)
    if measured is None:
        return RunCost(split.train, total, None)
    rate, source = measured
    train_s = epochs * split.train / rate
    eval_s = (epochs * split.valid + split.test) / (TRAIN_FORWARD_PASSES * rate)
    return RunCost(split.train, total, train_s + eval_s, source)


def costs(registry: Any, plans: Sequence[Any], records: Iterable[Any], results_dir: Path,
          device: str = "auto") -> list[RunCost]:
    """:func:`run_cost` of every plan, with the throughput measured on ``device``."""
    kind = resolved_device(device)
    by_records, by_bench = record_rates(records), bench_rates(results_dir)
    return [run_cost(registry, p, kind, by_records, by_bench) for p in plans]


def macs_text(macs: int | None) -> str:
    """``1.62 GMAC``-style, in the largest unit that keeps a leading digit."""
    if macs is None:
        return "–"
    for unit, scale in (("EMAC", 1e18), ("PMAC", 1e15), ("TMAC", 1e12), ("GMAC", 1e9)):
        if macs >= scale:
            return f"{macs / scale:.3g} {unit}"
    return f"{macs / 1e6:.3g} MMAC"


def hours_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def summary(costs_: Sequence[RunCost], device: str, models: Sequence[str]) -> str:
    """The total compute and time, and what is not measured yet."""
    known = [c.macs for c in costs_ if c.macs is not None]
    timed = [c.seconds for c in costs_ if c.seconds is not None]
    kind = resolved_device(device)
    text = f"compute: {macs_text(sum(known)) if known else '–'}"
    if len(known) < len(costs_):
        text += f" ({len(costs_) - len(known)} run(s) without a MAC count, e.g. non-torch models)"
    if timed:
        text += f"; time on this machine ({kind}): {hours_text(sum(timed))}"
        if len(timed) < len(costs_):
            text += f" for {len(timed)} of {len(costs_)} runs"
    missing = [m for m, c in zip(models, costs_) if c.seconds is None]
    if missing:
        names = ",".join(dict.fromkeys(missing))
        text += (f"\nno measured throughput on {kind} for {len(missing)} run(s): measure it with "
                 f"`mcbench bench --models {names} --device {kind}` (or finish one run)")
    return text + "\n"
