"""The Keras trainer: the torch trainer's protocols, selection and resume, for Keras 3 models.

:class:`KerasLearner` is the twin of :class:`mcbench.training.TorchLearner` for a Keras model
(TensorFlow backend) that maps the harness's channels-first features to logits. It implements
the same protocols (the table :data:`mcbench.specs.PROTOCOLS`, read through the
:class:`~mcbench.specs.TrainConfig` that :func:`mcbench.training.protocol_config` builds):

* Adam, β = (0.9, 0.999), ε = ``config.adam_eps`` (1e-7, Keras's default, which the paper's code
  used); the learning rate in epoch e (0-based) is ``lr · lr_decay^e``. Keras's Adam adds ε to
  √v before the bias correction (PyTorch adds it to √v̂), as the authors' Keras code did.
* Batch ``config.batch_size``, reshuffled each epoch by ``numpy.random.default_rng([seed,
  epoch])``, exactly the torch trainer's batches.
* Sigmoid + binary cross-entropy on the logits, averaged over labels and batch (tagging);
  softmax + cross-entropy on the logits with integer targets (genres).
* L2 of eq. (2) of the paper, added to the loss as ``λ·Σ‖w‖²`` per group: λ1 (``l2_conv``)
  for convolution kernels and biases, λ2 (``l2_output``) for dense layers (the output and any
  hidden dense layer), λ3 (``l2_recurrent``) for recurrent layers (input kernel, recurrent
  kernel, biases); batch norm is never penalised. A layer may declare ``l2_group`` ("conv",
  "output", "recurrent" or "") itself. The torch trainer's per-group Adam ``weight_decay = 2λ``
  has the same gradient. The reported ``loss`` is the data loss without the L2 term, as there.
* Selection on validation with ``config.select_metric`` (ties keep the earlier epoch), early
  stopping after ``config.patience`` epochs without improvement, the selected weights loaded
  at the end.
* Inputs standardised with two scalars (mean, standard deviation) from the training split,
  computed by :meth:`mcbench.training.InputStandardizer.fit_statistics` and stored as weights.
* Batch-norm warm-up: in training step s (0-based, counted over the whole run) every
  ``BatchNormalization`` layer uses momentum ``min(m, 1 − 1/(s+1))`` (m its own, 0.99 by
  default), i.e. PyTorch momentum ``max(0.01, 1/(s+1))`` as the torch trainer sets it: the
  running statistics are the plain average of the batches seen until step 100, then Keras's
  own exponential average. Without it the running statistics of a short run stay near their
  initial values and the first epochs' validation metric says nothing (see
  ``mcbench.training._warm_up_batchnorm``). Keras updates the moving variance with the biased
  batch variance and PyTorch with the unbiased one, so the two backends' running variances
  differ by the factor n/(n−1) of the batch size n.

Transfer groups and embeddings (:mod:`mcbench.transfer`, :mod:`mcbench.embed`): a Keras model
declares the groups of Wang et al. (IJCNN 2019, Sec. V-G, Table III) by its layer names: every
layer with weights is named ``cnn_…``, ``rnn_…`` or ``head_…`` (:func:`keras_transfer_groups`),
and the layer that produces the logits is in ``head``. Freezing a group sets ``trainable =
False`` on its layers (no gradient, no L2 term, and a frozen ``BatchNormalization`` runs in
inference mode, Keras's rule). The embedding of a clip is the input of the head (its first
``head_`` layer; a model without groups: the input of the layer that produces the logits),
flattened in channels-first order like the torch ports (:meth:`KerasLearner.embed`).

Checkpoints in ``config.workdir``, none of them a pickle: ``best.weights.h5`` (the selected
epoch's weights), ``last-epochNNN.weights.h5`` and ``last-epochNNN.optimizer.npz`` (the last
completed epoch's weights and Adam's variables) and ``last.json`` (the history, the best epoch
so far, the step count; written last, so it always names a complete checkpoint). A fit started
again with the same work folder continues after the last completed epoch and, on the CPU,
gives exactly the numbers of an uninterrupted fit: shuffling is seeded by (seed, epoch), every
dropout layer's seed by (seed, epoch, layer), and TensorFlow runs with op determinism.

TensorFlow is imported only by this module (and the Keras model builds), through
:func:`load_keras`, which keeps its start-up log lines off mcbench's output.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .specs import MULTILABEL, FeatureSplit, TrainConfig, improves
from .storage import StateError, atomic_write_bytes, atomic_write_json, ensure_free_space

_KERAS = None


@contextlib.contextmanager
def _stderr_captured():
    """Send file descriptor 2 to a temporary file for the duration; yields that file.

    TensorFlow's C++ runtime writes its start-up lines ("oneDNN custom operations are on",
    "Could not find cuda drivers") through absl before ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so
    only a redirect of the descriptor itself keeps them off mcbench's output.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2: nothing to protect
        yield None
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def load_keras():
    """Import TensorFlow and Keras 3 once, quietly, and return the ``keras`` module.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (errors only) and ``KERAS_BACKEND=tensorflow`` unless the
    user set them, and drops what TensorFlow prints while it loads. If the import fails, the
    captured text is printed with the error so nothing needed for a diagnosis is lost.
    """
    global _KERAS
    if _KERAS is not None:
        return _KERAS
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _stderr_captured() as captured:
        try:
            import keras
            import tensorflow

            # Finding the devices initialises the platforms, which logs (on a machine without a
            # GPU driver, "failed call to cuInit") at the first operation otherwise.
            tensorflow.config.list_physical_devices()
        except ImportError as exc:
            text = ""
            if captured is not None:
                captured.seek(0)
                text = captured.read().decode("utf-8", "replace")
            raise ImportError(
                f"the Keras backend needs TensorFlow >= 2.16 with Keras 3: {exc}. Install it with "
                f"pip install -c constraints.txt -e \".[tensorflow]\" (from the mcbench checkout) or "
                f"pip install 'mcbench[tensorflow]'." + (f"\nTensorFlow said:\n{text}" if text else "")
            ) from exc
    if int(keras.__version__.split(".")[0]) < 3:
        raise ImportError(f"the Keras backend needs Keras 3 (TensorFlow >= 2.16), found Keras "
                          f"{keras.__version__}; pip install 'mcbench[tensorflow]'")
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"mcbench's Keras backend runs on TensorFlow, but Keras is set to the "
            f"{keras.backend.backend()!r} backend (KERAS_BACKEND or ~/.keras/keras.json); "
            f"set KERAS_BACKEND=tensorflow"
        )
    _KERAS = keras
    return keras


