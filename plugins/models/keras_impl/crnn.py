"""The CRNN baseline in Keras 3, the ``wang2019`` variant (FishInMedi/CRNN-TF ``1.ipynb`` cell 9,
"4 CNNs + 2RNN", after Choi et al., ICASSP 2017).

Four conv 3×3 → BN → ReLU → max-pool "same" blocks (64/128/128/128 channels, pools 2×2, 3×3,
4×4, 4×4) pool the 96 mel bins down to one row; the map becomes a sequence of ⌈T/96⌉ steps of
128 channels, then GRU(32, all steps) → GRU(32, last step) → dropout 0.3 → output (logits). No
input padding, no input batch norm and no dropout in the CNN.

Trainable parameters at 96×1360, 50 outputs: 393,906 with the authors' Keras 2 GRUs (the
``model.summary()`` of ``1.ipynb``), 394,098 with ``keras_gru=False``.

Choi's ``original`` CRNN runs on the torch backend.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcbench_plugins.models.impl.crnn import CNN_CHANNELS, CNN_POOLS, MODEL, _check_input

from .layers import channels_last, conv_block, gru, keras, layers, model_input
from .weights import LayerPair, conv_block_pairs, copy_weights, linear_layers, recurrent_kind

VARIANTS = ("wang2019",)


def build_keras_crnn(
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    variant: str = "wang2019",
    keras_gru: bool = True,
    units: int = 32,
    dropout: float = 0.3,
    conv_dropout: float | None = None,
):
    """Build the CRNN ``wang2019`` in Keras for a log-mel input ``(1, F, T)`` with 1–96 mel bins.

    Options as in the torch port: ``units`` (both GRUs), ``dropout`` (before the output layer),
    ``conv_dropout`` (after every pool; 0 by default, as in the authors' code). ``keras_gru=True``
    (default here, the authors' Keras 2 GRU) or ``False`` (PyTorch ``nn.GRU`` semantics).
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"{MODEL}: variant {variant!r} has no Keras build; the Keras backend has "
            f"{list(VARIANTS)} (Choi's original CRNN runs on the torch backend)"
        )
    _check_input(input_shape, variant)
    conv_dropout = 0.0 if conv_dropout is None else conv_dropout
    for name, value in (("dropout", dropout), ("conv_dropout", conv_dropout)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{MODEL}: {name} must be in [0, 1), got {value}")

    inputs = model_input(input_shape)
    x = channels_last(inputs)
    for i, (channels, pool) in enumerate(zip(CNN_CHANNELS, CNN_POOLS, strict=True), start=1):
        x = conv_block(x, channels, 3, name=f"cnn_block{i}", activation="relu", pool=pool,
                       dropout=conv_dropout)
    # (B, 1, T', C) → (B, T', C): one step per remaining time column
    x = layers.Reshape((x.shape[2], x.shape[3]), name="map_to_sequence")(x)
    x = gru(units, keras2=keras_gru, return_sequences=True, name="rnn_gru1")(x)
    x = gru(units, keras2=keras_gru, name="rnn_gru2")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    logits = layers.Dense(n_outputs, name="head_output")(x)
    return keras.Model(inputs, logits, name=f"{MODEL}_wang2019")


def _pairs(torch_module) -> list[LayerPair]:
    pairs = []
    for i, block in enumerate(torch_module.cnn, start=1):
        pairs += conv_block_pairs(block, f"cnn_block{i}")
    for i, block in enumerate(torch_module.rnn, start=1):
        pairs.append(LayerPair(block, f"rnn_gru{i}", recurrent_kind(block)))
    (output,) = linear_layers(torch_module.head)
    return pairs + [LayerPair(output, "head_output", "dense")]


def torch_to_keras(torch_module, keras_model) -> None:
    """Copy a torch ``build_crnn(..., variant="wang2019")`` model's weights into the Keras build
    (same units and GRU semantics: ``keras_gru`` must agree)."""
    copy_weights(torch_module, keras_model, _pairs(torch_module), "torch_to_keras")


def keras_to_torch(keras_model, torch_module) -> None:
    """Copy the Keras build's weights into a torch ``build_crnn(..., variant="wang2019")``."""
    copy_weights(torch_module, keras_model, _pairs(torch_module), "keras_to_torch")
