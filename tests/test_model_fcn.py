"""FCN-4 (Choi et al., ISMIR 2016): parameter counts, per-block shapes, TF-"same" pads, input limits,
training.

FCN is heavy (17M parameters, ~10 GMACs per clip), so parameter counts come from building only
and every shape check runs one clip (batch 1) once per variant.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from mcbench_plugins.models import fcn as fcn_plugin
from mcbench_plugins.models.impl.fcn import FCN, build_fcn, original_min_input
from mcbench_plugins.models.impl.layers import (
    Conv2dSame,
    InputTooShortError,
    MaxPool2dSame,
    PadSame2d,
    count_parameters,
)
from model_checks import loss_after_steps
from torch import nn

from mcbench.specs import MULTICLASS, MULTILABEL, OptionError

DEFAULT = (1, 96, 1360)


def _block_shapes(model: FCN, x: torch.Tensor) -> tuple[dict[str, tuple[int, ...]], torch.Tensor]:
    """Output shape (C, F, T) of every block and of block 4's conv, and the logits, in eval mode."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        block.register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:]))
        )
        for name, block in model.cnn.named_children()
    ]
    hooks.append(
        model.cnn.block4[0].register_forward_hook(
            lambda m, i, o: shapes.__setitem__("conv4", tuple(o.shape[1:]))
        )
    )
    model.eval()
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return shapes, out


@pytest.fixture(scope="module")
def default_runs():
    """One forward pass of one default clip through each variant (K = 50)."""
    torch.manual_seed(0)
    x = torch.randn(1, *DEFAULT)
    runs = {}
    for variant in ("original", "wang2019"):
        model = build_fcn(DEFAULT, 50, variant)
        runs[variant] = (model, *_block_shapes(model, x))
    return runs


@pytest.mark.parametrize("variant", ["original", "wang2019"])
@pytest.mark.parametrize(
    "n_outputs, expected", [(50, 17_365_938), (16, 17_296_272), (10, 17_283_978)]
)
def test_parameter_counts_match_spec(variant, n_outputs, expected):
    assert count_parameters(build_fcn(DEFAULT, n_outputs, variant)) == expected


def test_block_parameter_split_matches_spec_table():
    model = build_fcn(DEFAULT, 50)
    per_block = [count_parameters(b) for b in model.cnn.children()]
    assert per_block == [1_280 + 256, 442_752 + 768, 2_654_976 + 1_536, 14_157_824 + 4_096]
    assert count_parameters(model.head) == 102_450


def test_original_block_shapes_and_output(default_runs):
    _, shapes, out = default_runs["original"]
    assert shapes["block1"] == (128, 48, 340)
    assert shapes["block2"] == (384, 12, 68)
    assert shapes["block3"] == (768, 4, 8)
    assert shapes["block4"] == (2048, 1, 1)
    assert out.shape == (1, 50) and torch.isfinite(out).all()


def test_wang2019_block_shapes_and_output(default_runs):
    _, shapes, out = default_runs["wang2019"]
    assert shapes["block1"] == (128, 48, 340)
    assert shapes["block2"] == (384, 24, 85)
    assert shapes["block3"] == (768, 12, 22)
    assert shapes["conv4"] == (2048, 4, 8)
    assert shapes["block4"] == (2048, 1, 1)
    assert out.shape == (1, 50) and torch.isfinite(out).all()


def test_original_pools_are_floor_and_third_drops_last_four_frames():
    model = build_fcn(DEFAULT, 10)
    pools = [block[3] for block in model.cnn.children()]
    assert all(type(p) is nn.MaxPool2d and not p.ceil_mode for p in pools)
    assert [p.kernel_size for p in pools] == [(2, 4), (4, 5), (3, 8), (4, 8)]
    assert all(
        isinstance(block[4], nn.Dropout) and block[4].p == 0.5 for block in model.cnn.children()
    )
    # Pool 3 sees (12, 68): 68 = 8·8 + 4, so the last four frames never reach the output.
    pool3 = pools[2]
    x = torch.randn(1, 2, 12, 68)
    before = pool3(x)
    x[..., 64:] = 1e6
    assert before.shape[-2:] == (4, 8)
    assert torch.equal(pool3(x), before)
    x[..., 63] = 1e6
    assert not torch.equal(pool3(x), before)


