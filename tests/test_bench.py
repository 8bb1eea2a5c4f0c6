"""``mcbench.compute`` (MACs per clip) and ``mcbench bench`` (throughput, memory, reports)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mcbench import compute
from mcbench.plugins import Registry

REGISTRY = Registry()


# --------------------------------------------------------------------------- MACs


def test_count_macs_matches_a_hand_count_of_conv_and_linear():
    # Conv 2->4, 3x3, 'same' padding on (2, 8, 6): every one of the 4*8*6 outputs is a sum of
    # 3*3*2 products -> 192 * 18 = 3456 MACs. Linear 192 -> 5: 960. Total 4416.
    module = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(192, 5))
    assert compute.count_macs(module, (2, 8, 6)) == 3456 + 960
    # per clip, whatever the batch
    assert compute.count_macs(module, (2, 8, 6), batch=3) == 4416
    # a stride-2 conv without padding: (8-3)//2+1 = 3 by (6-3)//2+1 = 2 outputs per channel
    strided = nn.Conv2d(2, 4, 3, stride=2)
    assert compute.count_macs(strided, (2, 8, 6)) == 4 * 3 * 2 * 3 * 3 * 2


def test_count_macs_restores_the_training_flag():
    module = nn.Sequential(nn.Linear(3, 2))
    module.train()
    assert compute.count_macs(module, (3,)) == 6
    assert module.training


def test_fcn_wang2019_macs_equal_the_sum_over_its_layers():
    # FCN-4 wang2019 on the paper's 96 x 1360 log-mel (shapes in the module docstring of
    # plugins/models/impl/fcn.py), out-size x k*k x c_in x c_out per conv:
    conv1 = 96 * 1360 * 9 * 1 * 128       # 'same' conv on the input
    conv2 = 48 * 340 * 9 * 128 * 384      # after pool (2,4)
    conv3 = 24 * 85 * 9 * 384 * 768       # after pool (4,5)/(2,4) 'same'
    conv4 = 4 * 8 * 9 * 768 * 2048        # stride-3 'same' conv on 12 x 22
    head = 2048 * 50
    expected = conv1 + conv2 + conv3 + conv4 + head
    assert expected == 13_237_522_432
    assert compute.macs_per_clip(REGISTRY.model("fcn"), "wang2019") == expected
    # original: same parameters, no stride-3 conv and floor pools: 33 % fewer MACs
    original = compute.macs_per_clip("fcn", "original")
    assert original == 96 * 1360 * 9 * 128 + 48 * 340 * 9 * 128 * 384 + 12 * 68 * 9 * 384 * 768 \
        + 4 * 8 * 9 * 768 * 2048 + 2048 * 50
    assert 1.3 < expected / original < 1.35


def test_macs_are_cached_and_none_for_a_non_torch_model():
    spec = REGISTRY.model("fcn")
    compute.macs_per_clip(spec, "wang2019")
    assert ("fcn", "wang2019", 50, "multilabel", (1, 96, 1360)) in compute._CACHE
    assert compute.macs_per_clip(REGISTRY.model("mfcc_svm"), "default", 10, "multiclass") is None
    assert compute.train_macs_per_clip(None) is None
    assert compute.train_macs_per_clip(10) == 30


def test_macs_of_a_small_input_shape():
    # the recurrent models are counted too, through the matrix products of their cells
    macs = compute.macs_per_clip("crnn_tf", "wang2019", input_shape=(1, 96, 160))
    full = compute.macs_per_clip("crnn_tf", "wang2019")
    assert macs is not None and full is not None
    assert 0 < macs < full
