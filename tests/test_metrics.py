"""Tests of the tagging and genre metric plugins against their definitions (Wang et al., IJCNN
2019, Sec. V-D, eqs. 4–8, and the rules the metric summaries state).

* Worked examples with exact numbers computed by hand from the definitions.
* Each edge case (skipped labels, clips without tags, ties, absent / never-predicted classes,
  k > L, nothing defined, NaN/inf scores).
* Agreement with scikit-learn on random tie-free data, and Recall@k / NDCG@k / AP against
  brute-force implementations of the definitions on small data with ties.
* The registry finds the plugins by key and picks the selection metrics.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
from mcbench_plugins.metrics import genre, tagging
from mcbench_plugins.metrics.tagging import jsc_metric, ndcg_at_k_metric, recall_at_k_metric
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    jaccard_score,
    ndcg_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from mcbench.plugins import Registry
from mcbench.specs import MULTICLASS, MULTILABEL

TAG = {m.key: m for m in tagging.METRICS}
GENRE = {m.key: m for m in genre.METRICS}


def names(n: int) -> list[str]:
    return [f"l{i}" for i in range(n)]


def value(spec, y_true, y_score, **params) -> float:
    y_score = np.asarray(y_score, dtype=np.float64)
    return spec.compute(np.asarray(y_true), y_score, names(y_score.shape[1]), **params).value


# ============================================================================ worked examples

ONE_CLIP_Y = [[1, 0, 1, 0, 0]]
ONE_CLIP_S = [[0.9, 0.8, 0.1, 0.5, 0.3]]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (recall_at_k_metric(1), 0.5),
        (recall_at_k_metric(3), 0.5),
        (recall_at_k_metric(5), 1.0),
        (ndcg_at_k_metric(3), 1 / (1 + 1 / math.log2(3))),
        (ndcg_at_k_metric(5), (1 + 1 / math.log2(6)) / (1 + 1 / math.log2(3))),
        (jsc_metric(0.5), 0.25),
    ],
    ids=["R@1", "R@3", "R@5", "NDCG@3", "NDCG@5", "JSC@0.5"],
)
def test_worked_example_one_clip(spec, expected):
    assert value(spec, ONE_CLIP_Y, ONE_CLIP_S) == pytest.approx(expected, abs=1e-12)


def test_worked_example_one_clip_rounded_values():
    assert value(ndcg_at_k_metric(3), ONE_CLIP_Y, ONE_CLIP_S) == pytest.approx(0.613147, abs=5e-7)
    assert value(ndcg_at_k_metric(5), ONE_CLIP_Y, ONE_CLIP_S) == pytest.approx(0.850345, abs=5e-7)


def test_worked_example_same_vector_as_one_label_column():
    y = np.array(ONE_CLIP_Y).T
    s = np.array(ONE_CLIP_S).T
    assert value(TAG["roc_auc"], y, s) == pytest.approx(0.5, abs=1e-12)
    assert value(TAG["pr_auc"], y, s) == pytest.approx((1 + 2 / 5) / 2, abs=1e-12)
    assert value(TAG["pr_auc"], y, s) == pytest.approx(0.7, abs=1e-12)


def test_worked_example_ties():
    y, s = [[1, 0, 1, 0]], [[0.9, 0.5, 0.5, 0.1]]
    assert value(recall_at_k_metric(2), y, s) == pytest.approx(0.75, abs=1e-12)
    expected = (1 + 0.5 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert value(ndcg_at_k_metric(2), y, s) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.806574, abs=5e-7)


def test_worked_example_roc_auc_tied_pair():
    y = np.array([[0, 1, 0, 1]]).T
    s = np.array([[0.5, 0.5, 0.2, 0.9]]).T
    assert value(TAG["roc_auc"], y, s) == pytest.approx(0.875, abs=1e-12)


GENRE_Y = np.array([0, 1, 2, 2])
GENRE_PRED = np.array([0, 0, 2, 2])
GENRE_S = np.full((4, 4), 0.1) + 0.6 * np.eye(4)[GENRE_PRED]  # rows sum to 1, argmax = GENRE_PRED
GENRE_LABELS = ["rock", "jazz", "pop", "folk"]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("accuracy", 0.75),
        ("precision_macro", 0.5),
        ("recall_macro", 2 / 3),
        ("f1_macro", 5 / 9),
    ],
)
def test_worked_example_genre(key, expected):
    result = GENRE[key].compute(GENRE_Y, GENRE_S, GENRE_LABELS)
    assert result.value == pytest.approx(expected, abs=1e-12)
    assert result.extra["n_classes_skipped"] == 1
    assert result.extra["skipped_classes"] == ["folk"]


def test_worked_example_genre_rounded_values():
    assert value(GENRE["recall_macro"], GENRE_Y, GENRE_S) == pytest.approx(0.6667, abs=5e-5)
    assert value(GENRE["f1_macro"], GENRE_Y, GENRE_S) == pytest.approx(0.5556, abs=5e-5)


# ============================================================================ edge cases


def test_label_with_only_positives_or_only_negatives_is_skipped_and_counted():
    rng = np.random.default_rng(1)
    y = (rng.random((40, 5)) < 0.4).astype(int)
    y[:, 1] = 1  # only positives
    y[:, 3] = 0  # only negatives
    y[0, [0, 2, 4]], y[1, [0, 2, 4]] = 1, 0
    s = rng.random((40, 5))
    labels = ["a", "b", "c", "d", "e"]
    for key, sk in (("roc_auc", roc_auc_score), ("pr_auc", average_precision_score)):
        res = TAG[key].compute(y, s, labels)
        assert res.extra["n_labels_skipped"] == 2
        assert res.extra["skipped_labels"] == ["b", "d"]
        assert "flagged" not in res.extra
        expected = np.mean([sk(y[:, c], s[:, c]) for c in (0, 2, 4)])
        assert res.value == pytest.approx(expected, abs=1e-12)
        rows = {r["label"]: r for r in res.per_label}
        assert rows["b"] == {"label": "b", "value": None, "n_pos": 40, "n_neg": 0}
        assert rows["d"] == {"label": "d", "value": None, "n_pos": 0, "n_neg": 40}
        assert rows["a"]["value"] == pytest.approx(sk(y[:, 0], s[:, 0]), abs=1e-12)
        assert rows["a"]["n_pos"] + rows["a"]["n_neg"] == 40
        assert rows["a"]["n_pos"] == int(y[:, 0].sum())


def test_no_label_defined_gives_nan_macro_and_a_flag():
    y = np.zeros((6, 3), dtype=int)
    y[:, 0] = 1
    s = np.linspace(0, 1, 18).reshape(6, 3)
    for key in ("roc_auc", "pr_auc"):
        res = TAG[key].compute(y, s, ["a", "b", "c"])
        assert math.isnan(res.value)
        assert res.extra["n_labels_skipped"] == 3
        assert "undefined" in res.extra["flagged"]
        assert all(r["value"] is None for r in res.per_label)


def test_clip_without_tags_is_excluded_from_ranking_metrics_but_counts_in_auc():
    rng = np.random.default_rng(2)
    y = (rng.random((30, 8)) < 0.3).astype(int)
    y[:, 0] = 0
    y[0, 0] = 1  # label 0 defined
    y[[5, 11, 17], :] = 0  # three clips without tags
    y[(y.sum(axis=1) == 0) & ~np.isin(np.arange(30), [5, 11, 17]), 1] = 1
    s = rng.random((30, 8))
    keep = y.sum(axis=1) > 0
    assert keep.sum() == 27
    for spec in (recall_at_k_metric(3), ndcg_at_k_metric(5), jsc_metric(0.5)):
        full = spec.compute(y, s, names(8))
        assert full.extra["n_clips_no_labels"] == 3
        assert full.extra["n_clips"] == 27
        subset = spec.compute(y[keep], s[keep], names(8))
        assert subset.extra["n_clips_no_labels"] == 0
        assert full.value == pytest.approx(subset.value, abs=1e-12)
    # The empty clips are negatives for every label in ROC-AUC and PR-AUC.
    auc = TAG["roc_auc"].compute(y, s, names(8))
    assert auc.value == pytest.approx(np.mean([roc_auc_score(y[:, c], s[:, c]) for c in range(8)]))
    assert auc.value != pytest.approx(value(TAG["roc_auc"], y[keep], s[keep]), abs=1e-9)
    ap = TAG["pr_auc"].compute(y, s, names(8))
    assert ap.value == pytest.approx(
        np.mean([average_precision_score(y[:, c], s[:, c]) for c in range(8)])
    )


def test_no_clip_with_tags_gives_nan_and_a_flag():
    y = np.zeros((3, 4), dtype=int)
    s = np.full((3, 4), 0.7)
    for spec in (recall_at_k_metric(1), ndcg_at_k_metric(50), jsc_metric()):
        res = spec.compute(y, s, names(4))
        assert math.isnan(res.value)
        assert res.extra["n_clips_no_labels"] == 3
        assert "no clip" in res.extra["flagged"]


def test_tie_group_across_the_cut_contributes_r_s_over_m():
    # Group {1, 2, 3, 4} tied at 0.5 holds r = 2 relevant labels, m = 4; label 0 is on top.
    # k = 3 leaves s = 2 of the group's positions in the top 3: hits = 1 + 2·2/4 = 2 of |G| = 3.
    y = [[1, 1, 0, 1, 0, 0]]
    s = [[0.9, 0.5, 0.5, 0.5, 0.5, 0.1]]
    assert value(recall_at_k_metric(3), y, s) == pytest.approx(2 / 3, abs=1e-12)
    disc = 1 / np.log2(np.arange(2, 8))
    dcg = disc[0] + 0.5 * (disc[1] + disc[2])
    assert value(ndcg_at_k_metric(3), y, s) == pytest.approx(dcg / disc[:3].sum(), abs=1e-12)


def test_ties_do_not_depend_on_label_order():
    rng = np.random.default_rng(3)
    y = (rng.random((50, 10)) < 0.3).astype(int)
    y[:, 0] = 1
    s = rng.choice([0.0, 0.25, 0.5, 1.0], size=(50, 10))
    perm = rng.permutation(10)
    for spec in (*(recall_at_k_metric(k) for k in (1, 3, 5)), ndcg_at_k_metric(4), TAG["roc_auc"]):
        assert value(spec, y, s) == pytest.approx(value(spec, y[:, perm], s[:, perm]), abs=1e-12)


def test_saturated_float32_sigmoids_are_ties():
    # exp(-20) is below float32 resolution at 1.0, so both labels score exactly 1.0.
    logits = np.array([[20.0, 25.0, -3.0]], dtype=np.float32)
    probs = 1 / (1 + np.exp(-logits))
    assert probs[0, 0] == probs[0, 1] == 1.0
    assert value(recall_at_k_metric(1), [[0, 1, 0]], probs) == pytest.approx(0.5)
    assert value(recall_at_k_metric(1), [[0, 1, 0]], logits) == pytest.approx(1.0)


def test_k_larger_than_l_uses_l():
    assert value(recall_at_k_metric(10), ONE_CLIP_Y, ONE_CLIP_S) == pytest.approx(1.0)
    res = TAG["ndcg@50"].compute(np.array(ONE_CLIP_Y), np.array(ONE_CLIP_S), names(5))
    assert res.value == pytest.approx(value(ndcg_at_k_metric(5), ONE_CLIP_Y, ONE_CLIP_S), abs=1e-15)
    assert res.value == pytest.approx(0.850345, abs=5e-7)
    assert res.extra["k_used"] == 5


def test_jsc_threshold_is_inclusive_and_parametrised():
    y = [[1, 0, 1, 0]]
    s = [[0.5, 0.45, 0.2, 0.7]]
    # τ = 0.5: P = {0, 3}, |{0}| / |{0, 2, 3}|.
    assert value(jsc_metric(), y, s) == pytest.approx(1 / 3)
    spec = jsc_metric(0.4)
    assert (spec.key, spec.name, dict(spec.params)) == ("jsc@0.4", "JSC@0.4", {"threshold": 0.4})
    # τ = 0.4: P = {0, 1, 3}, |{0}| / |{0, 1, 2, 3}|; the same with or without **params.
    assert value(spec, y, s) == pytest.approx(0.25)
    assert value(spec, y, s, **spec.params) == pytest.approx(0.25)
    default = TAG["jsc"]
    assert (default.key, default.name, dict(default.params)) == ("jsc", "JSC", {"threshold": 0.5})
    assert value(default, y, s, **default.params) == pytest.approx(1 / 3)
    assert default.compute(np.array(y), np.array(s), names(4)).extra["threshold"] == 0.5


def test_genre_absent_class_stays_in_confusion_matrix_and_report():
    res = GENRE["accuracy"].compute(GENRE_Y, GENRE_S, GENRE_LABELS)
    assert res.extra["confusion_matrix"] == [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    folk = res.per_label[3]
    assert folk["label"] == "folk"
    assert folk["support"] == 0 and folk["n_pred"] == 0
    assert folk["precision"] is None and folk["recall"] is None and folk["f1"] is None
    assert folk["auc"] is None
    auc = GENRE["roc_auc_ovr_macro"].compute(GENRE_Y, GENRE_S, GENRE_LABELS)
    assert auc.extra["n_classes_auc_skipped"] == 1
    assert auc.extra["auc_skipped_classes"] == ["folk"]
    per_class = [roc_auc_score(GENRE_Y == c, GENRE_S[:, c]) for c in range(3)]
    assert auc.value == pytest.approx(np.mean(per_class), abs=1e-12)
    assert [r["value"] for r in auc.per_label[:3]] == pytest.approx(per_class, abs=1e-12)


def test_genre_class_never_predicted_has_precision_zero_and_stays_in_macro():
    res = GENRE["precision_macro"].compute(GENRE_Y, GENRE_S, GENRE_LABELS)
    jazz = res.per_label[1]
    assert jazz["n_pred"] == 0 and jazz["support"] == 1
    assert jazz["precision"] == 0.0 and jazz["recall"] == 0.0 and jazz["f1"] == 0.0
    assert jazz["value"] == 0.0
    # (1/2 + 0 + 1) / 3: the zero is averaged in.
    assert res.value == pytest.approx(0.5, abs=1e-12)
    assert [r["value"] for r in res.per_label] == [0.5, 0.0, 1.0, None]


def test_genre_argmax_tie_goes_to_lowest_class():
    y = np.array([1, 1])
    s = np.array([[0.4, 0.4, 0.2], [0.1, 0.45, 0.45]])
    res = GENRE["accuracy"].compute(y, s, ["a", "b", "c"])
    assert res.value == 0.5
    assert res.extra["confusion_matrix"] == [[0, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_genre_single_class_split_flags_auc():
    y = np.array([2, 2, 2])
    s = np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3], [0.1, 0.1, 0.8]])
    for key in ("roc_auc_ovr_macro", "roc_auc_ovr_weighted"):
        res = GENRE[key].compute(y, s, ["a", "b", "c"])
        assert math.isnan(res.value)
        assert "undefined" in res.extra["flagged"]
        assert res.extra["n_classes_auc_skipped"] == 3
    acc = GENRE["accuracy"].compute(y, s, ["a", "b", "c"])
    assert acc.value == pytest.approx(2 / 3)
    assert acc.extra["n_classes_skipped"] == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_scores_are_rejected(bad):
    y_tag = np.array([[1, 0, 1], [0, 1, 0]])
    s_tag = np.array([[0.9, 0.1, 0.4], [0.3, bad, 0.2]])
    for spec in tagging.METRICS:
        with pytest.raises(ValueError, match="scores contain NaN/inf"):
            spec.compute(y_tag, s_tag, names(3))
    s_genre = np.array([[0.9, 0.1, 0.0], [bad, 0.5, 0.5]])
    for spec in genre.METRICS:
        with pytest.raises(ValueError, match="scores contain NaN/inf"):
            spec.compute(np.array([0, 1]), s_genre, names(3))


def test_malformed_inputs_are_rejected():
    with pytest.raises(ValueError, match="equal shape"):
        TAG["roc_auc"].compute(np.zeros((2, 3)), np.zeros((2, 4)), names(4))
    with pytest.raises(ValueError, match="label names"):
        TAG["roc_auc"].compute(np.zeros((2, 3)), np.zeros((2, 3)), names(2))
    with pytest.raises(ValueError, match="0/1"):
        TAG["roc_auc"].compute(np.full((2, 3), 2), np.zeros((2, 3)), names(3))
    with pytest.raises(ValueError, match="outside"):
        GENRE["accuracy"].compute(np.array([0, 3]), np.zeros((2, 3)), names(3))
    with pytest.raises(ValueError, match="positive integer"):
        recall_at_k_metric(0).compute(np.ones((1, 3)), np.zeros((1, 3)), names(3))


# ============================================================================ scikit-learn


def tie_free_tagging(seed: int, n: int = 120, n_labels: int = 12):
    """Continuous scores (no ties), every clip tagged, every label with both classes."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < 0.25).astype(int)
    y[np.arange(n), rng.integers(0, n_labels, n)] = 1
    y[0], y[1] = 1, 0
    y[1, 0] = 1
    s = rng.random((n, n_labels))
    assert len(np.unique(s)) == s.size
    assert y.sum(axis=1).min() >= 1 and 0 < y.sum(axis=0).min() and y.sum(axis=0).max() < n
    return y, s


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tagging_agrees_with_sklearn_on_tie_free_data(seed):
    y, s = tie_free_tagging(seed)
    n_labels = y.shape[1]
    auc = TAG["roc_auc"].compute(y, s, names(n_labels))
    per_label = [roc_auc_score(y[:, c], s[:, c]) for c in range(n_labels)]
    assert [r["value"] for r in auc.per_label] == pytest.approx(per_label, abs=1e-12)
    assert auc.value == pytest.approx(roc_auc_score(y, s, average="macro"), abs=1e-12)
    assert auc.extra["n_labels_skipped"] == 0
    ap = TAG["pr_auc"].compute(y, s, names(n_labels))
    assert ap.value == pytest.approx(average_precision_score(y, s, average="macro"), abs=1e-12)
    for k in (1, 5, 12, 50):
        assert value(ndcg_at_k_metric(k), y, s) == pytest.approx(ndcg_score(y, s, k=k), abs=1e-12)
    for tau in (0.3, 0.5, 0.8):
        expected = jaccard_score(y, s >= tau, average="samples", zero_division=0)
        assert value(jsc_metric(tau), y, s) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_and_ndcg_agree_with_sklearn_with_ties():
    # scikit-learn counts tied pairs ½ in ROC-AUC and averages gains over tied scores in NDCG.
    rng = np.random.default_rng(7)
    y = (rng.random((80, 9)) < 0.3).astype(int)
    y[np.arange(80), rng.integers(0, 9, 80)] = 1
    y[0] = 0
    y[0, 0] = 1
    s = rng.choice([0.0, 0.2, 0.5, 0.9, 1.0], size=(80, 9))
    expected_auc = np.mean([roc_auc_score(y[:, c], s[:, c]) for c in range(9)])
    assert value(TAG["roc_auc"], y, s) == pytest.approx(expected_auc, abs=1e-12)
    for k in (2, 4, 9):
        assert value(ndcg_at_k_metric(k), y, s) == pytest.approx(ndcg_score(y, s, k=k), abs=1e-12)


