"""Tests of mcbench.stats: paired bootstrap, paired fold test, Holm–Bonferroni.

What each check compares against:

* Bootstrap: hand-worked cases (identical models → d_b = 0 and p = 1; a model better on every
  resample → p = 0); an exact enumeration of all Nᴺ resamples of a 4-clip test set, which the
  Monte Carlo frequencies must match within binomial error; ``scipy.stats.bootstrap``
  (``paired=True``, ``method="percentile"``) on a mean difference, whose interval must agree
  within Monte Carlo error (the two draw different resamples, so not index for index); and
  the real ROC-AUC plugin recomputed by hand on a resample where a tag has one class.
* Fold test: ``scipy.stats.wilcoxon`` and ``scipy.stats.ttest_rel`` directly, and the exact
  hand-worked value 2/2⁵ for five positive differences.
* Holm: a worked example, the sequential step-down procedure written out, and statsmodels'
  ``multipletests(method="holm")`` when statsmodels happens to be installed.
"""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest
from mcbench_plugins.metrics import tagging
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from mcbench.stats import (
    BootstrapResamples,
    compare_resampled,
    draw_resamples,
    holm,
    paired_bootstrap,
    paired_fold_test,
    resample_metric,
    significant,
)

LABELS5 = [f"t{i}" for i in range(5)]


def macro_roc_auc(y, s):
    """The macro ROC-AUC plugin as a plain metric callable."""
    return tagging.roc_auc(y, s, [f"t{i}" for i in range(y.shape[1])]).value


def accuracy(y, s):
    return float(np.mean(np.argmax(s, axis=1) == y))


def column_mean(y, s):
    """A mean statistic: the metric difference is then the mean per-clip difference."""
    return float(np.mean(s[:, 0]))


def tagging_data(n=40, n_labels=5, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < 0.3).astype(int)
    y[0], y[1] = 1, 0  # every label has both classes on the full set
    s_a = np.clip(y * 0.3 + rng.random((n, n_labels)) * 0.7, 0, 1)
    s_r = np.clip(y * 0.1 + rng.random((n, n_labels)) * 0.9, 0, 1)
    return y, s_a, s_r


# --------------------------------------------------------------------------- hand-worked cases


def test_identical_models_differ_by_zero_with_p_one():
    y, s_a, _ = tagging_data()
    res = paired_bootstrap(macro_roc_auc, y, s_a, s_a.copy(), n_resamples=200, seed=3)
    assert res.difference == 0.0
    assert res.mean_difference == 0.0
    assert (res.ci_low, res.ci_high) == (0.0, 0.0)
    assert res.p_value == 1.0
    assert (res.n_resamples, res.n_dropped, res.seed) == (200, 0, 3)


def test_model_better_on_every_resample_has_p_zero():
    # A is right on all 30 clips, R on the first 15 only: d_b = 1 − (R's hits in the resample)
    # is ≤ 0 only for a resample made of R's 15 clips alone (probability 2⁻³⁰).
    n = 30
    y = np.arange(n) % 3
    s_a = np.eye(3)[y]
    s_r = np.eye(3)[np.where(np.arange(n) < 15, y, (y + 1) % 3)]
    res = paired_bootstrap(accuracy, y, s_a, s_r, n_resamples=500, seed=1)
    assert res.difference == pytest.approx(0.5)
    assert res.p_value == 0.0
    assert (res.differences > 0).all()
    assert 0 < res.ci_low < 0.5 < res.ci_high < 1
    assert res.mean_difference == pytest.approx(0.5, abs=0.03)


def test_monte_carlo_matches_exact_enumeration_of_all_resamples():
    # Four clips; metric = mean of column 0, so d_b = mean of the per-clip differences c over
    # the resample. All 4⁴ = 256 resamples are equally likely: enumerate them exactly.
    c = np.array([0.3, -0.1, 0.2, -0.2])
    s_r = np.zeros((4, 1))
    s_a = c[:, None].copy()
    exact = np.array([c[list(idx)].mean() for idx in itertools.product(range(4), repeat=4)])
    exact_le = np.mean(exact <= 1e-12)
    exact_ge = np.mean(exact >= -1e-12)
    exact_p = min(1.0, 2 * min(exact_le, exact_ge))

    big_b = 20_000
    res = paired_bootstrap(column_mean, np.zeros(4), s_a, s_r, n_resamples=big_b, seed=11)
    # Floating sums of the same four values in another order can miss 0 by 1 ulp.
    d = np.round(res.differences, 12)
    tol = 4 * math.sqrt(0.25 / big_b)  # four binomial standard errors, at most
    assert np.mean(d <= 0) == pytest.approx(exact_le, abs=tol)
    assert np.mean(d >= 0) == pytest.approx(exact_ge, abs=tol)
    assert res.p_value == pytest.approx(exact_p, abs=2 * tol)
    assert res.mean_difference == pytest.approx(
        exact.mean(), abs=4 * exact.std() / math.sqrt(big_b)
    )
    assert res.difference == pytest.approx(c.mean())


