"""Numerical kernels behind the metric plugins: the tagging and genre metrics of Wang et al.,
IJCNN 2019, Sec. V-D (Tables I–III), with the tie and empty-set rules stated below.

Pure numpy/scipy/scikit-learn, float64 throughout. The registration modules ``tagging.py``
and ``genre.py`` import this module only inside their ``compute`` functions, so listing plugins
never pays for numpy or scikit-learn.

Which parts are hand-written and why (scikit-learn's calls compute the same numbers only under
conditions: a label with a single class present makes ``roc_auc_score`` fail or return NaN,
``ndcg_score`` keeps clips without tags in its mean, and no scikit-learn call ranks multi-label
top-k recall):

* ROC-AUC is the Mann–Whitney statistic from average ranks (:func:`mann_whitney_auc`): one
  vectorised call for all labels, AUC = P(s⁺ > s⁻) + ½·P(s⁺ = s⁻) (ties count one half).
  Tested against ``sklearn.metrics.roc_auc_score``.
* Average precision uses ``sklearn.metrics.average_precision_score`` per defined label: it steps
  over distinct thresholds from high to low without interpolation, AP = Σ_n (R_n − R_{n−1})·P_n
  (not the trapezoidal area under the PR curve).
* Recall@k and NDCG@k share :func:`expected_relevance_by_rank`, which applies mcbench's tie rule
  (the expectation over all orders of tied labels) without enumerating orders. NDCG is tested
  against ``sklearn.metrics.ndcg_score`` (whose default ``ignore_ties=False`` is the same
  expectation for binary relevance) and Recall@k against a brute-force loop over tied orders.
* Genre P/R/F1 and the confusion matrix come from scikit-learn, with ``labels`` restricted to
  the classes present in the split, so absent classes never enter the macro average.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "check_scores",
    "check_tagging_inputs",
    "check_genre_inputs",
    "mann_whitney_auc",
    "average_precision_per_label",
    "expected_relevance_by_rank",
    "recall_at_k_per_clip",
    "ndcg_at_k_per_clip",
    "jaccard_per_clip",
    "genre_report",
]


# --------------------------------------------------------------------------- input checks


def check_scores(y_score) -> np.ndarray:
    """Return ``y_score`` as float64, rejecting NaN or infinite entries.

    The message says only that the scores contain NaN/inf; the harness adds the run and split.
    """
    scores = np.asarray(y_score, dtype=np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(
            f"the scores contain NaN/inf values ({int(bad.sum())} of {scores.size} entries)"
        )
    return scores


def check_tagging_inputs(y_true, y_score, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validate an N × L multi-hot matrix and an N × L score matrix; return (bool, float64)."""
    scores = check_scores(y_score)
    truth = np.asarray(y_true)
    if scores.ndim != 2 or truth.shape != scores.shape:
        raise ValueError(
            f"tagging metrics need y_true and y_score of equal shape N × L; "
            f"got {truth.shape} and {scores.shape}"
        )
    if scores.shape[0] == 0:
        raise ValueError("tagging metrics need at least one clip; the split is empty")
    if len(labels) != scores.shape[1]:
        raise ValueError(f"{len(labels)} label names for {scores.shape[1]} score columns")
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("tagging y_true must be a 0/1 multi-hot matrix")
    return truth.astype(bool), scores


