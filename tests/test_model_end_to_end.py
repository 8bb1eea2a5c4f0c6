"""End-to-end model (Dieleman & Schrauwen, ICASSP 2014): parameter counts, shapes, input limits,
options, training."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from mcbench_plugins.models import end_to_end as e2e_plugin
from mcbench_plugins.models.impl.end_to_end import (
    EndToEnd,
    build_end_to_end,
    original_min_samples,
)
from mcbench_plugins.models.impl.layers import InputTooShortError, MaxPool2dSame, count_parameters
from model_checks import loss_after_steps
from torch import nn
from torch.nn import functional as F

from mcbench.specs import MULTICLASS, MULTILABEL, OptionError

WAVEFORM = (1, 348_000)  # 29.0 s at 12 kHz
LOGMEL = (1, 96, 1360)

# torch notes that an even kernel with padding="same" (the 8×8 conv, Keras-exact) may copy the input.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


def _stage_shapes(
    model: EndToEnd, x: torch.Tensor
) -> tuple[dict[str, tuple[int, ...]], torch.Tensor]:
    """Output shape of every stage of ``cnn`` and of each stage's first (conv) layer; logits."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, stage in model.cnn.named_children():
        hooks.append(
            stage.register_forward_hook(
                lambda m, i, o, n=name: shapes.__setitem__(n, tuple(o.shape[1:]))
            )
        )
        hooks.append(
            stage[0].register_forward_hook(
                lambda m, i, o, n=name: shapes.__setitem__(n + ".conv", tuple(o.shape[1:]))
            )
        )
    model.eval()
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return shapes, out


@pytest.mark.parametrize(
    "variant, shape, n_outputs, expected",
    [
        ("original", WAVEFORM, 50, 341_470),
        ("original", WAVEFORM, 16, 338_036),
        ("original", WAVEFORM, 10, 337_430),
        ("wang2019", LOGMEL, 50, 1_704_926),
        ("wang2019", LOGMEL, 16, 1_701_492),
        ("wang2019", LOGMEL, 10, 1_700_886),
    ],
)
def test_parameter_counts_match_spec(variant, shape, n_outputs, expected):
    assert count_parameters(build_end_to_end(shape, n_outputs, variant)) == expected


def test_original_stage_parameters_match_spec_table():
    model = build_end_to_end(WAVEFORM, 50)
    assert [count_parameters(s) for s in model.cnn.children()] == [32_896, 32_800, 8_224]
    assert count_parameters(model.head[1]) == 262_500
    assert count_parameters(model.head[3]) == 5_050
    assert not any(
        isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout)) for m in model.modules()
    )


def test_original_shapes_and_output():
    torch.manual_seed(0)
    model = build_end_to_end(WAVEFORM, 50)
    shapes, out = _stage_shapes(model, torch.randn(1, *WAVEFORM))
    assert shapes["frontend"] == (128, 1359)
    assert shapes["block1.conv"] == (32, 1352) and shapes["block1"] == (32, 338)
    assert shapes["block2.conv"] == (32, 331) and shapes["block2"] == (32, 82)
    assert model.head[1].in_features == 2_624
    assert out.shape == (1, 50) and torch.isfinite(out).all()


def test_original_frontend_is_strided_and_ignores_last_96_samples():
    model = build_end_to_end(WAVEFORM, 10).eval()
    conv = model.cnn.frontend[0]
    assert (conv.kernel_size, conv.stride, conv.padding) == ((256,), (256,), (0,))
    torch.manual_seed(0)
    x = torch.randn(1, *WAVEFORM)
    frontend = model.cnn.frontend
    with torch.no_grad():
        before = frontend(x)
        x[..., 348_000 - 96 :] = 100.0
        assert torch.equal(frontend(x), before)
        x[..., 348_000 - 97] = 100.0  # last sample of frame 1358
        changed = (frontend(x) != before).any(dim=1)[0]
    assert changed.nonzero().flatten().tolist() == [1358]


@pytest.mark.parametrize(
    "samples, flatten",
    [
        (240_000, 32 * 56),  # 20 s: 937 frames → 930 → 232 → 225 → 56
        (349_440, 32 * 83),  # 29.12 s: 1365 frames → 1358 → 339 → 332 → 83
        (13_056, 32),  # the minimum: 51 frames → 44 → 11 → 4 → 1
    ],
)
def test_original_other_lengths(samples, flatten):
    model = build_end_to_end((1, samples), 16).eval()
    assert model.head[1].in_features == flatten
    with torch.no_grad():
        out = model(torch.randn(2, 1, samples))
    assert out.shape == (2, 16) and torch.isfinite(out).all()


def test_original_rejects_too_short_waveform():
    assert original_min_samples() == 51 * 256 == 13_056
    with pytest.raises(
        InputTooShortError, match=r"end_to_end \(original\) needs at least 13056 samples.*got 13055"
    ):
        build_end_to_end((1, 13_055), 10)
    with pytest.raises(InputTooShortError, match=r"at least 26112 samples"):
        build_end_to_end((1, 20_000), 10, frame=512)


