"""Plugin authors' mistakes: each one is isolated or refused with a message that names the plugin
and says what to fix, before any work is done (no data generated, no results folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from plugin_files import GOOD_MODEL, write

from mcbench.cli import main
from mcbench.plugins import Registry


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
            "--results-dir", str(tmp_path / "results"), *extra]


def assert_no_work(tmp_path: Path) -> None:
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


# --------------------------------------------------------------------------- SystemExit

ARGPARSE_SCRIPT = '''
import argparse

parser = argparse.ArgumentParser(prog="train_my_model")
parser.add_argument("--epochs", type=int, required=True)
args = parser.parse_args()  # a training script dropped on the plugin path
'''

EXIT_IN_HOOK = '''
import sys
from mcbench import hookimpl

@hookimpl
def mcbench_models():
    sys.exit(3)
'''


@pytest.mark.parametrize("culprit, text, during", [
    ("argparse_script", ARGPARSE_SCRIPT, "SystemExit(2) during import (argparse_script.py:6)"),
    ("exits_in_hook", EXIT_IN_HOOK, "SystemExit(3) in mcbench_models() (exits_in_hook.py:7)"),
])
def test_plugin_raising_system_exit_is_reported_and_the_others_work(tmp_path, culprit, text, during):
    plugins = tmp_path / "plugins"
    write(plugins, culprit, text)
    write(plugins, "fine", GOOD_MODEL.format(name="fine"))
    listing = invoke("--plugins-dir", str(plugins), "plugins")
    assert listing.exit_code == 0, listing.output
    assert f"FAILED {culprit}" in listing.output and during in listing.output
    assert "ok     fine" in listing.output and "ok     crnn_tf" in listing.output
    models = invoke("--plugins-dir", str(plugins), "models")
    assert models.exit_code == 0 and "fine: test model" in models.output and "crnn_tf:" in models.output
    # run gets past plugin loading: the harness's own answer, and a warning naming the culprit
    result = invoke("--plugins-dir", str(plugins), *run_args(tmp_path, "--models", "nope"))
    assert result.exit_code == 2, result.output
    assert "unknown model 'nope'" in result.output
    assert f"warning: plugin {culprit} did not load: SystemExit" in result.output
    assert_no_work(tmp_path)


def test_keyboard_interrupt_in_a_plugin_still_stops_the_command(tmp_path):
    write(tmp_path, "ctrl_c", "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        Registry(plugin_dirs=[tmp_path])


# --------------------------------------------------------------------------- hook return values

DICT_HOOK = '''
from mcbench import hookimpl
from mcbench.specs import ModelSpec

@hookimpl
def mcbench_models():
    return {"dict_model": ModelSpec(name="dict_model", summary="x", build=lambda *a, **k: None)}
'''


def test_hook_returning_a_dict_names_the_plugin_the_hook_and_the_expected_type(tmp_path):
    plugins = tmp_path / "plugins"
    write(plugins, "dicty", DICT_HOOK)
    listing = invoke("--plugins-dir", str(plugins), "plugins")
    assert listing.exit_code == 0
    line = next(x for x in listing.output.splitlines() if x.startswith("FAILED dicty"))
    assert ("plugin 'dicty' (module mcbench_local_plugins.dicty): mcbench_models() returned a "
            "dict (keys 'dict_model'); it must return a list of ModelSpec") in line
    assert "return list(the_dict.values())" in line
    assert "returned str" not in listing.output
    result = invoke("--plugins-dir", str(plugins), *run_args(tmp_path, "--models", "dict_model"))
    assert result.exit_code == 2
    assert "warning: plugin dicty did not load" in result.output and "returned a dict" in result.output
    assert "unknown model 'dict_model'" in result.output
    assert_no_work(tmp_path)


def test_hook_returning_one_spec_without_a_list_is_accepted(tmp_path):
    write(tmp_path, "single", '''
        from mcbench import hookimpl
        from mcbench.specs import ModelSpec

        @hookimpl
        def mcbench_models():
            return ModelSpec(name="single", summary="one spec", build=lambda *a, **k: None)
    ''')
    reg = Registry(plugin_dirs=[tmp_path])
    assert reg.model("single").summary == "one spec"
    assert all(p.ok for p in reg.plugins if p.name == "single")


@pytest.mark.parametrize("returned, expected", [
    ('"fcn"', "mcbench_models() returned a str ('fcn'); it must return a list of ModelSpec"),
    ("42", "mcbench_models() returned an int (42); it must return a list of ModelSpec"),
    ("[DatasetSpec(name='d', summary='x', task='multiclass', tracks=None, check=None)]",
     "item 0 is a DatasetSpec (DatasetSpec(name='d'"),
])
def test_hook_returning_something_else_says_what_came_back(tmp_path, returned, expected):
    write(tmp_path, "odd", f'''
        from mcbench import hookimpl
        from mcbench.specs import DatasetSpec

        @hookimpl
        def mcbench_models():
            return {returned}
    ''')
    info = {p.name: p for p in Registry(plugin_dirs=[tmp_path]).plugins}
    assert info["odd"].error.startswith("plugin 'odd' (module mcbench_local_plugins.odd): ")
    assert expected in info["odd"].error
    if "DatasetSpec" in returned:
        assert "DatasetSpec belongs in mcbench_datasets()" in info["odd"].error


# --------------------------------------------------------------------------- --plugins-dir


def test_missing_plugins_dir_stops_run_before_any_work(tmp_path):
    missing = tmp_path / "nonexistent"
    result = invoke("--plugins-dir", str(missing), *run_args(tmp_path, "--models", "crnn_tf"))
    assert result.exit_code == 2
    assert f"error: --plugins-dir {missing}: the plugin folder does not exist" in result.output
    assert_no_work(tmp_path)
    prepare = invoke("--plugins-dir", str(missing), "data", "prepare", "synthetic",
                     "--data-dir", str(tmp_path / "data"))
    assert prepare.exit_code == 2 and f"--plugins-dir {missing}" in prepare.output
    assert_no_work(tmp_path)


def test_missing_plugins_dir_from_the_environment_is_named(tmp_path, monkeypatch):
    missing = tmp_path / "gone"
    monkeypatch.setenv("MCBENCH_PLUGINS_DIR", str(missing))
    result = invoke(*run_args(tmp_path, "--models", "crnn_tf"))
    assert result.exit_code == 2
    assert f"$MCBENCH_PLUGINS_DIR {missing}: the plugin folder does not exist" in result.output
    assert_no_work(tmp_path)


def test_plugins_dir_that_is_a_file_is_named(tmp_path):
    plugin_file = write(tmp_path, "my_plugin", GOOD_MODEL.format(name="mine"))
    result = invoke("--plugins-dir", str(plugin_file), *run_args(tmp_path, "--models", "mine"))
    assert result.exit_code == 2
    assert f"--plugins-dir {plugin_file}: the plugin folder is not a folder (give the folder" in result.output


def test_missing_plugins_dir_warns_in_listing_commands(tmp_path):
    missing = tmp_path / "nonexistent"
    for command in ("models", "datasets", "metrics"):
        result = invoke("--plugins-dir", str(missing), command)
        assert result.exit_code == 0, result.output
        assert f"warning: --plugins-dir {missing}: the plugin folder does not exist" in result.output
    assert "crnn_tf:" in invoke("--plugins-dir", str(missing), "models").output
