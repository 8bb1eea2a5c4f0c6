"""CRNN-TF, the paper's model (Wang et al., IJCNN 2019, Sec. III).

A 4-block CNN turns the log-mel ``(1, 96, T)`` into a map ``(128, 6, 6)`` (for T = 1360 or 1366).
Eight scans of the map (Sec. III-C: from the four vertices A, B, C, D, row-wise and
column-wise) each feed an independent recurrent block; the blocks' last states are concatenated in
the order of eq. (1), ``y = [Ar, Ac, Br, Bc, Cr, Cc, Dr, Dc]``, and a head maps them to logits.

Variants:

* ``paper`` — Grid LSTM blocks (32 units), dropout 0.5, a linear output layer (eq. (3)).
* ``wang2019`` — the authors' notebooks (FishInMedi/CRNN-TF ``1.ipynb`` cell 11): GRU(32)
  blocks, dropout 0.5, Dense-64 + ELU, output.

For other clip lengths the map is ``(128, ⌈F/16⌉, ⌈T/256⌉)`` (TF "same" pools); row-scan steps
are then ``⌈T/256⌉·128`` wide, so parameter counts follow the built input shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .layers import (
    Dropout,
    TransferGroups,
    conv_block,
    keras_init_,
    require_min_length,
    tf_same_out,
)
from .recurrent import RECURRENT_CELLS, GridLSTMBlock, grid_lstm_stacked, make_recurrent
from .scans import SCAN_GROUPS, SCANS, resolve_scans  # noqa: F401 (re-exported)

MODEL = "crnn_tf"
VARIANTS = ("paper", "wang2019")

#: The paper's CNN (Sec. III): (channels, pool) per block; conv 3×3 same → BN → ELU → pool same.
CNN_CHANNELS = (64, 128, 128, 128)
CNN_POOL = (2, 4)

#: Width of the hidden dense layer of the ``wang2019`` head.
WANG2019_DENSE = 64


def scan_sequence(feature_map: torch.Tensor, scan: str, raster: bool = False) -> torch.Tensor:
    """The step sequence of one scan of ``(B, C, F, T)`` (Wang et al., Sec. III-C).

    The order of the steps matches the authors' ``gru1``…``gru8`` (FishInMedi/CRNN-TF
    ``1.ipynb`` cell 11) and the paper's examples A_r (top-down, left-to-right, row-wise) and
    C_c (bottom-up, left-to-right, column-wise).

    Vertices: A = (f 0, t 0), B = (f 0, t last), C = (f last, t 0), D = (f last, t last). Flip
    time for B and D, frequency for C and D. A row scan (``r``) steps along frequency and each
    step is one frequency row ``(B, F, T·C)``; a column scan (``c``) steps along time and each
    step is one time column ``(B, T, F·C)``; the element index is ``other_axis·C + channel``.
    With ``raster`` every cell is a step ``(B, F·T, C)``, read row-major (row scans) or
    column-major (column scans) from the vertex.
    """
    vertex, direction = scan[0], scan[1]
    flips = {"A": (), "B": (3,), "C": (2,), "D": (2, 3)}[vertex]
    m = feature_map.flip(flips) if flips else feature_map
    m = m.permute(0, 2, 3, 1) if direction == "r" else m.permute(0, 3, 2, 1)  # (B, steps, other, C)
    b, steps, other, channels = m.shape
    if raster:
        return m.reshape(b, steps * other, channels)
    return m.reshape(b, steps, other * channels)


def build_cnn(in_channels: int = 1) -> nn.Sequential:
    """The CNN shared by both variants (Sec. III): 4 × (conv 3×3 → BN → ELU → pool (2,4) same)."""
    blocks, prev = [], in_channels
    for ch in CNN_CHANNELS:
        blocks.append(conv_block(prev, ch, 3, activation="elu", pool=CNN_POOL, pool_padding="same"))
        prev = ch
    return nn.Sequential(*blocks)


def cnn_map_size(freq: int, time: int) -> tuple[int, int]:
    """``(F, T)`` of the CNN map: each TF "same" pool gives ⌈n/s⌉ (96×1360 → 6×6)."""
    for _ in CNN_CHANNELS:
        freq, time = (
            tf_same_out(freq, CNN_POOL[0], CNN_POOL[0]),
            tf_same_out(time, CNN_POOL[1], CNN_POOL[1]),
        )
    return freq, time


class CRNNTF(TransferGroups, nn.Module):
    """CNN → scans → one recurrent block per scan → concatenation (eq. (1)) → head.

    Parameter groups for transfer learning (Wang et al., Table III): ``cnn``, ``rnn`` (a
    ``ModuleDict`` scan → block) and ``head`` (its last module is the output layer).
    """

    def __init__(
        self,
        cnn: nn.Module,
        blocks: dict[str, nn.Module],
        head: nn.Sequential,
        map_size: tuple[int, int],
        raster: bool = False,
    ):
        super().__init__()
        self.cnn = cnn
        self.rnn = nn.ModuleDict(blocks)
        self.head = head
        self.scans = tuple(blocks)
        self.map_size = tuple(map_size)
        self.raster = raster

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.cnn(x)
        if tuple(m.shape[-2:]) != self.map_size:
            raise ValueError(
                f"{MODEL}: this model was built for a {self.map_size} CNN map, but an input of shape "
                f"{tuple(x.shape[1:])} gives {tuple(m.shape[-2:])}; build it for this input shape"
            )
        sequences = [scan_sequence(m, s, self.raster) for s in self.scans]
        blocks = [self.rnn[s] for s in self.scans]
        if STACK_GRID_LSTMS and _stackable(blocks, sequences):
            y = grid_lstm_stacked(blocks, torch.stack(sequences))  # (S, B, n)
            y = y.permute(1, 0, 2).reshape(y.shape[1], -1)  # eq. (1): scans side by side
        else:
            y = torch.cat([blk(seq) for blk, seq in zip(blocks, sequences)], dim=-1)
        return self.head(y)


#: Whether the Grid LSTM blocks of equal shape run batched (:func:`.recurrent.grid_lstm_stacked`;
#: tests switch it off to compare against the block-by-block reference).
STACK_GRID_LSTMS = True


def _stackable(blocks: list[nn.Module], sequences: list[torch.Tensor]) -> bool:
    """Several Grid LSTM blocks of one size and forget bias, on sequences of one shape."""
    if len(blocks) < 2 or not all(type(b) is GridLSTMBlock for b in blocks):
        return False
    first = blocks[0]
    return (all((b.input_size, b.hidden_size, b.forget_bias)
                == (first.input_size, first.hidden_size, first.forget_bias) for b in blocks)
            and len({tuple(s.shape) for s in sequences}) == 1)


def build_crnn_tf(
    input_shape: Sequence[int],
    n_outputs: int,
    variant: str = "paper",
    cell: str | None = None,
    keras_gru: bool = False,
    scans: str | Iterable[str] = "all",
    raster: bool = False,
    dropout: float = 0.5,
    units: int = 32,
) -> CRNNTF:
    """Build CRNN-TF for a log-mel input ``(1, F, T)`` (Sec. III); returns logits ``(B, K)``.

    ``cell`` defaults to ``grid_lstm`` for ``paper`` and ``gru`` for ``wang2019`` (which accepts
    nothing else). ``keras_gru`` makes every GRU follow Keras 2 ``GRU`` semantics
    (:class:`~.recurrent.KerasGRU`). ``scans`` picks the Fig. 5 subset (see :func:`resolve_scans`);
    ``raster`` makes each map cell one step.
    """
    if variant not in VARIANTS:
        raise ValueError(f"{MODEL}: unknown variant {variant!r}; use one of {list(VARIANTS)}")
    if cell is None:
        cell = "grid_lstm" if variant == "paper" else "gru"
    if cell not in RECURRENT_CELLS:
        raise ValueError(f"{MODEL}: unknown cell {cell!r}; use one of {list(RECURRENT_CELLS)}")
    if variant == "wang2019" and cell != "gru":
        raise ValueError(
            f"{MODEL} (wang2019) uses GRU blocks only; got cell={cell!r} (use cell='gru')"
        )
    if len(input_shape) != 3 or input_shape[0] != 1:
        raise ValueError(
            f"{MODEL}: expected a log-mel input shape (1, F, T), got {tuple(input_shape)}"
        )
    _, freq, time = (int(v) for v in input_shape)
    require_min_length(MODEL, variant, "mel bins", freq, 1)
    require_min_length(MODEL, variant, "frames", time, 1)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{MODEL}: dropout must be in [0, 1), got {dropout}")
    chosen = resolve_scans(scans)

    map_f, map_t = cnn_map_size(freq, time)
    channels = CNN_CHANNELS[-1]
    blocks = {}
    for s in chosen:
        step_width = channels if raster else channels * (map_t if s[1] == "r" else map_f)
        blocks[s] = make_recurrent(cell, step_width, units, keras_gru=keras_gru)

    width = units * len(chosen)
    if variant == "paper":
        head = nn.Sequential(Dropout(dropout), nn.Linear(width, n_outputs))
    else:
        head = nn.Sequential(
            Dropout(dropout),
            nn.Linear(width, WANG2019_DENSE),
            nn.ELU(alpha=1.0),
            nn.Linear(WANG2019_DENSE, n_outputs),
        )
    model = CRNNTF(build_cnn(), blocks, head, (map_f, map_t), raster=raster)
    return keras_init_(model)
