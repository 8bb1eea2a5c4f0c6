"""Compute cost of a model: multiply-accumulates (MACs) of one forward pass of one clip.

Counted with :class:`torch.utils.flop_counter.FlopCounterMode` on one forward pass (evaluation
mode, no gradients) of a batch of one zero clip of the model's front-end input shape
(log-mel ``(1, 96, 1360)``, waveform ``(1, 348000)`` by default), halved: FlopCounterMode counts
a multiply-accumulate as two floating-point operations. Only matrix products and convolutions
are counted (``mm``, ``addmm``, ``bmm``, convolutions, attention), the operations that dominate
these models; element-wise work (batch norm, activations, pooling) is not, as in the usual
MAC figures of convolutional networks. Recurrent layers are counted through the matrix products
they run (``nn.GRU``/``nn.LSTM`` on CPU decompose into them).

One training step costs about three forward passes (forward, then gradients of the inputs and of
the weights), so training MACs per clip are ``3 × macs_per_clip`` (:func:`train_macs_per_clip`).

Models that are not torch modules (a scikit-learn learner such as ``mfcc_svm``) have no count:
:func:`macs_per_clip` returns ``None``. The count is the torch build's; a Keras build of the same
variant runs the same layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: (model name, variant, n_outputs, task, input shape) -> MACs; building FCN-4 and running one
#: clip through it costs about half a second on a laptop CPU, so each is counted once.
_CACHE: dict[tuple, int | None] = {}

#: A training step's cost in forward passes: forward, input gradients, weight gradients.
TRAIN_FORWARD_PASSES = 3


def count_macs(module: Any, input_shape: Sequence[int], *, batch: int = 1) -> int:
    """MACs of one forward pass of ``module`` on a zero batch of ``batch`` inputs of
    ``input_shape`` (batch axis excluded), divided by ``batch``; evaluation mode, no gradients,
    on the module's own device and dtype. The module's training flag is restored."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(batch, *tuple(input_shape), device=device, dtype=dtype)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops()) // 2 // batch


def input_shape_of(model_spec: Any, variant: str) -> tuple[int, ...]:
    """The per-clip input shape of ``model_spec``'s front end for ``variant`` (default settings)."""
    from .features import FrontEnd

    return FrontEnd(model_spec.frontend(variant)).shape


def macs_per_clip(model_spec: Any, variant: str, n_outputs: int = 50, task: str = "multilabel",
                  *, input_shape: Sequence[int] | None = None) -> int | None:
    """Multiply-accumulates of one forward pass of one clip of ``model_spec`` (a
    :class:`~mcbench.specs.ModelSpec`, or a model name looked up in the plugin registry).

    ``input_shape`` (batch axis excluded) defaults to the model's front-end shape for
    ``variant``. ``None`` when the model's default build is not a torch module (e.g. the
    scikit-learn ``mfcc_svm``). A task the model does not support is replaced by its first
    one (the task changes only the output layer). Cached per (model, variant, outputs, task,
    shape).
    """
    if isinstance(model_spec, str):
        from .plugins import Registry

        model_spec = Registry().model(model_spec)
    variant = variant or model_spec.default_variant
    shape = tuple(input_shape) if input_shape is not None else input_shape_of(model_spec, variant)
    if task not in model_spec.tasks:
        task = model_spec.tasks[0]
    key = (model_spec.name, variant, int(n_outputs), task, shape)
    if key in _CACHE:
        return _CACHE[key]
    if "torch" not in model_spec.backends_of(variant):
        _CACHE[key] = None
        return None
    import torch

    model = model_spec.create(shape, n_outputs, task=task, variant=variant, backend="torch")
    macs = count_macs(model, shape) if isinstance(model, torch.nn.Module) else None
    _CACHE[key] = macs
    return macs


def train_macs_per_clip(macs: int | None) -> int | None:
    """MACs of one training step per clip, ``3 × macs`` (forward, input and weight gradients)."""
    return None if macs is None else TRAIN_FORWARD_PASSES * macs
