"""Genre metrics for single-label data (FMA-medium Table II, GTZAN Table III of Wang et al.).

Implements the genre metrics of the paper's Sec. V-D: macro one-vs-rest ROC-AUC, accuracy (the
checkpoint-selection metric), macro precision, recall and F1, and, as an extra, the
support-weighted one-vs-rest ROC-AUC the authors' FMA notebooks computed. Columns follow
Table II: ROC-AUC, Recall, F1, Accuracy, then Precision.

Inputs: ``y_true`` N class indices in 0..K−1, ``y_score`` an N × K matrix of softmax
probabilities (SVC decision scores for ``mfcc_svm``), ``labels`` the K class names.

Rules (mcbench's, where the paper is loose):

* ŷ_i = argmax_c y_score[i, c], the lowest index winning an exact tie.
* Accuracy is the fraction of clips classified correctly (the paper's parenthesis "the fraction
  of misclassified genres" is a slip: its tables report the fraction correct).
* Macro P/R/F1 average over classes with support > 0; macro F1 is the mean of per-class F1, not
  the harmonic mean of macro P and R. A class never predicted has P = 0 and stays in.
* AUC_c = P(s⁺ > s⁻) + ½·P(s⁺ = s⁻) (tied pairs count one half) on y_score[:, c] against
  [y = c]; only classes with a positive and
  a negative count. Use probabilities: logits rank clips differently per class.

Every genre metric returns the same per-class report in ``per_label`` (label, value — this
metric's per-class value where one exists —, precision, recall, f1, support, n_pred, auc; None
where undefined) and in ``extra``: n_classes_skipped (zero support), skipped_classes and the
K × K confusion matrix (rows = true, columns = predicted, nested lists, all classes).
"""

from __future__ import annotations

from collections.abc import Sequence

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, MetricResult, MetricSpec

#: Column order of Table II; Precision, not in Table II, comes last.
ORDER_ROC_AUC = 10
ORDER_RECALL = 20
ORDER_F1 = 30
ORDER_ACCURACY = 40
ORDER_PRECISION = 50
ORDER_ROC_AUC_WEIGHTED = 90


def _optional(value) -> float | None:
    import math

    return None if math.isnan(value) else float(value)


def _result(y_true, y_score, labels: Sequence[str], which: str) -> MetricResult:
    """Compute the shared report once and pick metric ``which`` out of it."""
    import numpy as np

    from . import _core

    truth, scores = _core.check_genre_inputs(y_true, y_score, labels)
    rep = _core.genre_report(truth, scores)

    per_class_value = {
        "precision_macro": rep["precision"],
        "recall_macro": rep["recall"],
        "f1_macro": rep["f1"],
        "roc_auc_ovr_macro": rep["auc"],
        "roc_auc_ovr_weighted": rep["auc"],
    }.get(which)
    per_label = []
    for c, name in enumerate(labels):
        row = {
            "label": name,
            "value": None if per_class_value is None else _optional(per_class_value[c]),
            "precision": _optional(rep["precision"][c]),
            "recall": _optional(rep["recall"][c]),
            "f1": _optional(rep["f1"][c]),
            "support": int(rep["support"][c]),
            "n_pred": int(rep["n_pred"][c]),
            "auc": _optional(rep["auc"][c]),
        }
        per_label.append(row)

    skipped = [name for c, name in enumerate(labels) if not rep["present"][c]]
    extra: dict = {
        "n_classes_skipped": len(skipped),
        "skipped_classes": skipped,
        "confusion_matrix": rep["confusion"].tolist(),
    }

    if which in ("roc_auc_ovr_macro", "roc_auc_ovr_weighted"):
        defined = rep["auc_defined"]
        auc_skipped = [name for c, name in enumerate(labels) if not defined[c]]
        extra["n_classes_auc_skipped"] = len(auc_skipped)
        extra["auc_skipped_classes"] = auc_skipped
        if not defined.any():
            # Only one class occurs in the split: no class has both a positive and a negative.
            extra["flagged"] = "no class has both a positive and a negative clip; ROC-AUC is undefined"
            value = float("nan")
        elif which == "roc_auc_ovr_macro":
            value = float(np.mean(rep["auc"][defined]))
        else:
            weights = rep["support"][defined].astype(np.float64)
            value = float(np.sum(rep["auc"][defined] * weights) / weights.sum())
    else:
        value = rep[which]
    return MetricResult(value=float(value), per_label=per_label, extra=extra)