# --------------------------------------------------------------------------- L2 groups and layers


def _layers(model) -> list:
    """Every layer of ``model``, nested models opened (their own layers, not the model)."""
    keras = load_keras()
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(_layers(layer))
        else:
            found.append(layer)
    return found


def l2_group_of(layer) -> str | None:
    """Eq. (2) group of a Keras layer: "conv" (λ1), "output" (λ2), "recurrent" (λ3) or ``None``.

    A layer's own ``l2_group`` attribute wins ("" for none); otherwise convolutions → conv, dense
    layers → output, recurrent layers → recurrent, everything else (batch norm) → none.
    """
    keras = load_keras()
    declared = getattr(layer, "l2_group", None)
    if declared is not None:
        return declared or None
    kl = keras.layers
    if isinstance(layer, (kl.BatchNormalization, kl.LayerNormalization, kl.GroupNormalization)):
        return None
    if isinstance(layer, (kl.Conv1D, kl.Conv2D, kl.Conv3D, kl.Conv1DTranspose, kl.Conv2DTranspose,
                          kl.Conv3DTranspose, kl.DepthwiseConv2D, kl.SeparableConv2D)):
        return "conv"
    if isinstance(layer, (kl.RNN, kl.Bidirectional)):
        return "recurrent"
    if isinstance(layer, (kl.Dense, kl.EinsumDense)):
        return "output"
    return None


