"""Model plugin ``timbre_cnn``: Pons et al.'s timbre CNN, "proposed" design (models.md §5).

Registration only; the torch code lives in :mod:`mcbench_plugins.models.impl.timbre_cnn` and is
imported when a model is built, so listing plugins does not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcbench import hookimpl
from mcbench.specs import MULTICLASS, MULTILABEL, ModelSpec


def build(
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    task: str | None = None,
    variant: str | None = None,
    **params: Any,
) -> Any:
    """``ModelSpec.build``: an ``nn.Module`` returning logits ``(B, n_outputs)``.

    The architecture is the same for both tasks. The harness checks task, variant and options
    (``ModelSpec.create``) before calling this.
    """
    from .impl.timbre_cnn import build_timbre_cnn

    return build_timbre_cnn(tuple(input_shape), n_outputs, variant=variant or SPEC.default_variant)


SPEC = ModelSpec(
    name="timbre_cnn",
    summary="Timbre CNN: 12 parallel tall-filter convs (heights x widths 1/3/5/7), temporal conv, dense 100, output",
    build=build,
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
