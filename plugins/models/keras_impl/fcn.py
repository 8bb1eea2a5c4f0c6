"""FCN-4 in Keras 3, the ``wang2019`` variant (FishInMedi/CRNN-TF ``1.ipynb`` cell 3, after Choi,
Fazekas & Sandler, ISMIR 2016).

Four conv 3×3 "same" → BN → ReLU → max-pool "same" → dropout 0.5 blocks with 128/384/768/2048
channels; pools (2,4), (4,5) stride (2,4), (3,8) stride (2,4), (4,8); the fourth conv has stride
(3,3). At 96×1360 the map ends at 1×1×2048; flatten → output (logits). Every op is "same", so any
input size works (the flatten width follows it).

Trainable parameters at 96×1360, 50 outputs: 17,365,938 (the ``model.summary()`` of
``1.ipynb``). Choi's ``original`` FCN-4 runs on the torch backend.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcbench_plugins.models.impl.fcn import (
    CHANNELS,
    DROPOUT,
    WANG2019_CONV_STRIDES,
    WANG2019_POOLS,
    _check_logmel_shape,
)

from .layers import channels_last, conv_block, keras, layers, model_input
from .weights import LayerPair, conv_block_pairs, copy_weights, linear_layers

MODEL = "fcn"
VARIANTS = ("wang2019",)


def build_keras_fcn(input_shape: Sequence[int], n_outputs: int, *, variant: str = "wang2019"):
    """Build FCN-4 ``wang2019`` in Keras for a log-mel input ``(1, F, T)``; returns logits."""
    if variant not in VARIANTS:
        raise ValueError(
            f"{MODEL}: variant {variant!r} has no Keras build; the Keras backend has "
            f"{list(VARIANTS)} (Choi's original FCN-4 runs on the torch backend)"
        )
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be positive, got {n_outputs}")
    _check_logmel_shape(input_shape, variant)
    inputs = model_input(input_shape)
    x = channels_last(inputs)
    for i, (channels, (size, stride), conv_stride) in enumerate(
        zip(CHANNELS, WANG2019_POOLS, WANG2019_CONV_STRIDES, strict=True), start=1
    ):
        x = conv_block(x, channels, 3, name=f"cnn_block{i}", activation="relu",
                       conv_stride=conv_stride, pool=size, pool_stride=stride, dropout=DROPOUT)
    x = layers.Flatten(name="head_flatten")(x)
    logits = layers.Dense(n_outputs, name="head_output")(x)
    return keras.Model(inputs, logits, name=f"{MODEL}_wang2019")


def _pairs(torch_module, keras_model) -> list[LayerPair]:
    pairs = []
    for i, block in enumerate(torch_module.cnn, start=1):
        pairs += conv_block_pairs(block, f"cnn_block{i}")
    f, t, c = keras_model.get_layer("head_flatten").input.shape[1:]
    (output,) = linear_layers(torch_module.head)
    return pairs + [LayerPair(output, "head_output", "dense", flatten_from=(c, f, t))]


def torch_to_keras(torch_module, keras_model) -> None:
    """Copy a torch ``build_fcn(..., variant="wang2019")`` model's weights into the Keras build."""
    copy_weights(torch_module, keras_model, _pairs(torch_module, keras_model), "torch_to_keras")


def keras_to_torch(keras_model, torch_module) -> None:
    """Copy the Keras build's weights into a torch ``build_fcn(..., variant="wang2019")``."""
    copy_weights(torch_module, keras_model, _pairs(torch_module, keras_model), "keras_to_torch")
