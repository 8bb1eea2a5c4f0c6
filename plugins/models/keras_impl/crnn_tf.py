"""CRNN-TF in Keras 3, the ``wang2019`` variant (FishInMedi/CRNN-TF ``1.ipynb`` cell 11).

Wang et al., IJCNN 2019, Sec. III: a 4-block CNN (conv 3×3 → BN → ELU → max-pool (2,4) "same",
64/128/128/128 channels) turns the log-mel into a 6×6 map (96×1360 input); eight scans of the map
(Sec. III-C: from the vertices A = (f 0, t 0), B = (f 0, t last), C = (f last, t 0), D = (f last,
t last), row-wise and column-wise) each feed a GRU(32); their last states are concatenated in the
order of eq. (1), ``[Ar, Ac, Br, Bc, Cr, Cc, Dr, Dc]``, then dropout 0.5, Dense-64 ELU and the
output layer (logits).

Trainable parameters at 96×1360, 50 outputs: 1,005,426 with the authors' Keras 2 GRUs (the
``model.summary()`` of ``1.ipynb``), 1,006,194 with ``keras_gru=False``.

The ``paper`` variant (Grid LSTM blocks, TF1 ``tf.contrib.grid_rnn``) has no Keras build here.
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
from .weights import LayerPair, conv_block_pairs, copy_weights, gru_kind, linear_layers

VARIANTS = ("wang2019",)


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
    """Build CRNN-TF ``wang2019`` in Keras for a log-mel input ``(1, F, T)``; returns logits.

    Options as in the torch port: ``scans`` picks the Fig. 5 subset (``"all"``, a group such as
    ``"ABCD_r"``, or scan names), ``raster`` makes each map cell one step, ``dropout`` acts on the
    concatenated scan outputs, ``units`` is the GRU size. ``keras_gru=True`` (the default here, the
    authors' Keras 2 GRU) or ``False`` (PyTorch ``nn.GRU`` semantics); ``cell`` may only be
    ``"gru"``.
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"{MODEL}: variant {variant!r} has no Keras build; the Keras backend has "
            f"{list(VARIANTS)} (the paper's Grid LSTM variant runs on the torch backend)"
        )
    if cell not in (None, "gru"):
        raise ValueError(f"{MODEL} (wang2019) uses GRU blocks only; got cell={cell!r} (use 'gru')")
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
    outputs = [
        gru(units, keras2=keras_gru, name=f"rnn_{s}")(ScanSequence(s, raster, name=f"scan_{s}")(x))
        for s in chosen
    ]
    y = layers.Concatenate(name="scans_concat")(outputs) if len(outputs) > 1 else outputs[0]
    y = layers.Dropout(dropout, name="head_dropout")(y)
    y = layers.Dense(WANG2019_DENSE, activation="elu", name="head_dense")(y)
    logits = layers.Dense(n_outputs, name="head_output")(y)
    return keras.Model(inputs, logits, name=f"{MODEL}_wang2019")


def _pairs(torch_module) -> list[LayerPair]:
    pairs = []
    for i, block in enumerate(torch_module.cnn, start=1):
        pairs += conv_block_pairs(block, f"cnn_block{i}")
    for scan, block in torch_module.rnn.items():
        pairs.append(LayerPair(block, f"rnn_{scan}", gru_kind(block)))
    linears = linear_layers(torch_module.head)
    pairs += [LayerPair(linears[0], "head_dense", "dense"),
              LayerPair(linears[1], "head_output", "dense")]
    return pairs


def torch_to_keras(torch_module, keras_model) -> None:
    """Copy a torch ``build_crnn_tf(..., variant="wang2019")`` model's weights into the Keras build
    (same scans, units and GRU semantics: ``keras_gru`` must agree)."""
    copy_weights(torch_module, keras_model, _pairs(torch_module), "torch_to_keras")


def keras_to_torch(keras_model, torch_module) -> None:
    """Copy the Keras build's weights into a torch ``build_crnn_tf(..., variant="wang2019")``."""
    copy_weights(torch_module, keras_model, _pairs(torch_module), "keras_to_torch")
