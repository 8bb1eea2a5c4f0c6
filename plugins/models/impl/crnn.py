"""CRNN baseline (Choi, Fazekas, Sandler & Cho, ICASSP 2017).

Variants:

* ``original`` (default) — keunwoochoi/music-auto_tagging-keras ``music_tagger_crnn.py``: zero-pad
  time, batch-normalise the input per mel bin, 4 × (conv 3×3 → BN → ELU → floor max-pool →
  dropout 0.1) with pools 2×2, 3×3, 4×4, 4×4, then GRU(32, all steps) → GRU(32, last step) →
  dropout 0.3 → linear output.
* ``wang2019`` — FishInMedi/CRNN-TF ``1.ipynb`` cell 9: no input pad or input BN, ReLU,
  TF "same" pools of the same sizes, no dropout in the CNN, same recurrent part and head.

Both pool frequency by 2·3·4·4 = 96 down to one row, so the recurrent input is one time step of
128 channels.

Clip-length rules:

* ``original`` pads time, at run time, to the next multiple of 96 (⌊pad/2⌋ zeros before, the rest
  after; 1360 → 1440 with 40 + 40, 1366 → 1440 with 37 + 37, 1440 unchanged), so every floor pool
  divides exactly and any T ≥ 1 works. Frequency needs 96–191 bins (floor pools must leave one
  row).
* ``wang2019`` works for any T ≥ 1 (⌈T/96⌉ steps after the "same" pools) and needs 1–96 bins.

Choi's code names its input normaliser ``bn_0_freq`` but passes the time axis; this follows the
name (one feature per mel bin), which also keeps the model independent of T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .layers import (
    Dropout,
    TransferGroups,
    conv_block,
    keras_batchnorm,
    keras_init_,
    require_min_length,
    tf_same_out,
    valid_out,
)
from .recurrent import make_gru

MODEL = "crnn"
VARIANTS = ("original", "wang2019")

CNN_CHANNELS = (64, 128, 128, 128)
CNN_POOLS = ((2, 2), (3, 3), (4, 4), (4, 4))
#: Product of the pools along each axis (96): ``original`` pads time to a multiple of it and
#: needs at least this many mel bins.
POOL_PRODUCT = math.prod(p[1] for p in CNN_POOLS)


class PadTimeToMultiple(nn.Module):
    """Zero-pads the last (time) axis to the next multiple of ``multiple`` (Choi's zero-pad).

    ⌊pad/2⌋ before and the rest after, so Choi's symmetric ``ZeroPadding2D((0, 37))`` for 1366
    frames and 40 + 40 for 1360 frames come out exactly.
    """

    def __init__(self, multiple: int):
        super().__init__()
        self.multiple = multiple

    @staticmethod
    def pads(n: int, multiple: int) -> tuple[int, int]:
        total = math.ceil(n / multiple) * multiple - n
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = self.pads(x.shape[-1], self.multiple)
        return F.pad(x, (before, after)) if before or after else x

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}"


class FrequencyBatchNorm(nn.Module):
    """Keras batch norm of a ``(B, 1, F, T)`` input with one feature per mel bin (``bn_0_freq``)."""

    def __init__(self, n_bins: int):
        super().__init__()
        self.bn = keras_batchnorm(n_bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class CRNN(TransferGroups, nn.Module):
    """CNN → map ``(B, 128, 1, T')`` → sequence ``(B, T', 128)`` → two GRUs → head.

    Parameter groups for transfer learning (Wang et al., Table III): ``cnn`` (with the input pad and
    BN), ``rnn`` (both GRUs) and ``head`` (its last module is the output layer).
    """

    def __init__(self, cnn: nn.Module, rnn: nn.Module, head: nn.Sequential):
        super().__init__()
        self.cnn, self.rnn, self.head = cnn, rnn, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.cnn(x)  # (B, C, 1, T')
        sequence = m.permute(0, 3, 1, 2).flatten(2)  # (B, T', C)
        return self.head(self.rnn(sequence))


def _check_input(input_shape: Sequence[int], variant: str) -> tuple[int, int]:
    if len(input_shape) != 3 or input_shape[0] != 1:
        raise ValueError(
            f"{MODEL}: expected a log-mel input shape (1, F, T), got {tuple(input_shape)}"
        )
    _, freq, time = (int(v) for v in input_shape)
    require_min_length(MODEL, variant, "frames", time, 1)
    if variant == "original":
        require_min_length(MODEL, variant, "mel bins", freq, POOL_PRODUCT)
        rows = freq
        for pool in CNN_POOLS:
            rows = valid_out(rows, pool[0], pool[0])
    else:
        require_min_length(MODEL, variant, "mel bins", freq, 1)
        rows = freq
        for pool in CNN_POOLS:
            rows = tf_same_out(rows, pool[0], pool[0])
    if rows != 1:
        allowed = "96–191" if variant == "original" else "1–96"
        raise ValueError(
            f"{MODEL} ({variant}) pools frequency down to one row and needs {allowed} mel bins; got {freq}"
        )
    return freq, time


def build_crnn(
    input_shape: Sequence[int],
    n_outputs: int,
    variant: str = "original",
    keras_gru: bool = False,
    units: int = 32,
    dropout: float = 0.3,
    conv_dropout: float | None = None,
) -> CRNN:
    """Build the CRNN baseline for a log-mel input ``(1, F, T)``; returns logits.

    ``keras_gru`` uses Keras 2 ``GRU`` semantics (:class:`~.recurrent.KerasGRU`); ``units`` is the
    size of both GRUs;
    ``dropout`` precedes the output layer; ``conv_dropout`` follows every pool (default 0.1 for
    ``original``, 0 for ``wang2019``).
    """
    if variant not in VARIANTS:
        raise ValueError(f"{MODEL}: unknown variant {variant!r}; use one of {list(VARIANTS)}")
    freq, _ = _check_input(input_shape, variant)
    if conv_dropout is None:
        conv_dropout = 0.1 if variant == "original" else 0.0
    for name, value in (("dropout", dropout), ("conv_dropout", conv_dropout)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{MODEL}: {name} must be in [0, 1), got {value}")

    layers: list[nn.Module] = []
    if variant == "original":
        layers += [PadTimeToMultiple(POOL_PRODUCT), FrequencyBatchNorm(freq)]
    activation, pool_padding = ("elu", "valid") if variant == "original" else ("relu", "same")
    prev = 1
    for ch, pool in zip(CNN_CHANNELS, CNN_POOLS, strict=True):
        layers.append(
            conv_block(
                prev,
                ch,
                3,
                activation=activation,
                pool=pool,
                pool_padding=pool_padding,
                dropout=conv_dropout,
            )
        )
        prev = ch

    rnn = nn.Sequential(
        make_gru(prev, units, keras=keras_gru, return_sequences=True),
        make_gru(units, units, keras=keras_gru, return_sequences=False),
    )
    head = nn.Sequential(Dropout(dropout), nn.Linear(units, n_outputs))
    return keras_init_(CRNN(nn.Sequential(*layers), rnn, head))
