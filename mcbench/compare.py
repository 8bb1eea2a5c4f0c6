"""Significance of table rows against a reference row, from stored records and test scores.

For each row A and the reference R (e.g. CRNN-TF in Tables I and II of Wang et al., IJCNN
2019; CRNN-TF without transfer in Table III), on one metric:

* **one fixed test split** (every run of both rows on fold ``None``): the paired bootstrap of
  :func:`mcbench.stats.paired_bootstrap` on the test clips both rows scored — the saved scores
  of each seed's run, the metric computed by its plugin — with B resamples drawn from a fixed
  seed, giving A − R, its 95 % percentile interval and a two-sided p-value;
* **k-fold protocols**: :func:`mcbench.stats.paired_fold_test` on the per-fold values (each
  fold's mean over seeds), the Wilcoxon signed-rank test over the folds both rows have.

The p-values of one table are Holm-corrected together (:func:`mcbench.stats.holm`); a row
whose corrected p-value is below 0.05 is marked significant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .evaluation import metric_value
from .records import RunRecord

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """Row ``label`` against ``reference`` on ``metric``: differences are row − reference."""

    label: str
    reference: str
    metric: str
    test: str
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_holm: float | None = None
    significant: bool = False
    note: str = ""


def _metric_fn(spec, labels: Sequence[str]):
    def fn(y_true, y_score) -> float:
        value, _ = metric_value(spec, spec.compute(np.asarray(y_true),
                                                   np.asarray(y_score, dtype=np.float64),
                                                   list(labels), **dict(spec.params)))
        return float("nan") if value is None else value

    return fn


def _scores(results_dir: Path, records: Sequence[RunRecord]) -> list[dict]:
    from .storage import load_scores, scores_path

    return [load_scores(scores_path(results_dir, r.dataset, r.run_id)) for r in records]


def _per_fold(records: Sequence[RunRecord], metric: str) -> dict[int, float]:
    values: dict[int, list[float]] = {}
    for r in records:
        entry = r.test.get(metric)
        if entry is not None and entry.value is not None and r.fold is not None:
            values.setdefault(r.fold, []).append(float(entry.value))
    return {f: float(np.mean(v)) for f, v in values.items()}


def compare(label: str, records: Sequence[RunRecord], reference: str,
            ref_records: Sequence[RunRecord], metric_spec, results_dir: Path,
            n_resamples: int = 1000, seed: int = 0) -> Comparison:
    """One row against the reference (module docstring)."""
    from .stats import paired_bootstrap, paired_fold_test

    key = metric_spec.key
    if not records or not ref_records:
        return Comparison(label, reference, key, "–", None, None, None, None,
                          note="no finished runs to compare")
    if any(r.fold is not None for r in (*records, *ref_records)):
        a, r = _per_fold(records, key), _per_fold(ref_records, key)
        folds = sorted(set(a) & set(r))
        test = f"Wilcoxon signed-rank over {len(folds)} folds"
        if len(folds) < 2:
            return Comparison(label, reference, key, test, None, None, None, None,
                              note="fewer than two folds in common")
        res = paired_fold_test([a[f] for f in folds], [r[f] for f in folds])
        return Comparison(label, reference, key, test, res.mean_difference, res.ci_low,
                          res.ci_high, res.p_value, note=res.note)
    sa, sr = _scores(results_dir, records), _scores(results_dir, ref_records)
    ids = [str(i) for i in sr[0]["ids"]]
    for s in (*sa, *sr):
        if [str(i) for i in s["ids"]] != ids:
            return Comparison(label, reference, key, "paired bootstrap", None, None, None, None,
                              note="the runs did not score the same test clips")
    labels = [str(x) for x in sr[0]["labels"]]
    res = paired_bootstrap(_metric_fn(metric_spec, labels), sr[0]["y_true"],
                           [s["y_score"] for s in sa], [s["y_score"] for s in sr],
                           n_resamples=n_resamples, seed=seed)
    return Comparison(label, reference, key, f"paired bootstrap, B={res.n_resamples}",
                      res.difference, res.ci_low, res.ci_high, res.p_value)


def compare_rows(rows: Mapping[str, Sequence[RunRecord]], reference: str, metric_spec,
                 results_dir: Path, n_resamples: int = 1000, seed: int = 0) -> list[Comparison]:
    """Every row but the reference against it, Holm-corrected together (module docstring)."""
    from .stats import holm

    if reference not in rows:
        raise ValueError(f"the reference row {reference!r} is not among the rows "
                         f"({', '.join(rows)})")
    out = [compare(label, recs, reference, rows[reference], metric_spec, Path(results_dir),
                   n_resamples, seed)
           for label, recs in rows.items() if label != reference]
    tested = [i for i, c in enumerate(out) if c.p_value is not None]
    if tested:
        adjusted = holm([out[i].p_value for i in tested])
        for i, p in zip(tested, adjusted):
            out[i] = replace(out[i], p_holm=float(p), significant=bool(p < ALPHA))
    return out
