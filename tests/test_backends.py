"""The backend as a first-class choice: one build per backend in a model spec, ``mcbench run
--backend torch|keras``, the backends in the listings and in row labels, no TensorFlow import
while listing, and the README's Keras model plugin run through the CLI."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from plugin_files import modules_loaded_by_cli

from mcbench.cli import main
from mcbench.plugins import Registry
from mcbench.specs import Build, ModelSpec, OptionError, PluginError

REPO = Path(__file__).resolve().parents[1]
# FCN's wang2019 variant ('same' pools) and CRNN-TF take short clips: 2 s keeps these fast.
TINY = ["--dataset-param", "n_clips=20", "--dataset-param", "seconds=2.0"]
INSTALL = 'pip install -c constraints.txt -e ".[tensorflow]"'


def _torch_build(*a, **k):
    return "torch-model"


def _keras_build(*a, **k):
    return "keras-model"


def _spec(**kw) -> ModelSpec:
    return ModelSpec(name="m", summary="s", variants={"a": "", "b": ""}, **kw)


# --------------------------------------------------------------------------- the contract


def test_builds_give_backends_and_create_picks_the_chosen_build():
    spec = _spec(builds={"torch": _torch_build, "keras": Build(_keras_build, variants=("b",))})
    assert spec.backends == ("torch", "keras") and spec.backend == "torch"
    assert spec.backends_of("a") == ("torch",) and spec.backends_of("b") == ("torch", "keras")
    assert spec.create((1, 96, 10), 3, task="multilabel", variant="b", backend="keras") == "keras-model"
    assert spec.create((1, 96, 10), 3, task="multilabel", variant="b") == "torch-model"
    # a variant the keras build lacks is refused, naming what it offers and where it runs
    with pytest.raises(OptionError, match=r"variant 'a' has no keras build.*offers variant\(s\) b"
                                          r".*runs on torch"):
        spec.create((1, 96, 10), 3, task="multilabel", variant="a", backend="keras")
    # without --variant a backend gets the first variant its build offers
    assert spec.default_variant_for("keras") == "b" and spec.default_variant_for("torch") == "a"


def test_single_build_form_still_works_for_third_party_plugins():
    spec = _spec(build=_keras_build, backend="keras")
    assert spec.backends == ("keras",) and spec.backend == "keras" and spec.build is _keras_build
    assert _spec(build=_torch_build).backends == ("torch",)
    with pytest.raises(OptionError, match=r"model 'm' has no torch build; its backend\(s\): keras"):
        spec.check_backend("torch", "a", {})


def test_builds_and_build_together_or_neither_are_plugin_errors():
    with pytest.raises(PluginError, match="either build"):
        _spec(build=_torch_build, builds={"keras": _keras_build})
    with pytest.raises(PluginError, match="no build"):
        _spec()
    both = _spec(builds={"torch": _torch_build, "keras": Build(_keras_build, variants=("b",))})
    copy = dataclasses.replace(both, summary="another")  # passes build and builds, consistent
    assert copy.builds == both.builds and copy.backends == ("torch", "keras")
    with pytest.raises(PluginError, match="unknown variant"):
        _spec(builds={"keras": Build(_keras_build, variants=("zz",))})


def test_builtin_models_offer_keras_for_their_wang2019_variants():
    reg = Registry()
    for name in ("crnn_tf", "crnn", "fcn", "timbre_cnn", "end_to_end"):
        spec = reg.model(name)
        assert spec.backends == ("torch", "keras"), name
        assert "keras" in spec.backends_of("wang2019"), name
    assert reg.model("crnn_tf").backends_of("paper") == ("torch", "keras")
    assert reg.model("fcn").backends_of("original") == ("torch",)
    assert reg.model("mfcc_svm").backends == ("sklearn",)


# --------------------------------------------------------------------------- the command line


def _args(tmp_path: Path) -> list[str]:
    return ["--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
            "--results-dir", str(tmp_path / "results"), "--device", "cpu", "--no-progress", *TINY]


@pytest.mark.parametrize("extra, message", [
    (["--models", "fcn", "--backend", "jax"],
     r"model 'fcn' has no jax build; its backend\(s\): torch, keras"),
    (["--models", "fcn", "--variant", "fcn=original", "--backend", "keras"],
     r"variant 'original' has no keras build; the keras build offers variant\(s\) wang2019"),
    (["--models", "crnn_tf", "--param", "crnn_tf.cell=lstm", "--backend", "keras"],
     r"option cell='lstm' has no keras build; the keras build takes cell 'grid_lstm' or 'gru'"),
    (["--models", "crnn_tf", "--backend", "keras", "--init-from", "mtat"],
     r"no finished run of crnn_tf \(paper; keras backend\) on mtat[\s\S]*"
     r"mcbench run --models crnn_tf --dataset mtat --variant crnn_tf=paper --backend keras"),
])
def test_run_refuses_a_missing_backend_variant_or_option_before_any_work(tmp_path, extra, message):
    result = CliRunner().invoke(main, ["run", *extra, *_args(tmp_path)])
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def test_run_backend_keras_without_tensorflow_says_how_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorflow", "keras") else real(name, *a))
    result = CliRunner().invoke(main, ["run", "--models", "crnn_tf", "--backend", "keras",
                                       *_args(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "--backend keras needs tensorflow and keras" in result.output
    assert INSTALL in result.output
    assert not (tmp_path / "data").exists()


def test_models_and_plugins_list_each_models_backends():
    runner = CliRunner()
    models = runner.invoke(main, ["models"]).output
    assert re.search(r"crnn_tf:.*\n    tasks: multilabel, multiclass · backends: torch, keras", models)
    assert "backends: sklearn" in models
    assert re.search(r"variant original \(default\): .*\[input: logmel; backends: torch\]", models)
    assert re.search(r"fcn:[\s\S]*variant wang2019: .*\[input: logmel; backends: torch, keras\]", models)
    assert "keras build: cell grid_lstm or gru only" in models
    plugins = runner.invoke(main, ["plugins"]).output
    assert "models: crnn_tf (torch, keras)" in plugins and "models: mfcc_svm (sklearn)" in plugins


@pytest.mark.parametrize("args", [["--help"], ["models"], ["plugins"], ["datasets"], ["metrics"],
                                  ["run", "--help"]])
def test_listing_and_help_never_import_tensorflow_or_keras(args):
    assert modules_loaded_by_cli(args, ("tensorflow", "keras")) == []


# --------------------------------------------------------------------------- Keras runs


def _records(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text())
            for p in sorted((tmp_path / "results" / "runs" / "synthetic").glob("*.json"))]


def test_run_backend_keras_end_to_end_and_table_names_the_backend(tmp_path):
    pytest.importorskip("keras")
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--models", "crnn_tf,fcn", "--backend", "keras",
                                  "--variant", "crnn_tf=wang2019", "--epochs", "1",
                                  *_args(tmp_path)])
    assert result.exit_code == 0, result.output
    recs = _records(tmp_path)
    assert sorted((r["identity"]["model"]["name"], r["identity"]["model"]["variant"],
                   r["identity"]["model"]["backend"], r["status"]) for r in recs) == [
        ("crnn_tf", "wang2019", "keras", "complete"), ("fcn", "wang2019", "keras", "complete")]
    assert all(len(r["history"]) == 1 and 0.0 <= r["test"]["roc_auc"]["value"] <= 1.0
               for r in recs)
    # the same crnn_tf on torch is another run; the table then names each row's backend
    torch_run = runner.invoke(main, ["run", "--models", "crnn_tf", "--variant", "crnn_tf=wang2019",
                                     "--epochs", "1", *_args(tmp_path)])
    assert torch_run.exit_code == 0, torch_run.output
    backends = sorted(r["identity"]["model"]["backend"] for r in _records(tmp_path)
                      if r["identity"]["model"]["name"] == "crnn_tf")
    assert backends == ["keras", "torch"]
    table = runner.invoke(main, ["table", "--dataset", "synthetic", "--results-dir",
                                 str(tmp_path / "results"), "--format", "plain"])
    assert table.exit_code == 0, table.output
    assert "crnn_tf (wang2019) [backend=keras]" in table.output
    assert "crnn_tf (wang2019) [backend=torch]" in table.output
    assert "fcn (wang2019)" in table.output and "fcn (wang2019) [" not in table.output
    again = runner.invoke(main, ["run", "--models", "fcn", "--backend", "keras", "--epochs", "1",
                                 *_args(tmp_path)])
    assert again.exit_code == 0 and "already complete" in again.output


def readme_keras_plugin_source() -> str:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- keras-plugin-example:start -->")[1].split(
        "<!-- keras-plugin-example:end -->")[0]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


def test_readme_keras_plugin_runs_through_the_cli(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_keras_cnn.py").write_text(readme_keras_plugin_source())
    runner = CliRunner()
    listed = runner.invoke(main, ["--plugins-dir", str(plugins), "models", "my_keras_cnn"])
    assert listed.exit_code == 0 and "backends: keras" in listed.output, listed.output
    refused = runner.invoke(main, ["--plugins-dir", str(plugins), "run", "--models", "my_keras_cnn",
                                   "--backend", "torch", *_args(tmp_path)])
    assert refused.exit_code == 2
    assert "model 'my_keras_cnn' has no torch build; its backend(s): keras" in refused.output
    pytest.importorskip("keras")
    result = runner.invoke(main, ["--plugins-dir", str(plugins), "run", "--models", "my_keras_cnn",
                                  "--epochs", "2", *_args(tmp_path)])
    assert result.exit_code == 0, result.output
    (rec,) = _records(tmp_path)
    assert rec["status"] == "complete" and rec["identity"]["model"]["backend"] == "keras"
    assert rec["identity"]["model"]["options"] == {"width": 16}
    assert len(rec["history"]) == 2 and rec["n_params"] > 0
    auc = rec["test"]["roc_auc"]["value"]
    table = runner.invoke(main, ["table", "--dataset", "synthetic", "--results-dir",
                                 str(tmp_path / "results")])
    assert table.exit_code == 0 and "my_keras_cnn" in table.output and f"{auc:.4f}" in table.output
