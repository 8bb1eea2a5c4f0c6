"""Runs metric plugins over stored scores (metrics.md §1).

The harness never names a metric: it evaluates every metric plugin registered for the task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .specs import MetricSpec


class ScoreError(ValueError):
    """Scores that no metric may be computed on (NaN or infinite values)."""


def check_scores(y_score: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(y_score)):
        bad = int(np.size(y_score) - np.count_nonzero(np.isfinite(y_score)))
        raise ScoreError(f"{where}: {bad} score(s) are NaN or infinite; the model diverged")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if math.isnan(f) else f
    if isinstance(value, np.integer):
        return int(value)
    return value


def evaluate(metrics: Sequence[MetricSpec], y_true: np.ndarray, y_score: np.ndarray,
             labels: Sequence[str], where: str) -> dict[str, dict]:
    """Every metric on one split, as the run record stores them (keyed by metric key)."""
    check_scores(y_score, where)
    out: dict[str, dict] = {}
    for m in metrics:
        try:
            result = m.compute(np.asarray(y_true), np.asarray(y_score, dtype=np.float64), list(labels), **dict(m.params))
        except Exception as exc:  # one broken metric plugin must not lose the run
            out[m.key] = {"name": m.name, "value": None, "error": f"{type(exc).__name__}: {exc}",
                          "higher_is_better": m.higher_is_better, "headline": m.headline, "order": m.order}
            continue
        out[m.key] = {
            "name": m.name,
            "value": _jsonable(result.value),
            "higher_is_better": m.higher_is_better,
            "headline": m.headline,
            "order": m.order,
            "per_label": _jsonable(result.per_label),
            "extra": _jsonable(result.extra),
        }
    return out


def selection_function(metric: MetricSpec, labels: Sequence[str]):
    """``(y_true, y_score) -> float`` for checkpoint selection on validation."""

    def select(y_true, y_score) -> float:
        check_scores(y_score, "validation split")
        value = metric.compute(np.asarray(y_true), np.asarray(y_score, dtype=np.float64), list(labels), **dict(metric.params)).value
        return float(value) if value is not None and not math.isnan(value) else -math.inf

    return select
