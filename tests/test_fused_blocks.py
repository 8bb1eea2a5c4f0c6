"""The torch CNN blocks' faster evaluation order against the layer-by-layer reference.

``ConvBlock`` pools before batch norm and a non-decreasing activation, and TF "same" max pools
use PyTorch's implicit padding instead of a padded copy. Both must give the reference's outputs,
gradients and running statistics within 1e-5 (float rounding only).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from mcbench_plugins.models.impl import layers
from mcbench_plugins.models.impl.crnn_tf import build_crnn_tf
from mcbench_plugins.models.impl.fcn import build_fcn
from mcbench_plugins.models.impl.layers import MaxPool2dSame, implicit_same_pool, tf_same_pads
from mcbench_plugins.models.impl.recurrent import grid_lstm_stacked
from torch.nn import functional as F


def _explicit_same_pool(x, kernel, stride):
    top, bottom = tf_same_pads(x.shape[-2], kernel[0], stride[0])
    left, right = tf_same_pads(x.shape[-1], kernel[1], stride[1])
    return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=-math.inf), kernel, stride)


@pytest.mark.parametrize("kernel,stride", [((2, 4), (2, 4)), ((4, 5), (2, 4)), ((3, 8), (2, 4)),
                                           ((4, 8), (4, 8)), ((3, 3), (3, 3)), ((2, 2), (1, 1))])
@pytest.mark.parametrize("size", [(96, 1366), (96, 1360), (7, 13), (48, 342), (6, 22), (1, 5)])
def test_implicit_padding_pools_the_tf_same_windows(kernel, stride, size):
    x = torch.randn(2, 3, *size, requires_grad=True)
    ref = _explicit_same_pool(x, kernel, stride)
    got = MaxPool2dSame(kernel, stride)(x)
    assert got.shape == ref.shape
    assert torch.equal(got, ref)  # max is exact: the same numbers, not merely close
    g = torch.randn_like(ref)
    (gx_ref,) = torch.autograd.grad(ref, x, g)
    (gx,) = torch.autograd.grad(got, x, g)
    assert torch.equal(gx, gx_ref)  # the same maxima receive the gradient


def test_implicit_padding_is_found_for_the_paper_shapes():
    # CRNN-TF's (2, 4) pools on 96 × 1366: one cell of padding either side of time, none on
    # frequency; 1360 frames divide evenly.
    assert implicit_same_pool((2, 4), (2, 4), (96, 1366)) == ((0, 1), False)
    assert implicit_same_pool((2, 4), (2, 4), (96, 1360)) == ((0, 0), False)
    assert implicit_same_pool((1, 1), (1, 1), (5, 5)) == ((0, 0), False)


BUILDS = {
    "crnn_tf wang2019": (lambda s: build_crnn_tf(s, 5, variant="wang2019"), (1, 48, 300)),
    "crnn_tf paper": (lambda s: build_crnn_tf(s, 5, variant="paper"), (1, 40, 333)),
    "fcn wang2019": (lambda s: build_fcn(s, 5, variant="wang2019"), (1, 96, 200)),
    # FCN-4 original's floor pools (ReLU, a pool that drops the last frames), at a size a test
    # can afford (the full model needs 96 × 1280 and 17 M parameters)
    "floor pools": (lambda s: torch.nn.Sequential(
        layers.conv_block(1, 6, 3, activation="relu", pool=(4, 5), pool_padding="valid", dropout=0.5),
        layers.conv_block(6, 8, 3, activation="relu", pool=(3, 8), pool_padding="valid", dropout=0.5),
    ), (1, 36, 170)),
}


def _run(model, x, fuse: bool, monkeypatch):
    monkeypatch.setattr(layers, "FUSE_CONV_BLOCKS", fuse)
    model.train()
    out = model(x)
    out.square().sum().backward()
    model.eval()
    with torch.no_grad():
        evaluated = model(x)
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    return out.detach(), evaluated, grads, buffers


def _model_pair(name, dtype):
    build, shape = BUILDS[name]
    torch.manual_seed(0)
    model = build(shape).to(dtype).to(memory_format=torch.channels_last)
    for m in model.modules():  # the same dropout masks cannot be drawn twice; switch them off
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    x = torch.randn(3, *shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
    return model, copy.deepcopy(model), x


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_fused_blocks_equal_the_reference_algebraically(name, monkeypatch):
    """In float64 the reordering is exact up to rounding far below 1e-5."""
    fused, reference, x = _model_pair(name, torch.float64)
    out, ev, grads, bufs = _run(fused, x, True, monkeypatch)
    r_out, r_ev, r_grads, r_bufs = _run(reference, x, False, monkeypatch)
    assert (out - r_out).abs().max() <= 1e-10 * max(1.0, r_out.abs().max())
    assert (ev - r_ev).abs().max() <= 1e-10 * max(1.0, r_ev.abs().max())
    scale = max(g.abs().max() for g in r_grads.values())
    for key, g in grads.items():
        assert (g - r_grads[key]).abs().max() <= 1e-10 * scale, key
    for key, b in bufs.items():
        assert torch.allclose(b, r_bufs[key], rtol=1e-10, atol=1e-12), key
    assert any(bufs[k].abs().max() > 0 for k in bufs if k.endswith("running_mean"))


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_fused_blocks_in_float32_are_within_1e5_of_the_reference(name, monkeypatch):
    """Float32 outputs and running statistics within 1e-5 of torch's layer-by-layer float32;
    gradients within 1e-5 of the float64 reference, or no further from it than torch's own
    float32 (whose channels-last batch-norm sums lose more than that on the larger maps)."""
    fused, reference, x = _model_pair(name, torch.float32)
    exact = copy.deepcopy(reference).double()
    out, ev, grads, bufs = _run(fused, x, True, monkeypatch)
    r_out, r_ev, r_grads, r_bufs = _run(reference, x, False, monkeypatch)
    _, _, e_grads, _ = _run(exact, x.double(), False, monkeypatch)
    assert (out - r_out).abs().max() <= 1e-5 * max(1.0, r_out.abs().max())
    assert (ev - r_ev).abs().max() <= 1e-5 * max(1.0, r_ev.abs().max())
    for key, b in bufs.items():
        assert torch.allclose(b.float(), r_bufs[key].float(), rtol=1e-5, atol=1e-6), key
    scale = max(g.abs().max() for g in e_grads.values()).item()
    for key, g in grads.items():
        ours = (g.double() - e_grads[key]).abs().max().item()
        torchs = (r_grads[key].double() - e_grads[key]).abs().max().item()
        assert ours <= max(1e-5 * scale, 2 * torchs), (key, ours, torchs)


def test_a_negative_gamma_runs_the_layers_in_order(monkeypatch):
    torch.manual_seed(1)
    block = layers.conv_block(2, 4, 3, activation="elu", pool=(2, 2))
    with torch.no_grad():
        block[1].weight[1] = -0.5  # max-pool no longer commutes with this channel's map
    reference = copy.deepcopy(block)
    x = torch.randn(2, 2, 8, 8)
    monkeypatch.setattr(layers, "FUSE_CONV_BLOCKS", True)
    got = block(x)
    monkeypatch.setattr(layers, "FUSE_CONV_BLOCKS", False)
    assert torch.equal(got, reference(x))


def test_fused_block_under_momentum_none_counts_batches(monkeypatch):
    block = layers.conv_block(1, 3, 3, activation="relu", pool=(2, 2), pool_padding="valid")
    block[1].momentum = None
    reference = copy.deepcopy(block)
    x = torch.randn(4, 1, 6, 6)
    monkeypatch.setattr(layers, "FUSE_CONV_BLOCKS", True)
    block(x), block(x * 2)
    monkeypatch.setattr(layers, "FUSE_CONV_BLOCKS", False)
    reference(x), reference(x * 2)
    assert int(block[1].num_batches_tracked) == 2
    assert torch.allclose(block[1].running_var, reference[1].running_var, rtol=1e-6)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_stacked_grid_lstms_equal_the_block_by_block_reference(dtype, tol, monkeypatch):
    """CRNN-TF (paper) runs its eight Grid LSTM blocks batched; outputs and every gradient
    against the blocks run one by one."""
    from mcbench_plugins.models.impl import crnn_tf

    torch.manual_seed(3)
    model = build_crnn_tf((1, 96, 1360), 5, variant="paper", dropout=0.0).to(dtype)
    reference = copy.deepcopy(model)
    x = torch.randn(2, 1, 96, 1360, dtype=dtype)
    results = []
    for net, stacked in ((model, True), (reference, False)):
        monkeypatch.setattr(crnn_tf, "STACK_GRID_LSTMS", stacked)
        calls = []
        monkeypatch.setattr(crnn_tf, "grid_lstm_stacked",
                            lambda *a, calls=calls: calls.append(1) or grid_lstm_stacked(*a))
        out = net(x)
        out.square().sum().backward()
        assert bool(calls) == stacked
        results.append((out.detach(), {k: p.grad for k, p in net.named_parameters()}))
    (out, grads), (r_out, r_grads) = results
    assert (out - r_out).abs().max() <= tol * max(1.0, r_out.abs().max())
    scale = max(g.abs().max() for g in r_grads.values())
    for key, g in grads.items():
        assert (g - r_grads[key]).abs().max() <= tol * scale, key


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_cpu_dropout_keeps_each_element_with_probability_one_minus_p(p):
    """The uniform-mask dropout has nn.Dropout's law: kept with probability 1 − p, scaled by
    1/(1 − p), the gradient through the same mask; identity in evaluation mode."""
    torch.manual_seed(0)
    drop = layers.Dropout(p)
    x = torch.rand(8, 16, 64, 64).add_(0.5).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = drop(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    kept = y != 0
    n = kept.numel()
    # 6 standard deviations of a binomial count: fails only for a wrong law
    assert abs(kept.sum().item() - (1 - p) * n) <= 6 * math.sqrt(n * p * (1 - p))
    assert torch.allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert torch.equal(gx != 0, kept)
    assert torch.allclose(gx[kept], torch.full_like(gx[kept], 1 / (1 - p)))
    drop.eval()
    assert torch.equal(drop(x), x)


def test_every_torch_model_uses_the_cpu_dropout():
    from mcbench import compute
    from mcbench.plugins import Registry

    registry = Registry()
    checked = 0
    for spec in registry.specs("model"):
        if "torch" not in spec.backends:
            continue
        for variant in spec.variants:
            if "torch" not in spec.backends_of(variant):
                continue
            model = spec.create(compute.input_shape_of(spec, variant), 5, task=spec.tasks[0],
                                variant=variant, backend="torch")
            drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
            assert all(isinstance(m, layers.Dropout) for m in drops), (spec.name, variant)
            checked += len(drops)
    assert checked >= 4  # FCN-4's four conv-block dropouts at least
