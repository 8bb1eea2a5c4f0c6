"""End-to-end baseline: Dieleman & Schrauwen, "End-to-end learning for music audio", ICASSP 2014.

Wang et al. describe this baseline as one that "directly inputs music audio signals into CNN".
The model returns logits ``(B, K)``.

Variants
--------
``original`` (default): raw waveform
    Input ``(1, S)``: 12 kHz mono, S = 348,000 samples (29.0 s) by default. A strided Conv1d
    (``n_filters`` filters of length ``frame``, stride ``frame``, no padding, ReLU) acts as a
    learned filterbank; then two Conv1d 32 × 8 → ReLU → MaxPool 4 (floor) blocks, a dense layer
    of 100 ReLU units and the output. No BN, no dropout. The strided conv ignores the trailing
    S mod ``frame`` samples (96 of 348,000). The filter count 128, length = stride 256, the ReLU
    after the strided layer and valid padding are not confirmed by Dieleman's text, so
    ``n_filters`` and ``frame`` are options. Any S of at least 51 frames works
    (13,056 samples with the defaults); the flatten width follows S.
``wang2019`` (FishInMedi/CRNN-TF 1.ipynb cell 7, "2 CNNs + FC")
    The authors' "End-to-end" is a 2-D CNN on log-mel ``(1, 96, 1360)`` with Dieleman's layer
    pattern: two Conv 8×8 (32) "same" → BN → ReLU → MaxPool (4,4) "same" blocks, flatten,
    dropout 0.5, dense 100 ReLU, output. Defined for T = 1360 only (flatten width 16,320).

Shapes per layer::

    original, input (B, 1, 348000)
    frontend: Conv1d 1→128, k 256, stride 256 → ReLU      (128, 1359)
    block1:   Conv1d 128→32, k 8 → ReLU                   (32, 1352)
              MaxPool1d 4 floor                           (32, 338)
    block2:   Conv1d 32→32, k 8 → ReLU                    (32, 331)
              MaxPool1d 4 floor                           (32, 82)
    head:     Flatten 2,624 → Linear 100 → ReLU → Linear(100, K)

    wang2019, input (B, 1, 96, 1360)
    block1: Conv 8×8 1→32 same → BN → ReLU → MaxPool (4,4) same    (32, 24, 340)
    block2: Conv 8×8 32→32 same → BN → ReLU → MaxPool (4,4) same   (32, 6, 85)
    head:   Flatten 16,320 → Dropout 0.5 → Linear 100 → ReLU → Linear(100, K)

Trainable parameters (K = 50 / 16 / 10): ``original`` 341,470 / 338,036 / 337,430;
``wang2019`` 1,704,926 / 1,701,492 / 1,700,886.
"""

from __future__ import annotations

from collections import OrderedDict
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
DEFAULT_N_FILTERS = 128
DEFAULT_FRAME = 256

CONV_FILTERS = 32
CONV_WIDTH = 8  # 1-D kernel length (original) and 8×8 kernel (wang2019)
POOL = 4
HIDDEN = 100
WANG2019_DROPOUT = 0.5
WANG2019_INPUT = (1, 96, 1360)


