"""CRNN baseline (Choi et al., ICASSP 2017): parameter counts, layer shapes, input padding and BN,
errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from mcbench_plugins.models.impl.crnn import FrequencyBatchNorm, PadTimeToMultiple, build_crnn
from mcbench_plugins.models.impl.layers import InputTooShortError, count_parameters
from mcbench_plugins.models.impl.recurrent import KerasGRU
from torch import nn

SHAPE = (1, 96, 1360)


@pytest.fixture(scope="module")
def original_model():
    torch.manual_seed(0)
    return build_crnn(SHAPE, 50).eval()


@pytest.fixture(scope="module")
def wang_model():
    torch.manual_seed(0)
    return build_crnn(SHAPE, 50, variant="wang2019").eval()


#: Input 96×1360: (variant, keras_gru) -> counts for K = 50, 16, 10.
COUNTS = {
    ("original", False): (394_290, 393_168, 392_970),
    ("original", True): (394_098, 392_976, 392_778),
    ("wang2019", False): (394_098, 392_976, 392_778),
    ("wang2019", True): (393_906, 392_784, 392_586),
}


@pytest.mark.parametrize(("variant", "keras_gru"), list(COUNTS), ids=str)
def test_parameter_counts(variant, keras_gru):
    for k, expected in zip((50, 16, 10), COUNTS[variant, keras_gru], strict=True):
        model = build_crnn(SHAPE, k, variant=variant, keras_gru=keras_gru)
        assert count_parameters(model) == expected
    gru_cls = KerasGRU if keras_gru else nn.GRU
    assert all(isinstance(m, gru_cls) for m in model.rnn)
    assert [m.return_sequences for m in model.rnn] == [True, False]
    # per-layer counts of the two GRUs
    assert [count_parameters(m) for m in model.rnn] == (
        [15_456, 6_240] if keras_gru else [15_552, 6_336]
    )
    assert count_parameters(model.head) == 33 * 10


def test_parameter_counts_do_not_depend_on_clip_length():
    assert count_parameters(build_crnn((1, 96, 1366), 50)) == 394_290
    assert count_parameters(build_crnn((1, 96, 200), 50, variant="wang2019")) == 394_098


@pytest.mark.parametrize(
    ("fixture", "frames", "shapes"),
    [
        ("original_model", 1360, [(64, 48, 720), (128, 16, 240), (128, 4, 60), (128, 1, 15)]),
        ("original_model", 1366, [(64, 48, 720), (128, 16, 240), (128, 4, 60), (128, 1, 15)]),
        ("wang_model", 1360, [(64, 48, 680), (128, 16, 227), (128, 4, 57), (128, 1, 15)]),
    ],
)
def test_layer_shapes_tables_3_1_and_3_2(request, fixture, frames, shapes):
    model = request.getfixturevalue(fixture)
    x = torch.randn(1, 1, 96, frames)
    blocks = list(model.cnn)
    if fixture == "original_model":
        x = blocks[1](blocks[0](x))
        assert tuple(x.shape[1:]) == (1, 96, 1440)
        blocks = blocks[2:]
    got = []
    with torch.no_grad():
        for block in blocks:
            x = block(x)
            got.append(tuple(x.shape[1:]))
    assert got == shapes


def test_original_uses_elu_floor_pools_and_dropout_0_1(original_model, wang_model):
    block = original_model.cnn[2]
    kinds = [type(m).__name__ for m in block]
    assert kinds == ["Conv2dSame", "BatchNorm2d", "ELU", "MaxPool2d", "Dropout"]
    assert block[-1].p == 0.1 and original_model.head[0].p == 0.3
    kinds = [type(m).__name__ for m in wang_model.cnn[0]]
    assert kinds == ["Conv2dSame", "BatchNorm2d", "ReLU", "MaxPool2dSame"]
    assert wang_model.head[0].p == 0.3


@pytest.mark.parametrize(
    ("frames", "pads"),
    [(1360, (40, 40)), (1366, (37, 37)), (1440, (0, 0)), (101, (45, 46)), (1, (47, 48))],
)
def test_time_padding_rule(frames, pads):
    assert PadTimeToMultiple.pads(frames, 96) == pads
    x = torch.ones(1, 1, 2, frames)
    y = PadTimeToMultiple(96)(x)
    assert y.shape[-1] % 96 == 0 and y.shape[-1] == frames + sum(pads)
    assert y[..., : pads[0]].abs().sum() == 0 and y[..., y.shape[-1] - pads[1] :].abs().sum() == 0
    assert torch.all(y[..., pads[0] : pads[0] + frames] == 1)


def test_input_batchnorm_is_per_mel_bin():
    torch.manual_seed(0)
    bn = FrequencyBatchNorm(96).train()
    assert count_parameters(bn) == 192
    offsets = torch.linspace(-5, 5, 96).view(1, 1, 96, 1)
    scales = torch.linspace(0.5, 3, 96).view(1, 1, 96, 1)
    x = torch.randn(8, 1, 96, 40) * scales + offsets
    y = bn(x)
    per_bin = y.transpose(1, 2).reshape(8, 96, -1)
    torch.testing.assert_close(per_bin.mean(dim=(0, 2)), torch.zeros(96), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_bin.std(dim=(0, 2)), torch.ones(96), atol=1e-2, rtol=0)
    # Keras momentum 0.99: the running mean moves 1 % of the way to the batch mean
    torch.testing.assert_close(bn.bn.running_mean, 0.01 * x.mean(dim=(0, 1, 3)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("frames", [1360, 1366, 200])
def test_forward_gives_finite_logits(original_model, wang_model, frames):
    for model in (original_model, wang_model):
        with torch.no_grad():
            y = model(torch.randn(2, 1, 96, frames))
        assert y.shape == (2, 50) and torch.isfinite(y).all()


def test_keras_gru_model_forward():
    torch.manual_seed(0)
    model = build_crnn((1, 96, 300), 10, keras_gru=True).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, 96, 300))
    assert y.shape == (2, 10) and torch.isfinite(y).all()


def test_other_heights_and_errors():
    with pytest.raises(InputTooShortError, match="mel bins"):
        build_crnn((1, 64, 1360), 50)  # floor pools leave no frequency row
    with pytest.raises(ValueError, match="1–96 mel bins"):
        build_crnn((1, 128, 1360), 50, variant="wang2019")
    with pytest.raises(ValueError, match="96–191 mel bins"):
        build_crnn((1, 192, 1360), 50)
    with pytest.raises(InputTooShortError, match="frames"):
        build_crnn((1, 96, 0), 50, variant="wang2019")
    with pytest.raises(ValueError, match="original"):
        build_crnn(SHAPE, 50, variant="paper")
    # wang2019 reaches one row from any height up to 96
    model = build_crnn((1, 40, 30), 3, variant="wang2019").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 40, 30)).shape == (1, 3)


def test_keras_init_applied(original_model):
    head = original_model.head[-1]
    assert torch.all(head.bias == 0) and head.weight.abs().max() <= (6 / (32 + 50)) ** 0.5
    gru = original_model.rnn[0]
    assert torch.all(gru.bias_ih_l0 == 0) and torch.all(gru.bias_hh_l0 == 0)
    w = gru.weight_hh_l0.detach()
    torch.testing.assert_close(w.T @ w, torch.eye(32), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("variant", "shape"), [("original", (1, 96, 96)), ("wang2019", (1, 32, 64))]
)
def test_a_few_gradient_steps_reduce_the_loss(variant, shape):
    torch.manual_seed(0)
    model = build_crnn(shape, 4, variant=variant, dropout=0.0, conv_dropout=0.0)
    x = torch.randn(4, *shape)
    target = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    losses = []
    for _ in range(10):
        loss = nn.functional.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_plugin_spec_and_build():
    from mcbench.plugins import Registry

    spec = Registry().model("crnn")
    assert spec.default_variant == "original" and list(spec.variants) == ["original", "wang2019"]
    assert set(spec.tasks) == {"multilabel", "multiclass"} and spec.frontend() == "logmel"
    assert {"keras_gru", "units", "dropout", "conv_dropout"} <= set(spec.options)
    model = spec.create(SHAPE, 16, task="multiclass", variant="wang2019", keras_gru=True)
    assert count_parameters(model) == 392_784


def test_plugin_module_does_not_import_torch():
    code = "import sys, mcbench_plugins.models.crnn; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
