"""Model plugin ``timbre_cnn``: Pons et al.'s timbre CNN, "proposed" design (EUSIPCO 2017).

Registration only; the torch code lives in :mod:`mcbench_plugins.models.impl.timbre_cnn` and is
imported when a model is built, so listing plugins does not import torch.
"""

from __future__ import annotations

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, MULTILABEL, Build, ModelSpec

from ._lazy import lazy_build, lazy_keras_build

build = lazy_build("mcbench_plugins.models.impl.timbre_cnn:build_timbre_cnn")
# The Keras build (keras_impl/, the authors' Keras models) imports TensorFlow on first use only.
keras_build = lazy_keras_build("mcbench_plugins.models.keras_impl.timbre_cnn:build_keras_timbre_cnn")


SPEC = ModelSpec(
    name="timbre_cnn",
    summary="Timbre CNN: 12 parallel tall-filter convs (heights x widths 1/3/5/7), temporal conv, dense 100, output",
    builds={"torch": build, "keras": Build(keras_build, variants=("wang2019",))},
    tasks=(MULTILABEL, MULTICLASS),
    variants={
        "original": "Pons' 'proposed' model scaled to 96 mel bins (heights 75/56/19, 92 channels), whole clip",
        "wang2019": "the authors' Keras port (1.ipynb cell 5): 'same' branches with BN, typos kept (84 channels); 1360 frames only",
    },
    input="logmel",
    source=(
        "Pons, Slizovskaia, Gong, Gomez & Serra, 'Timbre analysis of music audio signals with "
        "convolutional neural networks', EUSIPCO 2017; variant wang2019: Wang et al., IJCNN 2019 "
        "(FishInMedi/CRNN-TF)"
    ),
    options={},
)


@hookimpl
def mcbench_models() -> list[ModelSpec]:
    return [SPEC]