class EndToEnd(nn.Module):
    """Conv stack (``cnn``) followed by the dense ``head``."""

    def __init__(self, cnn: nn.Sequential, head: nn.Sequential):
        super().__init__()
        self.cnn = cnn
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cnn(x))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Transfer groups for Table III: ``cnn``, ``rnn`` (empty, no recurrent part), ``head``."""
        return {"cnn": list(self.cnn.parameters()), "rnn": [], "head": list(self.head.parameters())}


def _original_ops(frame: int) -> list[tuple[int, int]]:
    """(kernel, stride) of every floor op along the sample axis, in order."""
    return [(frame, frame), (CONV_WIDTH, 1), (POOL, POOL), (CONV_WIDTH, 1), (POOL, POOL)]


def original_min_samples(frame: int = DEFAULT_FRAME) -> int:
    """Shortest waveform ``original`` accepts: 51 frames, 13,056 samples for frame 256."""
    return valid_min_input(_original_ops(frame))


def _build_original(
    input_shape: Sequence[int], n_outputs: int, n_filters: int, frame: int
) -> EndToEnd:
    if len(input_shape) != 2 or input_shape[0] != 1:
        raise ValueError(
            f"end_to_end (original) takes a waveform input of shape (1, samples), got "
            f"{tuple(input_shape)}; use variant 'wang2019' for log-mel input"
        )
    for name, value in (("n_filters", n_filters), ("frame", frame)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"end_to_end: {name} must be a positive integer, got {value!r}")
    n_samples = int(input_shape[1])
    require_min_length("end_to_end", "original", "samples", n_samples, original_min_samples(frame))
    cnn = nn.Sequential(
        OrderedDict(
            frontend=nn.Sequential(
                nn.Conv1d(1, n_filters, frame, stride=frame), make_activation("relu")
            ),
            block1=nn.Sequential(
                nn.Conv1d(n_filters, CONV_FILTERS, CONV_WIDTH),
                make_activation("relu"),
                nn.MaxPool1d(POOL),
            ),
            block2=nn.Sequential(
                nn.Conv1d(CONV_FILTERS, CONV_FILTERS, CONV_WIDTH),
                make_activation("relu"),
                nn.MaxPool1d(POOL),
            ),
        )
    )
    length = n_samples
    for kernel, stride in _original_ops(frame):
        length = valid_out(length, kernel, stride)
    head = nn.Sequential(
        nn.Flatten(),
        nn.Linear(CONV_FILTERS * length, HIDDEN),
        make_activation("relu"),
        nn.Linear(HIDDEN, n_outputs),
    )
    return EndToEnd(cnn, head)


def _build_wang2019(input_shape: Sequence[int], n_outputs: int) -> EndToEnd:
    if tuple(input_shape) != WANG2019_INPUT:
        raise ValueError(
            f"end_to_end (wang2019) is defined for log-mel input {WANG2019_INPUT} only (the "
            f"authors' flatten width 16,320), got {tuple(input_shape)}"
        )
    cnn = nn.Sequential(
        OrderedDict(
            block1=conv_block(1, CONV_FILTERS, CONV_WIDTH, activation="relu", pool=POOL),
            block2=conv_block(CONV_FILTERS, CONV_FILTERS, CONV_WIDTH, activation="relu", pool=POOL),
        )
    )
    f, t = (tf_same_out(tf_same_out(n, POOL, POOL), POOL, POOL) for n in input_shape[1:])
    head = nn.Sequential(
        nn.Flatten(),
        Dropout(WANG2019_DROPOUT),
        nn.Linear(CONV_FILTERS * f * t, HIDDEN),
        make_activation("relu"),
        nn.Linear(HIDDEN, n_outputs),
    )
    return EndToEnd(cnn, head)


def build_end_to_end(
    input_shape: Sequence[int],
    n_outputs: int,
    variant: str = "original",
    n_filters: int = DEFAULT_N_FILTERS,
    frame: int = DEFAULT_FRAME,
) -> EndToEnd:
    """Build the end-to-end model.

    ``original`` takes a waveform ``input_shape`` = (1, samples) and raises
    :class:`InputTooShortError` when it is shorter than :func:`original_min_samples`.
    ``wang2019`` takes log-mel (1, 96, 1360) only; ``n_filters`` and ``frame`` do not apply to
    it and must stay at their defaults.
    """
    if variant not in VARIANTS:
        raise ValueError(f"end_to_end has no variant {variant!r}; use one of {list(VARIANTS)}")
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be positive, got {n_outputs}")
    if variant == "original":
        model = _build_original(input_shape, n_outputs, n_filters, frame)
    else:
        if (n_filters, frame) != (DEFAULT_N_FILTERS, DEFAULT_FRAME):
            raise ValueError(
                "end_to_end (wang2019) is a mel-input 2-D CNN; the waveform options n_filters "
                "and frame apply to variant 'original' only"
            )
        model = _build_wang2019(input_shape, n_outputs)
    return keras_init_(model)
