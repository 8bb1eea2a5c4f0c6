"""Typed plugin options: command-line text is converted by the declared type, wrong values are
refused naming the option, and plugins' own declaration mistakes are caught at registration."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcbench.plugins import Registry
from mcbench.specs import ModelSpec, Option, OptionError, PluginError, resolve_options


@pytest.mark.parametrize("text, value", [
    ("true", True), ("True", True), ("1", True), ("yes", True),
    ("false", False), ("False", False), ("0", False), ("no", False), (False, False), (1, True),
])
def test_booleans_never_use_the_truthiness_of_a_string(text, value):
    assert Option(bool, False).parse(text, "flag", "m") is value


@pytest.mark.parametrize("kind, text, value", [
    (int, "12", 12), (int, 3, 3), (float, "1e-3", 0.001), (float, 2, 2.0), (str, "gru", "gru"),
    (Path, "a/b", Path("a/b")),
])
def test_scalars(kind, text, value):
    assert Option(kind, None).parse(text, "x", "m") == value


@pytest.mark.parametrize("kind, text", [
    (int, "2.5"), (int, True), (int, "x"), (float, "nan"), (float, "inf"), (float, True), (bool, "maybe"),
    (bool, 2),
])
def test_wrong_values_name_the_option_and_what_it_takes(kind, text):
    with pytest.raises(OptionError) as info:
        Option(kind, None, "help").parse(text, "size", "dataset 'd'")
    assert str(info.value).startswith(f"dataset 'd': option 'size' got {text!r}; it takes")


def test_lists_choices_bounds_and_unions():
    assert Option(float, (1.0,), multiple=True).parse("0.6, 0.2,0.2", "s", "m") == (0.6, 0.2, 0.2)
    assert Option(str, (), multiple=True).parse(["a", "b"], "s", "m") == ("a", "b")
    gamma = Option((float, str), "scale", choices=("scale", "auto"), minimum=1e-12)
    assert gamma.parse("0.5", "g", "m") == 0.5 and gamma.parse("auto", "g", "m") == "auto"
    with pytest.raises(OptionError, match="one of 'scale', 'auto' or a number"):
        gamma.parse("wide", "g", "m")
    with pytest.raises(OptionError, match="below the minimum"):
        Option(int, 1, minimum=1).parse("0", "n", "m")
    with pytest.raises(OptionError, match="one of 0, 1, 2"):
        Option(int, 1, choices=(0, 1, 2)).parse("3", "n", "m")


def test_variant_defaults_and_variant_only_options():
    declared = {"cell": Option(str, variant_defaults={"a": "x", "b": "y"}),
                "frame": Option(int, 256, variants=("a",))}
    assert resolve_options(declared, {}, "m", variant="a") == {"cell": "x", "frame": 256}
    assert resolve_options(declared, {}, "m", variant="b") == {"cell": "y"}
    with pytest.raises(OptionError, match="applies to variant"):
        resolve_options(declared, {"frame": "128"}, "m", variant="b")


def test_normalize_canonicalises_equal_settings():
    reg = Registry()
    spec = reg.model("crnn_tf")
    all8 = spec.resolve_options("paper", {"scans": "Dc,Dr,Cc,Cr,Bc,Br,Ac,Ar"})["scans"]
    assert all8 == spec.resolve_options("paper", {})["scans"] == spec.resolve_options(
        "paper", {"scans": "all"})["scans"]
    with pytest.raises(OptionError, match="option 'scans': unknown scan 'Er'"):
        spec.resolve_options("paper", {"scans": "Er"})


def test_keras_gru_false_from_the_command_line_builds_torch_grus():
    """`--param crnn_tf.keras_gru=False` used to stay the truthy string "False"."""
    torch = pytest.importorskip("torch")  # noqa: F841
    spec = Registry().model("crnn_tf")
    model = spec.create((1, 96, 1360), 50, task="multilabel", variant="wang2019",
                        keras_gru="False", raster="False")
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n == 1_006_194  # nn.GRU blocks, row/column steps (raster mode with Keras GRUs: 513,906)
    keras = spec.create((1, 96, 1360), 50, task="multilabel", variant="wang2019", keras_gru="True")
    assert n != sum(p.numel() for p in keras.parameters() if p.requires_grad)
    plain = spec.create((1, 96, 1360), 50, task="multilabel", variant="wang2019")
    assert n == sum(p.numel() for p in plain.parameters() if p.requires_grad)


def test_registration_refuses_untyped_or_self_contradicting_options():
    with pytest.raises(PluginError, match="must be declared as mcbench.specs.Option"):
        ModelSpec(name="m", summary="", build=print, options={"width": "channels"})
    with pytest.raises(PluginError, match="declared default does not fit"):
        ModelSpec(name="m", summary="", build=print, options={"width": Option(int, "wide")})
    with pytest.raises(PluginError, match="unknown variant"):
        ModelSpec(name="m", summary="", build=print, options={"w": Option(int, 1, variants=("x",))})


def test_the_cell_choices_match_the_recurrent_blocks_the_model_builds():
    pytest.importorskip("torch")
    from mcbench_plugins.models import crnn_tf
    from mcbench_plugins.models.impl.recurrent import RECURRENT_CELLS

    assert crnn_tf.CELLS == RECURRENT_CELLS
