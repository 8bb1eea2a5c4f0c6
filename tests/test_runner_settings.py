"""Which training settings a model's runs get: dataset suggestion < its per-model suggestion <
the user's setting for all models < the user's setting for that model."""

from __future__ import annotations

from mcbench.runner import RunRequest, training_settings
from mcbench.specs import MULTILABEL, DatasetSpec


def demo_dataset() -> DatasetSpec:
    return DatasetSpec(
        name="demo", summary="", task=MULTILABEL, tracks=lambda *a, **k: None,
        check=lambda root: None, train_defaults={"max_epochs": 3, "batch_size": 8},
        model_train_defaults={"cheap": {"max_epochs": 20}},
    )


def test_dataset_suggestions_per_model():
    req = RunRequest(models=["cheap", "costly"], dataset="demo")
    assert training_settings(demo_dataset(), req, "cheap") == {"max_epochs": 20, "batch_size": 8}
    assert training_settings(demo_dataset(), req, "costly") == {"max_epochs": 3, "batch_size": 8}


def test_user_settings_win_and_per_model_ones_win_over_common_ones():
    req = RunRequest(models=["cheap", "costly"], dataset="demo", training={"max_epochs": 5},
                     model_training={"costly": {"max_epochs": 2, "batch_size": 4}})
    assert training_settings(demo_dataset(), req, "cheap") == {"max_epochs": 5, "batch_size": 8}
    assert training_settings(demo_dataset(), req, "costly") == {"max_epochs": 2, "batch_size": 4}
