"""``mcbench plugins validate`` on Keras model plugins: the README's example passes; a model whose
output ignores its input, or that has no trainable weights, fails with a message saying so; the
learning check's floor is the loss of the best input-independent prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner
from plugin_files import write
from test_backends import readme_keras_plugin_source

from mcbench.cli import main
from mcbench.specs import MULTICLASS, MULTILABEL
from mcbench.validate import KERAS_FRACTION, constant_prediction_loss

pytest.importorskip("tensorflow")

import keras_checks  # noqa: E402

keras_checks.cpu_only()

#: A Keras plugin whose logits are a learned constant: the input is multiplied by zero.
DEAF = '''
from mcbench import hookimpl
from mcbench.specs import ModelSpec


def build(input_shape, n_outputs, *, task, variant, **params):
    from mcbench.keras_learner import load_keras

    keras = load_keras()
    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Lambda(lambda t: t * 0.0)(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs)(x))


@hookimpl
def mcbench_models():
    return [ModelSpec(name="deaf_keras", summary="ignores its input", build=build,
                      backend="keras", tasks=("multilabel",))]
'''

#: A Keras plugin without trainable weights: fixed average pooling, then a frozen Dense layer.
FROZEN = '''
from mcbench import hookimpl
from mcbench.specs import ModelSpec


def build(input_shape, n_outputs, *, task, variant, **params):
    from mcbench.keras_learner import load_keras

    keras = load_keras()
    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.GlobalAveragePooling2D(data_format="channels_first")(inputs)
    out = keras.layers.Dense(n_outputs, trainable=False)(x)
    return keras.Model(inputs, out)


@hookimpl
def mcbench_models():
    return [ModelSpec(name="frozen_keras", summary="nothing to train", build=build,
                      backend="keras", tasks=("multilabel",))]
'''


def _validate(folder, name):
    return CliRunner().invoke(main, ["--plugins-dir", str(folder), "plugins", "validate", name])


def test_readme_keras_plugin_passes_validate(tmp_path):
    (tmp_path / "my_keras_cnn.py").write_text(readme_keras_plugin_source())
    result = _validate(tmp_path, "my_keras_cnn")
    assert result.exit_code == 0, result.output
    assert "[FAIL]" not in result.output
    assert result.output.count("training steps on 10 fixed clips fit them") == 2  # both tasks
    assert "OK: the plugin honours the contract" in result.output


def test_a_keras_model_that_ignores_its_input_fails_validate(tmp_path):
    write(tmp_path, "deaf_keras", DEAF)
    result = _validate(tmp_path, "deaf_keras")
    assert result.exit_code != 0, result.output
    line = next(ln for ln in result.output.splitlines() if "fixed clips fit them" in ln)
    assert line.lstrip().startswith("[FAIL]"), result.output
    assert "the output does not depend on the input" in line
    # the loss it reached is at best the constant prediction's, far above the goal
    after, goal = (float(v) for v in
                   (line.split("→ ")[1].split(",")[0], line.split("below ")[1].split(" ")[0]))
    assert after >= goal


def test_a_keras_model_without_trainable_weights_fails_validate(tmp_path):
    write(tmp_path, "frozen_keras", FROZEN)
    result = _validate(tmp_path, "frozen_keras")
    assert result.exit_code != 0, result.output
    assert "[FAIL] the model has trainable weights" in result.output
    assert "has no trainable weights, so it cannot learn" in result.output


def test_the_floor_is_the_entropy_of_the_label_frequencies():
    one_hot = np.eye(5, dtype=np.float32)[np.arange(10) % 5]
    p = 0.2
    assert constant_prediction_loss(one_hot, MULTILABEL) == pytest.approx(
        -(p * math.log(p) + (1 - p) * math.log(1 - p)))
    assert constant_prediction_loss(np.arange(10) % 5, MULTICLASS) == pytest.approx(math.log(5))
    assert constant_prediction_loss(np.zeros(4, dtype=np.int64), MULTICLASS) == pytest.approx(0.0)
    assert 0 < KERAS_FRACTION < 1
