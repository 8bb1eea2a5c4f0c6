"""Shared building blocks: Keras-equivalent layers (TF "same" padding, Keras batch norm) and
Keras/TF1 default initialisation."""

from __future__ import annotations

import pytest
import torch
from mcbench_plugins.models.impl.layers import (
    MaxPool2dSame,
    conv_block,
    keras_init_,
    orthogonal_stacked_,
    tf_same_pads,
)


@pytest.mark.parametrize("n,k,s,pads", [(85, 4, 4, (1, 2)), (22, 4, 4, (1, 1)), (1366, 4, 4, (1, 1)),
                                         (48, 4, 2, (1, 1)), (340, 5, 4, (0, 1)), (24, 3, 2, (0, 1)),
                                         (85, 8, 4, (3, 4)), (12, 3, 3, (0, 0)), (22, 3, 3, (1, 1))])
def test_tf_same_rule_worked_pads(n, k, s, pads):
    assert tf_same_pads(n, k, s) == pads


def test_same_pool_windows_start_before_the_first_cell():
    x = torch.arange(85.0).reshape(1, 1, 1, 85)
    out = MaxPool2dSame((1, 4))(x)
    assert out.shape[-1] == 22
    assert out[0, 0, 0, 0].item() == 2.0  # TF's first window covers columns -1..2
    ceil = torch.nn.MaxPool2d((1, 4), ceil_mode=True)(x)
    assert ceil[0, 0, 0, 0].item() == 3.0


@pytest.mark.parametrize("shape", [(96, 32), (16, 40), (384, 128)])
def test_orthogonal_init_is_orthogonal_and_seeded(shape):
    torch.manual_seed(0)
    a = orthogonal_stacked_(torch.empty(*shape))
    torch.manual_seed(0)
    b = orthogonal_stacked_(torch.empty(*shape))
    assert torch.equal(a, b)
    small = min(shape)
    gram = a.T @ a if shape[0] >= shape[1] else a @ a.T
    torch.testing.assert_close(gram, torch.eye(small), atol=1e-5, rtol=0)


def test_keras_init_and_bn_settings():
    block = keras_init_(conv_block(1, 8, activation="elu", pool=(2, 4)))
    conv, bn = block[0].conv, block[1]
    assert torch.all(conv.bias == 0) and bn.eps == 1e-3 and bn.momentum == 0.01
    limit = (6 / (9 * 1 + 9 * 8)) ** 0.5  # Glorot uniform for a 3x3 kernel, 1 → 8 channels
    assert conv.weight.abs().max() <= limit
    assert block(torch.zeros(2, 1, 96, 100)).shape == (2, 8, 48, 25)
