"""Tagging metrics for multi-label data (MTAT, Table I of Wang et al., IJCNN 2019).

Implements the tagging metrics of the paper's Sec. V-D: macro ROC-AUC (the checkpoint-selection
metric), Recall@{1,3,5,10}, NDCG@50 and JSC at τ = 0.5, plus PR-AUC (average precision, an
extra, not in the paper).
Columns follow Table I: ROC-AUC, Recall@1, @3, @5, @10, NDCG@50, JSC, then PR-AUC.

Inputs: ``y_true`` an N × L 0/1 matrix, ``y_score`` an N × L matrix of sigmoid probabilities
(or logits for the ranking metrics, which are monotone per label), ``labels`` the L names.

Choices where the paper is loose (mcbench's rules):

* Recall@k divides by the clip's full tag count |G_i| (the paper's |G_{1:k}|; the authors' code
  and Table I's R@1 ≈ 0.3 fit this reading).
* Ties in a top-k ranking count as the expectation over all orders of the tied labels: a tie
  group of m labels, r of them relevant, gives each of its positions r/m of a hit.
* A label with only positives or only negatives in the split is left out of the ROC-AUC and
  PR-AUC macro (its per-label value is None); a clip with no true tag is left out of Recall@k,
  NDCG@k and JSC, whose denominators or ideal values would be 0.
* JSC thresholds inclusively (s ≥ τ); the authors used a strict ``> 0.5``, which differs only
  for scores of exactly 0.5.
* A value that nothing defines (no label with both classes, no clip with a tag) is NaN and the
  result's ``extra["flagged"]`` says why.

Heavy imports (numpy, scipy, scikit-learn) happen inside ``compute`` via ``_core``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcbench import hookimpl
from mcbench.specs import MULTILABEL, MetricResult, MetricSpec

#: Column order of Table I; PR-AUC, not in the paper, comes last.
ORDER_ROC_AUC = 10
ORDER_RECALL = 20  # + k, so Recall@1 < @3 < @5 < @10
ORDER_NDCG = 70
ORDER_JSC = 80
ORDER_PR_AUC = 90

DEFAULT_JSC_THRESHOLD = 0.5


def _per_label_auc_result(values, n_pos, n_neg, labels: Sequence[str], kind: str) -> MetricResult:
    """Macro over defined labels, the per-label table and the skipped-label bookkeeping."""
    import numpy as np

    defined = ~np.isnan(values)
    per_label = [
        {
            "label": name,
            "value": float(values[i]) if defined[i] else None,
            "n_pos": int(n_pos[i]),
            "n_neg": int(n_neg[i]),
        }
        for i, name in enumerate(labels)
    ]
    skipped = [name for i, name in enumerate(labels) if not defined[i]]
    extra: dict = {"n_labels_skipped": len(skipped), "skipped_labels": skipped}
    if defined.any():
        value = float(np.mean(values[defined]))
    else:
        value = float("nan")
        extra["flagged"] = f"no label has both a positive and a negative clip; {kind} is undefined"
    return MetricResult(value=value, per_label=per_label, extra=extra)


def roc_auc(y_true, y_score, labels: Sequence[str]) -> MetricResult:
    """Macro ROC-AUC over labels with ≥ 1 positive and ≥ 1 negative; tied pairs count 1/2.

    ``per_label`` rows: label, value (None when undefined), n_pos, n_neg.
    ``extra``: n_labels_skipped, skipped_labels, and ``flagged`` when no label is defined.
    """
    from . import _core

    truth, scores = _core.check_tagging_inputs(y_true, y_score, labels)
    auc, n_pos, n_neg = _core.mann_whitney_auc(truth, scores)
    return _per_label_auc_result(auc, n_pos, n_neg, labels, "ROC-AUC")


def pr_auc(y_true, y_score, labels: Sequence[str]) -> MetricResult:
    """Macro average precision over the same defined labels as ROC-AUC, no interpolation."""
    from . import _core

    truth, scores = _core.check_tagging_inputs(y_true, y_score, labels)
    ap = _core.average_precision_per_label(truth, scores)
    n_pos = truth.sum(axis=0)
    return _per_label_auc_result(ap, n_pos, truth.shape[0] - n_pos, labels, "PR-AUC")


def _clip_mean(per_clip, n_clips: int, what: str) -> MetricResult:
    """Mean over the clips with ≥ 1 tag, with the excluded-clip count."""
    import numpy as np

    n_used = int(per_clip.size)
    extra: dict = {"n_clips_no_labels": n_clips - n_used, "n_clips": n_used}
    if n_used:
        value = float(np.mean(per_clip))
    else:
        value = float("nan")
        extra["flagged"] = f"no clip has a true tag; {what} is undefined"
    return MetricResult(value=value, extra=extra)


def recall_at_k_metric(k: int) -> MetricSpec:
    """A ``recall@k`` spec (Sec. V-D): hits in the top k over the clip's tag count."""

    def compute(y_true, y_score, labels: Sequence[str]) -> MetricResult:
        from . import _core

        truth, scores = _core.check_tagging_inputs(y_true, y_score, labels)
        per_clip = _core.recall_at_k_per_clip(truth, scores, k)
        result = _clip_mean(per_clip, truth.shape[0], f"Recall@{k}")
        result.extra["k_used"] = min(k, truth.shape[1])
        return result

    compute.__name__ = f"recall_at_{k}"
    return MetricSpec(
        key=f"recall@{k}",
        name=f"Recall@{k}",
        tasks=(MULTILABEL,),
        compute=compute,
        order=ORDER_RECALL + min(k, 49),
        summary=(
            f"Mean over tagged clips of |true tags in the top {k}| / |true tags| "
            "(ties: expectation over tied orders; Wang et al. 2019, Sec. V-D)"
        ),
        params={},
    )


