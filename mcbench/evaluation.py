"""Runs metric plugins over a split's scores.

The harness never names a metric: it evaluates every metric plugin registered for the task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .specs import MetricResult, MetricSpec


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


def metric_value(metric: MetricSpec, result) -> tuple[float | None, MetricResult]:
    """The value of what a metric plugin returned: a :class:`MetricResult` or a plain number (as
    a scikit-learn function returns). Anything else is a ``TypeError`` naming the plugin."""
    if isinstance(result, (int, float, np.number)) and not isinstance(result, (bool, np.bool_)):
        result = MetricResult(float(result))
    if not isinstance(result, MetricResult):
        raise TypeError(f"metric {metric.key!r} returned a {type(result).__name__} ({result!r:.60}); "
                        "compute() must return a number or mcbench.specs.MetricResult(value)")
    value = result.value
    if isinstance(value, (bool, np.bool_)) or not (
            value is None or isinstance(value, (int, float, np.number))):
        raise TypeError(f"metric {metric.key!r} returned the value {value!r} "
                        f"({type(value).__name__}); MetricResult.value must be a number or None")
    value = None if value is None or not math.isfinite(float(value)) else float(value)
    return value, result


def evaluate(metrics: Sequence[MetricSpec], y_true: np.ndarray, y_score: np.ndarray,
             labels: Sequence[str], where: str) -> dict[str, dict]:
    """Every metric on one split, as the run record stores them (keyed by metric key).

    A metric plugin that raises or returns something that is not a number is recorded with its
    error and no value; the run and the other metrics keep theirs.
    """
    check_scores(y_score, where)
    out: dict[str, dict] = {}
    for m in metrics:
        entry = {"name": m.name, "higher_is_better": m.higher_is_better, "headline": m.headline,
                 "order": m.order}
        try:
            result = m.compute(np.asarray(y_true), np.asarray(y_score, dtype=np.float64),
                               list(labels), **dict(m.params))
            value, result = metric_value(m, result)
            out[m.key] = {**entry, "value": value, "per_label": _jsonable(result.per_label),
                          "extra": _jsonable(result.extra)}
        except Exception as exc:  # one broken metric plugin must not lose the run
            module = getattr(m.compute, "__module__", None) or "?"
            out[m.key] = {**entry, "value": None,
                          "error": f"{type(exc).__name__} in metric plugin {module} "
                                   f"(metric {m.key!r}): {exc}"}
    return out


def selection_function(metric: MetricSpec, labels: Sequence[str]):
    """``(y_true, y_score) -> float`` for checkpoint selection on validation; NaN when the
    metric is undefined on the split (it never selects an epoch, :func:`mcbench.specs.improves`)."""

    def select(y_true, y_score) -> float:
        check_scores(y_score, "validation split")
        result = metric.compute(np.asarray(y_true), np.asarray(y_score, dtype=np.float64),
                                list(labels), **dict(metric.params))
        value, _ = metric_value(metric, result)
        return value if value is not None else math.nan

    return select
