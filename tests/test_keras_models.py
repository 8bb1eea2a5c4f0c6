"""The Keras builds of the authors' five models (``wang2019``): parameter counts, layer groups,
options, and torch ⇄ Keras weight parity."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras_checks  # noqa: E402

keras_checks.cpu_only()

from keras_checks import PARITY_TOLERANCE, parity  # noqa: E402
from mcbench_plugins.models.impl import crnn as torch_crnn  # noqa: E402
from mcbench_plugins.models.impl import crnn_tf as torch_crnn_tf  # noqa: E402
from mcbench_plugins.models.impl import end_to_end as torch_end_to_end  # noqa: E402
from mcbench_plugins.models.impl import fcn as torch_fcn  # noqa: E402
from mcbench_plugins.models.impl import timbre_cnn as torch_timbre_cnn  # noqa: E402
from mcbench_plugins.models.impl.layers import count_parameters  # noqa: E402
from mcbench_plugins.models.keras_impl import crnn, crnn_tf, end_to_end, fcn, timbre_cnn  # noqa: E402
from mcbench_plugins.models.keras_impl.layers import (  # noqa: E402
    OUTPUT_LAYER,
    TransposedConv2D,
    count_trainable,
    keras,
    keras2_hard_sigmoid,
    keras_layer_groups,
    keras_parameter_groups,
)

DEFAULT = (1, 96, 1360)

BUILDERS = {
    "crnn_tf": crnn_tf.build_keras_crnn_tf,
    "crnn": crnn.build_keras_crnn,
    "fcn": fcn.build_keras_fcn,
    "timbre_cnn": timbre_cnn.build_keras_timbre_cnn,
    "end_to_end": end_to_end.build_keras_end_to_end,
}

# Trainable counts of the authors' Keras models (model.summary() of FishInMedi/CRNN-TF 1.ipynb).
COUNTS = {
    ("crnn_tf", 50): 1_005_426, ("crnn_tf", 16): 1_003_216,
    ("crnn", 50): 393_906, ("crnn", 16): 392_784,
    ("fcn", 50): 17_365_938, ("fcn", 16): 17_296_272,
    ("timbre_cnn", 50): 1_823_474, ("timbre_cnn", 16): 1_820_040,
    ("end_to_end", 50): 1_704_926, ("end_to_end", 16): 1_701_492,
}  # fmt: skip


@pytest.mark.parametrize(("model", "k"), sorted(COUNTS))
def test_trainable_parameters_equal_the_authors_keras_models(model, k):
    built = BUILDERS[model](DEFAULT, k)
    assert count_trainable(built) == COUNTS[model, k]
    assert built.output_shape == (None, k)


@pytest.mark.parametrize(("scans", "count"), [("Ar", 452_818), ("A_rc", 531_762),
                                              ("ABCD_c", 689_650), ("all", 1_005_426)])
def test_crnn_tf_scan_subsets_match_fig5_models(scans, count):
    assert count_trainable(crnn_tf.build_keras_crnn_tf(DEFAULT, 50, scans=scans)) == count


@pytest.mark.parametrize(("k", "count"), [(50, 909_746), (16, 901_008), (10, 899_466)])
def test_crnn_tf_paper_variant_counts(k, count):
    model = crnn_tf.build_keras_crnn_tf(DEFAULT, k, variant="paper")
    assert count_trainable(model) == count
    assert count_trainable(crnn_tf.build_keras_crnn_tf(DEFAULT, 50, variant="paper", raster=True,
                                                       scans="Ar")) == 370_560 + 24_832 + 32 * 50 + 50
    block = model.get_layer("rnn_Ar")
    assert [tuple(w.shape) for w in block.weights] == [(768, 32), (768, 32), (64, 128), (128,),
                                                       (64, 128), (128,)]


def test_pytorch_gru_semantics_count_as_nn_gru():
    # keras_gru=False: reset_after=True with two bias vectors, 3·32 more per GRU than Keras 2.
    assert count_trainable(crnn_tf.build_keras_crnn_tf(DEFAULT, 50, keras_gru=False)) == 1_006_194
    assert count_trainable(crnn.build_keras_crnn(DEFAULT, 50, keras_gru=False)) == 394_098


def test_layer_groups_for_transfer_learning():
    model = crnn_tf.build_keras_crnn_tf(DEFAULT, 50)
    sizes = {g: sum(int(np.prod(v.shape)) for v in vs)
             for g, vs in keras_parameter_groups(model).items()}
    assert sizes == {"cnn": 370_560, "rnn": 8 * 76_896, "head": 64 * 256 + 64 + 64 * 50 + 50}
    assert keras_layer_groups(model)["head"][-1].name == OUTPUT_LAYER
    assert model.get_layer(OUTPUT_LAYER).output.shape[-1] == 50
    cnn_only = fcn.build_keras_fcn((1, 24, 80), 10)
    groups = keras_parameter_groups(cnn_only)
    assert groups["rnn"] == []
    assert sum(int(np.prod(v.shape)) for v in groups["head"]) == 2048 * 10 + 10
    assert sum(len(vs) for vs in groups.values()) == len(cnn_only.trainable_weights)


def test_keras2_hard_sigmoid_is_not_keras3s():
    x = np.array([-3.0, -1.0, 0.0, 1.0, 3.0], dtype=np.float32)
    np.testing.assert_allclose(np.asarray(keras2_hard_sigmoid(x)), [0, 0.3, 0.5, 0.7, 1], atol=1e-7)
    assert float(keras.ops.hard_sigmoid(np.float32(1.0))) == pytest.approx(1 / 6 + 0.5)
    gru = crnn.build_keras_crnn((1, 24, 200), 5).get_layer("rnn_gru1")
    assert gru.cell.reset_after is False and gru.cell.recurrent_activation is keras2_hard_sigmoid


def test_transposed_conv_equals_conv2d():
    x = np.random.default_rng(0).normal(size=(2, 9, 14, 3)).astype(np.float32)
    plain = keras.layers.Conv2D(4, (5, 2), padding="same")
    swapped = TransposedConv2D(4, (5, 2), padding="same")
    plain.build(x.shape)
    swapped.build(x.shape)
    swapped.set_weights(plain.get_weights())
    assert [w.shape for w in swapped.weights] == [(5, 2, 3, 4), (4,)]
    np.testing.assert_allclose(np.asarray(swapped(x)), np.asarray(plain(x)), atol=1e-5)


# --------------------------------------------------------------------------- parity

# (Keras module, torch builder with the matching semantics, input shape for the test). FCN-4's
# "same" ops take any input; (1, 192, 64) ends in a 2×1 map, so the flatten reorder is tested.
# Timbre CNN and End-to-end are defined for (1, 96, 1360) only.
PARITY = {
    "crnn_tf": (crnn_tf, lambda s, k, **o: torch_crnn_tf.build_crnn_tf(
        s, k, variant=o.pop("variant", "wang2019"), keras_gru=o.pop("keras_gru", True), **o),
        (1, 48, 300)),
    "crnn": (crnn, lambda s, k, **o: torch_crnn.build_crnn(
        s, k, variant="wang2019", keras_gru=o.pop("keras_gru", True), **o), (1, 24, 200)),
    "fcn": (fcn, lambda s, k, **o: torch_fcn.build_fcn(s, k, variant="wang2019"), (1, 192, 64)),
    "timbre_cnn": (timbre_cnn, lambda s, k, **o: torch_timbre_cnn.build_timbre_cnn(
        s, k, variant="wang2019"), DEFAULT),
    "end_to_end": (end_to_end, lambda s, k, **o: torch_end_to_end.build_end_to_end(
        s, k, variant="wang2019"), DEFAULT),
}


def _check_parity(model, options=None, k=7):
    impl, torch_build, shape = PARITY[model]
    options = options or {}
    keras_model = BUILDERS[model](shape, k, **options)
    torch_model = torch_build(shape, k, **dict(options))
    assert count_trainable(keras_model) == count_parameters(torch_model)
    to_keras, to_torch, moved = parity(torch_model, keras_model, impl, shape)
    assert to_keras <= PARITY_TOLERANCE, f"{model} torch → Keras: max |Δp| = {to_keras:.3g}"
    assert to_torch <= PARITY_TOLERANCE, f"{model} Keras → torch: max |Δp| = {to_torch:.3g}"
    assert moved > 1e-3, f"{model}: the Keras → torch copy changed nothing (Δ {moved:.3g})"
    print(f"{model} {options}: torch→Keras {to_keras:.2e}, Keras→torch {to_torch:.2e}")


@pytest.mark.parametrize("model", sorted(PARITY))
def test_weights_copied_both_ways_give_the_same_probabilities(model):
    _check_parity(model)


@pytest.mark.parametrize("options", [
    {"keras_gru": False}, {"raster": True, "scans": "B_rc"}, {"scans": "ABCD_c", "units": 5},
    {"variant": "paper"}, {"variant": "paper", "raster": True, "scans": "Dc", "units": 7},
    {"variant": "paper", "cell": "gru", "scans": "A_rc"},
])
def test_crnn_tf_parity_with_options(options):
    _check_parity("crnn_tf", options)


def test_crnn_parity_with_pytorch_gru_semantics():
    _check_parity("crnn", {"keras_gru": False, "units": 6})


def test_copy_refuses_models_built_differently():
    shape = (1, 48, 300)
    keras_model = crnn_tf.build_keras_crnn_tf(shape, 5)
    with pytest.raises(ValueError, match="reset_after"):
        crnn_tf.torch_to_keras(
            torch_crnn_tf.build_crnn_tf(shape, 5, variant="wang2019", keras_gru=False), keras_model)
    with pytest.raises(ValueError, match="no layer 'rnn_Ac'"):
        crnn_tf.torch_to_keras(torch_crnn_tf.build_crnn_tf(
            shape, 5, variant="wang2019", keras_gru=True), crnn_tf.build_keras_crnn_tf(shape, 5, scans="Ar"))


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(("model", "kwargs", "message"), [
    ("crnn_tf", {"variant": "grid"}, "unknown variant 'grid'"),
    ("crnn_tf", {"cell": "grid_lstm"}, "wang2019.*got cell='grid_lstm'"),
    ("crnn_tf", {"variant": "paper", "cell": "lstm"}, "LSTM blocks run on the torch backend"),
    ("crnn_tf", {"dropout": 1.0}, "dropout must be in"),
    ("crnn_tf", {"scans": "Xr"}, "unknown scan"),
    ("crnn", {"variant": "original"}, "variant 'original' has no Keras build"),
    ("crnn", {"conv_dropout": -0.1}, "conv_dropout must be in"),
    ("fcn", {"variant": "original"}, "variant 'original' has no Keras build"),
    ("timbre_cnn", {"variant": "original"}, "variant 'original' has no Keras build"),
    ("end_to_end", {"n_filters": 64}, "n_filters and frame apply to variant 'original'"),
    ("end_to_end", {"variant": "original"}, "variant 'original' has no Keras build"),
])  # fmt: skip
def test_unsupported_options_name_themselves(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        BUILDERS[model](DEFAULT, 10, **kwargs)


@pytest.mark.parametrize("model", ["timbre_cnn", "end_to_end"])
def test_fixed_input_models_reject_other_shapes(model):
    with pytest.raises(ValueError, match=r"\(1, 96, 1360\) only"):
        BUILDERS[model]((1, 96, 1366), 10)


def test_log_mel_shape_is_checked():
    with pytest.raises(ValueError, match=r"\(1, F, T\)"):
        crnn_tf.build_keras_crnn_tf((96, 1360), 10)
    with pytest.raises(ValueError, match="1–96 mel bins"):
        crnn.build_keras_crnn((1, 128, 1360), 10)
