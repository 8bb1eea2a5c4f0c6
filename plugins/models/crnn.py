"""Plugin ``crnn``: Choi et al.'s CRNN baseline (Choi, Fazekas, Sandler & Cho, ICASSP 2017).

Registration only; the torch code lives in ``impl/crnn.py`` and is imported when a model is
built, so listing plugins stays cheap.
"""

from __future__ import annotations

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, MULTILABEL, Build, ModelSpec, Option

from ._lazy import lazy_build, lazy_keras_build

build = lazy_build("mcbench_plugins.models.impl.crnn:build_crnn")
# The Keras build (keras_impl/, the authors' Keras models) imports TensorFlow on first use only.
keras_build = lazy_keras_build("mcbench_plugins.models.keras_impl.crnn:build_keras_crnn")


SPEC = ModelSpec(
    name="crnn",
    summary="4-layer 2-D CNN pooled to one frequency row, then two GRU(32) layers",
    builds={"torch": build, "keras": Build(keras_build, variants=("wang2019",))},
    tasks=(MULTILABEL, MULTICLASS),
    variants={
        "original": "Choi's reference: time padded to a multiple of 96, input BN per mel bin, ELU, floor pools, dropout 0.1",
        "wang2019": "authors' notebook: no pad or input BN, ReLU, 'same' pools, no dropout in the CNN",
    },
    input="logmel",
    source=(
        "Choi, Fazekas, Sandler & Cho, 'Convolutional Recurrent Neural Networks for Music "
        "Classification', ICASSP 2017 (keunwoochoi/music-auto_tagging-keras music_tagger_crnn.py)"
    ),
    options={
        "keras_gru": Option(bool, False, "GRUs with Keras semantics (reset_after=False, Keras "
                            "2's hard sigmoid 0.2x+0.5, one bias) instead of torch's nn.GRU"),
        "units": Option(int, 32, "hidden size of both GRUs", minimum=1),
        "dropout": Option(float, 0.3, "dropout before the output layer", minimum=0.0, maximum=0.999),
        "conv_dropout": Option(float, variant_defaults={"original": 0.1, "wang2019": 0.0},
                               help="dropout after every pool", minimum=0.0, maximum=0.999),
    },
)


@hookimpl
def mcbench_models():
    return [SPEC]