def test_percentile_interval_agrees_with_scipy_bootstrap():
    # scipy draws its own resamples, so the endpoints agree within Monte Carlo error only.
    rng = np.random.default_rng(5)
    n = 200
    a = rng.normal(0.1, 1.0, n)
    r = a + rng.normal(-0.2, 0.5, n)
    b = 4000
    # scipy ≥ 1.15 names the generator `rng`; older releases `random_state`.
    seed_arg = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"
    ours = paired_bootstrap(column_mean, np.zeros(n), a[:, None], r[:, None], n_resamples=b, seed=2)
    ref = sps.bootstrap(
        (a, r),
        lambda x, z, axis: np.mean(x - z, axis=axis),
        paired=True,
        vectorized=True,
        method="percentile",
        n_resamples=b,
        confidence_level=0.95,
        **{seed_arg: np.random.default_rng(9)},
    )
    spread = np.std(a - r, ddof=1) / math.sqrt(n)  # the standard error of the mean difference
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.15 * spread)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.15 * spread)
    # Both are close to the normal-theory interval for a mean (central limit theorem).
    assert ours.ci_high - ours.ci_low == pytest.approx(2 * 1.96 * spread, rel=0.1)
    assert ours.difference == pytest.approx(np.mean(a - r))


# --------------------------------------------------------------------------- rows, skip rule, drops


def test_resamples_rows_and_metric_skips_single_class_tags_as_on_any_split():
    y, s_a, s_r = tagging_data(n=12, n_labels=5, seed=4)
    y[:, 4] = 0
    y[2, 4] = 1  # tag t4 has one positive: most resamples hold no positive for it
    draws = draw_resamples(len(y), 50, seed=0)
    res = paired_bootstrap(macro_roc_auc, y, s_a, s_r, resamples=draws)
    assert res.n_dropped == 0

    def by_hand(rows, scores):
        aucs = [
            roc_auc_score(y[rows, j], scores[rows, j])
            for j in range(y.shape[1])
            if 0 < y[rows, j].sum() < len(rows)
        ]
        return np.mean(aucs), y.shape[1] - len(aucs)

    skipped_somewhere = False
    for b, rows in enumerate(draws.indices):
        auc_a, skipped = by_hand(rows, s_a)
        auc_r, _ = by_hand(rows, s_r)
        assert res.differences[b] == pytest.approx(auc_a - auc_r, abs=1e-12)
        skipped_somewhere |= skipped > 0
    assert skipped_somewhere


def test_resamples_where_the_metric_is_nan_are_dropped_and_counted():
    rng = np.random.default_rng(0)
    y = np.array([[1], [1], [0], [0], [0], [0]])
    s_a, s_r = rng.random((6, 1)), rng.random((6, 1))
    draws = draw_resamples(6, 400, seed=7)
    res = paired_bootstrap(macro_roc_auc, y, s_a, s_r, resamples=draws)
    positives = y[draws.indices, 0].sum(axis=1)
    single_class = (positives == 0) | (positives == 6)
    assert single_class.sum() > 0
    assert res.n_dropped == int(single_class.sum())
    assert res.n_resamples == 400 - res.n_dropped
    assert res.differences.size == res.n_resamples


def test_undefined_on_the_full_set_or_every_resample_is_an_error():
    y = np.ones((5, 2), dtype=int)
    s = np.random.default_rng(0).random((5, 2))
    with pytest.raises(ValueError, match="full test set"):
        paired_bootstrap(macro_roc_auc, y, s, s, n_resamples=10)
    with pytest.raises(ValueError, match="all 10 bootstrap resamples"):
        paired_bootstrap(
            lambda yy, ss: 0.0 if ss is s else float("nan"),  # defined on the full set only
            y,
            s,
            s,
            n_resamples=10,
        )


# --------------------------------------------------------------------------- seeds and determinism