def ndcg_at_k_metric(k: int) -> MetricSpec:
    """An ``ndcg@k`` spec (Sec. V-D): binary gains, IDCG over min(k, |G_i|) ranks (eq. (6))."""

    def compute(y_true, y_score, labels: Sequence[str]) -> MetricResult:
        from . import _core

        truth, scores = _core.check_tagging_inputs(y_true, y_score, labels)
        per_clip = _core.ndcg_at_k_per_clip(truth, scores, k)
        result = _clip_mean(per_clip, truth.shape[0], f"NDCG@{k}")
        result.extra["k_used"] = min(k, truth.shape[1])
        return result

    compute.__name__ = f"ndcg_at_{k}"
    return MetricSpec(
        key=f"ndcg@{k}",
        name=f"NDCG@{k}",
        tasks=(MULTILABEL,),
        compute=compute,
        order=ORDER_NDCG,
        summary=(
            f"Mean over tagged clips of DCG@{k} / ideal DCG, binary relevance "
            "(ties: expectation over tied orders; Wang et al. 2019, eq. (6))"
        ),
        params={},
    )


def jsc_metric(threshold: float = DEFAULT_JSC_THRESHOLD) -> MetricSpec:
    """A Jaccard-similarity spec at threshold τ (Sec. V-D), predicted set = {score ≥ τ}.

    τ = 0.5 gives key ``jsc`` and name ``JSC``; any other τ appears in both, e.g.
    ``jsc_metric(0.4)`` has key ``jsc@0.4`` and name ``JSC@0.4``. The spec's ``params`` hold τ,
    and ``compute`` defaults to it, so it gives the same number whether or not the caller
    passes ``**params``.
    """
    threshold = float(threshold)
    suffix = "" if threshold == DEFAULT_JSC_THRESHOLD else f"@{threshold:g}"

    def compute(y_true, y_score, labels: Sequence[str], threshold: float = threshold) -> MetricResult:
        from . import _core

        truth, scores = _core.check_tagging_inputs(y_true, y_score, labels)
        per_clip = _core.jaccard_per_clip(truth, scores, float(threshold))
        result = _clip_mean(per_clip, truth.shape[0], f"JSC@{threshold:g}")
        result.extra["threshold"] = float(threshold)
        return result

    compute.__name__ = "jsc"
    return MetricSpec(
        key=f"jsc{suffix}",
        name=f"JSC{suffix}",
        tasks=(MULTILABEL,),
        compute=compute,
        order=ORDER_JSC,
        summary=(
            f"Mean over tagged clips of |true ∩ predicted| / |true ∪ predicted|, "
            f"predicted = score ≥ {threshold:g} (Wang et al. 2019, Sec. V-D)"
        ),
        params={"threshold": threshold},
    )


ROC_AUC = MetricSpec(
    key="roc_auc",
    name="ROC-AUC",
    tasks=(MULTILABEL,),
    compute=roc_auc,
    selects=True,
    order=ORDER_ROC_AUC,
    summary="Macro ROC-AUC over tags with both classes; ties count 1/2 (Wang et al. 2019, Table I)",
)

PR_AUC = MetricSpec(
    key="pr_auc",
    name="PR-AUC",
    tasks=(MULTILABEL,),
    compute=pr_auc,
    headline=False,
    order=ORDER_PR_AUC,
    summary=(
        "Macro average precision over tags with both classes, no interpolation "
        "(scikit-learn average_precision_score; not in the paper)"
    ),
)

#: The paper's cut-offs (Table I).
RECALL_KS = (1, 3, 5, 10)
NDCG_K = 50

METRICS: list[MetricSpec] = [
    ROC_AUC,
    *(recall_at_k_metric(k) for k in RECALL_KS),
    ndcg_at_k_metric(NDCG_K),
    jsc_metric(DEFAULT_JSC_THRESHOLD),
    PR_AUC,
]


@hookimpl
def mcbench_metrics() -> list[MetricSpec]:
    return list(METRICS)
