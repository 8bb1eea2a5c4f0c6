"""The Keras trainer: the torch trainer's protocol, L2 groups, batch-norm warm-up, selection,
checkpoints without pickle, determinism and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras_checks  # noqa: E402

keras_checks.cpu_only()

import torch  # noqa: E402
from torch import nn  # noqa: E402

from mcbench.keras_learner import (  # noqa: E402
    KerasLearner,
    keras_l2_groups,
    load_keras,
    seed_keras,
)
from mcbench.specs import MULTICLASS, MULTILABEL, FeatureSplit  # noqa: E402
from mcbench.storage import StateError  # noqa: E402
from mcbench.training import TorchLearner, protocol_config  # noqa: E402

keras = load_keras()
layers = keras.layers


def toy_split(name: str, n: int, task: str, seed: int, shape=(1, 8, 12)) -> FeatureSplit:
    rng = np.random.default_rng(seed)
    y_idx = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    x[np.arange(n), 0, y_idx * 2, :] += 2.0  # a learnable band per class
    y = np.eye(3, dtype=np.float32)[y_idx] if task == MULTILABEL else y_idx.astype(np.int64)
    return FeatureSplit(name, [f"{name}{i}" for i in range(n)], x, y, task, ["a", "b", "c"])


def toy_model(seed: int = 0):
    """conv → BN → ReLU → 12 steps of 32 → GRU(6) → dropout → dense: every L2 group, BN and
    dropout, like the torch trainer's test model."""
    seed_keras(seed)
    inputs = keras.Input((1, 8, 12))
    x = layers.Permute((2, 3, 1))(inputs)
    x = layers.Conv2D(4, 3, padding="same", name="conv")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Activation("relu")(x)
    x = layers.Reshape((12, 32))(layers.Permute((2, 1, 3))(x))
    x = layers.GRU(6, name="gru")(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(3, name="out")(x))


def accuracy(y, s):
    y = np.asarray(y)
    return float(np.mean(s.argmax(1) == (y.argmax(1) if y.ndim == 2 else y)))


def config(workdir=None, **kw):
    base = dict(max_epochs=3, batch_size=8, seed=3, device="cpu", progress=False,
                select_metric=accuracy, workdir=workdir)
    base.update(kw)
    return protocol_config("paper", **base)


def test_l2_groups_follow_eq2():
    model = toy_model()
    paths = {g: sorted(v.path for v in vs) for g, vs in keras_l2_groups(model).items()}
    assert paths["conv"] == ["conv/bias", "conv/kernel"]
    assert paths["output"] == ["out/bias", "out/kernel"]
    assert paths["recurrent"] == sorted(v.path for v in model.get_layer("gru").trainable_weights)
    grouped = {p for ps in paths.values() for p in ps}
    assert not grouped & {"bn/gamma", "bn/beta"}  # batch norm is never penalised

    class Declared(layers.Dense):
        l2_group = "recurrent"

    inputs = keras.Input((4,))
    declared = keras.Model(inputs, Declared(2, name="proj")(inputs))
    assert [v.path for v in keras_l2_groups(declared)["recurrent"]] == ["proj/kernel", "proj/bias"]


def _dense_twins():
    """A Keras dense model and its torch twin with the same initial weights."""
    seed_keras(5)
    inputs = keras.Input((1, 8, 12))
    dense = layers.Dense(3, bias_initializer="random_uniform", name="out")
    k_model = keras.Model(inputs, dense(layers.Flatten()(inputs)))
    t_model = nn.Sequential(nn.Flatten(), nn.Linear(96, 3))
    with torch.no_grad():
        t_model[1].weight.copy_(torch.from_numpy(dense.kernel.numpy().T))
        t_model[1].bias.copy_(torch.from_numpy(dense.bias.numpy()))
    return k_model, dense, t_model


def test_same_steps_as_the_torch_trainer():
    """Dense model, L2 on, lr decay, standardisation, same shuffles: both backends train to the
    same numbers, so the Keras λ‖w‖² loss term equals the torch trainer's Adam weight decay 2λ.

    ε is made negligible: Keras adds it to √v before Adam's bias correction, PyTorch after
    (a relative difference of about 2e-5 in these losses at ε = 1e-7).
    """
    train, valid = toy_split("tr", 24, MULTILABEL, 0), toy_split("va", 8, MULTILABEL, 1)
    settings = dict(max_epochs=3, lr=1e-2, l2_output=0.05, channels_last=False, adam_eps=1e-12)
    k_model, dense, t_model = _dense_twins()
    h_keras = KerasLearner(k_model, MULTILABEL).fit(train, valid, config(**settings))
    h_torch = TorchLearner(t_model, MULTILABEL).fit(train, valid, config(**settings))
    assert [e["lr"] for e in h_keras] == pytest.approx([1e-2 * 0.9**e for e in range(3)])
    assert [e["loss"] for e in h_keras] == pytest.approx([e["loss"] for e in h_torch], rel=2e-5)
    np.testing.assert_allclose(dense.kernel.numpy().T, t_model[1].weight.detach().numpy(),
                               atol=2e-5)
    # the L2 term matters here far beyond that tolerance
    _, _, t_plain = _dense_twins()
    h_plain = TorchLearner(t_plain, MULTILABEL).fit(train, valid, config(**{**settings, "l2_output": 0.0}))
    assert abs(h_plain[-1]["loss"] - h_torch[-1]["loss"]) > 1e-3