def test_several_seeds_use_the_mean_over_seeds_of_each_models_metric():
    y, s_a1, s_r1 = tagging_data(seed=1)
    _, s_a2, s_r2 = tagging_data(seed=2)
    draws = draw_resamples(len(y), 20, seed=0)
    res = paired_bootstrap(macro_roc_auc, y, [s_a1, s_a2], [s_r1, s_r2], resamples=draws)
    full = (macro_roc_auc(y, s_a1) + macro_roc_auc(y, s_a2)) / 2
    full -= (macro_roc_auc(y, s_r1) + macro_roc_auc(y, s_r2)) / 2
    assert res.difference == pytest.approx(full)
    rows = draws.indices[7]
    mean_a = np.mean([macro_roc_auc(y[rows], s[rows]) for s in (s_a1, s_a2)])
    mean_r = np.mean([macro_roc_auc(y[rows], s[rows]) for s in (s_r1, s_r2)])
    assert res.differences[7] == pytest.approx(mean_a - mean_r)
    # One seed in a list is the same as the bare array; A and R may have different seed counts.
    one = paired_bootstrap(macro_roc_auc, y, [s_a1], [s_r1], resamples=draws)
    bare = paired_bootstrap(macro_roc_auc, y, s_a1, s_r1, resamples=draws)
    np.testing.assert_array_equal(one.differences, bare.differences)
    mixed = paired_bootstrap(macro_roc_auc, y, [s_a1, s_a2], s_r1, resamples=draws)
    assert mixed.difference == pytest.approx(
        (macro_roc_auc(y, s_a1) + macro_roc_auc(y, s_a2)) / 2 - macro_roc_auc(y, s_r1)
    )


def test_same_seed_same_resamples_for_every_pair():
    y, s_a, s_r = tagging_data()
    first = draw_resamples(len(y), 30, seed=4)
    again = draw_resamples(len(y), 30, seed=4)
    other = draw_resamples(len(y), 30, seed=5)
    np.testing.assert_array_equal(first.indices, again.indices)
    assert not np.array_equal(first.indices, other.indices)
    assert first.indices.shape == (30, len(y)) and first.n_resamples == 30
    assert first.indices.min() >= 0 and first.indices.max() < len(y)

    by_seed = paired_bootstrap(macro_roc_auc, y, s_a, s_r, n_resamples=30, seed=4)
    shared = paired_bootstrap(macro_roc_auc, y, s_a, s_r, resamples=first)
    np.testing.assert_array_equal(by_seed.differences, shared.differences)
    assert (by_seed.p_value, by_seed.ci_low, by_seed.seed) == (
        shared.p_value,
        shared.ci_low,
        shared.seed,
    )
    reseeded = paired_bootstrap(macro_roc_auc, y, s_a, s_r, n_resamples=30, seed=5)
    assert not np.array_equal(by_seed.differences, reseeded.differences)
    # Another pair on the same resamples: its d_b come from the same rows.
    res_ra = paired_bootstrap(macro_roc_auc, y, s_r, s_a, resamples=first)
    np.testing.assert_allclose(res_ra.differences, -shared.differences, atol=1e-15)


def test_reference_resampled_once_gives_the_same_comparisons():
    y, s_a, s_r = tagging_data()
    _, s_b, _ = tagging_data(seed=8)
    draws = draw_resamples(len(y), 40, seed=2)
    reference = resample_metric(macro_roc_auc, y, s_r, draws)
    assert reference.values.shape == (40,) and reference.n_seeds == 1
    assert reference.full == pytest.approx(macro_roc_auc(y, s_r))
    for scores in (s_a, [s_b, s_a]):
        split = compare_resampled(resample_metric(macro_roc_auc, y, scores, draws), reference)
        whole = paired_bootstrap(macro_roc_auc, y, scores, s_r, resamples=draws)
        np.testing.assert_array_equal(split.differences, whole.differences)
        assert (split.difference, split.p_value, split.ci_low, split.ci_high) == (
            whole.difference,
            whole.p_value,
            whole.ci_low,
            whole.ci_high,
        )
    other = resample_metric(macro_roc_auc, y, s_a, draw_resamples(len(y), 40, seed=3))
    with pytest.raises(ValueError, match="resampled differently"):
        compare_resampled(other, reference)
    narrow = resample_metric(macro_roc_auc, y[:, :4], s_a[:, :4], draws)
    with pytest.raises(ValueError, match="same clips and labels"):
        compare_resampled(narrow, reference)


# --------------------------------------------------------------------------- input errors


