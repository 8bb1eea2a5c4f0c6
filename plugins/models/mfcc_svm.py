"""Model plugin ``mfcc_svm``: MFCC statistics + RBF SVM, the GTZAN Table III baseline (Wang et al., IJCNN 2019, Sec. V-G).

Not a torch model: ``build`` returns its own learner
(:class:`mcbench_plugins.models.impl.mfcc_svm.MfccSvmLearner`, fit/predict/save/load with
scikit-learn, and embed: its MFCC statistics, for `mcbench embed`; saved as plain arrays, never pickled), which shows the learner interface serving non-torch plugins.

Registration only; scikit-learn and librosa are imported when a model is built or fitted, so
listing plugins stays cheap. Genre only (the paper uses it for GTZAN genres only): the spec lists just ``multiclass``, so the
harness skips this model on tagging datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, ModelSpec, Option

#: ``librosa.feature.delta`` width; mirrors ``impl.mfcc_svm.DELTA_WIDTH`` (checked by the tests).
DELTA_WIDTH = 9


def build(
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    task: str | None = None,
    variant: str | None = None,
    **params: Any,
) -> Any:
    """``ModelSpec.build``: an unfitted :class:`MfccSvmLearner` for a log-mel input ``(1, n_mels, T)``."""
    # Task, variant and option names are checked by ModelSpec.create (the harness).
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[0] != 1:
        raise ValueError(f"mfcc_svm reads a log-mel input (1, n_mels, T), got {shape}")
    n_mfcc = params.get("n_mfcc", 20)
    if isinstance(n_mfcc, int) and n_mfcc > shape[1]:
        raise ValueError(f"mfcc_svm: n_mfcc={n_mfcc} exceeds the {shape[1]} mel bands of the input")
    if params.get("delta_order", 1) and shape[2] < DELTA_WIDTH:
        raise ValueError(f"mfcc_svm: deltas need at least {DELTA_WIDTH} frames, the input has {shape[2]}")
    from .impl.mfcc_svm import MfccSvmLearner

    return MfccSvmLearner(n_outputs, **params)


SPEC = ModelSpec(
    name="mfcc_svm",
    summary="MFCC baseline: 20 MFCCs + deltas, mean and std over time (80 dims), standardised, RBF SVM",
    build=build,
    tasks=(MULTICLASS,),
    variants={
        "default": "20 MFCCs (orthonormal DCT-II of the log-mel) + first-order deltas, mean/std over "
                   "time, StandardScaler, SVC(rbf, C=1, gamma='scale', ovr, break_ties)",
    },
    input="logmel",
    source=(
        "Choi, Fazekas, Sandler & Cho, 'Transfer learning for music classification and regression "
        "tasks', ISMIR 2017 (the paper's reference [16]): the MFCC baseline (20 MFCCs, deltas, "
        "mean and std over time); classifier after the usual MFCC + RBF-SVM genre convention"
    ),
    backend="sklearn",
    options={
        "C": Option(float, 1.0, "SVC regularisation C", minimum=1e-12),
        "gamma": Option((float, str), "scale", "RBF kernel width: 'scale', 'auto' or a positive "
                        "number", choices=("scale", "auto"), minimum=1e-12),
        "delta_order": Option(int, 1, "1: MFCC + delta, 80 dims; 2: + delta-delta, 120 dims "
                              "(Choi et al. 2017); 0: MFCC only, 40 dims", choices=(0, 1, 2)),
        "n_mfcc": Option(int, 20, "number of MFCCs kept, coefficients 0..n_mfcc-1", minimum=1),
    },
)


@hookimpl
def mcbench_models() -> list[ModelSpec]:
    return [SPEC]