def check_genre_inputs(y_true, y_score, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validate N class indices in 0..K−1 and an N × K score matrix; return (int64, float64)."""
    scores = check_scores(y_score)
    truth = np.asarray(y_true)
    if scores.ndim != 2 or truth.ndim != 1 or truth.shape[0] != scores.shape[0]:
        raise ValueError(
            f"genre metrics need y_true of shape (N,) and y_score of shape (N, K); "
            f"got {truth.shape} and {scores.shape}"
        )
    if scores.shape[0] == 0:
        raise ValueError("genre metrics need at least one clip; the split is empty")
    n_classes = scores.shape[1]
    if len(labels) != n_classes:
        raise ValueError(f"{len(labels)} class names for {n_classes} score columns")
    if truth.size and not np.array_equal(truth, np.round(truth)):
        raise ValueError("genre y_true must hold integer class indices")
    truth = truth.astype(np.int64)
    if truth.min() < 0 or truth.max() >= n_classes:
        raise ValueError(f"genre y_true holds class indices outside 0..{n_classes - 1}")
    return truth, scores


# --------------------------------------------------------------------------- ranking by clip


def mann_whitney_auc(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column ROC-AUC as P(s⁺ > s⁻) + ½·P(s⁺ = s⁻), the Mann–Whitney statistic.

    ``truth`` and ``scores`` are N × C. Returns ``(auc, n_pos, n_neg)``; ``auc`` is NaN for a
    column without both a positive and a negative (an undefined label, left out of macros).
    """
    from scipy.stats import rankdata

    truth = truth.astype(bool)
    n_pos = truth.sum(axis=0).astype(np.int64)
    n_neg = truth.shape[0] - n_pos
    # Average ranks give tied (positive, negative) pairs exactly half a win.
    ranks = rankdata(scores, method="average", axis=0)
    rank_sum = np.where(truth, ranks, 0.0).sum(axis=0)
    u_stat = rank_sum - n_pos * (n_pos + 1) / 2.0
    defined = (n_pos > 0) & (n_neg > 0)
    auc = np.full(truth.shape[1], np.nan)
    auc[defined] = u_stat[defined] / (n_pos[defined].astype(np.float64) * n_neg[defined])
    return auc, n_pos, n_neg


def average_precision_per_label(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-column AP = Σ_n (R_n − R_{n−1})·P_n over distinct thresholds (no interpolation).

    NaN for a column without both a positive and a negative, so the skip rule matches ROC-AUC.
    """
    from sklearn.metrics import average_precision_score

    truth = truth.astype(bool)
    n_pos = truth.sum(axis=0)
    defined = (n_pos > 0) & (n_pos < truth.shape[0])
    ap = np.full(truth.shape[1], np.nan)
    for col in np.flatnonzero(defined):
        ap[col] = average_precision_score(truth[:, col], scores[:, col])
    return ap


# --------------------------------------------------------------------------- ranking by label


def expected_relevance_by_rank(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Expected relevance of the label at each rank of each clip, ties as an expectation.

    Each row is ranked by score, highest first. Within a tie group of m labels of which r are
    relevant, every order of the group is equally likely, so each position of the group holds
    a relevant label with probability r/m. Returns an N × L float64 matrix whose column j is
    that probability at rank j + 1. Recall@k and DCG@k are linear in these values, so summing
    them gives the expectation over all tied orders; the result does not depend on the label
    order of the input columns.
    """
    n_clips, n_labels = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    sorted_rel = np.take_along_axis(truth.astype(np.float64), order, axis=1)

    starts = np.ones((n_clips, n_labels), dtype=bool)
    starts[:, 1:] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    # One id per tie group over the whole matrix: a row offset keeps groups of different
    # clips apart even when their scores coincide.
    group = np.cumsum(starts, axis=1) - 1 + (np.arange(n_clips) * n_labels)[:, None]
    flat_group = group.ravel()
    group_size = np.bincount(flat_group, minlength=n_clips * n_labels)
    group_rel = np.bincount(flat_group, weights=sorted_rel.ravel(), minlength=n_clips * n_labels)
    expected = group_rel[flat_group] / group_size[flat_group]
    return expected.reshape(n_clips, n_labels)


def _check_k(k: int) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def recall_at_k_per_clip(truth: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """R@k_i = |G_i ∩ T_i^k| / |G_i| per clip with |G_i| ≥ 1 (Wang et al. 2019, Sec. V-D).

    The denominator is the clip's full tag count |G_i| (the paper's |G_{1:k}|): the authors' code
    (FishInMedi/CRNN-TF ``1.ipynb``, ``recall``) divides by it, and Table I's R@1 ≈ 0.3 fits it.

    Clips without tags are left out of the returned vector. k > L uses L.
    """
    k = min(_check_k(k), scores.shape[1])
    n_true = truth.sum(axis=1)
    keep = n_true > 0
    hits = expected_relevance_by_rank(truth[keep], scores[keep])[:, :k].sum(axis=1)
    return hits / n_true[keep]


def _discounts(n: int) -> np.ndarray:
    """1 / log2(r + 1) for ranks r = 1..n."""
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def ndcg_at_k_per_clip(truth: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k_i with binary gains and the ideal DCG of Wang et al. 2019, eq. (6).

    IDCG_i sums the first min(k, |G_i|) discounts. Clips without tags are left out. k > L uses L.
    """
    k = min(_check_k(k), scores.shape[1])
    n_true = truth.sum(axis=1)
    keep = n_true > 0
    discounts = _discounts(k)
    dcg = expected_relevance_by_rank(truth[keep], scores[keep])[:, :k] @ discounts
    ideal_by_count = np.concatenate(([0.0], np.cumsum(discounts)))
    idcg = ideal_by_count[np.minimum(n_true[keep], k)]
    return dcg / idcg


def jaccard_per_clip(truth: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """JSC_i = |G_i ∩ P_i| / |G_i ∪ P_i| with P_i = {s ≥ τ} (inclusive), per clip with tags."""
    predicted = scores >= threshold
    keep = truth.any(axis=1)
    inter = (truth[keep] & predicted[keep]).sum(axis=1)
    union = (truth[keep] | predicted[keep]).sum(axis=1)
    return inter / union


# --------------------------------------------------------------------------- genre


def genre_report(truth: np.ndarray, scores: np.ndarray) -> dict:
    """Everything the genre metrics report (Wang et al. 2019, Tables II and III), computed once.

    Returns a dict of numpy arrays over all K classes — ``precision``, ``recall``, ``f1``,
    ``auc`` (NaN where undefined), ``support``, ``n_pred`` — plus ``present`` (support > 0),
    ``auc_defined``, ``accuracy``, ``confusion`` (K × K, rows = true, columns = predicted) and
    the macro values over the present classes (``precision_macro``, ``recall_macro``,
    ``f1_macro``). P/R/F1 of absent classes are NaN: they are left out of every macro.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    n_classes = scores.shape[1]
    all_classes = np.arange(n_classes)
    # numpy argmax takes the lowest index on an exact tie: mcbench's rule for a tied prediction.
    predicted = np.argmax(scores, axis=1)
    support = np.bincount(truth, minlength=n_classes)
    n_pred = np.bincount(predicted, minlength=n_classes)
    present = support > 0

    precision = np.full(n_classes, np.nan)
    recall = np.full(n_classes, np.nan)
    f1 = np.full(n_classes, np.nan)
    present_classes = all_classes[present]
    # zero_division=0 sets P_c = 0 for a class never predicted and F1_c = 0 when P_c + R_c = 0.
    p, r, f, _ = precision_recall_fscore_support(
        truth, predicted, labels=present_classes, average=None, zero_division=0
    )
    precision[present], recall[present], f1[present] = p, r, f

    onehot = truth[:, None] == all_classes[None, :]
    auc, _, _ = mann_whitney_auc(onehot, scores)

    return {
        "predicted": predicted,
        "support": support,
        "n_pred": n_pred,
        "present": present,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": auc,
        "auc_defined": ~np.isnan(auc),
        "accuracy": float(np.mean(predicted == truth)),
        "precision_macro": float(np.mean(p)),
        "recall_macro": float(np.mean(r)),
        "f1_macro": float(np.mean(f)),
        "confusion": confusion_matrix(truth, predicted, labels=all_classes),
    }