def test_shape_errors_name_the_argument():
    y, s_a, s_r = tagging_data(n=10)
    with pytest.raises(ValueError, match=r"scores_a has 9 rows but y_true has 10 clips"):
        paired_bootstrap(macro_roc_auc, y, s_a[:9], s_r)
    with pytest.raises(ValueError, match=r"scores_r\[1\] has shape \(10, 4\)"):
        paired_bootstrap(macro_roc_auc, y, s_a, [s_r, s_r[:, :4]])
    with pytest.raises(ValueError, match="list of"):
        paired_bootstrap(macro_roc_auc, y, np.stack([s_a, s_a]), s_r)
    with pytest.raises(ValueError, match="empty list"):
        paired_bootstrap(macro_roc_auc, y, [], s_r)
    with pytest.raises(ValueError, match="same clips and labels"):
        paired_bootstrap(macro_roc_auc, y, s_a, s_r[:, :4])
    with pytest.raises(ValueError, match="y_true"):
        paired_bootstrap(macro_roc_auc, y[:0], s_a[:0], s_r[:0])
    with pytest.raises(ValueError, match="drawn for 11 clips"):
        paired_bootstrap(macro_roc_auc, y, s_a, s_r, resamples=draw_resamples(11, 5))
    with pytest.raises(ValueError, match="seed=2 contradicts"):
        paired_bootstrap(macro_roc_auc, y, s_a, s_r, seed=2, resamples=draw_resamples(10, 5))
    with pytest.raises(ValueError, match="n_resamples=6 contradicts"):
        paired_bootstrap(macro_roc_auc, y, s_a, s_r, n_resamples=6, resamples=draw_resamples(10, 5))
    with pytest.raises(TypeError, match=r"\.value"):
        paired_bootstrap(lambda yy, ss: tagging.roc_auc(yy, ss, LABELS5), y, s_a, s_r)
    with pytest.raises(ValueError, match="n_resamples must be a positive integer"):
        draw_resamples(10, 0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        draw_resamples(10, 5, seed=-1)
    assert isinstance(draw_resamples(3, 2), BootstrapResamples)


# --------------------------------------------------------------------------- k-fold test


def test_fold_test_matches_scipy_wilcoxon_and_paired_t_interval():
    rng = np.random.default_rng(3)
    r = rng.uniform(0.6, 0.7, 10)
    a = r + rng.normal(0.02, 0.02, 10)
    res = paired_fold_test(a, r)
    ref = sps.wilcoxon(a, r, alternative="two-sided")
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.statistic == pytest.approx(ref.statistic)
    ci = sps.ttest_rel(a, r).confidence_interval(0.95)
    assert (res.ci_low, res.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert res.mean_difference == pytest.approx(np.mean(a - r))
    assert res.n_folds == 10 and res.note == ""
    np.testing.assert_allclose(res.differences, a - r)


def test_fold_test_hand_worked_five_positive_differences():
    # All five differences positive, distinct: the exact two-sided p is 2 · (1/2)⁵ = 0.0625.
    # t-interval: 3 ± t(0.975, 4) · sqrt(2.5)/sqrt(5) = 3 ± 2.776445 · 0.707107.
    r = np.full(5, 0.5)
    res = paired_fold_test(r + np.array([0.01, 0.02, 0.03, 0.04, 0.05]), r)
    assert res.p_value == pytest.approx(0.0625)
    assert res.mean_difference == pytest.approx(0.03)
    assert res.ci_low == pytest.approx(0.03 - 0.01963243, abs=1e-7)
    assert res.ci_high == pytest.approx(0.03 + 0.01963243, abs=1e-7)


def test_fold_test_special_cases():
    same = paired_fold_test([0.7, 0.8, 0.9], [0.7, 0.8, 0.9])
    assert (same.p_value, same.statistic, same.ci_low, same.ci_high) == (1.0, 0.0, 0.0, 0.0)
    assert "zero" in same.note
    one = paired_fold_test([0.8], [0.7])
    assert one.mean_difference == pytest.approx(0.1)
    assert all(math.isnan(v) for v in (one.p_value, one.statistic, one.ci_low, one.ci_high))
    assert "two folds" in one.note
    with pytest.raises(ValueError, match="values_a has 3 folds and values_r 2"):
        paired_fold_test([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        paired_fold_test([], [])
    with pytest.raises(ValueError, match="values_r holds NaN"):
        paired_fold_test([1, 2], [1, float("nan")])
    with pytest.raises(ValueError, match="1-D"):
        paired_fold_test([[1, 2]], [[1, 2]])


# --------------------------------------------------------------------------- Holm


def test_holm_worked_example():
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone 0.06.
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_array_equal(significant(adjusted), [True, False, False, True])


def test_holm_caps_at_one_and_leaves_nan_out():
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.01, float("nan"), 0.04]), [0.02, np.nan, 0.04])
    assert holm([]).size == 0
    np.testing.assert_array_equal(significant([0.05, np.nan, 0.051]), [True, False, False])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])
    with pytest.raises(ValueError, match="alpha"):
        significant([0.1], alpha=1.0)


def test_holm_rejections_equal_the_step_down_procedure():
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = int(rng.integers(1, 9))
        p = rng.uniform(0, 0.1, m) ** rng.uniform(0.5, 2)
        alpha = 0.05
        reject = np.zeros(m, dtype=bool)
        for rank, i in enumerate(np.argsort(p)):  # Holm 1979: stop at the first acceptance
            if p[i] > alpha / (m - rank):
                break
            reject[i] = True
        np.testing.assert_array_equal(significant(holm(p), alpha), reject)


def test_holm_matches_statsmodels_when_installed():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(1).uniform(0, 0.2, 12)
    reject, adjusted, _, _ = multitest.multipletests(p, alpha=0.05, method="holm")
    np.testing.assert_allclose(holm(p), adjusted)
    np.testing.assert_array_equal(significant(holm(p)), reject)
