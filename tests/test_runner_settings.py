"""Which training settings a model's runs get: the protocol's table < the dataset's suggestion
< its per-model suggestion < the user's setting for all models < the user's for that model; and
that a plan is checked (options, parameters, folds, device) before any work."""

from __future__ import annotations

import textwrap

import pytest

from mcbench.plugins import Registry
from mcbench.runner import RunRequest, plan_runs
from mcbench.specs import MULTILABEL, DatasetSpec, OptionError, PluginError, resolve_training

PLUGIN = '''
from mcbench import hookimpl
from mcbench.specs import DatasetSpec, ModelSpec, Option, MULTILABEL

def _never(*a, **k):
    raise AssertionError("planning must not read data or build models")

@hookimpl
def mcbench_models():
    return [ModelSpec(name=n, summary="", build=_never,
                      options={"width": Option(int, 16, "channels"),
                               "deep": Option(bool, False, "two layers")})
            for n in ("cheap", "costly")]

@hookimpl
def mcbench_datasets():
    return [DatasetSpec(name="demo", summary="", task=MULTILABEL, tracks=_never, check=_never,
                        protocols={"fixed": 1, "cv3": 3},
                        train_defaults={"max_epochs": 3, "batch_size": 8},
                        model_train_defaults={"cheap": {"max_epochs": 20}},
                        params={"size": Option(int, 10, "clips"),
                                "workers": Option(int, None, "processes", affects_result=False)})]
'''


@pytest.fixture
def registry(tmp_path):
    (tmp_path / "demo_plugin.py").write_text(textwrap.dedent(PLUGIN))
    return Registry(plugin_dirs=[tmp_path])


def plans(registry, **kw):
    req = RunRequest(models=kw.pop("models", ["cheap", "costly"]), dataset="demo", **kw)
    return {(p.model, p.fold, p.seed): p for p in plan_runs(registry, req)[0]}


def test_dataset_suggestions_per_model(registry):
    got = plans(registry)
    assert got["cheap", None, 0].training["max_epochs"] == 20
    assert got["costly", None, 0].training["max_epochs"] == 3
    assert got["costly", None, 0].training["batch_size"] == 8
    # the rest comes from the paper protocol's table and the TrainConfig defaults
    assert got["costly", None, 0].training["lr_decay"] == 0.9
    assert got["costly", None, 0].training["precision"] == "fp32"


def test_user_settings_win_and_per_model_ones_win_over_common_ones(registry):
    got = plans(registry, training={"max_epochs": 5},
                model_training={"costly": {"max_epochs": 2, "batch_size": 4}})
    assert (got["cheap", None, 0].training["max_epochs"], got["cheap", None, 0].training["batch_size"]) == (5, 8)
    assert (got["costly", None, 0].training["max_epochs"], got["costly", None, 0].training["batch_size"]) == (2, 4)


def test_protocol_table_sits_under_every_suggestion():
    wang = resolve_training("wang2019", {"max_epochs": 3}, owner="t")
    assert (wang["lr_decay"], wang["l2_conv"], wang["max_epochs"]) == (1.0, 0.0, 3)
    assert resolve_training("paper", {}, {"lr_decay": 0.5}, owner="t")["lr_decay"] == 0.5


def test_options_and_params_are_typed_and_defaults_filled(registry):
    got = plans(registry, model_params={"cheap": {"deep": "False", "width": "8"}},
                dataset_params={"workers": "1"})
    assert got["cheap", None, 0].options == {"width": 8, "deep": False}
    assert got["costly", None, 0].options == {"width": 16, "deep": False}
    # decoding workers do not change the data: they stay out of the identity's parameters
    assert got["cheap", None, 0].data_params == {"size": 10}
    explicit = plans(registry, dataset_params={"size": "10"})
    assert explicit["cheap", None, 0].data_params == got["cheap", None, 0].data_params


@pytest.mark.parametrize("kw, message", [
    ({"model_params": {"cheap": {"deep": "maybe"}}}, "option 'deep' got 'maybe'; it takes true or false"),
    ({"model_params": {"cheap": {"widht": "8"}}}, "unknown option 'widht' (did you mean 'width'?)"),
    ({"dataset_params": {"size": "x"}}, "dataset 'demo': option 'size' got 'x'; it takes an integer"),
    ({"folds": [0, 3], "protocol": "cv3"}, "has folds 0..2; got [3]"),
    ({"folds": [1]}, "single fixed split; pick a k-fold protocol with --protocol (cv3)"),
    ({"protocol": "cv9"}, "--protocol 'cv9'"),
    ({"seeds": []}, "--seeds must be at least 1"),
    ({"models": []}, "--models: no model given"),
    ({"variants": {"other": "x"}}, "names model 'other', which is not among the models"),
    ({"training": {"patience": 0}}, "option 'patience' got 0 (below the minimum 1)"),
])
def test_bad_requests_fail_while_planning(registry, kw, message):
    with pytest.raises(OptionError) as info:
        plans(registry, **kw)
    assert message in str(info.value)


def test_k_fold_plans_one_run_per_fold_and_seed(registry):
    got = plans(registry, models=["cheap"], protocol="cv3", seeds=[0, 1])
    assert sorted(got) == [("cheap", f, s) for f in range(3) for s in (0, 1)]


def test_training_suggestion_with_a_flag_name_is_refused_when_the_plugin_registers():
    with pytest.raises(PluginError) as info:
        DatasetSpec(name="bad", summary="", task=MULTILABEL, tracks=print, check=print,
                    train_defaults={"epochs": 2})
    text = str(info.value)
    assert "unknown option 'epochs'" in text and "'max_epochs'" in text
    assert "--epochs sets 'max_epochs'" in text
    assert "workdir" not in text and "epoch_callback" not in text


def test_no_progress_and_workers_reach_a_generating_dataset(tmp_path, capfd):
    """``--no-progress`` hides the generator's bar too; a value the user gave wins."""
    from mcbench.plugins import Registry
    from mcbench.runner import RunRequest, harness_params, load_partition

    spec = Registry().dataset("synthetic")
    quiet = RunRequest(models=["crnn_tf"], dataset="synthetic", progress=False, workers=1,
                       dataset_params={"n_clips": 6, "seconds": 1.0})
    assert harness_params(spec, quiet) == {"progress": False, "workers": 1, "n_clips": 6,
                                           "seconds": 1.0}
    given = RunRequest(models=["crnn_tf"], dataset="synthetic", progress=False,
                       dataset_params={"progress": True})
    assert harness_params(spec, given) == {"progress": True}
    load_partition(spec, tmp_path / "syn", "fixed", None, harness_params(spec, quiet))
    assert "generating" not in capfd.readouterr().err
