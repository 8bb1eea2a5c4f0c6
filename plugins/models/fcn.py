"""Model plugin ``fcn``: Choi et al.'s FCN-4 (Choi, Fazekas & Sandler, ISMIR 2016).

Registration only; the torch code lives in :mod:`mcbench_plugins.models.impl.fcn` and is imported
when a model is built, so listing plugins does not import torch.
"""

from __future__ import annotations

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, MULTILABEL, Build, ModelSpec

from ._lazy import lazy_build, lazy_keras_build

build = lazy_build("mcbench_plugins.models.impl.fcn:build_fcn")
# The Keras build (keras_impl/, the authors' Keras models) imports TensorFlow on first use only.
keras_build = lazy_keras_build("mcbench_plugins.models.keras_impl.fcn:build_keras_fcn")


SPEC = ModelSpec(
    name="fcn",
    summary="FCN-4: four 3x3 conv blocks (128-384-768-2048) with BN, ReLU, max-pool and dropout, then a linear output",
    builds={"torch": build, "keras": Build(keras_build, variants=("wang2019",))},
    tasks=(MULTILABEL, MULTICLASS),
    variants={
        "original": "Choi's FCN-4 with non-overlapping floor pools (needs >= 1280 frames and 96 mel bins)",
        "wang2019": "the authors' Keras port (1.ipynb cell 3): overlapping 'same' pools and a stride-3 conv 4",
    },
    input="logmel",
    source=(
        "Choi, Fazekas & Sandler, 'Automatic tagging using deep convolutional neural networks', "
        "ISMIR 2016; variant wang2019: Wang et al., IJCNN 2019 (FishInMedi/CRNN-TF)"
    ),
    options={},
)


@hookimpl
def mcbench_models() -> list[ModelSpec]:
    return [SPEC]
