"""Significance statistics for comparing a model with a reference model on the same data.

Three tools, each on plain inputs (numpy arrays, lists), so they know nothing about runs,
records or specific metrics. A metric enters only as a callable ``metric(y_true, y_score) ->
float``; to use a metric plugin, wrap its ``compute``, e.g.
``lambda y, s: spec.compute(y, s, labels).value``.

* :func:`paired_bootstrap` — the paired (percentile) bootstrap on one fixed test set: the test
  clips are resampled with replacement, both models are scored on every resample, and the
  differences give a 95 % interval and a two-sided p-value. The bootstrap is Efron & Tibshirani,
  *An Introduction to the Bootstrap* (Chapman & Hall, 1993), ch. 13 (percentile intervals) and
  ch. 16 (tests); the paired use on a shared test set is Koehn, "Statistical significance tests
  for machine translation evaluation" (EMNLP 2004) and Berg-Kirkpatrick, Burkett & Klein, "An
  empirical investigation of statistical significance in NLP" (EMNLP-CoNLL 2012).
  :func:`resample_metric` and :func:`compare_resampled` are its two halves, for tables that
  compare several models with one reference on the same resamples.
* :func:`paired_fold_test` — for k-fold protocols (e.g. the 10-fold GTZAN transfer of Wang et
  al., IJCNN 2019, Sec. V-G, Table III): the Wilcoxon signed-rank test on the per-fold
  differences (Wilcoxon, "Individual comparisons by ranking methods", Biometrics Bulletin 1(6),
  1945) and the mean difference with a Student-t interval.
* :func:`holm` and :func:`significant` — the Holm–Bonferroni step-down correction over the
  comparisons of one table (Holm, "A simple sequentially rejective multiple test procedure",
  Scandinavian Journal of Statistics 6(2), 1979).

Only numpy and scipy are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DEFAULT_RESAMPLES",
    "BootstrapResamples",
    "BootstrapResult",
    "FoldTestResult",
    "ResampledMetric",
    "compare_resampled",
    "draw_resamples",
    "paired_bootstrap",
    "resample_metric",
    "paired_fold_test",
    "holm",
    "significant",
]

#: B, the number of bootstrap resamples unless the caller says otherwise.
DEFAULT_RESAMPLES = 1000
#: The seed of the resample draw unless the caller says otherwise.
DEFAULT_SEED = 0
#: Percentiles of the bootstrap differences that bound the 95 % interval.
INTERVAL_PERCENTILES = (2.5, 97.5)

Metric = Callable[[np.ndarray, np.ndarray], float]


# --------------------------------------------------------------------------- resamples


@dataclass(frozen=True)
class BootstrapResamples:
    """B clip-index resamples of a test set of ``n_items`` clips, drawn with ``seed``.

    ``indices`` is a ``(B, n_items)`` integer matrix; row b lists the clips of resample b (drawn
    uniformly with replacement). Pass one object to every :func:`paired_bootstrap` call of a
    table so that every comparison uses the very same resamples.
    """

    indices: np.ndarray = field(repr=False)
    seed: int
    n_items: int

    @property
    def n_resamples(self) -> int:
        return int(self.indices.shape[0])


def draw_resamples(
    n_items: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> BootstrapResamples:
    """Draw ``n_resamples`` resamples of ``n_items`` clip indices with replacement.

    Deterministic: the same ``(n_items, n_resamples, seed)`` always gives the same matrix
    (numpy's ``default_rng(seed)``, PCG64). Rows are whole test sets, so the bootstrap
    resamples clips, never labels.
    """
    n_items = _positive_int(n_items, "n_items")
    n_resamples = _positive_int(n_resamples, "n_resamples")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    indices = rng.integers(0, n_items, size=(n_resamples, n_items), dtype=np.int64)
    indices.setflags(write=False)
    return BootstrapResamples(indices=indices, seed=int(seed), n_items=n_items)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- paired bootstrap


@dataclass(frozen=True)
class ResampledMetric:
    """One model's metric on the full test set and on each bootstrap resample.

    ``full`` and every entry of ``values`` (shape ``(B,)``, in resample order) are means over
    the model's seeds; an entry is NaN where the metric is undefined on that resample.
    Computing the reference model's values once lets a table compare every model with it
    without recomputing them (:func:`compare_resampled`).
    """

    full: float
    values: np.ndarray = field(repr=False)
    resamples: BootstrapResamples = field(repr=False)
    n_seeds: int
    score_shape: tuple[int, ...]


@dataclass(frozen=True)
class BootstrapResult:
    """The paired bootstrap of model A against the reference R (differences are A − R).

    ``difference`` is the metric difference on the full test set (with several seeds, the mean
    over seeds of A's metric minus that of R); ``mean_difference`` the mean of the resample
    differences d_b; ``ci_low``/``ci_high`` their 2.5 % and 97.5 % percentiles (numpy's
    linear interpolation), the 95 % percentile interval; ``p_value`` the two-sided
    p = min(1, 2·min(#{d_b ≤ 0}, #{d_b ≥ 0}) / B). ``n_resamples`` is B, the resamples that
    entered these numbers; ``n_dropped`` the resamples left out because the metric was NaN
    on them (``n_resamples + n_dropped`` were drawn). A p-value of 0 means no resample
    had d_b ≤ 0 (or none ≥ 0): the true p is below the resolution 2/B. ``differences`` holds
    the B kept d_b in resample order.
    """

    difference: float
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_resamples: int
    n_dropped: int
    seed: int
    differences: np.ndarray = field(repr=False)


def _check_y_true(y_true) -> np.ndarray:
    y_true = np.asarray(y_true)
    if y_true.ndim not in (1, 2) or y_true.shape[0] == 0:
        raise ValueError(
            f"y_true must be (N,) class indices or an (N, L) matrix with N ≥ 1, "
            f"got shape {y_true.shape}"
        )
    return y_true


def _as_seed_list(scores, name: str, n_items: int) -> list[np.ndarray]:
    """One ``(N, K)`` array or a non-empty list of them (one per seed), all of one shape."""
    per_seed = isinstance(scores, (list, tuple))
    if per_seed and not scores:
        raise ValueError(f"{name} is an empty list; pass one (N, K) score array per seed")
    arrays = [np.asarray(s) for s in scores] if per_seed else [np.asarray(scores)]
    for i, arr in enumerate(arrays):
        where = f"{name}[{i}]" if per_seed else name
        if arr.ndim != 2:
            hint = " (pass several seeds as a list of (N, K) arrays)" if arr.ndim == 3 else ""
            raise ValueError(f"{where} must be an (N, K) score array, got shape {arr.shape}{hint}")
        if arr.shape[0] != n_items:
            raise ValueError(
                f"{where} has {arr.shape[0]} rows but y_true has {n_items} clips; "
                "both models must be scored on the same test clips, in the same order"
            )
        if arr.shape != arrays[0].shape:
            raise ValueError(
                f"{where} has shape {arr.shape}, unlike {name}[0] with shape {arrays[0].shape}; "
                "every seed must score the same clips and labels"
            )
    return arrays


def _metric_value(metric: Metric, y_true, y_score) -> float:
    value = metric(y_true, y_score)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"metric must return a float, got {type(value).__name__}; wrap a metric plugin "
            "as `lambda y, s: spec.compute(y, s, labels).value`"
        ) from None


def _check_resamples(resamples, n_items: int, n_resamples, seed) -> BootstrapResamples:
    """The given resamples (checked against N and any explicit B/seed), or a fresh draw."""
    if resamples is None:
        return draw_resamples(
            n_items,
            DEFAULT_RESAMPLES if n_resamples is None else n_resamples,
            DEFAULT_SEED if seed is None else seed,
        )
    if not isinstance(resamples, BootstrapResamples):
        raise TypeError("resamples must come from draw_resamples(n_items, n_resamples, seed)")
    if resamples.n_items != n_items:
        raise ValueError(
            f"resamples were drawn for {resamples.n_items} clips but y_true has {n_items}; "
            "draw them with draw_resamples(len(y_true), ...)"
        )
    if n_resamples is not None and n_resamples != resamples.n_resamples:
        raise ValueError(
            f"n_resamples={n_resamples} contradicts the {resamples.n_resamples} resamples "
            "passed; leave n_resamples unset when passing resamples"
        )
    if seed is not None and seed != resamples.seed:
        raise ValueError(
            f"seed={seed} contradicts the resamples drawn with seed {resamples.seed}; "
            "leave seed unset when passing resamples"
        )
    return resamples


def resample_metric(
    metric: Metric,
    y_true,
    scores,
    resamples: BootstrapResamples,
    name: str = "scores",
) -> ResampledMetric:
    """``metric`` of one model on the full test set and on every resample of ``resamples``.

    ``scores`` is one ``(N, K)`` array or a list of them, one per training seed; each value is
    the mean over seeds, NaN if the metric is NaN for any seed. The rows (clips) of ``y_true``
    and of the scores are resampled together; labels are never resampled, so a label with a
    single class on some resample is handled by ``metric`` exactly as on any split. ``name``
    names ``scores`` in error messages. Raises ``ValueError`` if the metric is undefined on
    the full test set.
    """
    y_true = _check_y_true(y_true)
    arrays = _as_seed_list(scores, name, y_true.shape[0])
    resamples = _check_resamples(resamples, y_true.shape[0], None, None)
    full = float(np.mean([_metric_value(metric, y_true, a) for a in arrays]))
    if math.isnan(full):
        raise ValueError(
            f"the metric is undefined (NaN) on the full test set for {name}; nothing to compare"
        )
    values = np.empty(resamples.n_resamples)
    for b, rows in enumerate(resamples.indices):
        y = y_true[rows]
        values[b] = np.mean([_metric_value(metric, y, a[rows]) for a in arrays])
    values.setflags(write=False)
    return ResampledMetric(
        full=full,
        values=values,
        resamples=resamples,
        n_seeds=len(arrays),
        score_shape=tuple(arrays[0].shape),
    )


def compare_resampled(model: ResampledMetric, reference: ResampledMetric) -> BootstrapResult:
    """The paired bootstrap result of ``model`` (A) against ``reference`` (R).

    Both must come from :func:`resample_metric` on the same resamples and score shapes.
    d_b = A_b − R_b; a resample where either is NaN is dropped and counted.
    """
    for which, res in (("model", model), ("reference", reference)):
        if not isinstance(res, ResampledMetric):
            raise TypeError(f"{which} must come from resample_metric(...)")
    if model.score_shape != reference.score_shape:
        raise ValueError(
            f"the model's scores have shape {model.score_shape} and the reference's "
            f"{reference.score_shape}; both must score the same clips and labels"
        )
    same = model.resamples is reference.resamples or (
        model.resamples.seed == reference.resamples.seed
        and np.array_equal(model.resamples.indices, reference.resamples.indices)
    )
    if not same:
        raise ValueError(
            "the model and the reference were resampled differently; pass the same "
            "draw_resamples(...) object to both resample_metric calls"
        )
    diffs = model.values - reference.values
    kept = diffs[~np.isnan(diffs)]
    n_dropped = int(diffs.size - kept.size)
    if kept.size == 0:
        raise ValueError(
            f"the metric is undefined (NaN) on all {diffs.size} bootstrap resamples of "
            f"{model.resamples.n_items} clips; the test set is too small for this metric"
        )
    n_kept = int(kept.size)
    at_most_zero = int(np.count_nonzero(kept <= 0))
    at_least_zero = int(np.count_nonzero(kept >= 0))
    p_value = min(1.0, 2.0 * min(at_most_zero, at_least_zero) / n_kept)
    low, high = np.percentile(kept, INTERVAL_PERCENTILES)
    kept.setflags(write=False)
    return BootstrapResult(
        difference=model.full - reference.full,
        mean_difference=float(np.mean(kept)),
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(p_value),
        n_resamples=n_kept,
        n_dropped=n_dropped,
        seed=model.resamples.seed,
        differences=kept,
    )


def paired_bootstrap(
    metric: Metric,
    y_true,
    scores_a,
    scores_r,
    n_resamples: int | None = None,
    seed: int | None = None,
    resamples: BootstrapResamples | None = None,
) -> BootstrapResult:
    """Paired bootstrap of ``metric`` for model A against the reference model R.

    ``y_true`` has one row per test clip (``(N,)`` class indices or an ``(N, L)`` 0/1 matrix);
    ``scores_a`` and ``scores_r`` are each one ``(N, K)`` score array or a list of them, one
    per training seed. On each of B resamples of the clips (rows; labels are never resampled)
    the metric is computed for every seed of each model on the resampled rows, averaged over
    that model's seeds, and d_b = A − R. How a resample treats a label with a single class is
    up to ``metric`` alone: the macro ROC-AUC plugin, for one, leaves such a label out of
    its mean on that resample, exactly as on any split. A resample on which the metric is NaN
    (for either model, any seed) is dropped and counted in ``n_dropped``.

    The resamples come from :func:`draw_resamples` with ``n_resamples`` (default
    :data:`DEFAULT_RESAMPLES`) and ``seed`` (default 0), so the same seed and N give the same
    resamples for every pair; or pass ``resamples`` drawn once for a whole table (then leave
    ``n_resamples`` and ``seed`` unset, or give the values it was drawn with). To compare
    several models with one reference, :func:`resample_metric` the reference once and
    :func:`compare_resampled` each model with it; the result is the same. Cost: B × (seeds
    of A + seeds of R) metric calls, plus one per seed on the full set.

    Raises ``ValueError`` on mismatched shapes, and when the metric is undefined (NaN) on the
    full test set or on every resample.
    """
    y_true = _check_y_true(y_true)
    n_items = y_true.shape[0]
    arrays_a = _as_seed_list(scores_a, "scores_a", n_items)
    arrays_r = _as_seed_list(scores_r, "scores_r", n_items)
    if arrays_a[0].shape != arrays_r[0].shape:
        raise ValueError(
            f"scores_a has shape {arrays_a[0].shape} and scores_r {arrays_r[0].shape}; "
            "the two models must score the same clips and labels"
        )
    resamples = _check_resamples(resamples, n_items, n_resamples, seed)
    model = resample_metric(metric, y_true, arrays_a, resamples, name="scores_a")
    reference = resample_metric(metric, y_true, arrays_r, resamples, name="scores_r")
    return compare_resampled(model, reference)


# --------------------------------------------------------------------------- k-fold protocols


@dataclass(frozen=True)
class FoldTestResult:
    """A paired comparison over folds (differences are A − R, one per fold).

    ``mean_difference`` ± the Student-t 95 % interval (``ci_low``, ``ci_high``) from the
    sample standard deviation (ddof 1); ``statistic`` and ``p_value`` are scipy's two-sided
    Wilcoxon signed-rank result. ``note`` says when a special case applied (see
    :func:`paired_fold_test`); it is empty otherwise.
    """

    differences: np.ndarray = field(repr=False)
    n_folds: int
    mean_difference: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    note: str = ""


def _fold_values(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of per-fold values, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values: {arr.tolist()}")
    return arr


def paired_fold_test(values_a, values_r) -> FoldTestResult:
    """Compare per-fold metric values of model A with those of the reference R, fold by fold.

    ``values_a[i]`` and ``values_r[i]`` must be the two models' values on the same fold i.
    Tests the per-fold differences d = A − R with ``scipy.stats.wilcoxon`` (two-sided, scipy's
    defaults: zero differences dropped, exact distribution for small samples without ties)
    and gives the mean difference with the interval mean ± t₀.₉₇₅,ₙ₋₁ · s/√n
    (``scipy.stats.t``). With n folds the exact two-sided Wilcoxon p-value cannot be below
    2/2ⁿ (0.0625 for 5 folds, about 0.002 for 10), so few folds can never reach α = 0.05.

    Special cases, decided here rather than left to scipy's warnings:

    * n = 1: no test and no interval. ``p_value``, ``statistic``, ``ci_low`` and ``ci_high``
      are NaN (:func:`holm` leaves NaN p-values out); ``mean_difference`` is the one difference.
    * every difference is exactly 0: the models agree on every fold, so there is no evidence of
      a difference: ``p_value`` 1, ``statistic`` 0, interval [0, 0].

    Raises ``ValueError`` for empty, non-finite or unequal-length inputs.
    """
    a = _fold_values(values_a, "values_a")
    r = _fold_values(values_r, "values_r")
    if a.shape != r.shape:
        raise ValueError(
            f"values_a has {a.size} folds and values_r {r.size}; pass one value per fold for both"
        )
    if a.size == 0:
        raise ValueError("values_a and values_r are empty; pass one value per fold")
    diffs = a - r
    diffs.setflags(write=False)
    n = int(diffs.size)
    mean = float(np.mean(diffs))
    if n < 2:
        return FoldTestResult(
            differences=diffs,
            n_folds=n,
            mean_difference=mean,
            ci_low=math.nan,
            ci_high=math.nan,
            statistic=math.nan,
            p_value=math.nan,
            note="one fold: a paired test needs at least two folds",
        )
    if not diffs.any():
        return FoldTestResult(
            differences=diffs,
            n_folds=n,
            mean_difference=0.0,
            ci_low=0.0,
            ci_high=0.0,
            statistic=0.0,
            p_value=1.0,
            note="all per-fold differences are zero: p = 1 by definition",
        )

    from scipy import stats as sps

    test = sps.wilcoxon(diffs, alternative="two-sided")
    half_width = sps.t.ppf(0.975, df=n - 1) * np.std(diffs, ddof=1) / math.sqrt(n)
    return FoldTestResult(
        differences=diffs,
        n_folds=n,
        mean_difference=mean,
        ci_low=float(mean - half_width),
        ci_high=float(mean + half_width),
        statistic=float(test.statistic),
        p_value=float(test.pvalue),
    )


# --------------------------------------------------------------------------- multiple comparisons


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order (Holm 1979).

    With the m p-values sorted ascending, p₍ᵢ₎ is adjusted to
    max_{j ≤ i} min(1, (m − j + 1)·p₍ⱼ₎): monotone in the sorted order and capped at 1.
    Rejecting where the adjusted value is ≤ α is Holm's step-down procedure at family-wise
    level α. NaN entries (comparisons without a test, e.g. a single fold) stay NaN and are not
    counted in m. Raises ``ValueError`` for values outside [0, 1] or a non-1-D input.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be a 1-D sequence, got shape {p.shape}")
    tested = ~np.isnan(p)
    if ((p[tested] < 0) | (p[tested] > 1)).any():
        raise ValueError(f"p_values must lie in [0, 1]; got {p.tolist()}")
    adjusted = np.full(p.shape, np.nan)
    finite = p[tested]
    m = finite.size
    if m == 0:
        return adjusted
    order = np.argsort(finite, kind="stable")
    scaled = (m - np.arange(m)) * finite[order]
    stepped = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = stepped
    adjusted[tested] = out
    return adjusted


def significant(adjusted, alpha: float = 0.05) -> np.ndarray:
    """Which adjusted p-values reject at level ``alpha``: adjusted ≤ alpha (NaN never rejects)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    adj = np.asarray(adjusted, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(adj), False, adj <= alpha)