def accuracy(y_true, y_score, labels: Sequence[str]) -> MetricResult:
    """Fraction of clips whose argmax class is the true class (Tables II and III)."""
    return _result(y_true, y_score, labels, "accuracy")


def precision_macro(y_true, y_score, labels: Sequence[str]) -> MetricResult:
    """Mean of TP/(TP+FP) over classes with support; 0 for a class never predicted."""
    return _result(y_true, y_score, labels, "precision_macro")


def recall_macro(y_true, y_score, labels: Sequence[str]) -> MetricResult:
    """Mean of TP/(TP+FN) over classes with support."""
    return _result(y_true, y_score, labels, "recall_macro")


def f1_macro(y_true, y_score, labels: Sequence[str]) -> MetricResult:
    """Mean of per-class F1 over classes with support; F1_c = 0 when P_c + R_c = 0."""
    return _result(y_true, y_score, labels, "f1_macro")


def roc_auc_ovr_macro(y_true, y_score, labels: Sequence[str]) -> MetricResult:
    """Unweighted mean of one-vs-rest AUC_c over classes with a positive and a negative."""
    return _result(y_true, y_score, labels, "roc_auc_ovr_macro")


def roc_auc_ovr_weighted(y_true, y_score, labels: Sequence[str]) -> MetricResult:
    """Support-weighted mean of one-vs-rest AUC_c, as the authors' FMA notebooks computed it
    (FishInMedi/CRNN-TF ``1.ipynb``, ``roc_auc_score(y_onehot, p, 'weighted')``)."""
    return _result(y_true, y_score, labels, "roc_auc_ovr_weighted")


METRICS: list[MetricSpec] = [
    MetricSpec(
        key="roc_auc_ovr_macro",
        name="ROC-AUC",
        tasks=(MULTICLASS,),
        compute=roc_auc_ovr_macro,
        order=ORDER_ROC_AUC,
        summary=("Macro one-vs-rest ROC-AUC over classes with both outcomes "
                 "(Wang et al. 2019, Table II)"),
    ),
    MetricSpec(
        key="recall_macro",
        name="Recall",
        tasks=(MULTICLASS,),
        compute=recall_macro,
        order=ORDER_RECALL,
        summary="Macro recall over classes present in the split (Wang et al. 2019, Table II)",
    ),
    MetricSpec(
        key="f1_macro",
        name="F1",
        tasks=(MULTICLASS,),
        compute=f1_macro,
        order=ORDER_F1,
        summary=("Mean of per-class F1 over classes present in the split "
                 "(Wang et al. 2019, Table II)"),
    ),
    MetricSpec(
        key="accuracy",
        name="Accuracy",
        tasks=(MULTICLASS,),
        compute=accuracy,
        selects=True,
        order=ORDER_ACCURACY,
        summary=("Fraction of clips whose top-scored class is the true one "
                 "(Wang et al. 2019, Tables II and III)"),
    ),
    MetricSpec(
        key="precision_macro",
        name="Precision",
        tasks=(MULTICLASS,),
        compute=precision_macro,
        order=ORDER_PRECISION,
        summary=("Macro precision over classes present; a never-predicted class counts 0 "
                 "(Wang et al. 2019, Sec. V-D)"),
    ),
    MetricSpec(
        key="roc_auc_ovr_weighted",
        name="ROC-AUC (weighted)",
        tasks=(MULTICLASS,),
        compute=roc_auc_ovr_weighted,
        headline=False,
        order=ORDER_ROC_AUC_WEIGHTED,
        summary=("Support-weighted one-vs-rest ROC-AUC, as the authors' FMA notebooks computed it "
                 "(FishInMedi/CRNN-TF 1.ipynb)"),
    ),
]


@hookimpl
def mcbench_metrics() -> list[MetricSpec]:
    return list(METRICS)