def softmax_rows(rng, n: int, n_classes: int) -> np.ndarray:
    logits = rng.normal(size=(n, n_classes)) * 2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_genre_agrees_with_sklearn_on_tie_free_data(seed):
    rng = np.random.default_rng(seed)
    n, k = 300, 6
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    s = softmax_rows(rng, n, k)
    pred = s.argmax(axis=1)
    labels = names(k)
    assert value(GENRE["accuracy"], y, s) == pytest.approx(accuracy_score(y, pred), abs=1e-15)
    p, r, f, _ = precision_recall_fscore_support(
        y, pred, labels=np.arange(k), average="macro", zero_division=0
    )
    assert value(GENRE["precision_macro"], y, s) == pytest.approx(p, abs=1e-12)
    assert value(GENRE["recall_macro"], y, s) == pytest.approx(r, abs=1e-12)
    assert value(GENRE["f1_macro"], y, s) == pytest.approx(f, abs=1e-12)
    macro_auc = roc_auc_score(y, s, multi_class="ovr", average="macro")
    assert value(GENRE["roc_auc_ovr_macro"], y, s) == pytest.approx(macro_auc, abs=1e-12)
    onehot = np.eye(k)[y]
    weighted = roc_auc_score(onehot, s, average="weighted")
    assert value(GENRE["roc_auc_ovr_weighted"], y, s) == pytest.approx(weighted, abs=1e-12)
    res = GENRE["f1_macro"].compute(y, s, labels)
    assert res.extra["n_classes_skipped"] == 0
    assert np.array(res.extra["confusion_matrix"]).sum() == n
    assert [row["support"] for row in res.per_label] == np.bincount(y, minlength=k).tolist()