def keras_l2_groups(model) -> dict[str, list]:
    """The trainable variables of each eq. (2) group ("conv", "output", "recurrent")."""
    groups: dict[str, list] = {"conv": [], "output": [], "recurrent": []}
    seen: set[int] = set()
    for layer in _layers(model):
        group = l2_group_of(layer)
        for v in layer.trainable_weights:
            if id(v) in seen:
                continue
            seen.add(id(v))
            if group is not None:
                groups.setdefault(group, []).append(v)
    return groups


#: The transfer groups (Wang et al., Table III), in network order, as layer-name prefixes.
TRANSFER_GROUPS = ("cnn", "rnn", "head")


def _group_of_name(name: str) -> str | None:
    prefix = name.split("_", 1)[0]
    return prefix if prefix in TRANSFER_GROUPS and name.startswith(prefix + "_") else None


def keras_transfer_groups(network) -> dict[str, list] | None:
    """The layers of each transfer group ``cnn``, ``rnn`` and ``head`` of a Keras network, by
    the prefix of their names (``cnn_block1_conv``, ``rnn_Ar``, ``head_output``); ``None`` when
    no layer with weights is named so (the network declares no groups). Layers without weights
    (input, transposes, pools) belong to no group; :func:`check_keras_groups` states the rest of
    the contract."""
    groups: dict[str, list] = {g: [] for g in TRANSFER_GROUPS}
    named = False
    for layer in _layers(network):
        if not layer.weights:
            continue
        group = _group_of_name(layer.name)
        if group is not None:
            groups[group].append(layer)
            named = True
    return groups if named else None


def output_layer(network):
    """The layer of ``network`` whose output is the network's (first) output: the logits."""
    history = getattr(network.outputs[0], "_keras_history", None)
    layer = history[0] if history else None
    return layer if layer is not None else network.layers[-1]


def check_keras_groups(network) -> list[str]:
    """Problems with a Keras network's transfer groups (empty when it is fine, or when it
    declares none: then it can be neither a transfer source nor a target).

    The contract: every layer with weights is named ``cnn_…``, ``rnn_…`` or ``head_…``;
    ``head`` is not empty and holds the layer that produces the logits; the head's layers are
    layers of the network itself (not of a nested model), so that its input is one tensor.
    """
    groups = keras_transfer_groups(network)
    if groups is None:
        return []
    name = network.name
    problems = []
    stray = [layer.name for layer in _layers(network)
             if layer.weights and _group_of_name(layer.name) is None]
    if stray:
        problems.append(f"Keras model {name!r}: {len(stray)} layer(s) with weights are in no "
                        f"transfer group ({', '.join(stray[:3])}); name every layer with weights "
                        f"{', '.join(g + '_…' for g in TRANSFER_GROUPS)}")
    out = output_layer(network)
    if not groups["head"]:
        problems.append(f"Keras model {name!r}: no layer is named head_…; the head group must "
                        "hold the layer that produces the logits")
    elif _group_of_name(out.name) != "head":
        problems.append(f"Keras model {name!r}: the logits come from layer {out.name!r}, which "
                        "is not in the head group; name it head_… (e.g. head_output)")
    nested = [layer.name for layer in groups["head"] if layer not in network.layers]
    if nested:
        problems.append(f"Keras model {name!r}: head layer(s) {', '.join(nested)} are inside a "
                        "nested model; put the head's layers in the model itself")
    return problems


