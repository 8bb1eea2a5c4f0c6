"""The End-to-end baseline in Keras 3, the ``wang2019`` variant (FishInMedi/CRNN-TF ``1.ipynb``
cell 7, "2 CNNs + FC", after Dieleman & Schrauwen, ICASSP 2014).

The authors' "End-to-end" is a 2-D CNN on the log-mel with Dieleman's layer pattern: two Conv 8×8
(32) "same" → BN → ReLU → max-pool (4,4) "same" blocks, flatten 16,320 → dropout 0.5 → Dense-100
ReLU → output (logits).

Trainable parameters at 96×1360, 50 outputs: 1,704,926 (the ``model.summary()`` of
``1.ipynb``). Defined for input (1, 96, 1360) only, like the authors' model. Dieleman's raw-waveform
``original`` runs on the torch backend.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcbench_plugins.models.impl.end_to_end import (
    CONV_FILTERS,
    CONV_WIDTH,
    DEFAULT_FRAME,
    DEFAULT_N_FILTERS,
    HIDDEN,
    POOL,
    WANG2019_DROPOUT,
    WANG2019_INPUT,
)

from .layers import channels_last, conv_block, keras, layers, model_input
from .weights import LayerPair, conv_block_pairs, copy_weights, linear_layers

MODEL = "end_to_end"
VARIANTS = ("wang2019",)


def build_keras_end_to_end(
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    variant: str = "wang2019",
    n_filters: int = DEFAULT_N_FILTERS,
    frame: int = DEFAULT_FRAME,
):
    """Build End-to-end ``wang2019`` in Keras for the log-mel input (1, 96, 1360).

    ``n_filters`` and ``frame`` configure the raw-waveform ``original`` front end, which has no
    Keras build; they must stay at their defaults here (as in the torch port's ``wang2019``).
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"{MODEL}: variant {variant!r} has no Keras build; the Keras backend has "
            f"{list(VARIANTS)} (Dieleman's raw-waveform original runs on the torch backend)"
        )
    if (n_filters, frame) != (DEFAULT_N_FILTERS, DEFAULT_FRAME):
        raise ValueError(
            f"{MODEL} (wang2019) is a mel-input 2-D CNN; the waveform options n_filters and "
            f"frame apply to variant 'original' only (torch backend)"
        )
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be positive, got {n_outputs}")
    if tuple(int(v) for v in input_shape) != WANG2019_INPUT:
        raise ValueError(
            f"{MODEL} (wang2019) is defined for log-mel input {WANG2019_INPUT} only (the authors' "
            f"flatten width 16,320), got {tuple(input_shape)}"
        )
    inputs = model_input(input_shape)
    x = channels_last(inputs)
    for i in (1, 2):
        x = conv_block(x, CONV_FILTERS, CONV_WIDTH, name=f"cnn_block{i}", activation="relu",
                       pool=POOL)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dropout(WANG2019_DROPOUT, name="head_dropout")(x)
    x = layers.Dense(HIDDEN, activation="relu", name="head_dense")(x)
    logits = layers.Dense(n_outputs, name="head_output")(x)
    return keras.Model(inputs, logits, name=f"{MODEL}_wang2019")


def _pairs(torch_module, keras_model) -> list[LayerPair]:
    pairs = conv_block_pairs(torch_module.cnn.block1, "cnn_block1")
    pairs += conv_block_pairs(torch_module.cnn.block2, "cnn_block2")
    f, t, c = keras_model.get_layer("head_flatten").input.shape[1:]
    hidden, output = linear_layers(torch_module.head)
    return pairs + [LayerPair(hidden, "head_dense", "dense", flatten_from=(c, f, t)),
                    LayerPair(output, "head_output", "dense")]


def torch_to_keras(torch_module, keras_model) -> None:
    """Copy a torch ``build_end_to_end(..., variant="wang2019")`` model's weights into Keras."""
    copy_weights(torch_module, keras_model, _pairs(torch_module, keras_model), "torch_to_keras")


def keras_to_torch(keras_model, torch_module) -> None:
    """Copy the Keras build's weights into a torch ``build_end_to_end(..., variant="wang2019")``."""
    copy_weights(torch_module, keras_model, _pairs(torch_module, keras_model), "keras_to_torch")
