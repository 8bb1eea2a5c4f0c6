"""Shared building blocks of every torch model (models.md §1.2–1.3).

Everything a model needs to match the Keras/TensorFlow-1 code the paper's numbers came from:

* TensorFlow "same" padding for pools and strided convolutions, computed from the actual input
  size at run time, so a model works for any clip length its design allows;
* conv → BN → activation → pool → dropout blocks;
* Keras batch-norm settings (ε = 1e-3, momentum 0.99 ⇒ PyTorch momentum 0.01);
* Keras initialisation (Glorot-uniform kernels, zero biases, orthogonal recurrent kernels).

Models compose these; none re-implements them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

Pair = int | tuple[int, int]


def _pair(v: Pair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def tf_same_pads(n: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" rule for one axis: ``(pad_before, pad_after)``.

    out = ⌈n/s⌉, total = max((out−1)·s + k − n, 0), ⌊total/2⌋ before and the rest after.
    """
    out = math.ceil(n / stride)
    total = max((out - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


def tf_same_out(n: int, kernel: int, stride: int) -> int:
    """Output length of a TF "same" op: ⌈n/s⌉ (the kernel size does not matter)."""
    return math.ceil(n / stride)


def valid_out(n: int, kernel: int, stride: int) -> int:
    """Output length of a floor ("valid") op."""
    return (n - kernel) // stride + 1


class PadSame2d(nn.Module):
    """Pads ``(B, C, H, W)`` by the TF "same" rule for a given kernel and stride."""

    def __init__(self, kernel: Pair, stride: Pair, value: float = 0.0):
        super().__init__()
        self.kernel, self.stride, self.value = _pair(kernel), _pair(stride), value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = tf_same_pads(x.shape[-2], self.kernel[0], self.stride[0])
        left, right = tf_same_pads(x.shape[-1], self.kernel[1], self.stride[1])
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom), value=self.value)


class MaxPool2dSame(nn.Module):
    """Keras ``MaxPooling2D(pool, strides, padding='same')``, exactly.

    Pads with −inf by the TF rule, then pools with no padding. (``ceil_mode=True`` gives the same
    shapes but shifts the windows by one cell; see models.md §1.2.)
    """

    def __init__(self, kernel: Pair, stride: Pair | None = None):
        super().__init__()
        self.kernel = _pair(kernel)
        self.stride = _pair(stride) if stride is not None else self.kernel
        self.pad = PadSame2d(self.kernel, self.stride, value=-math.inf)
        self.pool = nn.MaxPool2d(self.kernel, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.pad(x))

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=same"


class Conv2dSame(nn.Sequential):
    """Keras ``Conv2D(..., padding='same')`` for any stride.

    Stride 1 uses PyTorch's own ``padding='same'`` (which also puts the extra cell of an even
    kernel at the end, like TF); a larger stride pads explicitly by the TF rule.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: Pair, stride: Pair = 1, bias: bool = True):
        kernel, stride = _pair(kernel), _pair(stride)
        if stride == (1, 1):
            super().__init__(nn.Conv2d(in_ch, out_ch, kernel, padding="same", bias=bias))
        else:
            super().__init__(
                PadSame2d(kernel, stride), nn.Conv2d(in_ch, out_ch, kernel, stride=stride, bias=bias)
            )

    @property
    def conv(self) -> nn.Conv2d:
        return self[-1]


def keras_batchnorm(channels: int, dims: int = 2) -> nn.Module:
    """``BatchNormalization()`` with Keras defaults: ε = 1e-3, momentum 0.99 (torch 0.01)."""
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims]
    return cls(channels, eps=1e-3, momentum=0.01)


ACTIVATIONS = {"elu": lambda: nn.ELU(alpha=1.0), "relu": nn.ReLU, "none": nn.Identity}


def make_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}") from None


def conv_block(
    in_ch: int,
    out_ch: int,
    kernel: Pair = 3,
    *,
    activation: str = "elu",
    pool: Pair | None = None,
    pool_stride: Pair | None = None,
    pool_padding: str = "same",
    conv_stride: Pair = 1,
    batchnorm: bool = True,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Conv ('same') → BN → activation → max-pool → dropout, the block every CNN here uses.

    ``pool_padding`` is ``"same"`` (TF "same" pooling, exact) or ``"valid"`` (floor pooling, as in
    Choi's CRNN/FCN and Lasagne).
    """
    layers: list[nn.Module] = [Conv2dSame(in_ch, out_ch, kernel, conv_stride)]
    if batchnorm:
        layers.append(keras_batchnorm(out_ch))
    layers.append(make_activation(activation))
    if pool is not None:
        if pool_padding == "same":
            layers.append(MaxPool2dSame(pool, pool_stride))
        elif pool_padding == "valid":
            layers.append(nn.MaxPool2d(_pair(pool), _pair(pool_stride) if pool_stride else None))
        else:
            raise ValueError(f"pool_padding must be 'same' or 'valid', got {pool_padding!r}")
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- initialisation


