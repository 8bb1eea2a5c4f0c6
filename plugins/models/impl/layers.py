"""Shared building blocks of every torch model (Keras/TensorFlow 1 layer semantics, as the authors of Wang et al., IJCNN 2019 built them).

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
    shapes but shifts the windows by one cell, so it is not TF's 'same' rule.)
    """

    def __init__(self, kernel: Pair, stride: Pair | None = None):
        super().__init__()
        self.kernel = _pair(kernel)
        self.stride = _pair(stride) if stride is not None else self.kernel
        self.pad = PadSame2d(self.kernel, self.stride, value=-math.inf)
        self.pool = nn.MaxPool2d(self.kernel, self.stride)

    def implicit_padding(self, height: int, width: int) -> tuple[tuple[int, int], bool] | None:
        """``(padding, ceil_mode)`` with which ``F.max_pool2d`` pools exactly the TF "same"
        windows of an ``height × width`` input without a padded copy; ``None`` if none does."""
        return implicit_same_pool(self.kernel, self.stride, (height, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plan = self.implicit_padding(x.shape[-2], x.shape[-1])
        if plan is None:
            return self.pool(self.pad(x))
        padding, ceil_mode = plan
        return F.max_pool2d(x, self.kernel, self.stride, padding, ceil_mode=ceil_mode)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=same"


def _torch_pool_out(n: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """Output length of ``F.max_pool2d`` along one axis (PyTorch's rule, dilation 1)."""
    span = n + 2 * pad - kernel
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + pad:  # the last window must start inside
        out -= 1
    return out


def implicit_same_pool(kernel: Pair, stride: Pair, size: tuple[int, int]):
    """``(padding, ceil_mode)`` for ``F.max_pool2d`` equal to TF "same" max pooling of ``size``.

    TF's windows start at ``−before + i·s`` for ``i < ⌈n/s⌉``; PyTorch's at ``−p + i·s``. With
    ``p = before`` both start at the same cells, and the cells PyTorch pads implicitly (or leaves
    out in ceil mode) are exactly the −inf cells of TF's padding, so the maxima and their
    positions are identical. Returns ``None`` when no single ``ceil_mode`` gives ``⌈n/s⌉``
    windows on both axes or PyTorch's padding limit (``p ≤ k/2``) is exceeded.
    """
    kernel, stride = _pair(kernel), _pair(stride)
    pads, modes = [], {False, True}
    for n, k, s in zip(size, kernel, stride):
        before, _ = tf_same_pads(n, k, s)
        if before > k // 2:
            return None
        want = tf_same_out(n, k, s)
        modes &= {m for m in (False, True) if _torch_pool_out(n, k, s, before, m) == want}
        pads.append(before)
    if not modes:
        return None
    return (pads[0], pads[1]), min(modes)  # floor mode when both work


class _BatchNormActPool(torch.autograd.Function):
    """Training-mode batch norm → monotone activation → max pool, pooling first.

    For a per-channel map ``f(z) = act(γ·(z − μ)·σ⁻¹ + β)`` that is non-decreasing (γ > 0 and
    ELU/ReLU/identity), ``maxpool(f(z)) = f(maxpool(z))`` — exactly, since rounding is monotone
    too. So the normalisation and the activation run on the pooled tensor (a quarter to an
    eighth of the conv output here), and the backward pass needs one pass over the full tensor:
    with ``g`` the gradient at the pooled batch-norm output scattered to the pool's maxima
    (zero elsewhere, as max-pool's gradient is), the batch-norm input gradient
    ``γσ⁻¹(g − mean(g) − ẑ·mean(g·ẑ))`` is ``scatter(γσ⁻¹g) + k₂·z + k₁`` with per-channel
    constants, and ``Σg``, ``Σg·ẑ`` are sums over the pooled tensor only. The scatter is
    max-pool's own backward kernel (``max_pool2d_with_indices_backward``, which keeps the
    channels-last layout; a generic ``scatter_add_`` over that layout is about 3× slower), and
    the per-channel terms are added to it in place.
    """

    @staticmethod
    def forward(ctx, z, weight, bias, mean, invstd, act, kernel, stride, padding, ceil_mode):
        pooled, indices = F.max_pool2d(z, kernel, stride, padding, ceil_mode=ceil_mode,
                                       return_indices=True)
        scale = (weight * invstd).view(1, -1, 1, 1)
        shift = (bias - mean * weight * invstd).view(1, -1, 1, 1)
        normed = pooled * scale + shift
        ctx.save_for_backward(z, indices, pooled, normed, weight, mean, invstd)
        ctx.act, ctx.pool = act, (kernel, stride, padding, ceil_mode)
        with torch.no_grad():
            return act(normed)

    @staticmethod
    def backward(ctx, grad_out):
        z, indices, pooled, normed, weight, mean, invstd = ctx.saved_tensors
        with torch.enable_grad():
            leaf = normed.detach().requires_grad_(True)
            (grad_normed,) = torch.autograd.grad(ctx.act(leaf), leaf, grad_out)
        dims = (0, 2, 3)
        count = z.numel() // z.shape[1]
        z_hat = (pooled - mean.view(1, -1, 1, 1)) * invstd.view(1, -1, 1, 1)
        sum_g = grad_normed.sum(dims)
        sum_g_zhat = (grad_normed * z_hat).sum(dims)
        gain = weight * invstd
        k2 = -gain * invstd * sum_g_zhat / count
        k1 = -gain * sum_g / count - k2 * mean
        kernel, stride, padding, ceil_mode = ctx.pool
        grad_z = torch.ops.aten.max_pool2d_with_indices_backward(
            grad_normed * gain.view(1, -1, 1, 1), z, list(kernel), list(stride), list(padding),
            [1, 1], ceil_mode, indices)
        grad_z.addcmul_(z, k2.view(1, -1, 1, 1)).add_(k1.view(1, -1, 1, 1))
        return grad_z, sum_g_zhat, sum_g, None, None, None, None, None, None, None


def _monotone(act: nn.Module) -> bool:
    """Activations for which pooling first is exact (non-decreasing maps)."""
    if isinstance(act, nn.ELU):
        return act.alpha >= 0
    return isinstance(act, (nn.ReLU, nn.Identity))


def _pool_plan(pool: nn.Module, height: int, width: int):
    """``(kernel, stride, padding, ceil_mode)`` of a max pool, or ``None`` if not fusable."""
    if isinstance(pool, MaxPool2dSame):
        plan = pool.implicit_padding(height, width)
        return None if plan is None else (pool.kernel, pool.stride, *plan)
    if isinstance(pool, nn.MaxPool2d) and not pool.return_indices and _pair(pool.dilation) == (1, 1):
        stride = pool.stride if pool.stride is not None else pool.kernel_size
        return _pair(pool.kernel_size), _pair(stride), _pair(pool.padding), pool.ceil_mode
    return None


#: Whether :class:`ConvBlock` may pool before batch norm and activation (tests switch it off to
#: compare against the layer-by-layer reference).
FUSE_CONV_BLOCKS = True


class ConvBlock(nn.Sequential):
    """Conv → BN → activation → pool (→ dropout), the layers of :func:`conv_block`.

    The layers and their parameters are those of a plain ``nn.Sequential`` (same state-dict
    keys); only the order of evaluation changes where that is exact (see
    :class:`_BatchNormActPool`): in float32 or float64 with batch norm, a max pool and a
    non-decreasing activation, when every γ > 0. Anything else (autocast, a negative γ, another layer kind)
    runs the layers one by one.
    """

    def _fusable(self, x: torch.Tensor):
        if not FUSE_CONV_BLOCKS or len(self) < 4 or x.dtype not in (torch.float32, torch.float64):
            return None
        bn, act, pool = self[1], self[2], self[3]
        if not (isinstance(bn, nn.BatchNorm2d) and bn.affine and _monotone(act)):
            return None
        if torch.is_autocast_enabled(x.device.type):
            return None
        return bn, act, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self._fusable(x)
        if parts is None:
            return super().forward(x)
        bn, act, pool = parts
        z = self[0](x)
        plan = _pool_plan(pool, z.shape[-2], z.shape[-1])
        if plan is None or z.dtype != x.dtype or not bool((bn.weight > 0).all()):
            return nn.Sequential(*list(self)[1:])(z)
        kernel, stride, padding, ceil_mode = plan
        if bn.training or bn.running_mean is None:
            out = self._train_forward(z, bn, act, plan)
        else:  # running statistics: a per-channel affine map, so pool first
            pooled = F.max_pool2d(z, kernel, stride, padding, ceil_mode=ceil_mode)
            out = act(bn(pooled))
        for layer in list(self)[4:]:
            out = layer(out)
        return out

    @staticmethod
    def _train_forward(z, bn: nn.BatchNorm2d, act: nn.Module, plan) -> torch.Tensor:
        # The momentum rule of nn.BatchNorm2d.forward (momentum None: a cumulative average).
        factor = 0.0 if bn.momentum is None else bn.momentum
        if bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:
                factor = 1.0 / float(bn.num_batches_tracked)
        with torch.no_grad():
            if bn.running_mean is not None:
                # the kernel of nn.BatchNorm2d's own statistics; updates the running ones in place
                mean, var = torch.batch_norm_update_stats(z, bn.running_mean, bn.running_var, factor)
            else:
                mean, var = torch.batch_norm_update_stats(z, None, None, factor)
            invstd = torch.rsqrt(var + bn.eps)
        kernel, stride, padding, ceil_mode = plan
        return _BatchNormActPool.apply(z, bn.weight, bn.bias, mean, invstd, act, kernel, stride,
                                       padding, ceil_mode)


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


class Dropout(nn.Dropout):
    """``nn.Dropout`` (inverted dropout: each element kept with probability 1 − p and scaled by
    1/(1 − p); Srivastava et al., JMLR 2014) whose CPU mask is ``uniform ≥ p``.

    The law is the same as ``nn.Dropout``'s Bernoulli draw, only the random stream differs:
    PyTorch's CPU ``bernoulli_`` is about 2.5× slower than ``torch.rand`` and a comparison
    (FCN-4's first mask at batch 32: 0.74 s against 0.29 s), and FCN-4's four dropout masks
    had taken 11 % of its training step at batch 32. The uniforms are float32 in the input's
    memory layout whatever the input's precision, so p is resolved to 2⁻²⁴ under bf16
    autocast too. Other devices use PyTorch's fused kernel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu" or not 0.0 < self.p < 1.0:
            return super().forward(x)
        keep = torch.rand_like(x, dtype=torch.float32) >= self.p
        if self.inplace:
            return x.mul_(keep).mul_(1.0 / (1.0 - self.p))
        return x.mul(keep).mul_(1.0 / (1.0 - self.p))


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
) -> ConvBlock:
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
        layers.append(Dropout(dropout))
    return ConvBlock(*layers)


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
    """Apply Keras/TF1 default initialisation to every sub-module (Glorot-uniform kernels, zero biases).

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
    """Trainable parameters (as Keras counts them: batch-norm running statistics are buffers, not counted)."""
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


class TransferGroups:
    """``parameter_groups()`` for a network built of ``cnn``, optional ``rnn`` and ``head``
    submodules: the three groups of the transfer strategies of Wang et al. (IJCNN 2019,
    Sec. V-G, Table III), which freeze the CNN, the recurrent part, or both, and always train a
    new output layer. ``head`` must be the module that produces the logits; ``rnn`` is empty
    for a network without one."""

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        rnn = getattr(self, "rnn", None)
        return {"cnn": list(self.cnn.parameters()),
                "rnn": list(rnn.parameters()) if rnn is not None else [],
                "head": list(self.head.parameters())}
