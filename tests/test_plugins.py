"""The plugin system: entry points, local folders, isolation of failures, conflicts, laziness."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from plugin_files import GOOD_MODEL, modules_loaded_by_cli, write

from mcbench.cli import main
from mcbench.plugins import Registry, resolve_model_names
from mcbench.specs import PluginError

BUILTIN_MODELS = {"crnn_tf", "crnn", "fcn", "timbre_cnn", "end_to_end", "mfcc_svm"}
BUILTIN_DATASETS = {"synthetic", "mtat", "fma", "gtzan"}



def test_builtin_plugins_register_through_entry_points():
    reg = Registry()
    assert BUILTIN_MODELS <= set(reg.names("model"))
    assert BUILTIN_DATASETS <= set(reg.names("dataset"))
    assert {"roc_auc", "accuracy"} <= set(reg.names("metric"))
    origins = {p.name: p.origin for p in reg.plugins}
    assert origins["crnn_tf"].startswith("entry point")
    assert all(p.ok for p in reg.plugins), [(p.name, p.error) for p in reg.plugins if not p.ok]


def test_local_folder_plugin_is_picked_up(tmp_path):
    write(tmp_path, "extra_model", GOOD_MODEL.format(name="extra"))
    reg = Registry(plugin_dirs=[tmp_path])
    assert "extra" in reg.names("model")
    assert reg.model("extra").summary == "test model"


def test_plugin_dir_from_environment(tmp_path, monkeypatch):
    write(tmp_path, "env_model", GOOD_MODEL.format(name="from_env"))
    monkeypatch.setenv("MCBENCH_PLUGINS_DIR", str(tmp_path))
    assert "from_env" in Registry().names("model")


def test_plugin_raising_on_import_is_reported_and_others_work(tmp_path):
    write(tmp_path, "broken", "raise RuntimeError('boom at import')\n")
    write(tmp_path, "fine", GOOD_MODEL.format(name="fine"))
    reg = Registry(plugin_dirs=[tmp_path])
    info = {p.name: p for p in reg.plugins}
    assert not info["broken"].ok and "boom at import" in info["broken"].error
    assert "fine" in reg.names("model") and "crnn_tf" in reg.names("model")
    result = CliRunner().invoke(main, ["--plugins-dir", str(tmp_path), "plugins"])
    assert result.exit_code == 0
    assert "FAILED broken" in result.output and "boom at import" in result.output
    assert "ok     crnn_tf" in result.output


def test_hook_that_raises_is_isolated(tmp_path):
    write(tmp_path, "bad_hook", '''
        from mcbench import hookimpl
        @hookimpl
        def mcbench_models():
            raise ValueError("hook exploded")
    ''')
    reg = Registry(plugin_dirs=[tmp_path])
    info = {p.name: p for p in reg.plugins}
    assert "hook exploded" in info["bad_hook"].error
    assert "crnn_tf" in reg.names("model")


def test_wrong_spec_type_is_reported(tmp_path):
    write(tmp_path, "wrong", '''
        from mcbench import hookimpl
        @hookimpl
        def mcbench_models():
            return ["not a spec"]
    ''')
    info = {p.name: p for p in Registry(plugin_dirs=[tmp_path]).plugins}
    assert "expected ModelSpec" in info["wrong"].error


def test_duplicate_names_are_an_error_naming_both(tmp_path):
    write(tmp_path, "first", GOOD_MODEL.format(name="twin"))
    write(tmp_path, "second", GOOD_MODEL.format(name="twin"))
    reg = Registry(plugin_dirs=[tmp_path])
    with pytest.raises(PluginError, match="first and second"):
        reg.model("twin")
    assert "twin" not in [m.name for m in reg.specs("model")]
    result = CliRunner().invoke(main, ["--plugins-dir", str(tmp_path), "plugins"])
    assert "CONFLICT model 'twin' is provided by first and second" in result.output


def test_shadowing_a_builtin_is_a_conflict(tmp_path):
    write(tmp_path, "shadow", GOOD_MODEL.format(name="crnn_tf"))
    with pytest.raises(PluginError, match="crnn_tf and shadow"):
        Registry(plugin_dirs=[tmp_path]).model("crnn_tf")


def test_disable_plugins(monkeypatch, tmp_path):
    write(tmp_path, "first", GOOD_MODEL.format(name="twin"))
    write(tmp_path, "second", GOOD_MODEL.format(name="twin"))
    monkeypatch.setenv("MCBENCH_DISABLE_PLUGINS", "second,fcn")
    reg = Registry(plugin_dirs=[tmp_path])
    assert reg.model("twin").summary == "test model"
    assert "fcn" not in reg.names("model")


def test_unknown_model_lists_available_and_suggests_closest():
    reg = Registry()
    with pytest.raises(PluginError) as err:
        resolve_model_names(reg, "crnn_tf,crn_tf")
    msg = str(err.value)
    assert "unknown model 'crn_tf'" in msg and "Did you mean 'crnn_tf'?" in msg and "timbre_cnn" in msg
    assert resolve_model_names(reg, "all") == sorted(BUILTIN_MODELS)


def test_missing_plugin_folder_is_reported(tmp_path):
    reg = Registry(plugin_dirs=[tmp_path / "nope"])
    assert any("does not exist" in (p.error or "") for p in reg.plugins)
    assert "crnn_tf" in reg.names("model")


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["models"], ["datasets"], ["metrics"],
                                  ["run", "--help"], ["data", "check", "--help"]])
def test_listing_and_help_do_not_import_torch(args):
    assert modules_loaded_by_cli(args, ("torch", "tensorflow", "sklearn", "librosa")) == []


def test_models_command_lists_variants():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "crnn_tf:" in result.output and "variant paper (default)" in result.output
    assert "variant wang2019" in result.output