def test_genre_with_absent_class_agrees_with_sklearn_restricted_to_present_classes():
    rng = np.random.default_rng(5)
    n, k = 200, 5
    y = rng.choice([0, 1, 3, 4], size=n)  # class 2 absent, but sometimes predicted
    s = softmax_rows(rng, n, k)
    pred = s.argmax(axis=1)
    assert (pred == 2).any()
    present = np.array([0, 1, 3, 4])
    p, r, f, _ = precision_recall_fscore_support(
        y, pred, labels=present, average="macro", zero_division=0
    )
    assert value(GENRE["precision_macro"], y, s) == pytest.approx(p, abs=1e-12)
    assert value(GENRE["recall_macro"], y, s) == pytest.approx(r, abs=1e-12)
    assert value(GENRE["f1_macro"], y, s) == pytest.approx(f, abs=1e-12)
    auc = np.mean([roc_auc_score(y == c, s[:, c]) for c in present])
    assert value(GENRE["roc_auc_ovr_macro"], y, s) == pytest.approx(auc, abs=1e-12)
    # Macro F1 is the mean of per-class F1, not the harmonic mean of macro P and R.
    assert value(GENRE["f1_macro"], y, s) != pytest.approx(2 * p * r / (p + r), abs=1e-9)


# ============================================================================ brute force with ties