def embedding_layer(network):
    """The layer whose input is the embedding: the first ``head_`` layer of the network (its
    layers are in graph order), or the layer that produces the logits when there are no
    groups. Raises :class:`mcbench.embed.EmbeddingError` when the groups are not usable."""
    from .embed import EmbeddingError

    problems = check_keras_groups(network)
    if problems:
        raise EmbeddingError("; ".join(problems))
    if keras_transfer_groups(network) is None:
        return output_layer(network)
    return next(layer for layer in network.layers if _group_of_name(layer.name) == "head")


def _standardize_layer():
    keras = load_keras()

    class Standardize(keras.layers.Layer):
        """``(x − mean) / std`` with two scalars stored as (non-trainable) weights."""

        def build(self, input_shape):
            self.mean = self.add_weight(shape=(), initializer="zeros", trainable=False, name="mean")
            self.std = self.add_weight(shape=(), initializer="ones", trainable=False, name="std")

        def call(self, x):
            return (x - self.mean) / self.std

    return Standardize(name="standardize")


def seed_keras(seed: int) -> None:
    """Seed Python, numpy and TensorFlow (``keras.utils.set_random_seed``) before a Keras build,
    so the initial weights depend on the run's seed only."""
    load_keras().utils.set_random_seed(int(seed) % 2**32)


