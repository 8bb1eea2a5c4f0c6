"""FCN-4 baseline: Choi, Fazekas & Sandler, "Automatic tagging using deep convolutional neural
networks", ISMIR 2016.

Four 3×3 conv blocks (128, 384, 768, 2048 channels), each conv → BN → ReLU → max-pool →
dropout 0.5, then a linear output layer on the flattened map. The model returns logits ``(B, K)``.

Variants
--------
``original`` (default)
    Choi's FCN-4: non-overlapping floor pools (2,4), (4,5), (3,8), (4,8). The dropout after every
    pool is the paper's own description of FCN (Wang et al., Sec. V-E); BN + ReLU after each conv
    follows the authors' port (FishInMedi/CRNN-TF 1.ipynb cell 3). Choi's table prints 24×85 and
    12×21 as intermediate sizes; they do not follow from these pools, so the pools are implemented
    as listed. Because every pool is floor with stride = size, the input needs at least
    2·4·3·4 = 96 mel bins and 4·5·8·8 = 1280 frames (:class:`InputTooShortError` otherwise).
``wang2019`` (FishInMedi/CRNN-TF 1.ipynb cell 3)
    The authors' Keras port: TF-"same" pools, the second and third overlapping (size (4,5) and
    (3,8), both stride (2,4)), and a stride-3 "same" conv in block 4. Same parameter count as
    ``original``, 33 % more MACs. Works for any input size (every op is "same").

Shapes per layer, default input ``(B, 1, 96, 1360)`` (C, F, T after each block)::

    original                                              wang2019
    block1 Conv3×3 1→128 → BN → ReLU                      same
           MaxPool (2,4) floor → Dropout   (128, 48, 340) MaxPool (2,4) same           (128, 48, 340)
    block2 Conv3×3 128→384 → BN → ReLU                    same
           MaxPool (4,5) floor → Dropout   (384, 12, 68)  MaxPool (4,5)/(2,4) same     (384, 24, 85)
    block3 Conv3×3 384→768 → BN → ReLU                    same
           MaxPool (3,8) floor → Dropout   (768, 4, 8)    MaxPool (3,8)/(2,4) same     (768, 12, 22)
           (drops the last 4 of 68 frames)
    block4 Conv3×3 768→2048 → BN → ReLU    (2048, 4, 8)   Conv3×3 stride 3 same        (2048, 4, 8)
           MaxPool (4,8) floor → Dropout   (2048, 1, 1)   MaxPool (4,8) same           (2048, 1, 1)
    head   Flatten 2048 → Linear(2048, K)  (K,)           same                         (K,)

Trainable parameters (K = 50 / 16 / 10): 17,365,938 / 17,296,272 / 17,283,978 for both variants.
The flatten width is computed from the input shape at build time (e.g. 2048 for T = 1366 or 2000,
4096 for T = 2560 in ``original``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from .layers import (
    conv_block,
    keras_init_,
    require_min_length,
    tf_same_out,
    valid_min_input,
    valid_out,
)

VARIANTS = ("original", "wang2019")

#: Output channels of the four conv blocks (both variants).
CHANNELS = (128, 384, 768, 2048)
#: ``original``: non-overlapping floor pools, (freq, time) sizes = strides.
ORIGINAL_POOLS = ((2, 4), (4, 5), (3, 8), (4, 8))
#: ``wang2019``: TF-"same" pools as (size, stride) and the block-4 conv stride.
WANG2019_POOLS = (((2, 4), (2, 4)), ((4, 5), (2, 4)), ((3, 8), (2, 4)), ((4, 8), (4, 8)))
WANG2019_CONV_STRIDES = ((1, 1), (1, 1), (1, 1), (3, 3))
DROPOUT = 0.5


class FCN(nn.Module):
    """Conv blocks (``cnn``) followed by flatten + linear output (``head``)."""

    def __init__(self, cnn: nn.Sequential, flat_features: int, n_outputs: int):
        super().__init__()
        self.cnn = cnn
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat_features, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cnn(x))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Transfer groups for Table III: ``cnn``, ``rnn`` (empty, no recurrent part), ``head``."""
        return {"cnn": list(self.cnn.parameters()), "rnn": [], "head": list(self.head.parameters())}


def original_min_input() -> tuple[int, int]:
    """(mel bins, frames) the floor pools of ``original`` need: (96, 1280)."""
    freq = valid_min_input([(f, f) for f, _ in ORIGINAL_POOLS])
    time = valid_min_input([(t, t) for _, t in ORIGINAL_POOLS])
    return freq, time


def _check_logmel_shape(input_shape: Sequence[int], variant: str) -> tuple[int, int]:
    if len(input_shape) != 3 or input_shape[0] != 1:
        raise ValueError(
            f"fcn ({variant}) takes a log-mel input of shape (1, n_mels, frames), got {tuple(input_shape)}"
        )
    return int(input_shape[1]), int(input_shape[2])


def _build_original(n_freq: int, n_time: int) -> tuple[nn.Sequential, int]:
    min_freq, min_time = original_min_input()
    require_min_length("fcn", "original", "mel bins", n_freq, min_freq)
    require_min_length("fcn", "original", "frames", n_time, min_time)
    blocks = OrderedDict()
    in_ch, f, t = 1, n_freq, n_time
    for i, (out_ch, pool) in enumerate(zip(CHANNELS, ORIGINAL_POOLS), start=1):
        blocks[f"block{i}"] = conv_block(
            in_ch, out_ch, 3, activation="relu", pool=pool, pool_padding="valid", dropout=DROPOUT
        )
        in_ch = out_ch
        f, t = valid_out(f, pool[0], pool[0]), valid_out(t, pool[1], pool[1])
    return nn.Sequential(blocks), in_ch * f * t


def _build_wang2019(n_freq: int, n_time: int) -> tuple[nn.Sequential, int]:
    blocks = OrderedDict()
    in_ch, f, t = 1, n_freq, n_time
    for i, (out_ch, (size, stride), conv_stride) in enumerate(
        zip(CHANNELS, WANG2019_POOLS, WANG2019_CONV_STRIDES), start=1
    ):
        blocks[f"block{i}"] = conv_block(
            in_ch,
            out_ch,
            3,
            activation="relu",
            conv_stride=conv_stride,
            pool=size,
            pool_stride=stride,
            pool_padding="same",
            dropout=DROPOUT,
        )
        in_ch = out_ch
        f, t = tf_same_out(f, 3, conv_stride[0]), tf_same_out(t, 3, conv_stride[1])
        f, t = tf_same_out(f, size[0], stride[0]), tf_same_out(t, size[1], stride[1])
    return nn.Sequential(blocks), in_ch * f * t


def build_fcn(input_shape: Sequence[int], n_outputs: int, variant: str = "original") -> FCN:
    """Build FCN-4 for a log-mel ``input_shape`` = (1, n_mels, frames).

    Raises :class:`InputTooShortError` when ``original`` gets fewer than 96 mel bins or 1280
    frames, and ``ValueError`` for an unknown variant or a non-log-mel shape.
    """
    if variant not in VARIANTS:
        raise ValueError(f"fcn has no variant {variant!r}; use one of {list(VARIANTS)}")
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be positive, got {n_outputs}")
    n_freq, n_time = _check_logmel_shape(input_shape, variant)
    builder = _build_original if variant == "original" else _build_wang2019
    cnn, flat_features = builder(n_freq, n_time)
    return keras_init_(FCN(cnn, flat_features, n_outputs))
