"""Plugin ``crnn_tf``: the paper's CRNN-TF (Wang et al., IJCNN 2019, Sec. III).

Registration only; the torch code lives in ``impl/crnn_tf.py`` and is imported when a model is
built, so listing plugins stays cheap.
"""

from __future__ import annotations

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, MULTILABEL, Build, ModelSpec, Option

from ._lazy import lazy_build, lazy_keras_build
from .impl.scans import resolve_scans

#: The recurrent blocks ``impl.recurrent.make_recurrent`` builds (a test keeps the two equal).
CELLS = ("grid_lstm", "gru", "lstm")

build = lazy_build("mcbench_plugins.models.impl.crnn_tf:build_crnn_tf")
# The Keras build (keras_impl/, the authors' Keras models) imports TensorFlow on first use only.
keras_build = lazy_keras_build("mcbench_plugins.models.keras_impl.crnn_tf:build_keras_crnn_tf")


SPEC = ModelSpec(
    name="crnn_tf",
    summary="CNN, then 8 row/column scans of its 6×6 map into recurrent blocks (the paper's model)",
    builds={"torch": build, "keras": Build(keras_build, choices={"cell": ("grid_lstm", "gru")})},
    tasks=(MULTILABEL, MULTICLASS),
    variants={
        "paper": "as the paper's text: Grid LSTM blocks (32 units), dropout 0.5, linear output",
        "wang2019": "authors' notebooks: 8 × GRU(32), dropout 0.5, Dense-64 ELU, output",
    },
    input="logmel",
    source=(
        "Wang et al., 'Music Classification using an Improved CRNN with Multi-Directional Spatial "
        "Dependencies in Both Time and Frequency Dimensions', IJCNN 2019"
    ),
    options={
        "cell": Option(str, variant_defaults={"paper": "grid_lstm", "wang2019": "gru"},
                       choices=CELLS, help="recurrent block per scan (wang2019 takes gru only)"),
        "keras_gru": Option(bool, False, "GRUs with Keras semantics (reset_after=False, Keras "
                            "2's hard sigmoid 0.2x+0.5, one bias) instead of torch's nn.GRU"),
        "scans": Option(str, ("all",), multiple=True, normalize=resolve_scans,
                        help="all, a Fig. 5 group (A_rc, B_rc, C_rc, D_rc, ABCD_r, ABCD_c) or "
                             "scans from Ar,Ac,Br,Bc,Cr,Cc,Dr,Dc; kept in eq. (1) order"),
        "raster": Option(bool, False, "one map cell per step (36 x 128) instead of one "
                         "row/column per step (6 x 768)"),
        "dropout": Option(float, 0.5, "dropout on the concatenated scan outputs",
                          minimum=0.0, maximum=0.999),
        "units": Option(int, 32, "hidden size of each recurrent block", minimum=1),
    },
)


@hookimpl
def mcbench_models():
    return [SPEC]
