"""CRNN-TF in Keras 3: the ``wang2019`` variant (FishInMedi/CRNN-TF ``1.ipynb`` cell 11) and the
paper's ``paper`` variant (Grid LSTM blocks).

Wang et al., IJCNN 2019, Sec. III: a 4-block CNN (conv 3×3 → BN → ELU → max-pool (2,4) "same",
64/128/128/128 channels) turns the log-mel into a 6×6 map (96×1360 input); eight scans of the map
(Sec. III-C: from the vertices A = (f 0, t 0), B = (f 0, t last), C = (f last, t 0), D = (f last,
t last), row-wise and column-wise) each feed a GRU(32); their last states are concatenated in the
order of eq. (1), ``[Ar, Ac, Br, Bc, Cr, Cc, Dr, Dc]``, then dropout 0.5, Dense-64 ELU and the
output layer (logits).

Trainable parameters at 96×1360, 50 outputs: 1,005,426 with the authors' Keras 2 GRUs (the
``model.summary()`` of ``1.ipynb``), 1,006,194 with ``keras_gru=False``.

``paper`` follows the paper's text (Sec. III-D, eq. (3)): the same CNN and scans, one Grid LSTM
block of 32 units per scan (:class:`GridLSTMBlock`, the semantics of TF1
``tf.contrib.grid_rnn.Grid2LSTMCell``), dropout 0.5 on the concatenation and a linear output
layer: 909,746 trainable parameters at 96×1360, 50 outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mcbench_plugins.models.impl.crnn_tf import (
    CNN_CHANNELS,
    CNN_POOL,
    MODEL,
    WANG2019_DENSE,
    cnn_map_size,
    resolve_scans,
)
from mcbench_plugins.models.impl.layers import require_min_length

from .layers import channels_last, conv_block, gru, keras, layers, model_input, ops
from .weights import LayerPair, conv_block_pairs, copy_weights, linear_layers, recurrent_kind

VARIANTS = ("paper", "wang2019")
#: Recurrent blocks per variant (the torch port's LSTM option has no exact Keras twin: Keras's
#: LSTM has one bias vector where ``nn.LSTM`` has two).
CELLS = {"paper": ("grid_lstm", "gru"), "wang2019": ("gru",)}


@keras.saving.register_keras_serializable(package="mcbench")
class GridLSTMBlock(layers.Layer):
    """One Grid LSTM block of the paper (Sec. III-D): TF1 ``Grid2LSTMCell(num_units=n)`` with its
    defaults run over ``x_1..x_L`` from a zero state; returns the depth output of the last step.

    At each step ``p = x·P_m``, ``q = x·P_c`` (bias-free projections D → n); the time LSTM reads
    ``[p; h^T]`` with its state carried over; the depth LSTM reads ``[p; h^T_new]`` with ``q`` as
    its previous memory. Both use TF's gate order [i, j, f, o] and a constant forget bias of 1::

        c = σ(f + 1)·c_prev + σ(i)·tanh(j),   h = σ(o)·tanh(c)

    Only the time state carries over (the depth state is rebuilt from the projections at every
    step), so the depth LSTM runs at the last step only, which is exact. Weights in TF's layout:
    projections (D, n), kernels (2n, 4n), biases (4n); ``2·D·n + 2·(8n² + 4n)`` parameters
    (65,792 for D = 768, n = 32), all in the recurrent group of eq. (2).
    """

    l2_group = "recurrent"

    def __init__(self, units: int = 32, forget_bias: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.forget_bias = int(units), float(forget_bias)

    def build(self, input_shape):
        d, n = int(input_shape[-1]), self.units
        # Each projection and kernel is its own TF variable, so each has its own Glorot limit.
        self.project_m = self.add_weight(shape=(d, n), initializer="glorot_uniform", name="project_m")
        self.project_c = self.add_weight(shape=(d, n), initializer="glorot_uniform", name="project_c")
        self.time_kernel = self.add_weight(shape=(2 * n, 4 * n), initializer="glorot_uniform",
                                           name="time_kernel")
        self.time_bias = self.add_weight(shape=(4 * n,), initializer="zeros", name="time_bias")
        self.depth_kernel = self.add_weight(shape=(2 * n, 4 * n), initializer="glorot_uniform",
                                            name="depth_kernel")
        self.depth_bias = self.add_weight(shape=(4 * n,), initializer="zeros", name="depth_bias")

    def _update(self, gates, c_prev):
        i, j, f, o = ops.split(gates, 4, axis=-1)
        c = ops.sigmoid(i) * ops.tanh(j)
        if c_prev is not None:
            c = c + ops.sigmoid(f + self.forget_bias) * c_prev
        return c, ops.sigmoid(o) * ops.tanh(c)

    def call(self, x):
        n = self.units
        p = ops.matmul(x, self.project_m)  # (B, L, n)
        time_from_input = ops.matmul(p, self.time_kernel[:n]) + self.time_bias  # (B, L, 4n)
        recurrent = self.time_kernel[n:]
        c_t = h_t = None  # zero initial state: the first step has no recurrent term
        for t in range(x.shape[1]):
            gates = time_from_input[:, t]
            if h_t is not None:
                gates = gates + ops.matmul(h_t, recurrent)
            c_t, h_t = self._update(gates, c_t)
        q_last = ops.matmul(x[:, -1], self.project_c)
        depth_gates = ops.matmul(ops.concatenate([p[:, -1], h_t], axis=-1), self.depth_kernel)
        _, h_depth = self._update(depth_gates + self.depth_bias, q_last)
        return h_depth

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "forget_bias": self.forget_bias}


@keras.saving.register_keras_serializable(package="mcbench")
class ScanSequence(layers.Layer):
    """The step sequence of one scan of a channels-last map ``(B, F, T, C)``.

    Flip time for B and D, frequency for C and D. A row scan (``r``) steps along frequency, each
    step one frequency row ``(B, F, T·C)``; a column scan (``c``) steps along time, each step one
    time column ``(B, T, F·C)``; the element index is ``other_axis·C + channel``. With
    ``raster`` every map cell is one step ``(B, F·T, C)``, read row-major (row scans) or
    column-major (column scans) from the vertex. This is the torch port's ``scan_sequence``
    on the same map in Keras's layout, so the GRU weights of both ports are interchangeable.
    """

    def __init__(self, scan: str, raster: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.scan, self.raster = scan, bool(raster)

    def call(self, x):
        vertex, direction = self.scan[0], self.scan[1]
        if vertex in ("C", "D"):
            x = ops.flip(x, axis=1)
        if vertex in ("B", "D"):
            x = ops.flip(x, axis=2)
        if direction == "c":
            x = ops.transpose(x, (0, 2, 1, 3))
        _, steps, other, channels = x.shape
        if self.raster:
            return ops.reshape(x, (-1, steps * other, channels))
        return ops.reshape(x, (-1, steps, other * channels))

    def compute_output_shape(self, input_shape):
        b, f, t, c = input_shape
        steps, other = (f, t) if self.scan[1] == "r" else (t, f)
        return (b, steps * other, c) if self.raster else (b, steps, other * c)

    def get_config(self):
        return {**super().get_config(), "scan": self.scan, "raster": self.raster}


def build_keras_crnn_tf(
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    variant: str = "wang2019",
    cell: str | None = None,
    keras_gru: bool = True,
    scans: str | Iterable[str] = "all",
    raster: bool = False,
    dropout: float = 0.5,
    units: int = 32,
):
    """Build CRNN-TF in Keras for a log-mel input ``(1, F, T)``; returns logits.

    Options as in the torch port: ``cell`` is the block per scan (``paper``: ``grid_lstm``, the
    default, or ``gru``; ``wang2019``: ``gru`` only), ``scans`` picks the Fig. 5 subset
    (``"all"``, a group such as ``"ABCD_r"``, or scan names), ``raster`` makes each map cell one
    step, ``dropout`` acts on the concatenated scan outputs, ``units`` is the block size.
    ``keras_gru=True`` (the default here, the authors' Keras 2 GRU) or ``False`` (PyTorch
    ``nn.GRU`` semantics) applies to GRU blocks.
    """
    if variant not in VARIANTS:
        raise ValueError(f"{MODEL}: unknown variant {variant!r}; use one of {list(VARIANTS)}")
    cell = cell or CELLS[variant][0]
    if cell not in CELLS[variant]:
        raise ValueError(
            f"{MODEL} ({variant}) in Keras takes cell={' or '.join(map(repr, CELLS[variant]))}, "
            f"got cell={cell!r}"
            + (" (the LSTM blocks run on the torch backend)" if cell == "lstm" else "")
        )
    if len(input_shape) != 3 or input_shape[0] != 1:
        raise ValueError(f"{MODEL}: expected a log-mel input shape (1, F, T), got {tuple(input_shape)}")
    _, freq, time = (int(v) for v in input_shape)
    require_min_length(MODEL, variant, "mel bins", freq, 1)
    require_min_length(MODEL, variant, "frames", time, 1)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{MODEL}: dropout must be in [0, 1), got {dropout}")
    chosen = resolve_scans(scans)

    inputs = model_input(input_shape)
    x = channels_last(inputs)
    for i, channels in enumerate(CNN_CHANNELS, start=1):
        x = conv_block(x, channels, 3, name=f"cnn_block{i}", activation="elu", pool=CNN_POOL)
    if tuple(x.shape[1:3]) != cnn_map_size(freq, time):  # guards the two ports staying in step
        raise AssertionError(f"{MODEL}: Keras map {tuple(x.shape[1:3])} differs from the torch port's")
    outputs = []
    for s in chosen:
        block = (GridLSTMBlock(units, name=f"rnn_{s}") if cell == "grid_lstm"
                 else gru(units, keras2=keras_gru, name=f"rnn_{s}"))
        outputs.append(block(ScanSequence(s, raster, name=f"scan_{s}")(x)))
    y = layers.Concatenate(name="scans_concat")(outputs) if len(outputs) > 1 else outputs[0]
    y = layers.Dropout(dropout, name="head_dropout")(y)
    if variant == "wang2019":
        y = layers.Dense(WANG2019_DENSE, activation="elu", name="head_dense")(y)
    logits = layers.Dense(n_outputs, name="head_output")(y)
    return keras.Model(inputs, logits, name=f"{MODEL}_{variant}")


def _pairs(torch_module) -> list[LayerPair]:
    pairs = []
    for i, block in enumerate(torch_module.cnn, start=1):
        pairs += conv_block_pairs(block, f"cnn_block{i}")
    for scan, block in torch_module.rnn.items():
        pairs.append(LayerPair(block, f"rnn_{scan}", recurrent_kind(block)))
    *hidden, output = linear_layers(torch_module.head)
    pairs += [LayerPair(h, "head_dense", "dense") for h in hidden]
    return pairs + [LayerPair(output, "head_output", "dense")]


def torch_to_keras(torch_module, keras_model) -> None:
    """Copy a torch ``build_crnn_tf`` model's weights into the Keras build (same variant, cell,
    scans and units; for GRU blocks ``keras_gru`` must agree)."""
    copy_weights(torch_module, keras_model, _pairs(torch_module), "torch_to_keras")


def keras_to_torch(keras_model, torch_module) -> None:
    """Copy the Keras build's weights into a torch ``build_crnn_tf`` model built alike."""
    copy_weights(torch_module, keras_model, _pairs(torch_module), "keras_to_torch")