def consistent_orders(scores: np.ndarray):
    """Every label order that ranks by score, highest first (all orders of each tie group)."""
    for perm in itertools.permutations(range(len(scores))):
        ranked = scores[list(perm)]
        if np.all(ranked[:-1] >= ranked[1:]):
            yield list(perm)


def brute_force(y: np.ndarray, s: np.ndarray, k: int, kind: str) -> float:
    per_clip = []
    for yi, si in zip(y, s, strict=True):
        n_true = yi.sum()
        if n_true == 0:
            continue
        vals = []
        for order in consistent_orders(si):
            top = yi[order][: min(k, len(yi))]
            if kind == "recall":
                vals.append(top.sum() / n_true)
            else:
                disc = 1 / np.log2(np.arange(2, len(top) + 2))
                ideal = (1 / np.log2(np.arange(2, min(k, n_true) + 2))).sum()
                vals.append((top * disc).sum() / ideal)
        per_clip.append(np.mean(vals))
    return float(np.mean(per_clip))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recall_and_ndcg_match_brute_force_over_tied_orders(seed):
    rng = np.random.default_rng(seed)
    n, n_labels = 12, 6
    y = (rng.random((n, n_labels)) < 0.4).astype(int)
    y[0] = 0  # one clip without tags, left out by both sides
    s = rng.choice([0.1, 0.5, 0.9], size=(n, n_labels))
    s[1] = 0.5  # one clip where all labels tie
    for k in (1, 2, 3, 5, 10):
        assert value(recall_at_k_metric(k), y, s) == pytest.approx(
            brute_force(y, s, k, "recall"), abs=1e-12
        )
        assert value(ndcg_at_k_metric(k), y, s) == pytest.approx(
            brute_force(y, s, k, "ndcg"), abs=1e-12
        )


