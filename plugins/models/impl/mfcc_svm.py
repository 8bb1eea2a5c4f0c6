"""MFCC statistics + RBF SVM: the non-deep GTZAN baseline of Table III (Wang et al., IJCNN 2019, Sec. V-G).

Features per clip (the setting of Choi et al. 2017, the paper's reference [16]):

* ``n_mfcc`` = 20 MFCCs: the orthonormal DCT-II over the mel axis of the cached log-mel (dB),
  coefficients 0..19, i.e. ``librosa.feature.mfcc(S=logmel, n_mfcc=20)`` (dct_type 2, norm
  'ortho', no liftering);
* deltas with ``librosa.feature.delta(width=9)``: ``delta_order=1`` adds first-order deltas,
  ``delta_order=2`` also adds delta-deltas (``librosa.feature.delta(mfcc, order=2, width=9)``,
  librosa's documented ΔΔ: a second-derivative Savitzky–Golay filter of the MFCCs, not Δ of Δ);
  ``delta_order=0`` keeps the MFCCs alone;
* the mean and the (population, ddof 0) standard deviation of every stream over time, laid out
  as ``[mean(MFCC), mean(Δ), mean(ΔΔ), std(MFCC), std(Δ), std(ΔΔ)]``:
  40 · (1 + delta_order) dims, so 80 by default and 120 for ``delta_order=2``.

Classifier: ``StandardScaler`` fitted on the training split, then ``SVC(kernel='rbf', C=1.0,
gamma='scale', decision_function_shape='ovr', break_ties=True)``. Scores are the SVC's
``decision_function`` (N, K), not probabilities (``scores_are_probabilities = False``); with
``break_ties=True`` their argmax equals ``SVC.predict``.

Classes missing from the training split: scikit-learn only knows the classes it saw, so
``decision_function`` has one column per *present* class (and a single signed column when only
two are present; it becomes ``[-d, d]``). The columns are put back at their class indices and
every absent class gets :attr:`MfccSvmLearner.absent_score_`, a finite constant fixed at fit time
that lies strictly below any score the fitted SVC can produce: ``-(1 + Σ|dual_coef| +
Σ|intercept|)``. (One-vs-rest scores from ≥ 3 classes are votes plus a confidence in (−1/3, 1/3),
so they exceed −1/3; a binary decision value is bounded by Σ|dual_coef|·max K + |intercept| and
the RBF kernel is at most 1.) An absent class is therefore never predicted, and the argmax still
equals ``SVC.predict``. A training split with a single class cannot train an SVM and raises.

Feature extraction streams over the (possibly memory-mapped) ``(N, 1, n_mels, T)`` input in
chunks of :attr:`MfccSvmLearner.chunk_size` clips, so only one chunk is in memory at a time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mcbench.specs import MULTICLASS, FeatureSplit, TrainConfig

#: ``librosa.feature.delta`` window (frames), as in Choi et al. 2017.
DELTA_WIDTH = 9
#: Clips per feature-extraction chunk (64 clips of 96 × 1360 float64 ≈ 67 MB).
DEFAULT_CHUNK = 64
#: Written into saved files, so a foreign file is refused with a clear message.
FILE_FORMAT = "mcbench.mfcc_svm/1"


def feature_dim(n_mfcc: int = 20, delta_order: int = 1) -> int:
    """Length of a clip's feature vector: mean and std of (1 + delta_order) streams of n_mfcc."""
    return 2 * n_mfcc * (1 + delta_order)


def mfcc_statistics(logmel: np.ndarray, n_mfcc: int = 20, delta_order: int = 1) -> np.ndarray:
    """Per-clip MFCC(+Δ, +ΔΔ) mean/std vectors of a batch of log-mels.

    ``logmel`` is ``(N, n_mels, T)`` or ``(N, 1, n_mels, T)`` in dB (the cached front end);
    returns ``(N, feature_dim(n_mfcc, delta_order))`` float64.
    """
    import librosa

    S = np.asarray(logmel, dtype=np.float64)
    if S.ndim == 4:
        if S.shape[1] != 1:
            raise ValueError(f"expected one channel, got log-mel batch of shape {S.shape}")
        S = S[:, 0]
    if S.ndim != 3:
        raise ValueError(f"expected a log-mel batch (N, n_mels, T) or (N, 1, n_mels, T), got {S.shape}")
    n_mels, n_frames = S.shape[1], S.shape[2]
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc={n_mfcc} exceeds the {n_mels} mel bands of the input")
    if delta_order > 0 and n_frames < DELTA_WIDTH:
        raise ValueError(f"deltas need at least {DELTA_WIDTH} frames, the input has {n_frames}")
    mfcc = librosa.feature.mfcc(S=S, n_mfcc=n_mfcc)  # DCT-II, norm 'ortho', over axis -2
    streams = [mfcc]
    for order in range(1, delta_order + 1):
        streams.append(librosa.feature.delta(mfcc, width=DELTA_WIDTH, order=order, axis=-1))
    means = [s.mean(axis=-1) for s in streams]
    stds = [s.std(axis=-1) for s in streams]
    return np.concatenate(means + stds, axis=1)