def test_batchnorm_running_statistics_warm_up():
    """Step s uses momentum min(0.99, 1 − 1/(s+1)): after two batches the running mean is the
    plain average of the two batch means (Keras's own 0.99 would leave it near 0)."""
    train = toy_split("tr", 16, MULTICLASS, 0)
    seed_keras(0)
    inputs = keras.Input((1, 8, 12))
    bn = layers.BatchNormalization(name="bn")
    x = bn(layers.Permute((2, 3, 1))(inputs))
    model = keras.Model(inputs, layers.Dense(3)(layers.Flatten()(x)))
    KerasLearner(model, MULTICLASS).fit(train, train, config(max_epochs=1, standardize=False))
    order = np.random.default_rng([3, 0]).permutation(16)
    batch_means = [train.x[np.sort(order[i : i + 8])].mean() for i in (0, 8)]
    batch_vars = [train.x[np.sort(order[i : i + 8])].var() for i in (0, 8)]
    assert float(bn.moving_mean.numpy()[0]) == pytest.approx(np.mean(batch_means), abs=1e-5)
    assert float(bn.moving_variance.numpy()[0]) == pytest.approx(np.mean(batch_vars), rel=1e-4)
    assert bn.momentum == 0.99  # the layer's own setting is restored


@pytest.mark.parametrize("task", [MULTICLASS, MULTILABEL])
def test_training_learns_decays_lr_and_selects_on_validation(task):
    train, valid = toy_split("tr", 48, task, 0), toy_split("va", 16, task, 1)
    learner = KerasLearner(toy_model(), task)
    history = learner.fit(train, valid, config(max_epochs=4, lr=1e-2))
    assert [round(h["lr"], 10) for h in history] == [round(1e-2 * 0.9**e, 10) for e in range(4)]
    assert set(history[0]) == {"epoch", "loss", "valid_metric", "lr", "seconds", "clips_per_s"}
    assert history[-1]["loss"] < history[0]["loss"]
    best = max(range(4), key=lambda e: (history[e]["valid_metric"], -e))
    assert learner.selected_epoch == best
    probs = learner.predict(valid)
    assert accuracy(valid.y, probs) == pytest.approx(history[best]["valid_metric"])
    assert probs.shape == (16, 3) and probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1))
    if task == MULTICLASS:
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # conv 3·3·4 + 4, BN γ/β 2·4, GRU (Keras 3 default, two biases) 3·6·(32 + 6 + 2), dense 6·3 + 3
    assert learner.n_params == 40 + 8 + 720 + 21
    assert learner.device == "cpu"


def test_tie_keeps_earlier_epoch_and_patience_stops():
    train, valid = toy_split("tr", 16, MULTICLASS, 0), toy_split("va", 8, MULTICLASS, 1)
    learner = KerasLearner(toy_model(), MULTICLASS)
    history = learner.fit(train, valid, config(max_epochs=10, patience=2, select_metric=lambda y, s: 0.5))
    assert learner.selected_epoch == 0
    assert len(history) == 3  # epoch 0 best, then two epochs without improvement


def test_deterministic_under_a_seed():
    train, valid = toy_split("tr", 24, MULTICLASS, 0), toy_split("va", 8, MULTICLASS, 1)
    runs = []
    for _ in range(2):
        learner = KerasLearner(toy_model(seed=7), MULTICLASS)
        h = learner.fit(train, valid, config(max_epochs=2))
        runs.append(([e["loss"] for e in h], learner.predict(valid)))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_interrupted_training_resumes_from_last_epoch(tmp_path):
    train, valid = toy_split("tr", 24, MULTILABEL, 0), toy_split("va", 8, MULTILABEL, 1)
    straight = KerasLearner(toy_model(seed=11), MULTILABEL)
    h_straight = straight.fit(train, valid, config(tmp_path / "a", max_epochs=4))

    def stop_in_epoch_2(entry):
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    first = KerasLearner(toy_model(seed=11), MULTILABEL)
    with pytest.raises(KeyboardInterrupt):
        first.fit(train, valid, config(tmp_path / "b", max_epochs=4, epoch_callback=stop_in_epoch_2))
    # epoch 2 was interrupted before its checkpoint: the last completed epoch is 1
    state = json.loads((tmp_path / "b" / "last.json").read_text())
    assert state["epoch"] == 1 and state["checkpoint"] == "last-epoch001"
    with np.load(tmp_path / "b" / "last-epoch001.optimizer.npz", allow_pickle=False) as npz:
        assert int(npz["0"]) == 6  # Adam's step count: 2 epochs × 3 batches
    epochs_run = []
    second = KerasLearner(toy_model(seed=999), MULTILABEL)  # the checkpoint wins over the init
    h_resumed = second.fit(train, valid, config(tmp_path / "b", max_epochs=4,
                                                epoch_callback=lambda e: epochs_run.append(e["epoch"])))
    assert epochs_run == [2, 3]
    assert [e["loss"] for e in h_resumed] == [e["loss"] for e in h_straight]
    assert second.selected_epoch == straight.selected_epoch
    np.testing.assert_array_equal(second.predict(valid), straight.predict(valid))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "best.weights.h5", "last-epoch003.optimizer.npz", "last-epoch003.weights.h5", "last.json"]
    # a finished run started again does no more work
    epochs_run.clear()
    KerasLearner(toy_model(), MULTILABEL).fit(train, valid, config(
        tmp_path / "b", max_epochs=4, epoch_callback=lambda e: epochs_run.append(e)))
    assert epochs_run == []