def ap_by_definition(y: np.ndarray, s: np.ndarray) -> float:
    """AP = Σ (R_n − R_{n−1}) P_n over distinct thresholds, high to low, no interpolation."""
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        chosen = s >= t
        tp = (y[chosen] == 1).sum()
        recall, precision = tp / y.sum(), tp / chosen.sum()
        total += (recall - prev_recall) * precision
        prev_recall = recall
    return total


def test_pr_auc_matches_the_definition_with_ties():
    rng = np.random.default_rng(11)
    y = (rng.random((60, 4)) < 0.35).astype(int)
    y[0], y[1] = 1, 0
    s = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], size=(60, 4))
    res = TAG["pr_auc"].compute(y, s, names(4))
    expected = [ap_by_definition(y[:, c], s[:, c]) for c in range(4)]
    assert [r["value"] for r in res.per_label] == pytest.approx(expected, abs=1e-12)
    assert res.value == pytest.approx(np.mean(expected), abs=1e-12)


def test_large_split_is_consistent_with_sklearn_ndcg():
    # N = 5000, L = 50 as on MTAT, with saturated ties: the vectorised tie rule still agrees.
    rng = np.random.default_rng(0)
    y = (rng.random((5000, 50)) < 0.08).astype(np.float32)
    y[np.arange(5000), rng.integers(0, 50, 5000)] = 1
    s = rng.random((5000, 50)).astype(np.float32)
    s[s > 0.95] = 1.0
    assert value(TAG["ndcg@50"], y, s) == pytest.approx(ndcg_score(y, s, k=50), abs=1e-10)