def _resolve_device(name: str) -> tuple[str, str]:
    """``(TensorFlow device, name for the run record)`` for ``--device`` auto/cpu/cuda[:N]/gpu[:N]."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return ("/GPU:0", "gpu:0") if gpus else ("/CPU:0", "cpu")
    if name == "cpu":
        return "/CPU:0", "cpu"
    kind, _, index = name.partition(":")
    if kind in ("cuda", "gpu"):
        i = int(index or 0)
        if i >= len(gpus):
            raise RuntimeError(
                f"--device {name} was requested but TensorFlow sees {len(gpus)} GPU(s) (install "
                f"a CUDA build of TensorFlow, pip install 'tensorflow[and-cuda]', or use --device cpu)"
            )
        return f"/GPU:{i}", f"gpu:{i}"
    raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N, gpu or gpu:N")


def _dropout_seeds(model, seed: int, epoch: int) -> None:
    """Reset every random layer's seed state from (seed, epoch, layer index).

    Keras's dropout draws stateless random masks from a per-layer seed state that advances at
    every call; resetting it at the start of each epoch makes an epoch's masks independent of
    what ran before, so a resumed fit draws the masks an uninterrupted fit draws.
    """
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for i, state in enumerate(states):
        value = np.random.SeedSequence([seed, epoch, i]).generate_state(1)[0] % 2**31
        state.assign(np.array([value, 0], dtype=state.dtype))


# --------------------------------------------------------------------------- the learner


class KerasLearner:
    """Wraps a Keras model (channels-first features in, logits out) with fit/predict/save/load.

    ``model`` is the network a Keras build returns; the learner puts the input standardisation in
    front of it (:attr:`model` is the whole, :attr:`network` the build).
    """

    def __init__(self, model, task: str):
        keras = load_keras()
        self.network = model
        self.task = task
        inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="features")
        self.standardizer = _standardize_layer()
        self.model = keras.Model(inputs, model(self.standardizer(inputs)), name="keras_learner")
        self.device = "cpu"
        self._tf_device = "/CPU:0"
        self.history: list[dict] = []
        self.selected_epoch: int | None = None
        self._best_in_memory: list | None = None
        self.batch_size = 32
        self._predict_fn = None
        self._embed_fn = None
        #: Set by a transfer (:func:`mcbench.transfer.apply`): keep the source's standardisation.
        self.keep_standardization = False
        # Counted before any layer is frozen, like the torch learner's count of every parameter.
        self._n_params = int(sum(int(np.prod(v.shape)) for v in self.model.trainable_weights))

    # -- helpers
    def _target_dtype(self):
        return np.float32 if self.task == MULTILABEL else np.int64

    def _batch(self, split: FeatureSplit, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.sort(idx)  # sorted reads are sequential on a memory map (as the torch trainer)
        x = np.ascontiguousarray(split.x[order], dtype=np.float32)
        return x, np.asarray(split.y[order]).astype(self._target_dtype())

    def _signature(self, with_targets: bool):
        import tensorflow as tf

        x_spec = tf.TensorSpec((None, *self.model.inputs[0].shape[1:]), tf.float32)
        if not with_targets:
            return [x_spec]
        n_out = self.model.outputs[0].shape[-1]
        y_spec = (tf.TensorSpec((None, n_out), tf.float32) if self.task == MULTILABEL
                  else tf.TensorSpec((None,), tf.int64))
        return [x_spec, y_spec, tf.TensorSpec((), tf.int64)]

    def _make_predict(self):
        import tensorflow as tf

        model, multilabel = self.model, self.task == MULTILABEL

        @tf.function(input_signature=self._signature(False))
        def predict_step(x):
            logits = tf.cast(model(x, training=False), tf.float32)
            return tf.sigmoid(logits) if multilabel else tf.nn.softmax(logits, axis=-1)

        return predict_step

    def _make_train_step(self, optimizer, config: TrainConfig):
        import tensorflow as tf

        keras = load_keras()
        model = self.model
        trainable = model.trainable_variables
        lam = {"conv": config.l2_conv, "output": config.l2_output, "recurrent": config.l2_recurrent}
        trainable_ids = {id(v) for v in trainable}
        penalised = [(lam[g], [v for v in vs if id(v) in trainable_ids])
                     for g, vs in keras_l2_groups(model).items() if lam.get(g, 0.0) > 0.0]
        penalised = [(lam_g, vs) for lam_g, vs in penalised if vs]
        norms = [(layer, layer.momentum) for layer in _layers(model)
                 if isinstance(layer, keras.layers.BatchNormalization)]
        if self.task == MULTILABEL:
            data_loss = keras.losses.BinaryCrossentropy(from_logits=True)
        else:
            data_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function(input_signature=self._signature(True))
        def train_step(x, y, step):
            # Batch-norm warm-up (module docstring): the momentum is a tensor of this step.
            plain_average = 1.0 - 1.0 / (tf.cast(step, tf.float32) + 1.0)
            try:
                for layer, base in norms:
                    layer.momentum = tf.minimum(tf.constant(base, tf.float32), plain_average)
                with tf.GradientTape() as tape:
                    logits = tf.cast(model(x, training=True), tf.float32)
                    loss = data_loss(y, logits)
                    total = loss
                    for lam_g, variables in penalised:
                        total = total + lam_g * tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])
                grads = tape.gradient(total, trainable)
                optimizer.apply_gradients(zip(grads, trainable))
            finally:
                for layer, base in norms:
                    layer.momentum = base
            return loss

        return train_step

    # -- checkpoints
    def _save_weights(self, path: Path) -> None:
        """``model.save_weights`` to a temporary ``.weights.h5`` beside ``path``, then a rename."""
        needed = sum(int(np.prod(v.shape)) * 4 for v in self.model.weights) + 2**20
        ensure_free_space(path.parent, needed, path.name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.weights.h5")
        try:
            with warnings.catch_warnings():
                # Keras's HDF5 writer converts variables with np.array(copy=False) semantics that
                # numpy 2 deprecates; the file is unaffected.
                warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept",
                                        category=DeprecationWarning)
                self.model.save_weights(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _load_weights(self, path: Path) -> None:
        from .training import unusable_checkpoint

        try:
            self.model.load_weights(path)
        except Exception as exc:  # truncated file, another model's weights
            raise unusable_checkpoint(path, exc) from exc

    @staticmethod
    def _save_optimizer(optimizer, path: Path) -> None:
        store: dict = {}
        optimizer.save_own_variables(store)
        buf = io.BytesIO()
        np.savez(buf, **store)
        atomic_write_bytes(path, buf.getbuffer())

    @staticmethod
    def _load_optimizer(optimizer, path: Path) -> None:
        from .training import unusable_checkpoint

        try:
            with np.load(path, allow_pickle=False) as npz:
                store = {k: npz[k] for k in npz.files}
            if len(store) != len(optimizer.variables):
                raise ValueError(f"{len(store)} optimizer variables saved, this model has "
                                 f"{len(optimizer.variables)}")
            optimizer.load_own_variables(store)
        except Exception as exc:
            raise unusable_checkpoint(path, exc) from exc

    # -- Learner API
    def fit(self, train: FeatureSplit, valid: FeatureSplit, config: TrainConfig) -> list[dict]:
        import tensorflow as tf
        import torch

        from .training import InputStandardizer, _progress, _say, unusable_checkpoint

        keras = load_keras()
        if len(train) == 0 or len(valid) == 0:
            raise ValueError(f"cannot train on empty splits (train={len(train)}, valid={len(valid)})")
        if config.select_metric is None:
            raise ValueError("TrainConfig.select_metric is required (the validation metric)")
        if config.precision != "fp32":
            raise ValueError(
                f"precision={config.precision!r}: the Keras learner trains in float32 only "
                f"(the paper's setting); use precision 'fp32' or the torch backend"
            )
        self._tf_device, self.device = _resolve_device(config.device)
        self.batch_size = config.batch_size
        keras.utils.set_random_seed(int(config.seed) % 2**32)
        tf.config.experimental.enable_op_determinism()

        with tf.device(self._tf_device):
            optimizer = keras.optimizers.Adam(
                learning_rate=config.lr, beta_1=0.9, beta_2=0.999, epsilon=config.adam_eps
            )
            optimizer.build(self.model.trainable_variables)
            workdir = Path(config.workdir) if config.workdir else None
            state = {"epoch": -1, "best_metric": None, "best_epoch": None, "history": [],
                     "finished": False, "step": 0, "checkpoint": None}
            if workdir is not None:
                workdir.mkdir(parents=True, exist_ok=True)
                last = workdir / "last.json"
                if last.exists():
                    try:
                        state = json.loads(last.read_text(encoding="utf-8"))
                        checkpoint = workdir / state["checkpoint"]
                    except (OSError, ValueError, KeyError, TypeError) as exc:
                        raise unusable_checkpoint(last, exc) from exc
                    self._load_weights(checkpoint.with_name(checkpoint.name + ".weights.h5"))
                    self._load_optimizer(optimizer, checkpoint.with_name(checkpoint.name + ".optimizer.npz"))
                    _say(f"resuming from epoch {state['epoch'] + 2} (checkpoint {last})"
                         if not state["finished"] and state["epoch"] + 1 < config.max_epochs
                         else f"training already finished (checkpoint {last})")
            if state["epoch"] < 0 and config.standardize and not self.keep_standardization:
                stats = InputStandardizer(torch.nn.Identity())
                stats.fit_statistics(train.x)
                self.standardizer.mean.assign(float(stats.mean))
                self.standardizer.std.assign(float(stats.std))
            train_step = self._make_train_step(optimizer, config)
            n = len(train)
            best_metric = state["best_metric"]
            for epoch in range(state["epoch"] + 1, config.max_epochs):
                if state["finished"]:
                    break
                lr = config.lr * config.lr_decay**epoch
                optimizer.learning_rate.assign(lr)
                order = np.random.default_rng([config.seed, epoch]).permutation(n)
                _dropout_seeds(self.model, config.seed, epoch)
                t0 = time.perf_counter()
                total, seen = 0.0, 0
                batches = [order[i : i + config.batch_size] for i in range(0, n, config.batch_size)]
                bar = _progress(batches, desc=f"epoch {epoch + 1}/{config.max_epochs}",
                                unit="batch", disable=not config.progress, leave=False)
                for idx in bar:
                    x, y = self._batch(train, idx)
                    loss = float(train_step(x, y, np.int64(state["step"])))
                    state["step"] += 1
                    if not math.isfinite(loss):
                        raise FloatingPointError(f"training loss became {loss} in epoch {epoch + 1}")
                    total += loss * len(idx)
                    seen += len(idx)
                    bar.set_postfix(loss=f"{total / seen:.4f}")
                train_s = time.perf_counter() - t0
                scores = self.predict(valid, batch_size=config.batch_size)
                metric = float(config.select_metric(valid.y, scores))
                improved = improves(metric, best_metric, config.select_higher_is_better)
                entry = {
                    "epoch": epoch, "loss": total / seen, "valid_metric": metric, "lr": lr,
                    "seconds": round(time.perf_counter() - t0, 3),
                    "clips_per_s": round(seen / train_s, 2),
                }
                state["history"].append(entry)
                if improved:
                    best_metric, state["best_epoch"] = metric, epoch
                    state["best_metric"] = metric
                stale = epoch - (state["best_epoch"] if state["best_epoch"] is not None else epoch)
                if config.patience is not None and stale >= config.patience:
                    state["finished"] = True
                if config.epoch_callback is not None:
                    config.epoch_callback(entry)
                _say(
                    f"epoch {epoch + 1}/{config.max_epochs}: loss {entry['loss']:.4f}, "
                    f"valid {config.select_metric_name or 'metric'} {metric:.4f}"
                    f"{' *' if improved else ''} ({entry['seconds']:.1f} s, "
                    f"{entry['clips_per_s']:.1f} clips/s)"
                )
                state["epoch"] = epoch
                if workdir is not None:
                    self._checkpoint(workdir, optimizer, state, improved)
                elif improved:
                    self._best_in_memory = self.model.get_weights()
            # Test predictions must come from the selected checkpoint, never the last epoch.
            if workdir is not None and (workdir / "best.weights.h5").exists():
                self._load_weights(workdir / "best.weights.h5")
            elif self._best_in_memory is not None:
                self.model.set_weights(self._best_in_memory)
        self.history = state["history"]
        self.selected_epoch = state["best_epoch"]
        return self.history

    def _checkpoint(self, workdir: Path, optimizer, state: dict, improved: bool) -> None:
        """Best weights (when improved), this epoch's weights and optimizer, then ``last.json``
        naming them (the commit point), then the previous epoch's files are removed."""
        if improved:
            self._save_weights(workdir / "best.weights.h5")
        previous = state.get("checkpoint")
        name = f"last-epoch{state['epoch']:03d}"
        self._save_weights(workdir / f"{name}.weights.h5")
        self._save_optimizer(optimizer, workdir / f"{name}.optimizer.npz")
        state["checkpoint"] = name
        atomic_write_json(workdir / "last.json", state)
        if previous and previous != name:
            for suffix in (".weights.h5", ".optimizer.npz"):
                with contextlib.suppress(FileNotFoundError):
                    (workdir / f"{previous}{suffix}").unlink()

    def predict(self, split: FeatureSplit, batch_size: int | None = None) -> np.ndarray:
        """Probabilities ``(N, K)`` (sigmoid for tagging, softmax for genres), in batches of the
        last fit's batch size unless one is given."""

        if self._predict_fn is None:
            self._predict_fn = self._make_predict()
        return self._batched(self._predict_fn, split, batch_size)

    def _batched(self, fn, split: FeatureSplit, batch_size: int | None) -> np.ndarray:
        """``fn`` over the split in order, in batches (default: the last fit's batch size),
        on this learner's device; ``(N, D)`` float32."""
        import tensorflow as tf

        batch_size = batch_size or self.batch_size
        out = []
        with tf.device(self._tf_device):
            for i in range(0, len(split), batch_size):
                x = np.ascontiguousarray(split.x[i : i + batch_size], dtype=np.float32)
                out.append(fn(x).numpy())
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def save(self, path: Path) -> None:
        """The weights (standardisation included) in Keras's HDF5 weights format (no pickle),
        under any file name (``.weights.h5`` is the usual one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._save_weights(path)

    def load(self, path: Path) -> None:
        """The weights written by :meth:`save`, whatever the file is called."""
        path = Path(path)
        if not path.exists():
            raise StateError(f"KerasLearner.load: {path} does not exist")
        if path.name.endswith(".weights.h5"):
            self._load_weights(path)
            return
        # Keras reads weights only from a file named *.weights.h5: link (or copy) it so.
        with tempfile.TemporaryDirectory() as tmp:
            named = Path(tmp) / "model.weights.h5"
            try:
                os.symlink(path.resolve(), named)
            except OSError:
                import shutil

                shutil.copyfile(path, named)
            self._load_weights(named)

    def load_selected(self, workdir: Path) -> Path:
        """Load the weights a finished run was evaluated with from its work folder:
        ``best.weights.h5`` (the selected epoch), or the last epoch's weights named by
        ``last.json`` when no epoch was selected. Returns the file loaded."""
        workdir = Path(workdir)
        best = workdir / "best.weights.h5"
        if best.exists():
            self._load_weights(best)
            return best
        last = workdir / "last.json"
        if last.exists():
            try:
                name = json.loads(last.read_text(encoding="utf-8"))["checkpoint"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                from .training import unusable_checkpoint

                raise unusable_checkpoint(last, exc) from exc
            path = workdir / f"{name}.weights.h5"
            self._load_weights(path)
            return path
        raise StateError(f"no checkpoint (best.weights.h5 or last.json) in {workdir}; train the "
                         "run again to get its weights")

    def configure_inference(self, device: str, batch_size: int | None = None) -> None:
        """Device (``auto``, ``cpu``, ``cuda[:N]``) and batch size for :meth:`predict` and
        :meth:`embed` without a :meth:`fit` (``mcbench embed``)."""
        self._tf_device, self.device = _resolve_device(device)
        if batch_size:
            self.batch_size = int(batch_size)

    def check_embed(self) -> None:
        """Raise :class:`mcbench.embed.EmbeddingError` when this model gives no embeddings."""
        embedding_layer(self.network)

    def _make_embed(self):
        import tensorflow as tf

        keras = load_keras()
        layer = embedding_layer(self.network)
        inputs = self.network.inputs
        inner = keras.Model(inputs[0] if len(inputs) == 1 else inputs, layer.input, name="embedding")
        standardizer = self.standardizer

        @tf.function(input_signature=self._signature(False))
        def embed_step(x):
            e = tf.cast(inner(standardizer(x), training=False), tf.float32)
            if len(e.shape) > 2:  # channels last → channels first, the torch ports' flatten order
                e = tf.transpose(e, [0, len(e.shape) - 1, *range(1, len(e.shape) - 1)])
            return tf.reshape(e, (tf.shape(e)[0], -1))

        return embed_step

    def embed(self, split: FeatureSplit, batch_size: int | None = None) -> np.ndarray:
        """Embeddings ``(N, D)`` float32 after the run's input standardisation, in inference
        mode: the input of the network's head (module docstring). For the authors' models this
        is what the torch ports' :meth:`mcbench.training.TorchLearner.embed` returns (CRNN-TF:
        the 256-d concatenation of eq. (1)), value for value after a weight copy."""

        if self._embed_fn is None:
            self._embed_fn = self._make_embed()
        return self._batched(self._embed_fn, split, batch_size)

    @property
    def n_params(self) -> int:
        """Trainable parameters of the model as built (batch-norm running statistics and the
        standardisation excluded; layers frozen by a transfer still counted, as by the torch
        learner; a transfer record counts the trainable ones)."""
        return self._n_params


def is_keras_model(obj) -> bool:
    """Whether ``obj`` is a Keras model (without importing TensorFlow when it is not loaded)."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.Model)