def glorot_uniform_(weight: torch.Tensor) -> torch.Tensor:
    """Keras ``glorot_uniform`` for a dense/conv kernel (fan computed as Keras does)."""
    return nn.init.xavier_uniform_(weight)


def orthogonal_stacked_(weight: torch.Tensor) -> torch.Tensor:
    """Keras ``orthogonal`` over the whole stacked recurrent matrix (gates × units, units).

    Same algorithm as ``nn.init.orthogonal_`` (QR of a Gaussian matrix, signs fixed by R's
    diagonal), with the Gaussian drawn from torch's generator. The QR runs in numpy: torch's CPU
    QR of these small matrices can take ~0.4 s under OpenMP contention, against microseconds here.
    """
    import numpy as np

    rows, cols = weight.shape[0], weight.numel() // weight.shape[0]
    with torch.no_grad():
        flat = torch.randn(rows, cols, dtype=torch.float64).numpy()
        if rows < cols:
            flat = flat.T
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        weight.copy_(torch.from_numpy(q).reshape(weight.shape).to(weight.dtype))
    return weight


def keras_init_(module: nn.Module) -> nn.Module:
    """Apply Keras/TF1 default initialisation to every sub-module (models.md §1.3).

    Conv and linear kernels: Glorot uniform, biases 0. ``nn.GRU``/``nn.LSTM``: input kernels
    Glorot uniform over the stacked gate matrix, recurrent kernels orthogonal, biases 0, and the
    forget-gate slice of one LSTM bias set to 1 (Keras ``unit_forget_bias``). BN: γ = 1, β = 0.
    Custom modules may define ``reset_parameters_keras()`` and are called instead.
    """
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters_keras"):
            m.reset_parameters_keras()
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            glorot_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.GRU, nn.LSTM)):
            for name, p in m.named_parameters():
                if name.startswith("weight_ih"):
                    glorot_uniform_(p)
                elif name.startswith("weight_hh"):
                    orthogonal_stacked_(p)
                elif name.startswith("bias"):
                    nn.init.zeros_(p)
            if isinstance(m, nn.LSTM):
                with torch.no_grad():
                    for layer in range(m.num_layers):
                        bias = getattr(m, f"bias_ih_l{layer}", None)
                        if bias is not None:
                            bias[m.hidden_size : 2 * m.hidden_size].fill_(1.0)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


# --------------------------------------------------------------------------- shape helpers


def output_shape(module: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Shape (without batch) of ``module`` applied to a zero tensor of ``input_shape``."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        out = module(torch.zeros(1, *input_shape))
    module.train(was_training)
    return tuple(out.shape[1:])


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (models.md §1.4: BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class InputTooShortError(ValueError):
    """The input is too short (or too narrow) for a model's fixed pooling design."""


def require_min_length(model: str, variant: str, axis: str, n: int, minimum: int) -> None:
    """Fail early with a clear message when a design cannot take an input this small."""
    if n < minimum:
        raise InputTooShortError(
            f"{model} ({variant}) needs at least {minimum} {axis} in its input, got {n}. "
            f"Use longer clips (the paper uses 29.0 s = 1360 frames) or another variant."
        )


def valid_min_input(ops: Sequence[tuple[int, int]]) -> int:
    """Smallest input length for which a chain of floor ("valid") ops yields at least one output.

    ``ops`` lists ``(kernel, stride)`` per op, first op first; "same" ops never shrink an axis to
    zero and are left out. Inverts :func:`valid_out` backwards: an op needs ``(m−1)·s + k`` inputs
    for ``m`` outputs. Example: FCN-4's time pools (4,4), (5,5), (8,8), (8,8) need 1280 frames.
    """
    need = 1
    for kernel, stride in reversed(list(ops)):
        need = (need - 1) * stride + kernel
    return need