# ============================================================================ registration


def test_specs_declare_task_order_headline_and_selection():
    tag_keys = [m.key for m in sorted(tagging.METRICS, key=lambda m: m.order)]
    assert tag_keys == [
        "roc_auc", "recall@1", "recall@3", "recall@5", "recall@10", "ndcg@50", "jsc", "pr_auc"
    ]
    assert [TAG[k].name for k in tag_keys] == [
        "ROC-AUC", "Recall@1", "Recall@3", "Recall@5", "Recall@10", "NDCG@50", "JSC", "PR-AUC"
    ]
    assert [k for k in tag_keys if TAG[k].selects] == ["roc_auc"]
    assert [k for k in tag_keys if not TAG[k].headline] == ["pr_auc"]
    assert all(m.tasks == (MULTILABEL,) and m.higher_is_better for m in tagging.METRICS)

    genre_keys = [m.key for m in sorted(genre.METRICS, key=lambda m: m.order)]
    assert genre_keys == [
        "roc_auc_ovr_macro", "recall_macro", "f1_macro", "accuracy", "precision_macro",
        "roc_auc_ovr_weighted",
    ]
    assert [GENRE[k].name for k in genre_keys[:5]] == [
        "ROC-AUC", "Recall", "F1", "Accuracy", "Precision"
    ]
    assert [k for k in genre_keys if GENRE[k].selects] == ["accuracy"]
    assert [k for k in genre_keys if not GENRE[k].headline] == ["roc_auc_ovr_weighted"]
    assert all(m.tasks == (MULTICLASS,) and m.higher_is_better for m in genre.METRICS)


