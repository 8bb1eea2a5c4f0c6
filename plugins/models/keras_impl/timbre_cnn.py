"""The Timbre CNN baseline in Keras 3, the ``wang2019`` variant (FishInMedi/CRNN-TF ``1.ipynb``
cell 5, after Pons et al., EUSIPCO 2017).

Twelve parallel branches on the full log-mel, each Conv(h × w, n) "same" → BN → ReLU → max-pool
(4,4) "same", with (h × w × n) = 96×1×10, 96×3×6, 96×5×3, 96×7×3, 75×1×15, 75×3×6, 75×5×3, 75×7×3,
25×1×15, 25×3×10, 25×5×5, 25×7×5 (84 channels; the 75×3/5/7 counts are the authors' typos for
10, 5, 5, reproduced on purpose); concatenated on channels; Conv 8×8 (32) "same" → BN → ReLU →
max-pool (4,4) "same"; flatten 16,320 → dropout 0.5 → Dense-100 ReLU → output (logits).

Trainable parameters at 96×1360, 50 outputs: 1,823,474 (the ``model.summary()`` of
``1.ipynb``). Defined for input (1, 96, 1360) only, like the authors' model. Pons' ``original``
design runs on the torch backend.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcbench_plugins.models.impl.timbre_cnn import (
    BRANCH_TIME_POOL,
    DROPOUT,
    HIDDEN,
    TEMPORAL_FILTERS,
    TEMPORAL_POOL,
    TEMPORAL_WIDTH,
    WANG2019_BRANCHES,
    WANG2019_INPUT,
    _check_logmel_shape,
)

from .layers import channels_last, conv_block, keras, layers, model_input
from .weights import LayerPair, conv_block_pairs, copy_weights, linear_layers

MODEL = "timbre_cnn"
VARIANTS = ("wang2019",)


def build_keras_timbre_cnn(input_shape: Sequence[int], n_outputs: int, *, variant: str = "wang2019"):
    """Build the Timbre CNN ``wang2019`` in Keras for the log-mel input (1, 96, 1360)."""
    if variant not in VARIANTS:
        raise ValueError(
            f"{MODEL}: variant {variant!r} has no Keras build; the Keras backend has "
            f"{list(VARIANTS)} (Pons' original design runs on the torch backend)"
        )
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be positive, got {n_outputs}")
    _check_logmel_shape(input_shape, variant)
    if tuple(int(v) for v in input_shape) != WANG2019_INPUT:
        raise ValueError(
            f"{MODEL} (wang2019) is defined for input {WANG2019_INPUT} only (the authors' flatten "
            f"width 16,320), got {tuple(input_shape)}"
        )
    inputs = model_input(input_shape)
    x = channels_last(inputs)
    pool = (BRANCH_TIME_POOL, BRANCH_TIME_POOL)
    branches = [
        conv_block(x, n, (h, w), name=f"cnn_branch{i}", activation="relu", pool=pool,
                   transposed=True)  # see TransposedConv2D: a oneDNN crash on the 96×1 branch
        for i, (h, w, n) in enumerate(WANG2019_BRANCHES, start=1)
    ]
    x = layers.Concatenate(name="cnn_concat")(branches)
    x = conv_block(x, TEMPORAL_FILTERS, TEMPORAL_WIDTH, name="cnn_temporal", activation="relu",
                   pool=TEMPORAL_POOL)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dropout(DROPOUT, name="head_dropout")(x)
    x = layers.Dense(HIDDEN, activation="relu", name="head_dense")(x)
    logits = layers.Dense(n_outputs, name="head_output")(x)
    return keras.Model(inputs, logits, name=f"{MODEL}_wang2019")


def _pairs(torch_module, keras_model) -> list[LayerPair]:
    pairs = []
    for i, branch in enumerate(torch_module.branches, start=1):
        pairs += conv_block_pairs(branch, f"cnn_branch{i}")
    pairs += conv_block_pairs(torch_module.temporal, "cnn_temporal")
    f, t, c = keras_model.get_layer("head_flatten").input.shape[1:]
    hidden, output = linear_layers(torch_module.head)
    return pairs + [LayerPair(hidden, "head_dense", "dense", flatten_from=(c, f, t)),
                    LayerPair(output, "head_output", "dense")]


def torch_to_keras(torch_module, keras_model) -> None:
    """Copy a torch ``build_timbre_cnn(..., variant="wang2019")`` model's weights into Keras."""
    copy_weights(torch_module, keras_model, _pairs(torch_module, keras_model), "torch_to_keras")


def keras_to_torch(keras_model, torch_module) -> None:
    """Copy the Keras build's weights into a torch ``build_timbre_cnn(..., variant="wang2019")``."""
    copy_weights(torch_module, keras_model, _pairs(torch_module, keras_model), "keras_to_torch")
