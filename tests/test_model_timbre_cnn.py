"""Timbre CNN (Pons et al., EUSIPCO 2017): parameter counts, branch and stage shapes, input limits,
training."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from mcbench_plugins.models import timbre_cnn as timbre_plugin
from mcbench_plugins.models.impl.layers import InputTooShortError, MaxPool2dSame, count_parameters
from mcbench_plugins.models.impl.timbre_cnn import (
    TimbreCNN,
    build_timbre_cnn,
    original_min_input,
)
from model_checks import loss_after_steps
from torch import nn
from torch.nn import functional as F

from mcbench.specs import MULTICLASS, MULTILABEL, OptionError

DEFAULT = (1, 96, 1360)

# torch notes that an even kernel with padding="same" (the 8×8 conv, Keras-exact) may copy the input.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


@pytest.fixture(scope="module")
def original_run():
    """Branch conv outputs, branch outputs, features, temporal output and logits of one clip."""
    torch.manual_seed(0)
    model = build_timbre_cnn(DEFAULT, 50, "original").eval()
    conv_shapes, branch_shapes = [], []
    hooks = []
    for branch in model.branches:
        hooks.append(
            branch[0].register_forward_hook(lambda m, i, o: conv_shapes.append(tuple(o.shape[1:])))
        )
        hooks.append(
            branch.register_forward_hook(lambda m, i, o: branch_shapes.append(tuple(o.shape[1:])))
        )
    with torch.no_grad():
        features = model.features(torch.randn(1, *DEFAULT))
        temporal_conv = model.temporal[0](features)
        temporal = model.temporal(features)
        out = model.head(temporal)
    for h in hooks:
        h.remove()
    return model, conv_shapes, branch_shapes, features, temporal_conv, temporal, out


@pytest.fixture(scope="module")
def wang2019_run():
    torch.manual_seed(0)
    model = build_timbre_cnn(DEFAULT, 50, "wang2019").eval()
    branch_shapes = []
    hooks = [
        b.register_forward_hook(lambda m, i, o: branch_shapes.append(tuple(o.shape[1:])))
        for b in model.branches
    ]
    with torch.no_grad():
        features = model.features(torch.randn(1, *DEFAULT))
        temporal = model.temporal(features)
        out = model.head(temporal)
    for h in hooks:
        h.remove()
    return model, branch_shapes, features, temporal, out


@pytest.mark.parametrize(
    "variant, n_outputs, expected",
    [
        ("original", 50, 307_101),
        ("original", 16, 303_667),
        ("original", 10, 303_061),
        ("wang2019", 50, 1_823_474),
        ("wang2019", 16, 1_820_040),
        ("wang2019", 10, 1_819_434),
    ],
)
def test_parameter_counts_match_spec(variant, n_outputs, expected):
    assert count_parameters(build_timbre_cnn(DEFAULT, n_outputs, variant)) == expected


def test_original_stage_parameters_match_spec_table():
    model = build_timbre_cnn(DEFAULT, 50, "original")
    assert count_parameters(model.branches) == 12_767
    assert count_parameters(model.temporal) == 23_584
    assert count_parameters(model.head[2]) == 265_700
    assert count_parameters(model.head[-1]) == 5_050
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_original_branches_are_pons_scaled_to_96_bins():
    model = build_timbre_cnn(DEFAULT, 50, "original")
    convs = [b[0] for b in model.branches]
    assert [c.kernel_size for c in convs] == [(h, w) for h in (75, 56, 19) for w in (1, 3, 5, 7)]
    assert [c.out_channels for c in convs] == [10, 6, 3, 3, 15, 10, 5, 5, 15, 10, 5, 5]
    assert [c.padding for c in convs] == [(0, (w - 1) // 2) for _ in range(3) for w in (1, 3, 5, 7)]
    assert all(isinstance(b[1], nn.ELU) for b in model.branches)


def test_original_shapes(original_run):
    model, conv_shapes, branch_shapes, features, temporal_conv, temporal, out = original_run
    heights = [s[1] for s in conv_shapes]
    assert heights == [22] * 4 + [41] * 4 + [78] * 4
    assert all(s[2] == 1360 for s in conv_shapes)  # (w−1)/2 time padding keeps every frame
    assert branch_shapes == [(n, 1, 340) for n in (10, 6, 3, 3, 15, 10, 5, 5, 15, 10, 5, 5)]
    assert features.shape == (1, 92, 340)
    assert temporal_conv.shape == (1, 32, 333)
    assert temporal.shape == (1, 32, 83)
    assert model.head[2].in_features == 2_656
    assert out.shape == (1, 50) and torch.isfinite(out).all()


def test_original_branch_pools_over_all_remaining_rows():
    """A spike anywhere in the 22 rows the h = 75 conv leaves reaches the pooled output."""
    model = build_timbre_cnn(DEFAULT, 50, "original")
    branch = model.branches[0]
    pool = branch[2]
    assert pool.kernel_size == (22, 4)
    x = torch.zeros(1, 10, 22, 1360)
    x[0, 0, 21, 5] = 7.0
    assert pool(x)[0, 0, 0, 1] == 7.0


def test_wang2019_reproduces_the_authors_branches(wang2019_run):
    model, branch_shapes, features, temporal, out = wang2019_run
    convs = [b[0].conv for b in model.branches]
    expected = [
        (96, 1, 10), (96, 3, 6), (96, 5, 3), (96, 7, 3),
        (75, 1, 15), (75, 3, 6), (75, 5, 3), (75, 7, 3),  # 6, 3, 3: the authors' typos
        (25, 1, 15), (25, 3, 10), (25, 5, 5), (25, 7, 5),
    ]  # fmt: skip
    assert [(*c.kernel_size, c.out_channels) for c in convs] == expected
    assert all(
        isinstance(b[1], nn.BatchNorm2d) and isinstance(b[2], nn.ReLU) for b in model.branches
    )
    assert all(isinstance(b[3], MaxPool2dSame) for b in model.branches)
    assert branch_shapes == [(n, 24, 340) for _, _, n in expected]
    assert features.shape == (1, 84, 24, 340)
    assert temporal.shape == (1, 32, 6, 85)
    assert model.head[2].in_features == 16_320
    assert out.shape == (1, 50) and torch.isfinite(out).all()


def test_wang2019_second_conv_pads_three_before_four_after():
    """Conv 8×8 "same" equals an explicit TF pad of 3 before / 4 after and a valid conv."""
    model = build_timbre_cnn(DEFAULT, 10, "wang2019")
    conv = model.temporal[0].conv
    assert conv.kernel_size == (8, 8)
    torch.manual_seed(1)
    x = torch.randn(1, 84, 12, 20)
    with torch.no_grad():
        same = conv(x)
        explicit = F.conv2d(F.pad(x, (3, 4, 3, 4)), conv.weight, conv.bias)
    assert same.shape == (1, 32, 12, 20)
    torch.testing.assert_close(same, explicit)


@pytest.mark.parametrize("frames, flatten", [(1366, 2_656), (1000, 32 * 60), (44, 32)])
def test_original_other_lengths(frames, flatten):
    # 1000 frames: 250 → 243 → 60; 44 (the minimum): 11 → 4 → 1.
    model = build_timbre_cnn((1, 96, frames), 16, "original").eval()
    assert model.head[2].in_features == flatten
    with torch.no_grad():
        out = model(torch.randn(2, 1, 96, frames))
    assert out.shape == (2, 16) and torch.isfinite(out).all()


def test_original_minimum_and_short_input():
    assert original_min_input() == (75, 44)
    with pytest.raises(
        InputTooShortError, match=r"timbre_cnn \(original\) needs at least 44 frames.*got 43"
    ):
        build_timbre_cnn((1, 96, 43), 10)
    with pytest.raises(InputTooShortError, match=r"at least 75 mel bins.*got 64"):
        build_timbre_cnn((1, 64, 1360), 10)


@pytest.mark.parametrize("shape", [(1, 96, 1366), (1, 96, 1000), (1, 128, 1360)])
def test_wang2019_is_defined_for_1360_frames_only(shape):
    with pytest.raises(ValueError, match=r"wang2019\) is defined for input \(1, 96, 1360\) only"):
        build_timbre_cnn(shape, 50, "wang2019")


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="no variant 'pons'"):
        build_timbre_cnn(DEFAULT, 50, "pons")
    with pytest.raises(ValueError, match=r"shape \(1, n_mels, frames\)"):
        build_timbre_cnn((96, 1360), 50)


def test_keras_initialisation_applied():
    for variant in ("original", "wang2019"):
        model = build_timbre_cnn(DEFAULT, 10, variant)
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                receptive = m.weight[0, 0].numel() if m.weight.dim() > 2 else 1
                bound = math.sqrt(6 / ((m.weight.shape[1] + m.weight.shape[0]) * receptive))
                assert bound * 0.9 < m.weight.abs().max() <= bound
                assert torch.count_nonzero(m.bias) == 0


def test_original_training_steps_reduce_loss():
    torch.manual_seed(0)
    model = build_timbre_cnn((1, 96, 200), 50, "original")
    x = torch.randn(4, 1, 96, 200)
    y = (torch.rand(4, 50) < 0.1).float()
    start, end = loss_after_steps(model, x, F.binary_cross_entropy_with_logits, y, steps=5)
    assert math.isfinite(start) and end < start


def test_wang2019_training_steps_reduce_loss():
    torch.manual_seed(0)
    model = build_timbre_cnn(DEFAULT, 10, "wang2019")
    x = torch.randn(2, *DEFAULT)
    y = torch.tensor([1, 8])
    start, end = loss_after_steps(model, x, F.cross_entropy, y, steps=3)
    assert math.isfinite(start) and end < start


def test_plugin_spec_and_build():
    spec = timbre_plugin.SPEC
    assert spec.name == "timbre_cnn" and spec.default_variant == "original"
    assert list(spec.variants) == ["original", "wang2019"]
    assert set(spec.tasks) == {MULTILABEL, MULTICLASS}
    assert spec.frontend() == "logmel" and spec.frontend("wang2019") == "logmel"
    assert "EUSIPCO 2017" in spec.source
    assert timbre_plugin.mcbench_models() == [spec]
    model = spec.create(DEFAULT, 16, task=MULTICLASS, variant="wang2019")
    assert isinstance(model, TimbreCNN) and count_parameters(model) == 1_820_040
    assert count_parameters(spec.create(DEFAULT, 16, task=MULTILABEL)) == 303_667
    with pytest.raises(OptionError, match="its options: none"):
        spec.create(DEFAULT, 10, task=MULTILABEL, variant="original", width=3)
    with pytest.raises(ValueError, match="unknown task"):
        spec.create(DEFAULT, 10, task="ranking", variant="original")


def test_registration_module_does_not_import_torch():
    code = (
        "import sys, mcbench_plugins.models.timbre_cnn as m; m.mcbench_models(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parameter_groups_cover_every_parameter():
    for variant in ("original", "wang2019"):
        model = build_timbre_cnn(DEFAULT, 10, variant)
        groups = model.parameter_groups()
        assert groups["rnn"] == []
        assert sum(p.numel() for g in groups.values() for p in g) == count_parameters(model)