def test_unusable_checkpoint_names_the_file(tmp_path):
    train, valid = toy_split("tr", 8, MULTICLASS, 0), toy_split("va", 8, MULTICLASS, 1)
    KerasLearner(toy_model(), MULTICLASS).fit(train, valid, config(tmp_path, max_epochs=1))
    (tmp_path / "last-epoch000.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(StateError, match=r"last-epoch000\.weights\.h5 cannot be used"):
        KerasLearner(toy_model(), MULTICLASS).fit(train, valid, config(tmp_path, max_epochs=2))


def test_save_and_load_round_trip(tmp_path):
    train, valid = toy_split("tr", 16, MULTICLASS, 0), toy_split("va", 8, MULTICLASS, 1)
    learner = KerasLearner(toy_model(seed=1), MULTICLASS)
    learner.fit(train, valid, config(max_epochs=1))
    learner.save(tmp_path / "model.weights.h5")
    fresh = KerasLearner(toy_model(seed=2), MULTICLASS)
    assert not np.array_equal(fresh.predict(valid), learner.predict(valid))
    fresh.load(tmp_path / "model.weights.h5")
    np.testing.assert_array_equal(fresh.predict(valid), learner.predict(valid))
    # the standardisation statistics travel with the weights
    assert float(fresh.standardizer.mean.numpy()) == pytest.approx(float(train.x.mean()), abs=1e-6)
    # any file name (mcbench plugins validate saves to model.bin): the same HDF5 weights
    learner.save(tmp_path / "model.bin")
    other = KerasLearner(toy_model(seed=3), MULTICLASS)
    other.load(tmp_path / "model.bin")
    np.testing.assert_array_equal(other.predict(valid), learner.predict(valid))
    assert (tmp_path / "model.bin").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_bad_inputs_are_clear_errors():
    train, valid = toy_split("tr", 8, MULTICLASS, 0), toy_split("va", 4, MULTICLASS, 1)
    empty = FeatureSplit("va", [], valid.x[:0], valid.y[:0], MULTICLASS, valid.labels)
    learner = KerasLearner(toy_model(), MULTICLASS)
    with pytest.raises(ValueError, match="empty splits"):
        learner.fit(train, empty, config())
    with pytest.raises(ValueError, match="select_metric is required"):
        learner.fit(train, valid, config(select_metric=None))
    with pytest.raises(ValueError, match="float32 only"):
        learner.fit(train, valid, config(precision="bf16"))
    if not __import__("tensorflow").config.list_logical_devices("GPU"):
        with pytest.raises(RuntimeError, match="TensorFlow sees 0 GPU"):
            learner.fit(train, valid, config(device="cuda"))


def test_nan_loss_is_an_error():
    inputs = keras.Input((1, 8, 12))
    nan = layers.Lambda(lambda t: t * np.float32("nan"))(layers.Flatten()(inputs))
    model = keras.Model(inputs, layers.Dense(3)(nan))
    with pytest.raises(FloatingPointError, match="loss became nan"):
        KerasLearner(model, MULTICLASS).fit(toy_split("tr", 8, MULTICLASS, 0),
                                            toy_split("va", 4, MULTICLASS, 1), config())


def test_a_keras_build_trains():
    from mcbench_plugins.models.keras_impl.crnn import build_keras_crnn
    from mcbench_plugins.models.keras_impl.layers import count_trainable

    shape = (1, 8, 12)
    train, valid = toy_split("tr", 8, MULTILABEL, 0), toy_split("va", 4, MULTILABEL, 1)
    model = build_keras_crnn(shape, 3, units=4)
    learner = KerasLearner(model, MULTILABEL)
    history = learner.fit(train, valid, config(max_epochs=1))
    assert learner.n_params == count_trainable(model) and np.isfinite(history[0]["loss"])


def test_tensorflow_start_up_lines_stay_off_the_output():
    code = ("from mcbench.keras_learner import load_keras; keras = load_keras(); "
            "print(float(keras.ops.sum(keras.ops.ones((2, 2)))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4.0"
    assert done.stderr == ""