def clip_features(x: np.ndarray, n_mfcc: int = 20, delta_order: int = 1,
                  chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """:func:`mfcc_statistics` of ``x`` (N, 1, n_mels, T), read ``chunk_size`` clips at a time."""
    n = len(x)
    out = np.empty((n, feature_dim(n_mfcc, delta_order)), dtype=np.float64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        out[start:stop] = mfcc_statistics(x[start:stop], n_mfcc=n_mfcc, delta_order=delta_order)
    return out


class MfccSvmLearner:
    """The ``mfcc_svm`` learner: fit/predict/save/load around a scikit-learn pipeline.

    Not a torch model: the harness uses it through the :class:`mcbench.specs.Learner` protocol.
    It has no epochs (``selected_epoch`` is ``None``) and no parameter count in the torch sense
    (``n_params`` is ``None``); it always runs on the CPU.
    """

    scores_are_probabilities = False
    device = "cpu"
    n_params = None
    selected_epoch = None

    def __init__(self, n_outputs: int, C: float = 1.0, gamma: str | float = "scale",
                 delta_order: int = 1, n_mfcc: int = 20, chunk_size: int = DEFAULT_CHUNK):
        if int(n_outputs) != n_outputs or n_outputs < 2:
            raise ValueError(f"mfcc_svm needs at least 2 classes, got n_outputs={n_outputs!r}")
        if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
            raise ValueError(f"mfcc_svm: C must be a positive number, got {C!r}")
        if isinstance(gamma, str):
            if gamma not in ("scale", "auto"):
                raise ValueError(f"mfcc_svm: gamma must be 'scale', 'auto' or a positive number, got {gamma!r}")
        elif isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
            raise ValueError(f"mfcc_svm: gamma must be 'scale', 'auto' or a positive number, got {gamma!r}")
        if delta_order not in (0, 1, 2) or isinstance(delta_order, bool):
            raise ValueError(f"mfcc_svm: delta_order must be 0, 1 or 2, got {delta_order!r}")
        if isinstance(n_mfcc, bool) or int(n_mfcc) != n_mfcc or n_mfcc < 1:
            raise ValueError(f"mfcc_svm: n_mfcc must be a positive integer, got {n_mfcc!r}")
        self.n_outputs = int(n_outputs)
        self.C = float(C)
        self.gamma = gamma if isinstance(gamma, str) else float(gamma)
        self.delta_order = int(delta_order)
        self.n_mfcc = int(n_mfcc)
        self.chunk_size = int(chunk_size)
        self.scaler_: Any = None
        self.svc_: Any = None
        self.classes_: np.ndarray | None = None
        self.absent_score_: float | None = None
        self.train_features_: np.ndarray | None = None
        self.train_y_: np.ndarray | None = None
        self.history: list[dict] = []

    # -- helpers
    def settings(self) -> dict[str, Any]:
        """The options that define the model; a saved file only loads into equal settings."""
        return {"n_outputs": self.n_outputs, "C": self.C, "gamma": self.gamma,
                "delta_order": self.delta_order, "n_mfcc": self.n_mfcc}

    def features(self, split: FeatureSplit) -> np.ndarray:
        x = split.x
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"mfcc_svm reads log-mel input (N, 1, n_mels, T), got {tuple(x.shape)}")
        return clip_features(x, n_mfcc=self.n_mfcc, delta_order=self.delta_order,
                             chunk_size=self.chunk_size)

    def embed(self, split: FeatureSplit) -> np.ndarray:
        """The clip representation this model classifies: its MFCC statistics
        (:func:`mfcc_statistics`, ``feature_dim`` columns) before the training split's
        ``StandardScaler``. They depend only on the options, so an unfitted learner gives them."""
        return self.features(split).astype(np.float32)

    def _scores(self, feats: np.ndarray) -> np.ndarray:
        """``decision_function`` mapped onto the K class columns (absent classes: module doc)."""
        dec = self.svc_.decision_function(self.scaler_.transform(feats))
        if dec.ndim == 1:  # two classes present: one signed column, positive = classes_[1]
            dec = np.stack([-dec, dec], axis=1)
        scores = np.full((len(feats), self.n_outputs), self.absent_score_, dtype=np.float64)
        scores[:, self.classes_] = dec
        return scores

    # -- Learner API
    def fit(self, train: FeatureSplit, valid: FeatureSplit, config: TrainConfig) -> list[dict]:
        """Fit scaler and SVC on ``train``; report validation accuracy (and the selection metric).

        One history entry; the SVC is deterministic, so ``config.seed`` plays no part.
        """
        for split in (train, valid):
            if split.task != MULTICLASS:
                raise ValueError(f"mfcc_svm is a single-label (genre) model; split {split.name!r} "
                                 f"has task {split.task!r}")
        if len(train) == 0:
            raise ValueError("mfcc_svm: cannot train on an empty training split")
        y = np.asarray(train.y).astype(np.int64)
        if y.ndim != 1 or y.min() < 0 or y.max() >= self.n_outputs:
            raise ValueError(f"mfcc_svm: training targets must be class indices in 0..{self.n_outputs - 1}")
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"mfcc_svm: the training split holds a single class ({int(classes[0])}); "
                             "an SVM needs at least two")
        t0 = time.perf_counter()
        feats = self.features(train)
        svc = self._fit_features(feats, y)
        fit_s = time.perf_counter() - t0

        entry: dict[str, Any] = {
            "epoch": 0,
            "train_accuracy": float(np.mean(self._scores(feats).argmax(1) == y)),
            "valid_accuracy": None,
            "valid_metric": None,
            "seconds": round(fit_s, 3),
            "n_support": int(svc.n_support_.sum()),
            "n_features": int(feats.shape[1]),
            "n_classes_trained": int(len(classes)),
        }
        if len(valid):
            scores = self.predict(valid)
            entry["valid_accuracy"] = float(np.mean(scores.argmax(1) == np.asarray(valid.y)))
            if config.select_metric is not None:
                entry["valid_metric"] = float(config.select_metric(valid.y, scores))
        if config.epoch_callback is not None:
            config.epoch_callback(entry)
        self.history = [entry]
        return self.history

    def _fit_features(self, feats: np.ndarray, y: np.ndarray):
        """Fit scaler and SVC on clip features; keeps them, so :meth:`save` needs no pickle."""
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        scaler = StandardScaler().fit(feats)
        svc = SVC(kernel="rbf", C=self.C, gamma=self.gamma, decision_function_shape="ovr",
                  break_ties=True)
        svc.fit(scaler.transform(feats), y)
        self.scaler_, self.svc_ = scaler, svc
        self.classes_ = svc.classes_.astype(np.int64)
        self.absent_score_ = -(1.0 + float(np.abs(svc.dual_coef_).sum()) + float(np.abs(svc.intercept_).sum()))
        self.train_features_ = np.asarray(feats, dtype=np.float64)
        self.train_y_ = np.asarray(y, dtype=np.int64)
        return svc

    def predict(self, split: FeatureSplit) -> np.ndarray:
        """``(N, K)`` SVC decision scores (higher = more likely); argmax equals ``SVC.predict``."""
        if self.svc_ is None:
            raise RuntimeError("mfcc_svm: predict() called before fit() or load()")
        if len(split) == 0:
            return np.zeros((0, self.n_outputs), dtype=np.float64)
        return self._scores(self.features(split))

    def save(self, path: Path) -> None:
        """Write the training features, targets and settings as ``.npz`` (no pickle), atomically.

        The SVC is deterministic, so :meth:`load` refits it from exactly these arrays and gets
        the same model; a file that needs unpickling could run code when loaded.
        """
        import io
        import json

        from mcbench.storage import atomic_write_bytes

        if self.svc_ is None:
            raise RuntimeError("mfcc_svm: nothing to save before fit()")
        buf = io.BytesIO()
        np.savez(buf, format=np.asarray(FILE_FORMAT), settings=np.asarray(json.dumps(self.settings())),
                 features=self.train_features_, y=self.train_y_)
        atomic_write_bytes(Path(path), buf.getvalue())

    def load(self, path: Path) -> None:
        """Restore a file written by :meth:`save`; its settings must equal this learner's."""
        import json

        try:
            with np.load(Path(path), allow_pickle=False) as npz:
                if "format" not in npz.files or str(npz["format"]) != FILE_FORMAT:
                    raise ValueError("no mcbench.mfcc_svm format marker")
                settings = json.loads(str(npz["settings"]))
                features, y = np.asarray(npz["features"]), np.asarray(npz["y"])
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path} is not a saved mfcc_svm model ({FILE_FORMAT}): {exc}") from exc
        if settings != json.loads(json.dumps(self.settings())):
            raise ValueError(f"{path} was saved with settings {settings}, "
                             f"this learner has {self.settings()}")
        self._fit_features(features, y)