def test_registry_loads_both_metric_plugins():
    r = Registry()
    infos = {p.name: p for p in r.plugins}
    for plugin, module in (("tagging_metrics", tagging), ("genre_metrics", genre)):
        assert infos[plugin].ok, infos[plugin].error
        assert len(infos[plugin].provides["metric"]) == len(module.METRICS)


def test_registry_finds_metrics_by_key_and_selection_metrics():
    r = Registry()
    assert r.metric("roc_auc") is tagging.ROC_AUC
    assert r.metric("accuracy").name == "Accuracy"
    assert r.selection_metric("multilabel").key == "roc_auc"
    assert r.selection_metric("multiclass").key == "accuracy"
    assert [m.key for m in r.metrics_for(MULTILABEL)] == [m.key for m in tagging.METRICS]
    assert [m.key for m in r.metrics_for(MULTICLASS)][:5] == [
        "roc_auc_ovr_macro", "recall_macro", "f1_macro", "accuracy", "precision_macro"
    ]


def test_registration_modules_import_no_heavy_library():
    code = (
        "import sys, mcbench_plugins.metrics.tagging, mcbench_plugins.metrics.genre\n"
        "heavy = [m for m in ('numpy', 'scipy', 'sklearn', 'torch', 'pandas', 'librosa')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
