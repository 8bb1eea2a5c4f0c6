"""Timbre CNN baseline: Pons, Slizovskaia, Gong, Gómez & Serra, "Timbre analysis of music audio
signals with convolutional neural networks", EUSIPCO 2017, the "proposed" model
(jordipons/EUSIPCO2017 ``src/build_architecture.py``, ``proposeD``).

Twelve parallel convolutions with tall "timbre" filters (heights × widths 1/3/5/7), each pooled
over all remaining frequency rows, concatenated, then a temporal conv, a dense layer and the
output. The model returns logits ``(B, K)``.

Variants
--------
``original`` (default)
    Pons' design scaled from 128 to 96 mel bins and applied to the whole clip: heights 100/75/25
    of 128 become 75/56/19. Filter counts per width (1, 3, 5, 7) are (10, 6, 3, 3) for h = 75 and
    (15, 10, 5, 5) for h = 56 and h = 19: 92 channels. No padding in frequency; time padded
    (w−1)/2 on each side (Pons' ``PadLayer``), ELU, and a floor max-pool over all remaining
    frequency rows × 4 frames. Then a conv over 8 frames × all 92 channels (Pons reshapes so the
    filter spans every channel; here a ``Conv1d`` over the channel axis, the same operation),
    ELU, floor max-pool 4, flatten, dropout 0.5, dense 100 ELU, dropout 0.5, output. No BN.
    Works for any T ≥ 44 frames (the flatten width follows T) and at least 75 mel bins.
``wang2019`` (FishInMedi/CRNN-TF 1.ipynb cell 5)
    Twelve branches Conv(h × w, n) "same" → BN → ReLU → MaxPool (4,4) "same" with heights
    96/75/25 and counts 10,6,3,3 / 15,6,3,3 / 15,10,5,5 (84 channels). The h = 75 counts 6, 3, 3
    are the authors' typos (their variable names say 10, 5, 5); they are reproduced on purpose.
    Then Conv 8×8 "same" (32) → BN → ReLU → MaxPool (4,4) "same", flatten, dropout 0.5,
    dense 100 ReLU, output. Defined for input (1, 96, 1360) only (flatten width 16,320).

Shapes per layer, default input ``(B, 1, 96, 1360)``::

    original
    branch h×w (n): Conv(h×w) time pad (w−1)/2 → ELU      (n, 97−h, 1360): 22 / 41 / 78 rows
                    MaxPool (97−h, 4) floor               (n, 1, 340)
    concat + squeeze frequency                            (92, 340)
    temporal: Conv1d 92→32, k 8 → ELU                     (32, 333)
              MaxPool1d 4 floor                           (32, 83)
    head: Flatten 2,656 → Dropout 0.5 → Linear 100 → ELU → Dropout 0.5 → Linear(100, K)

    wang2019
    branch h×w (n): Conv same → BN → ReLU → MaxPool (4,4) same   (n, 24, 340)
    concat                                                       (84, 24, 340)
    block: Conv 8×8 84→32 same (pad 3/4) → BN → ReLU → MaxPool (4,4) same   (32, 6, 85)
    head: Flatten 16,320 → Dropout 0.5 → Linear 100 → ReLU → Linear(100, K)

Trainable parameters (K = 50 / 16 / 10): ``original`` 307,101 / 303,667 / 303,061;
``wang2019`` 1,823,474 / 1,820,040 / 1,819,434.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import (
    Dropout,
    conv_block,
    keras_init_,
    make_activation,
    require_min_length,
    tf_same_out,
    valid_min_input,
    valid_out,
)

VARIANTS = ("original", "wang2019")

#: ``original`` branches as (height, width, filters), Pons' order (tallest first, widths 1, 3, 5, 7).
ORIGINAL_BRANCHES = tuple(
    (h, w, n)
    for h, counts in ((75, (10, 6, 3, 3)), (56, (15, 10, 5, 5)), (19, (15, 10, 5, 5)))
    for w, n in zip((1, 3, 5, 7), counts)
)
#: ``wang2019`` branches as written in 1.ipynb cell 5, typos (75×3×6, 75×5×3, 75×7×3) included.
WANG2019_BRANCHES = (
    (96, 1, 10), (96, 3, 6), (96, 5, 3), (96, 7, 3),
    (75, 1, 15), (75, 3, 6), (75, 5, 3), (75, 7, 3),
    (25, 1, 15), (25, 3, 10), (25, 5, 5), (25, 7, 5),
)  # fmt: skip
WANG2019_INPUT = (1, 96, 1360)

BRANCH_TIME_POOL = 4  # both variants pool 4 frames after the branches
TEMPORAL_FILTERS = 32
TEMPORAL_WIDTH = 8  # frames spanned by the second conv (original); 8×8 kernel in wang2019
TEMPORAL_POOL = 4
HIDDEN = 100
DROPOUT = 0.5


class TimbreCNN(nn.Module):
    """Parallel ``branches`` concatenated on channels, a ``temporal`` stage, and a ``head``.

    ``squeeze_freq`` drops the frequency axis (size 1) after the concatenation, which the
    original design needs so its temporal conv spans all 92 channels as a ``Conv1d``.
    """

    def __init__(
        self,
        branches: nn.ModuleList,
        temporal: nn.Sequential,
        head: nn.Sequential,
        squeeze_freq: bool,
    ):
        super().__init__()
        self.branches = branches
        self.temporal = temporal
        self.head = head
        self.squeeze_freq = squeeze_freq

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated branch outputs: (B, 92, T/4) original, (B, 84, 24, T/4) wang2019."""
        y = torch.cat([branch(x) for branch in self.branches], dim=1)
        return y.squeeze(2) if self.squeeze_freq else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.temporal(self.features(x)))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Transfer groups for Table III: ``cnn``, ``rnn`` (empty, no recurrent part), ``head``."""
        cnn = list(self.branches.parameters()) + list(self.temporal.parameters())
        return {"cnn": cnn, "rnn": [], "head": list(self.head.parameters())}


def original_min_input() -> tuple[int, int]:
    """(mel bins, frames) ``original`` needs: the tallest filter (75) and 44 frames."""
    min_time = valid_min_input(
        [(BRANCH_TIME_POOL, BRANCH_TIME_POOL), (TEMPORAL_WIDTH, 1), (TEMPORAL_POOL, TEMPORAL_POOL)]
    )
    return max(h for h, _, _ in ORIGINAL_BRANCHES), min_time


def _check_logmel_shape(input_shape: Sequence[int], variant: str) -> tuple[int, int]:
    if len(input_shape) != 3 or input_shape[0] != 1:
        raise ValueError(
            f"timbre_cnn ({variant}) takes a log-mel input of shape (1, n_mels, frames), "
            f"got {tuple(input_shape)}"
        )
    return int(input_shape[1]), int(input_shape[2])


def _build_original(n_freq: int, n_time: int, n_outputs: int) -> TimbreCNN:
    min_freq, min_time = original_min_input()
    require_min_length("timbre_cnn", "original", "mel bins", n_freq, min_freq)
    require_min_length("timbre_cnn", "original", "frames", n_time, min_time)
    branches = nn.ModuleList(
        nn.Sequential(
            nn.Conv2d(1, n, (h, w), padding=(0, (w - 1) // 2)),
            make_activation("elu"),
            # pool over every frequency row the valid conv leaves
            nn.MaxPool2d((n_freq - h + 1, BRANCH_TIME_POOL)),
        )
        for h, w, n in ORIGINAL_BRANCHES
    )
    channels = sum(n for _, _, n in ORIGINAL_BRANCHES)
    temporal = nn.Sequential(
        nn.Conv1d(channels, TEMPORAL_FILTERS, TEMPORAL_WIDTH),
        make_activation("elu"),
        nn.MaxPool1d(TEMPORAL_POOL),
    )
    t = valid_out(n_time, BRANCH_TIME_POOL, BRANCH_TIME_POOL)
    t = valid_out(valid_out(t, TEMPORAL_WIDTH, 1), TEMPORAL_POOL, TEMPORAL_POOL)
    head = nn.Sequential(
        nn.Flatten(),
        Dropout(DROPOUT),
        nn.Linear(TEMPORAL_FILTERS * t, HIDDEN),
        make_activation("elu"),
        Dropout(DROPOUT),
        nn.Linear(HIDDEN, n_outputs),
    )
    return TimbreCNN(branches, temporal, head, squeeze_freq=True)


def _build_wang2019(n_freq: int, n_time: int, n_outputs: int) -> TimbreCNN:
    if (1, n_freq, n_time) != WANG2019_INPUT:
        raise ValueError(
            f"timbre_cnn (wang2019) is defined for input {WANG2019_INPUT} only (the authors' "
            f"flatten width 16,320), got (1, {n_freq}, {n_time}); use variant 'original' for "
            f"other clip lengths"
        )
    pool = (BRANCH_TIME_POOL, BRANCH_TIME_POOL)
    branches = nn.ModuleList(
        conv_block(1, n, (h, w), activation="relu", pool=pool, pool_padding="same")
        for h, w, n in WANG2019_BRANCHES
    )
    channels = sum(n for _, _, n in WANG2019_BRANCHES)
    temporal = conv_block(
        channels,
        TEMPORAL_FILTERS,
        TEMPORAL_WIDTH,
        activation="relu",
        pool=TEMPORAL_POOL,
        pool_padding="same",
    )
    f, t = (
        tf_same_out(
            tf_same_out(n, BRANCH_TIME_POOL, BRANCH_TIME_POOL), TEMPORAL_POOL, TEMPORAL_POOL
        )
        for n in (n_freq, n_time)
    )
    head = nn.Sequential(
        nn.Flatten(),
        Dropout(DROPOUT),
        nn.Linear(TEMPORAL_FILTERS * f * t, HIDDEN),
        make_activation("relu"),
        nn.Linear(HIDDEN, n_outputs),
    )
    return TimbreCNN(branches, temporal, head, squeeze_freq=False)


def build_timbre_cnn(
    input_shape: Sequence[int], n_outputs: int, variant: str = "original"
) -> TimbreCNN:
    """Build the Timbre CNN for a log-mel ``input_shape`` = (1, n_mels, frames).

    ``original`` raises :class:`InputTooShortError` below 75 mel bins or 44 frames; ``wang2019``
    raises ``ValueError`` for any input other than (1, 96, 1360).
    """
    if variant not in VARIANTS:
        raise ValueError(f"timbre_cnn has no variant {variant!r}; use one of {list(VARIANTS)}")
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be positive, got {n_outputs}")
    n_freq, n_time = _check_logmel_shape(input_shape, variant)
    builder = _build_original if variant == "original" else _build_wang2019
    return keras_init_(builder(n_freq, n_time, n_outputs))
