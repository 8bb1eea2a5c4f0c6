"""``mfcc_svm`` (the MFCC + SVM baseline of Table III): MFCC features against librosa, the SVC scores,
absent classes, persistence, the task restriction, the plugin contract and a cheap registration module."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from mcbench_plugins.models import mfcc_svm as plugin
from mcbench_plugins.models.impl import mfcc_svm as impl
from mcbench_plugins.models.impl.mfcc_svm import MfccSvmLearner, clip_features, mfcc_statistics

from mcbench.specs import MULTICLASS, MULTILABEL, FeatureSplit, OptionError, TrainConfig

K = 6
N_MELS = 96
T = 128
CONFIG = TrainConfig(progress=False)


def _separable(n_per_class: int, seed: int, classes=range(K)) -> FeatureSplit:
    """Log-mel-like (N, 1, 96, T) dB arrays: 6 classes of noise in 3 spectral tilts (each with its
    own ripple) × 2 temporal modulations (none / 8 dB at 1/12 frame⁻¹ in the lower bands). A
    random gain of ±10 dB per clip and 4 dB of noise per cell hide nothing that c0 alone tells."""
    rng = np.random.default_rng(seed)
    f = np.linspace(-1.0, 1.0, N_MELS)[:, None]
    t = np.arange(T)[None, :]
    low = (f < 0).astype(np.float64)
    xs, ys = [], []
    for c in classes:
        tilt = (-10.0, 0.0, 10.0)[c % 3]
        ripple = 4.0 * np.cos(np.pi * (c % 3 + 2) * (f + 1.0))
        depth = (0.0, 8.0)[c // 3]
        for _ in range(n_per_class):
            phase = rng.uniform(0.0, 2 * np.pi)
            x = (-40.0 + rng.uniform(-10.0, 10.0) + tilt * f + ripple
                 + depth * low * np.sin(2 * np.pi * t / 12 + phase) + rng.normal(0.0, 4.0, (N_MELS, T)))
            xs.append(x)
            ys.append(c)
    x = np.stack(xs)[:, None].astype(np.float32)
    y = np.asarray(ys, dtype=np.int64)
    return FeatureSplit("synthetic", [f"clip{i}" for i in range(len(y))], x, y, MULTICLASS,
                        [f"genre{i}" for i in range(K)])


@pytest.fixture(scope="module")
def data() -> dict[str, FeatureSplit]:
    return {"train": _separable(10, seed=0), "test": _separable(10, seed=1)}


@pytest.fixture(scope="module")
def fitted(data) -> tuple[MfccSvmLearner, list[dict]]:
    learner = plugin.SPEC.create((1, N_MELS, T), K, task=MULTICLASS, variant="default")
    history = learner.fit(data["train"], data["test"], CONFIG)
    return learner, history


def _chirp_in_noise(fe) -> np.ndarray:
    """An amplitude-modulated 200 → 2000 Hz chirp in white noise, ``fe.n_samples`` long."""
    t = np.arange(fe.n_samples) / fe.sample_rate
    rng = np.random.default_rng(7)
    y = 0.5 * np.sin(2 * np.pi * (200.0 * t + 300.0 * t**2)) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (y + 0.05 * rng.normal(size=t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def real_logmel() -> np.ndarray:
    """A real log-mel (librosa, the front end's reference settings) of 3 s of a chirp in noise."""
    from mcbench.features import FrontEnd, librosa_logmel

    fe = FrontEnd(seconds=3.0)
    S = librosa_logmel(_chirp_in_noise(fe), fe)
    assert S.shape == (96, fe.n_frames)
    return S


# --------------------------------------------------------------------------- features


def test_mfcc_is_orthonormal_dct_ii_of_the_logmel(real_logmel):
    import librosa
    import scipy.fft

    via_librosa = librosa.feature.mfcc(S=real_logmel.astype(np.float64), n_mfcc=20)
    via_scipy = scipy.fft.dct(real_logmel.astype(np.float64), type=2, norm="ortho", axis=0)[:20]
    assert via_librosa.shape == (20, real_logmel.shape[1])
    np.testing.assert_allclose(via_librosa, via_scipy, rtol=0, atol=1e-9)
    # orthonormal: coefficient 0 is the band mean scaled by sqrt(96)
    np.testing.assert_allclose(via_scipy[0], real_logmel.mean(axis=0) * np.sqrt(96), rtol=1e-6)


@pytest.mark.parametrize("delta_order", [1, 2])
def test_features_equal_a_direct_librosa_computation(real_logmel, delta_order):
    import librosa

    S = real_logmel.astype(np.float64)
    mfcc = librosa.feature.mfcc(S=S, n_mfcc=20)
    streams = [mfcc, librosa.feature.delta(mfcc, width=9)]
    if delta_order == 2:
        streams.append(librosa.feature.delta(mfcc, width=9, order=2))
    expected = np.concatenate([s.mean(axis=1) for s in streams] + [s.std(axis=1) for s in streams])

    batch = np.stack([real_logmel, real_logmel - 20.0])[:, None]  # (2, 1, 96, T)
    got = mfcc_statistics(batch, n_mfcc=20, delta_order=delta_order)
    assert got.shape == (2, 40 * (1 + delta_order)) == (2, impl.feature_dim(20, delta_order))
    np.testing.assert_allclose(got[0], expected, rtol=1e-6, atol=1e-6)
    # a -20 dB gain moves only c0's mean (by -20·sqrt(96)); deltas and stds are unchanged
    shift = got[1] - got[0]
    np.testing.assert_allclose(shift[0], -20.0 * np.sqrt(96), rtol=1e-6)
    np.testing.assert_allclose(shift[1:], 0.0, atol=1e-6)


def test_features_of_the_harness_front_end_match_librosa_log_mel(real_logmel):
    """The cached log-mel comes from the torch front end; its features agree with librosa's."""
    from mcbench.features import FrontEnd, LogMel

    fe = FrontEnd(seconds=3.0)
    cached = LogMel(fe)(_chirp_in_noise(fe)[None])  # (1, 96, T)
    ours = mfcc_statistics(cached[:, None])[0]
    ref = mfcc_statistics(real_logmel[None, None])[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=2e-3)


def test_feature_extraction_streams_in_chunks_and_reads_memory_maps(data, tmp_path):
    class Recording:
        """A read-only array that records how many clips each read asks for."""

        def __init__(self, x):
            self.x, self.reads = x, []

        def __len__(self):
            return len(self.x)

        def __getitem__(self, key):
            self.reads.append(key.stop - key.start)
            return self.x[key]

    x = data["train"].x
    whole = clip_features(x, chunk_size=len(x))
    rec = Recording(x)
    chunked = clip_features(rec, chunk_size=7)
    assert max(rec.reads) == 7 and sum(rec.reads) == len(x)
    np.testing.assert_array_equal(chunked, whole)

    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(clip_features(mapped, chunk_size=16), whole)


def test_input_checks():
    with pytest.raises(ValueError, match="frames"):
        mfcc_statistics(np.zeros((1, 1, 96, 8), np.float32))
    assert mfcc_statistics(np.zeros((1, 1, 96, 8), np.float32), delta_order=0).shape == (1, 40)
    with pytest.raises(ValueError, match="n_mfcc"):
        mfcc_statistics(np.zeros((1, 1, 16, 50), np.float32), n_mfcc=20)
    assert plugin.DELTA_WIDTH == impl.DELTA_WIDTH


# --------------------------------------------------------------------------- learner


def test_fit_predict_is_accurate_and_argmax_equals_svc_predict(data, fitted):
    learner, history = fitted
    test = data["test"]
    scores = learner.predict(test)
    assert scores.shape == (len(test), K) and np.all(np.isfinite(scores))
    accuracy = float(np.mean(scores.argmax(1) == test.y))
    assert accuracy >= 0.9, accuracy
    svc_pred = learner.svc_.predict(learner.scaler_.transform(learner.features(test)))
    np.testing.assert_array_equal(scores.argmax(1), svc_pred)

    assert len(history) == 1
    entry = history[0]
    assert entry["valid_accuracy"] == pytest.approx(accuracy)
    assert entry["n_features"] == 80 and entry["n_classes_trained"] == K
    assert entry["seconds"] >= 0 and 0 < entry["n_support"] <= len(data["train"])
    assert learner.scores_are_probabilities is False
    assert learner.device == "cpu" and learner.n_params is None and learner.selected_epoch is None


def test_fit_reports_the_selection_metric(data):
    seen = []
    config = TrainConfig(progress=False, select_metric=lambda y, s: float(np.mean(s.argmax(1) == y)),
                         epoch_callback=seen.append)
    learner = MfccSvmLearner(K, delta_order=2)
    history = learner.fit(data["train"], data["test"], config)
    assert history[0]["n_features"] == 120
    assert history[0]["valid_metric"] == pytest.approx(history[0]["valid_accuracy"])
    assert seen == history


def test_save_load_gives_identical_scores(data, fitted, tmp_path):
    learner, _ = fitted
    path = tmp_path / "model.joblib"
    learner.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.joblib"]  # no temporary left behind
    fresh = plugin.SPEC.create((1, N_MELS, T), K, task=MULTICLASS)
    with pytest.raises(RuntimeError, match="before fit"):
        fresh.predict(data["test"])
    fresh.load(path)
    np.testing.assert_array_equal(fresh.predict(data["test"]), learner.predict(data["test"]))
    with pytest.raises(ValueError, match="settings"):
        MfccSvmLearner(K, C=10.0).load(path)


def test_absent_training_classes_get_a_score_below_every_present_one(data):
    present = [0, 2, 3, 5]
    train = _separable(10, seed=3, classes=present)
    learner = MfccSvmLearner(K)
    learner.fit(train, data["test"], CONFIG)
    scores = learner.predict(data["test"])
    assert scores.shape == (len(data["test"]), K) and np.all(np.isfinite(scores))
    absent = [1, 4]
    assert np.all(scores[:, absent] == learner.absent_score_)
    assert scores[:, absent].max() < scores[:, present].min()
    svc_pred = learner.svc_.predict(learner.scaler_.transform(learner.features(data["test"])))
    np.testing.assert_array_equal(scores.argmax(1), svc_pred)
    mask = np.isin(data["test"].y, present)
    assert np.mean(scores.argmax(1)[mask] == data["test"].y[mask]) >= 0.9


def test_two_present_classes_give_signed_columns(data):
    train = _separable(8, seed=4, classes=[1, 4])
    learner = MfccSvmLearner(K)
    learner.fit(train, train, CONFIG)
    scores = learner.predict(data["test"])
    np.testing.assert_allclose(scores[:, 1], -scores[:, 4])
    assert np.all(scores[:, [0, 2, 3, 5]] < np.minimum(scores[:, 1], scores[:, 4])[:, None])
    svc_pred = learner.svc_.predict(learner.scaler_.transform(learner.features(data["test"])))
    np.testing.assert_array_equal(scores.argmax(1), svc_pred)
    train_pred = learner.predict(train).argmax(1)
    assert np.mean(train_pred == train.y) == 1.0


def test_single_class_training_split_is_refused(data):
    with pytest.raises(ValueError, match="single class"):
        MfccSvmLearner(K).fit(_separable(5, seed=5, classes=[2]), data["test"], CONFIG)


def test_tagging_is_refused(data):
    assert plugin.SPEC.tasks == (MULTICLASS,)
    with pytest.raises(ValueError, match="multilabel"):
        plugin.SPEC.create((1, N_MELS, T), K, task=MULTILABEL, variant="default")
    train = data["train"]
    multihot = np.eye(K, dtype=np.float32)[train.y]
    tagging = FeatureSplit("t", train.ids, train.x, multihot, MULTILABEL, train.labels)
    with pytest.raises(ValueError, match="single-label"):
        MfccSvmLearner(K).fit(tagging, tagging, CONFIG)


def test_build_checks_options_and_input():
    with pytest.raises(OptionError, match="unknown option 'kernel'"):
        plugin.SPEC.create((1, N_MELS, T), K, task=MULTICLASS, kernel="linear")
    with pytest.raises(ValueError, match="log-mel"):
        plugin.SPEC.create((1, 348000), K, task=MULTICLASS)
    with pytest.raises(ValueError, match="gamma"):
        plugin.SPEC.create((1, N_MELS, T), K, task=MULTICLASS, gamma="wide")
    with pytest.raises(ValueError, match="delta_order"):
        plugin.SPEC.create((1, N_MELS, T), K, task=MULTICLASS, delta_order=3)
    learner = plugin.SPEC.create((1, N_MELS, T), K, task=MULTICLASS, C=10, gamma=0.01, delta_order=2, n_mfcc=13)
    assert learner.settings() == {"n_outputs": K, "C": 10.0, "gamma": 0.01, "delta_order": 2, "n_mfcc": 13}


# --------------------------------------------------------------------------- plugin


def test_validate_model_passes():
    from mcbench.plugins import Registry
    from mcbench.validate import validate_model

    lines: list[str] = []
    assert validate_model(Registry().model("mfcc_svm"), echo=lines.append) is True
    assert not any("[FAIL]" in line for line in lines)


def test_registration_module_imports_nothing_heavy():
    code = (
        "import sys\n"
        "import mcbench_plugins.models.mfcc_svm as m\n"
        "assert m.SPEC.name == 'mfcc_svm'\n"
        "print(','.join(x for x in ('sklearn', 'librosa', 'torch', 'pandas', 'joblib', 'scipy')"
        " if x in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