def _pads(pad: PadSame2d, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(top, bottom), (left, right) that ``pad`` adds to an (h, w) map, read off its output."""
    out = pad(torch.ones(1, 1, h, w))[0, 0]
    is_pad = out != 1
    rows = is_pad.all(dim=1).tolist()
    cols = is_pad.all(dim=0).tolist()

    def run(flags):
        lead = next((i for i, f in enumerate(flags) if not f), len(flags))
        trail = next((i for i, f in enumerate(reversed(flags)) if not f), len(flags))
        return lead, trail

    return run(rows), run(cols)


def test_wang2019_pads_match_worked_table():
    """The TF "same" pads (⌊total/2⌋ before, the rest after) of pools 2, 3 and the stride-3 conv 4."""
    model = build_fcn(DEFAULT, 50, "wang2019")
    pool2, pool3 = model.cnn.block2[3], model.cnn.block3[3]
    conv4 = model.cnn.block4[0]
    assert isinstance(conv4, Conv2dSame) and conv4.conv.stride == (3, 3)
    assert _pads(pool2.pad, 48, 340) == ((1, 1), (0, 1))
    assert _pads(pool3.pad, 24, 85) == ((0, 1), (3, 4))
    assert _pads(conv4[0], 12, 22) == ((0, 0), (1, 1))
    assert pool2.pad.value == -math.inf and conv4[0].value == 0.0


def test_wang2019_uses_maxpool2dsame_which_differs_from_ceil_mode():
    model = build_fcn(DEFAULT, 50, "wang2019")
    pools = [block[3] for block in model.cnn.children()]
    assert all(isinstance(p, MaxPool2dSame) for p in pools)
    assert [(p.kernel, p.stride) for p in pools] == [
        ((2, 4), (2, 4)),
        ((4, 5), (2, 4)),
        ((3, 8), (2, 4)),
        ((4, 8), (4, 8)),
    ]
    pool2, pool3 = pools[1], pools[2]
    ceil2 = nn.MaxPool2d((4, 5), (2, 4), ceil_mode=True)
    ceil3 = nn.MaxPool2d((3, 8), (2, 4), ceil_mode=True)
    assert pool2(torch.zeros(1, 1, 48, 340)).shape[-2:] == (24, 85)
    assert ceil2(torch.zeros(1, 1, 48, 340)).shape[-2:] == (23, 85)
    # Pool 3 pads time 3/4: TF's first window covers frames −3..4, ceil_mode's 0..7.
    ramp = torch.arange(85.0).expand(1, 1, 24, 85).contiguous()
    same, ceil = pool3(ramp), ceil3(ramp)
    assert same.shape[-2:] == (12, 22) and ceil.shape[-2:] == (12, 21)
    assert same[0, 0, 0, 0] == 4 and ceil[0, 0, 0, 0] == 7
    assert same[0, 0, 0, -1] == 84


@pytest.mark.parametrize(
    "variant, frames, final_frames",
    [
        ("original", 1366, 1),  # 341 → 68 → 8 → 1
        ("original", 2000, 1),  # 500 → 100 → 12 → 1
        ("wang2019", 1366, 1),  # 342 → 86 → 22 → 8 → 1
        ("wang2019", 2000, 2),  # 500 → 125 → 32 → 11 → 2
    ],
)
def test_other_clip_lengths_work(variant, frames, final_frames):
    model = build_fcn((1, 96, frames), 10, variant)
    assert model.head[1].in_features == 2048 * final_frames
    assert count_parameters(model) == 17_283_978 + 2048 * (final_frames - 1) * 10
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 96, frames))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_flatten_width_follows_longer_input():
    # 2560 frames → 640 → 128 → 16 → 2: the flatten holds 2048 × 2 features.
    model = build_fcn((1, 96, 2560), 50, "original")
    assert model.head[1].in_features == 4096
    assert count_parameters(model) == 17_365_938 + 2048 * 50


def test_original_minimum_is_derived_from_pools():
    assert original_min_input() == (2 * 4 * 3 * 4, 4 * 5 * 8 * 8) == (96, 1280)
    build_fcn((1, 96, 1280), 10, "original")  # exactly the minimum builds
    with pytest.raises(InputTooShortError, match=r"at least 1280 frames.*got 1279"):
        build_fcn((1, 96, 1279), 10, "original")


def test_original_rejects_short_or_narrow_input():
    with pytest.raises(
        InputTooShortError, match=r"fcn \(original\) needs at least 1280 frames.*got 1000"
    ):
        build_fcn((1, 96, 1000), 50, "original")
    with pytest.raises(InputTooShortError, match=r"at least 96 mel bins.*got 64"):
        build_fcn((1, 64, 1360), 50, "original")


def test_wang2019_takes_short_input_by_same_padding():
    model = build_fcn((1, 96, 1000), 10, "wang2019")
    assert count_parameters(model) == 17_283_978


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="no variant 'paper'"):
        build_fcn(DEFAULT, 50, "paper")
    with pytest.raises(ValueError, match=r"shape \(1, n_mels, frames\)"):
        build_fcn((1, 348_000), 50)


def test_keras_initialisation_applied():
    model = build_fcn(DEFAULT, 16, "wang2019")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            fan_out = (
                m.weight.shape[0] * m.weight[0, 0].numel()
                if m.weight.dim() > 2
                else m.weight.shape[0]
            )
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert m.weight.abs().max() <= bound
            assert m.weight.abs().max() > 0.9 * bound
            assert torch.count_nonzero(m.bias) == 0
        elif isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
            assert m.eps == 1e-3 and m.momentum == 0.01


def test_original_training_steps_reduce_loss():
    torch.manual_seed(0)
    model = build_fcn((1, 96, 1280), 10, "original")
    x = torch.randn(2, 1, 96, 1280)
    y = torch.tensor([3, 7])
    start, end = loss_after_steps(model, x, nn.functional.cross_entropy, y, steps=2)
    assert math.isfinite(start) and end < start


def test_wang2019_training_steps_reduce_loss():
    torch.manual_seed(0)
    model = build_fcn((1, 96, 256), 50, "wang2019")
    x = torch.randn(2, 1, 96, 256)
    y = (torch.rand(2, 50) < 0.1).float()
    start, end = loss_after_steps(
        model, x, nn.functional.binary_cross_entropy_with_logits, y, steps=3
    )
    assert math.isfinite(start) and end < start


def test_plugin_spec_and_build():
    spec = fcn_plugin.SPEC
    assert spec.name == "fcn" and spec.default_variant == "original"
    assert list(spec.variants) == ["original", "wang2019"]
    assert set(spec.tasks) == {MULTILABEL, MULTICLASS}
    assert spec.frontend() == "logmel" and spec.frontend("wang2019") == "logmel"
    assert "ISMIR 2016" in spec.source
    assert fcn_plugin.mcbench_models() == [spec]
    model = spec.create(DEFAULT, 16, task=MULTICLASS, variant="wang2019")
    assert isinstance(model, FCN) and count_parameters(model) == 17_296_272
    assert model.cnn.block2[3].stride == (2, 4)  # wang2019 was built, not the default
    assert isinstance(spec.create([1, 96, 1360], 10, task=MULTILABEL), FCN)
    with pytest.raises(OptionError, match="its options: none"):
        spec.create(DEFAULT, 10, task=MULTILABEL, variant="original", dropout=0.1)
    with pytest.raises(ValueError, match="unknown task"):
        spec.create(DEFAULT, 10, task="regression", variant="original")


def test_registration_module_does_not_import_torch():
    code = "import sys, mcbench_plugins.models.fcn as m; m.mcbench_models(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parameter_groups_cover_every_parameter():
    model = build_fcn(DEFAULT, 10)
    groups = model.parameter_groups()
    assert groups["rnn"] == []
    assert sum(p.numel() for g in groups.values() for p in g) == count_parameters(model)
    assert sum(p.numel() for p in groups["head"]) == 2048 * 10 + 10