def test_original_options_change_the_frontend():
    model = build_end_to_end(WAVEFORM, 50, n_filters=64, frame=512)
    conv = model.cnn.frontend[0]
    assert (conv.out_channels, conv.kernel_size, conv.stride) == (64, (512,), (512,))
    # 679 frames → 672 → 168 → 161 → 40
    assert model.head[1].in_features == 32 * 40
    expected = (512 * 64 + 64) + (64 * 32 * 8 + 32) + 8_224 + (1_280 * 100 + 100) + 5_050
    assert count_parameters(model) == expected
    with pytest.raises(ValueError, match="frame must be a positive integer"):
        build_end_to_end(WAVEFORM, 50, frame=0)


def test_wang2019_shapes_and_output():
    torch.manual_seed(0)
    model = build_end_to_end(LOGMEL, 50, "wang2019")
    shapes, out = _stage_shapes(model, torch.randn(1, *LOGMEL))
    assert shapes["block1"] == (32, 24, 340)
    assert shapes["block2"] == (32, 6, 85)
    assert model.head[2].in_features == 16_320
    assert all(isinstance(stage[3], MaxPool2dSame) for stage in model.cnn.children())
    assert [count_parameters(s) for s in model.cnn.children()] == [2_080 + 64, 65_568 + 64]
    assert out.shape == (1, 50) and torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(1, 96, 1366), (1, 96, 1000), (1, 348_000)])
def test_wang2019_is_defined_for_1360_frame_logmel_only(shape):
    with pytest.raises(
        ValueError, match=r"wang2019\) is defined for log-mel input \(1, 96, 1360\) only"
    ):
        build_end_to_end(shape, 50, "wang2019")


def test_bad_arguments_fail_clearly():
    with pytest.raises(
        ValueError, match=r"original\) takes a waveform input of shape \(1, samples\)"
    ):
        build_end_to_end(LOGMEL, 50, "original")
    with pytest.raises(ValueError, match="apply to variant 'original' only"):
        build_end_to_end(LOGMEL, 50, "wang2019", n_filters=64)
    with pytest.raises(ValueError, match="no variant 'sample'"):
        build_end_to_end(WAVEFORM, 50, "sample")


def test_keras_initialisation_applied():
    for variant, shape in (("original", WAVEFORM), ("wang2019", LOGMEL)):
        model = build_end_to_end(shape, 10, variant)
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                receptive = m.weight[0, 0].numel() if m.weight.dim() > 2 else 1
                bound = math.sqrt(6 / ((m.weight.shape[1] + m.weight.shape[0]) * receptive))
                assert bound * 0.9 < m.weight.abs().max() <= bound
                assert torch.count_nonzero(m.bias) == 0
            elif isinstance(m, nn.BatchNorm2d):
                assert torch.all(m.weight == 1) and m.eps == 1e-3 and m.momentum == 0.01


def test_original_training_steps_reduce_loss():
    torch.manual_seed(0)
    model = build_end_to_end((1, 48_000), 50)
    x = 0.1 * torch.randn(4, 1, 48_000)
    y = (torch.rand(4, 50) < 0.1).float()
    start, end = loss_after_steps(model, x, F.binary_cross_entropy_with_logits, y, steps=5)
    assert math.isfinite(start) and end < start


def test_wang2019_training_steps_reduce_loss():
    torch.manual_seed(0)
    model = build_end_to_end(LOGMEL, 16, "wang2019")
    x = torch.randn(2, *LOGMEL)
    y = torch.tensor([0, 11])
    start, end = loss_after_steps(model, x, F.cross_entropy, y, steps=3)
    assert math.isfinite(start) and end < start


def test_plugin_spec_and_build():
    spec = e2e_plugin.SPEC
    assert spec.name == "end_to_end" and spec.default_variant == "original"
    assert list(spec.variants) == ["original", "wang2019"]
    assert set(spec.tasks) == {MULTILABEL, MULTICLASS}
    assert spec.frontend() == "waveform" and spec.frontend("original") == "waveform"
    assert spec.frontend("wang2019") == "logmel"
    assert set(spec.options) == {"n_filters", "frame"}
    assert "ICASSP 2014" in spec.source
    assert e2e_plugin.mcbench_models() == [spec]
    assert count_parameters(spec.create(WAVEFORM, 16, task=MULTILABEL)) == 338_036
    model = spec.create(LOGMEL, 10, task=MULTICLASS, variant="wang2019")
    assert isinstance(model, EndToEnd) and count_parameters(model) == 1_700_886
    small = spec.create(WAVEFORM, 10, task=MULTICLASS, variant="original", n_filters=16)
    assert small.cnn.frontend[0].out_channels == 16
    with pytest.raises(OptionError, match="unknown option"):
        spec.create(WAVEFORM, 10, task=MULTILABEL, variant="original", stride=128)


def test_registration_module_does_not_import_torch():
    code = (
        "import sys, mcbench_plugins.models.end_to_end as m; m.mcbench_models(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parameter_groups_cover_every_parameter():
    model = build_end_to_end(WAVEFORM, 10)
    groups = model.parameter_groups()
    assert groups["rnn"] == []
    assert sum(p.numel() for g in groups.values() for p in g) == count_parameters(model)
