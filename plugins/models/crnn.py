"""Plugin ``crnn``: Choi et al.'s CRNN baseline (ICASSP 2017; models.md §3).

Registration only; the torch code lives in ``impl/crnn.py`` and is imported when a model is
built, so listing plugins stays cheap.
"""

from __future__ import annotations

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, MULTILABEL, ModelSpec

from ._lazy import lazy_build

build = lazy_build("mcbench_plugins.models.impl.crnn:build_crnn")


SPEC = ModelSpec(
    name="crnn",
    summary="4-layer 2-D CNN pooled to one frequency row, then two GRU(32) layers",
    build=build,
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
        "keras_gru": "False: nn.GRU; True: Keras GRU semantics (reset_after=False, hard sigmoid, one bias)",
        "units": "hidden size of both GRUs (default 32)",
        "dropout": "dropout before the output layer (default 0.3)",
        "conv_dropout": "dropout after every pool (default 0.1 for original, 0 for wang2019)",
    },
)


@hookimpl
def mcbench_models():
    return [SPEC]
