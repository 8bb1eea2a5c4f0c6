"""Model plugin ``end_to_end``: Dieleman & Schrauwen's raw-waveform CNN (ICASSP 2014).

Registration only; the torch code lives in :mod:`mcbench_plugins.models.impl.end_to_end` and is
imported when a model is built, so listing plugins does not import torch. The ``original``
variant reads the waveform front end, ``wang2019`` the log-mel one.
"""

from __future__ import annotations

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, MULTILABEL, Build, ModelSpec, Option

from ._lazy import lazy_build, lazy_keras_build

build = lazy_build("mcbench_plugins.models.impl.end_to_end:build_end_to_end")
# The Keras build (keras_impl/, the authors' Keras models) imports TensorFlow on first use only.
keras_build = lazy_keras_build("mcbench_plugins.models.keras_impl.end_to_end:build_keras_end_to_end")


SPEC = ModelSpec(
    name="end_to_end",
    summary="End-to-end: strided Conv1d filterbank on the raw waveform, two Conv1d 32x8 + pool 4, dense 100, output",
    builds={"torch": build, "keras": Build(keras_build, variants=("wang2019",))},
    tasks=(MULTILABEL, MULTICLASS),
    variants={
        "original": "Dieleman & Schrauwen's raw-waveform model on 12 kHz audio (1, S)",
        "wang2019": "the authors' 'End-to-end' (1.ipynb cell 7): a 2-D CNN on log-mel, 1360 frames only",
    },
    input={"original": "waveform", "wang2019": "logmel"},
    source=(
        "Dieleman & Schrauwen, 'End-to-end learning for music audio', ICASSP 2014; "
        "variant wang2019: Wang et al., IJCNN 2019 (FishInMedi/CRNN-TF)"
    ),
    options={
        "n_filters": Option(int, 128, "filters of the strided waveform convolution", minimum=1,
                            variants=("original",)),
        "frame": Option(int, 256, "length and stride of the strided waveform convolution, in "
                        "samples", minimum=1, variants=("original",)),
    },
)


@hookimpl
def mcbench_models() -> list[ModelSpec]:
    return [SPEC]
