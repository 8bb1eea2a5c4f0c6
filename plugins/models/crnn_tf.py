"""Plugin ``crnn_tf``: the paper's CRNN-TF (Wang et al., IJCNN 2019; models.md §2).

Registration only; the torch code lives in ``impl/crnn_tf.py`` and is imported when a model is
built, so listing plugins stays cheap.
"""

from __future__ import annotations

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, MULTILABEL, ModelSpec

from ._lazy import lazy_build

build = lazy_build("mcbench_plugins.models.impl.crnn_tf:build_crnn_tf")


SPEC = ModelSpec(
    name="crnn_tf",
    summary="CNN, then 8 row/column scans of its 6×6 map into recurrent blocks (the paper's model)",
    build=build,
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
        "cell": "recurrent block per scan: grid_lstm (paper default), gru (wang2019 default, its only choice), lstm",
        "keras_gru": "False: nn.GRU; True: Keras GRU semantics (reset_after=False, hard sigmoid, one bias)",
        "scans": "all (default), a group A_rc/B_rc/C_rc/D_rc/ABCD_r/ABCD_c, or scans from "
        "Ar,Ac,Br,Bc,Cr,Cc,Dr,Dc (list or comma-separated); kept in eq. (1) order",
        "raster": "False: one map row/column per step (6 × 768); True: one map cell per step (36 × 128)",
        "dropout": "dropout on the concatenated scan outputs (default 0.5)",
        "units": "hidden size of each recurrent block (default 32)",
    },
)


@hookimpl
def mcbench_models():
    return [SPEC]
