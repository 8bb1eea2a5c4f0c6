"""CRNN-TF (Wang et al., IJCNN 2019, Sec. III) and the shared recurrent blocks.

Parameter counts were checked by building each layer stack; those of ``wang2019`` with the Keras
GRU equal the trainable counts of the Keras summaries in FishInMedi/CRNN-TF ``1.ipynb`` and
``2.ipynb``. The Grid LSTM and the Keras GRU are checked against direct per-equation NumPy
references; the scans against the vertex and direction rules of Sec. III-C.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from mcbench_plugins.models.impl.crnn_tf import (
    SCANS,
    build_crnn_tf,
    cnn_map_size,
    resolve_scans,
    scan_sequence,
)
from mcbench_plugins.models.impl.layers import InputTooShortError, count_parameters
from mcbench_plugins.models.impl.recurrent import (
    GridLSTMBlock,
    KerasGRU,
    SequenceGRU,
    SequenceLSTM,
    hard_sigmoid,
    make_gru,
    make_recurrent,
)
from torch import nn

SHAPE = (1, 96, 1360)


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return build_crnn_tf(SHAPE, 50).eval()


@pytest.fixture(scope="module")
def wang_model():
    torch.manual_seed(0)
    return build_crnn_tf(SHAPE, 50, variant="wang2019").eval()


# --------------------------------------------------------------------------- parameter counts

#: Input 96×1360: (options, counts for K = 50, 16, 10).
COUNTS_BY_OPTIONS = [
    ({}, (909_746, 901_008, 899_466)),
    ({"cell": "gru"}, (999_346, 990_608, 989_066)),
    ({"cell": "gru", "keras_gru": True}, (998_578, 989_840, 988_298)),
    ({"cell": "lstm"}, (1_204_658, 1_195_920, 1_194_378)),
    ({"raster": True}, (582_066, 573_328, 571_786)),
    ({"cell": "gru", "raster": True}, (507_826, 499_088, 497_546)),
    ({"cell": "gru", "raster": True, "keras_gru": True}, (507_058, 498_320, 496_778)),
    ({"cell": "lstm", "raster": True}, (549_298, 540_560, 539_018)),
    ({"variant": "wang2019"}, (1_006_194, 1_003_984, 1_003_594)),
    ({"variant": "wang2019", "keras_gru": True}, (1_005_426, 1_003_216, 1_002_826)),
]


@pytest.mark.parametrize(("options", "counts"), COUNTS_BY_OPTIONS, ids=lambda v: str(v))
def test_parameter_counts_by_options(options, counts):
    for k, expected in zip((50, 16, 10), counts, strict=True):
        assert count_parameters(build_crnn_tf(SHAPE, k, **options)) == expected


def test_parameter_counts_unchanged_for_1366_frames():
    assert count_parameters(build_crnn_tf((1, 96, 1366), 50)) == 909_746
    assert count_parameters(build_crnn_tf((1, 96, 1366), 50, variant="wang2019")) == 1_006_194


#: Fig. 5 scan subsets (K = 50): scans -> (paper grid_lstm, wang2019 nn.GRU, wang2019 Keras GRU).
COUNTS_BY_SCANS = {
    "Ar": (438_002, 452_914, 452_818),
    "A_rc": (505_394, 531_954, 531_762),
    "ABCD_r": (640_178, 690_034, 689_650),
    "all": (909_746, 1_006_194, 1_005_426),
}
#: Other subsets of the same sizes must give the same counts.
SAME_SIZE = {
    "Ar": ["Bc", "Dc", ["Cr"]],
    "A_rc": ["D_rc", "Ar,Dc"],
    "ABCD_r": ["ABCD_c", "Ar,Bc,Cr,Dc"],
}


@pytest.mark.parametrize("scans", list(COUNTS_BY_SCANS))
def test_parameter_counts_by_number_of_scans(scans):
    paper, wang, wang_keras = COUNTS_BY_SCANS[scans]
    for subset in [scans, *SAME_SIZE.get(scans, [])]:
        assert count_parameters(build_crnn_tf(SHAPE, 50, scans=subset)) == paper
        assert count_parameters(build_crnn_tf(SHAPE, 50, variant="wang2019", scans=subset)) == wang
        keras = build_crnn_tf(SHAPE, 50, variant="wang2019", scans=subset, keras_gru=True)
        assert count_parameters(keras) == wang_keras
    # Keras "Total" also counts BN's moving mean and variance: 2 × (64 + 3·128) = 896.
    bn_stats = sum(
        b.numel() for n, b in keras.named_buffers() if n.endswith(("running_mean", "running_var"))
    )
    assert bn_stats == 896


def test_block_parameter_counts_section_2_4():
    assert count_parameters(GridLSTMBlock(768, 32)) == 65_792
    assert count_parameters(GridLSTMBlock(128, 32)) == 24_832
    assert count_parameters(KerasGRU(768, 32)) == 76_896
    assert count_parameters(KerasGRU(128, 32)) == 15_456
    assert count_parameters(make_gru(768, 32)) == 76_992
    assert count_parameters(make_gru(128, 32)) == 15_552
    assert count_parameters(make_recurrent("lstm", 768, 32)) == 102_656
    assert count_parameters(make_recurrent("lstm", 128, 32)) == 20_736
    assert isinstance(make_recurrent("gru", 10, 4, keras_gru=True), KerasGRU)
    assert isinstance(make_recurrent("gru", 10, 4), nn.GRU)
    assert isinstance(make_recurrent("lstm", 10, 4), nn.LSTM)
    with pytest.raises(ValueError, match="grid_lstm"):
        make_recurrent("rnn", 10, 4)


# --------------------------------------------------------------------------- CNN map


@pytest.mark.parametrize("frames", [1360, 1366])
def test_cnn_map_is_128x6x6(paper_model, frames):
    with torch.no_grad():
        m = paper_model.cnn(torch.randn(1, 1, 96, frames))
    assert tuple(m.shape) == (1, 128, 6, 6)
    assert cnn_map_size(96, frames) == (6, 6)


@pytest.mark.parametrize(
    ("freq", "frames", "expected"), [(96, 200, (6, 1)), (40, 1, (3, 1)), (96, 257, (6, 2))]
)
def test_cnn_map_size_matches_the_network_for_other_sizes(paper_model, freq, frames, expected):
    assert cnn_map_size(freq, frames) == expected
    with torch.no_grad():
        m = paper_model.cnn(torch.randn(1, 1, freq, frames))
    assert tuple(m.shape[-2:]) == expected


# --------------------------------------------------------------------------- scans (Sec. III-C)

#: The eight scans of a 6×6 map: scan -> (step axis, order of steps, order of cells in a step).
FWD, REV = list(range(6)), list(range(5, -1, -1))
SCAN_TABLE = {
    "Ar": ("F", FWD, FWD),
    "Ac": ("T", FWD, FWD),
    "Br": ("F", FWD, REV),
    "Bc": ("T", REV, FWD),
    "Cr": ("F", REV, FWD),
    "Cc": ("T", FWD, REV),
    "Dr": ("F", REV, REV),
    "Dc": ("T", REV, REV),
}
N_CH = 3


def _labelled_map(n_freq=6, n_time=6):
    """Map whose cell (c, f, t) holds 100·f + 10·t + c, so every value names its cell."""
    f = torch.arange(n_freq).view(1, 1, -1, 1)
    t = torch.arange(n_time).view(1, 1, 1, -1)
    c = torch.arange(N_CH).view(1, -1, 1, 1)
    return (100 * f + 10 * t + c).double()


def _cell(f, t):
    return [100 * f + 10 * t + c for c in range(N_CH)]


@pytest.mark.parametrize("scan", SCANS)
def test_scan_construction_matches_scan_table(scan):
    axis, steps, cells = SCAN_TABLE[scan]
    expected = []
    for s in steps:
        row = []
        for e in cells:
            row += _cell(s, e) if axis == "F" else _cell(e, s)
        expected.append(row)
    seq = scan_sequence(_labelled_map(), scan)
    assert seq.shape == (1, 6, 6 * N_CH)
    assert seq[0].tolist() == expected

    raster = scan_sequence(_labelled_map(), scan, raster=True)
    assert raster.shape == (1, 36, N_CH)
    # step index = outer·6 + inner: the same cells in the same order, one per step
    assert raster[0].reshape(6, 6 * N_CH).tolist() == expected


def test_scan_examples_from_the_paper_on_a_non_square_map():
    m = _labelled_map(n_freq=3, n_time=5)  # f 0..2, t 0..4
    ar, cc, dr = (scan_sequence(m, s)[0] for s in ("Ar", "Cc", "Dr"))
    # A_r: top-down (low to high frequency), left to right
    assert ar[0].tolist() == sum((_cell(0, t) for t in range(5)), [])
    assert ar[-1].tolist() == sum((_cell(2, t) for t in range(5)), [])
    # C_c: bottom-up (from the highest band), left to right, column-wise
    assert cc.shape == (5, 3 * N_CH)
    assert cc[0].tolist() == sum((_cell(f, 0) for f in (2, 1, 0)), [])
    assert cc[-1].tolist() == sum((_cell(f, 4) for f in (2, 1, 0)), [])
    # D_r: from the highest band, right to left
    assert dr[0].tolist() == sum((_cell(2, t) for t in (4, 3, 2, 1, 0)), [])
    assert dr[-1].tolist() == sum((_cell(0, t) for t in (4, 3, 2, 1, 0)), [])
    raster_dc = scan_sequence(m, "Dc", raster=True)[0]
    assert raster_dc[0].tolist() == _cell(2, 4) and raster_dc[1].tolist() == _cell(1, 4)
    assert raster_dc[-1].tolist() == _cell(0, 0)


def test_resolve_scans_groups_order_and_errors():
    assert resolve_scans("all") == SCANS
    assert resolve_scans("A_rc") == ("Ar", "Ac")
    assert resolve_scans("ABCD_c") == ("Ac", "Bc", "Cc", "Dc")
    assert resolve_scans("Dc, Ar,Bc") == ("Ar", "Bc", "Dc")  # eq. (1) order, not the given one
    assert resolve_scans(["Dr", "cc", "Dr"]) == ("Cc", "Dr")
    assert resolve_scans("D_rc,A_rc") == ("Ar", "Ac", "Dr", "Dc")
    with pytest.raises(ValueError, match="ABCD_r") as err:
        resolve_scans("Er")
    assert "Dc" in str(err.value)
    with pytest.raises(ValueError):
        resolve_scans([])
    with pytest.raises(ValueError):
        build_crnn_tf(SHAPE, 10, scans="Ar,Xq")


def test_subset_concatenation_follows_eq_1_order():
    torch.manual_seed(1)
    model = build_crnn_tf((1, 32, 80), 4, scans="Dc,Ar,Bc").eval()
    assert model.scans == ("Ar", "Bc", "Dc") and list(model.rnn) == ["Ar", "Bc", "Dc"]
    captured = {}
    model.head.register_forward_hook(lambda mod, args, out: captured.update(y=args[0]))
    x = torch.randn(2, 1, 32, 80)
    with torch.no_grad():
        model(x)
        m = model.cnn(x)
        for i, s in enumerate(("Ar", "Bc", "Dc")):
            expected = model.rnn[s](scan_sequence(m, s))
            torch.testing.assert_close(captured["y"][:, 32 * i : 32 * (i + 1)], expected)


# --------------------------------------------------------------------------- Grid LSTM


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _tf_lstm(inputs, c_prev, h_prev, kernel, bias, forget_bias):
    """TF1 ``LSTMCell`` (no peepholes), one sample: gates [i, j, f, o] of ``[inputs, h] @ kernel``."""
    n = c_prev.shape[0]
    z = np.concatenate([inputs, h_prev]) @ kernel + bias
    i, j, f, o = z[:n], z[n : 2 * n], z[2 * n : 3 * n], z[3 * n :]
    c = _sigmoid(f + forget_bias) * c_prev + _sigmoid(i) * np.tanh(j)
    h = _sigmoid(o) * np.tanh(c)
    return c, h


def grid2lstm_reference(x, project_m, project_c, time_kernel, time_bias, depth_kernel, depth_bias):
    """TF1 ``Grid2LSTMCell`` run by ``dynamic_rnn``, written as TF's code does it, one sample at a time.

    Dimension 0 is depth (input, output, priority), dimension 1 is time. TF keeps the state of
    both; the input projection overwrites dimension 0's at every step; the non-priority dimension
    (time) is propagated first, then the priority one (depth), whose "previous output" is the new
    time output.
    """
    batch, steps, _ = x.shape
    n = project_m.shape[1]
    outputs = []
    for b in range(batch):
        c, m = [np.zeros(n), np.zeros(n)], [np.zeros(n), np.zeros(n)]
        for t in range(steps):
            m[0], c[0] = x[b, t] @ project_m, x[b, t] @ project_c
            new_c, new_m = [None, None], [None, None]
            new_c[1], new_m[1] = _tf_lstm(m[0], c[1], m[1], time_kernel, time_bias, 1.0)
            new_c[0], new_m[0] = _tf_lstm(m[0], c[0], new_m[1], depth_kernel, depth_bias, 1.0)
            c, m = new_c, new_m
            out = new_m[0]
        outputs.append(out)
    return np.stack(outputs)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_grid_lstm_matches_per_equation_reference(steps):
    rng = np.random.default_rng(steps)
    d, n, batch = 7, 4, 3
    weights = dict(
        project_m=rng.normal(0, 0.5, (d, n)),
        project_c=rng.normal(0, 0.5, (d, n)),
        time_kernel=rng.normal(0, 0.5, (2 * n, 4 * n)),
        time_bias=rng.normal(0, 0.3, 4 * n),
        depth_kernel=rng.normal(0, 0.5, (2 * n, 4 * n)),
        depth_bias=rng.normal(0, 0.3, 4 * n),
    )
    x = rng.normal(0, 1, (batch, steps, d))
    block = GridLSTMBlock(d, n).double()
    block.load_tf_weights(**weights)
    got = block(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, grid2lstm_reference(x, **weights), rtol=1e-10, atol=1e-12)
    assert got.shape == (batch, n) and np.abs(got).max() > 1e-3


def test_grid_lstm_keras_init_and_gradients():
    torch.manual_seed(0)
    block = GridLSTMBlock(768, 32)
    limit = (6 / (768 + 32)) ** 0.5
    assert block.project_m.abs().max() <= limit and block.project_m.abs().max() > 0.9 * limit
    assert torch.all(block.time_bias == 0) and torch.all(block.depth_bias == 0)
    assert GridLSTMBlock.l2_group == "recurrent"
    block(torch.randn(2, 6, 768)).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------- Keras GRU


def keras_gru_reference(x, kernel, recurrent_kernel, bias, activation=None):
    """Keras 2 ``GRU`` (reset_after=False), step by step in NumPy, Keras weight layout."""
    gate = activation or (lambda a: np.clip(0.2 * a + 0.5, 0.0, 1.0))
    n = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], n))
    states = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        x_z = xt @ kernel[:, :n] + bias[:n]
        x_r = xt @ kernel[:, n : 2 * n] + bias[n : 2 * n]
        x_h = xt @ kernel[:, 2 * n :] + bias[2 * n :]
        z = gate(x_z + h @ recurrent_kernel[:, :n])
        r = gate(x_r + h @ recurrent_kernel[:, n : 2 * n])
        hh = np.tanh(x_h + (r * h) @ recurrent_kernel[:, 2 * n :])
        h = z * h + (1 - z) * hh
        states.append(h)
    return np.stack(states, axis=1)


def _keras_weights(rng, d, n, scale=0.4):
    return dict(
        kernel=rng.normal(0, scale, (d, 3 * n)),
        recurrent_kernel=rng.normal(0, scale, (n, 3 * n)),
        bias=rng.normal(0, scale, 3 * n),
    )


def test_hard_sigmoid_values():
    a = torch.tensor([-10.0, -2.5, -1.0, 0.0, 1.0, 2.5, 10.0])
    torch.testing.assert_close(hard_sigmoid(a), torch.tensor([0.0, 0.0, 0.3, 0.5, 0.7, 1.0, 1.0]))


def test_keras_gru_matches_numpy_reference():
    rng = np.random.default_rng(0)
    d, n, batch, steps = 6, 5, 3, 7
    w = _keras_weights(rng, d, n)
    x = rng.normal(0, 1, (batch, steps, d))
    expected = keras_gru_reference(x, **w)
    for return_sequences in (False, True):
        gru = KerasGRU(d, n, return_sequences=return_sequences).double()
        gru.load_keras_weights(**w)
        got = gru(torch.from_numpy(x)).detach().numpy()
        want = expected if return_sequences else expected[:, -1]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_keras_gru_uses_hard_sigmoid_in_saturation():
    rng = np.random.default_rng(1)
    d, n = 4, 6
    w = _keras_weights(rng, d, n, scale=2.0)  # large pre-activations: many gates clip to 0 or 1
    x = rng.normal(0, 1, (2, 5, d))
    gru = KerasGRU(d, n).double()
    gru.load_keras_weights(**w)
    got = gru(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, keras_gru_reference(x, **w)[:, -1], rtol=1e-10, atol=1e-12)
    logistic = keras_gru_reference(x, **w, activation=_sigmoid)[:, -1]
    assert np.abs(got - logistic).max() > 1e-2


def test_keras_gru_init_and_layout():
    torch.manual_seed(0)
    gru = KerasGRU(768, 32)
    w_hh = gru.weight_hh.detach()  # (3n, n): orthogonal over the stacked matrix
    torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(32), atol=1e-5, rtol=0)
    assert torch.all(gru.bias == 0)
    assert gru.weight_ih.abs().max() <= (6 / (768 + 96)) ** 0.5


def test_sequence_wrappers_return_last_state_or_sequence():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    for cls, base in ((SequenceGRU, nn.GRU), (SequenceLSTM, nn.LSTM)):
        seq = cls(3, 4, return_sequences=True)
        last = cls(3, 4)
        last.load_state_dict(seq.state_dict())
        out, _ = base.forward(seq, x)
        torch.testing.assert_close(seq(x), out)
        torch.testing.assert_close(last(x), out[:, -1])


# --------------------------------------------------------------------------- whole model


def test_forward_1360_and_1366_gives_finite_logits(paper_model, wang_model):
    for model in (paper_model, wang_model):
        for frames in (1360, 1366):
            with torch.no_grad():
                y = model(torch.randn(2, 1, 96, frames))
            assert y.shape == (2, 50) and torch.isfinite(y).all()
    assert paper_model.map_size == (6, 6)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"cell": "gru"},
        {"cell": "lstm"},
        {"raster": True},
        {"variant": "wang2019", "keras_gru": True},
    ],
    ids=str,
)
def test_forward_short_clip(options):
    torch.manual_seed(0)
    model = build_crnn_tf((1, 96, 200), 16, **options).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, 96, 200))
    assert y.shape == (2, 16) and torch.isfinite(y).all()
    # the map is 6×1: row scans read 128-d steps, column scans one 768-d step
    if not options.get("raster"):
        assert model.rnn["Ar"](torch.zeros(1, 6, 128)).shape == (1, 32)
        assert model.rnn["Ac"](torch.zeros(1, 1, 768)).shape == (1, 32)


def test_single_frame_input_works():
    model = build_crnn_tf((1, 96, 1), 10).eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 1, 96, 1))).all()


def test_errors(paper_model):
    with pytest.raises(ValueError, match="cell='gru'"):
        build_crnn_tf(SHAPE, 50, variant="wang2019", cell="grid_lstm")
    with pytest.raises(ValueError, match="GRU"):
        build_crnn_tf(SHAPE, 50, variant="wang2019", cell="lstm")
    with pytest.raises(ValueError, match="paper"):
        build_crnn_tf(SHAPE, 50, variant="fancy")
    with pytest.raises(ValueError, match="grid_lstm"):
        build_crnn_tf(SHAPE, 50, cell="rnn")
    with pytest.raises(InputTooShortError, match="frames"):
        build_crnn_tf((1, 96, 0), 50)
    with pytest.raises(ValueError, match=r"\(1, F, T\)"):
        build_crnn_tf((96, 1360), 50)
    with pytest.raises(ValueError, match="built for"):
        paper_model(torch.randn(1, 1, 96, 200))


def test_keras_init_applied(paper_model):
    head = paper_model.head[-1]
    assert torch.all(head.bias == 0)
    assert head.weight.abs().max() <= (6 / (256 + 50)) ** 0.5
    for block in paper_model.rnn.values():
        assert isinstance(block, GridLSTMBlock) and torch.all(block.time_bias == 0)
    bn = paper_model.cnn[0][1]
    assert bn.eps == 1e-3 and bn.momentum == 0.01 and torch.all(bn.weight == 1)


@pytest.mark.parametrize("variant", ["paper", "wang2019"])
def test_a_few_gradient_steps_reduce_the_loss(variant):
    torch.manual_seed(0)
    model = build_crnn_tf((1, 32, 48), 5, variant=variant, dropout=0.0)
    x = torch.randn(4, 1, 32, 48)
    target = (torch.rand(4, 5) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    losses = []
    for _ in range(8):
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


# --------------------------------------------------------------------------- plugin


def test_plugin_spec_and_build():
    from mcbench.plugins import Registry

    spec = Registry().model("crnn_tf")
    assert spec.default_variant == "paper" and list(spec.variants) == ["paper", "wang2019"]
    assert set(spec.tasks) == {"multilabel", "multiclass"} and spec.frontend() == "logmel"
    assert {"cell", "keras_gru", "scans", "raster", "dropout", "units"} <= set(spec.options)
    model = spec.create(SHAPE, 16, task="multiclass", variant="wang2019", keras_gru=True)
    assert count_parameters(model) == 1_003_216
    assert count_parameters(spec.create(SHAPE, 10, task="multilabel", variant="paper")) == 899_466


def test_plugin_module_does_not_import_torch():
    code = "import sys, mcbench_plugins.models.crnn_tf; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
