"""Embeddings: the representation a model feeds its output layer.

Plugin contract (torch models)
------------------------------
A torch model plugin gets embeddings in one of two ways:

1. **From its declared head group** (the default). The model declares
   ``parameter_groups() -> {"cnn": [...], "rnn": [...], "head": [...]}`` (the transfer groups
   of the paper's Table III, Sec. V-G). :func:`head_module` finds the module that produces the
   logits: the smallest submodule whose parameters are exactly the ``head`` group. The
   embedding of a clip is the **input of that module**, taken with a forward pre-hook and
   flattened to one vector per clip. For CRNN-TF this is the 256-d concatenation of the eight
   scan outputs, eq. (1) of Wang et al. (IJCNN 2019); for a baseline whose head is a single
   linear layer it is that layer's input. The hook also checks that the module's output is the
   model's output (the logits), so a head group that does not end the network is refused.
2. **From its own method.** A model that declares ``embed(x) -> Tensor`` (``x`` a batch as
   ``forward`` receives it, the result ``(B, D)`` or anything that flattens to it) is asked
   directly, and its parameter groups are not consulted for embeddings. Use this when the
   head group is not one submodule, or when the representation of interest is elsewhere.

Learners that are not torch modules provide ``embed(split) -> (N, D) array`` themselves (the
MFCC + SVM baseline returns its MFCC statistics).

Embeddings are computed in evaluation mode (dropout off, batch norm on running statistics),
without gradients; the model's training mode is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

HEAD_GROUP = "head"


class EmbeddingError(ValueError):
    """A model cannot give embeddings (no head group, no ``embed``, or a head that does not
    produce the logits); the message names the model class and what to declare."""


def _declared_groups(model: nn.Module) -> dict:
    method = getattr(model, "parameter_groups", None)
    if not callable(method):
        raise EmbeddingError(
            f"{type(model).__name__} declares neither parameter_groups() (with a 'head' group: "
            "the parameters of the module that produces the logits) nor embed(x); declare one "
            "of them to get embeddings")
    groups = method()
    if not isinstance(groups, dict) or HEAD_GROUP not in groups:
        raise EmbeddingError(
            f"{type(model).__name__}.parameter_groups() must return a dict with a "
            f"{HEAD_GROUP!r} group, got {type(groups).__name__}"
            + (f" with keys {sorted(groups)}" if isinstance(groups, dict) else ""))
    return groups


def head_module(model: nn.Module) -> nn.Module:
    """The module of ``model`` that produces the logits, from its declared ``head`` group.

    It is the smallest submodule (fewest modules inside it, ``model`` itself included as a
    candidate) whose parameters are exactly the ``head`` group of ``model.parameter_groups()``.
    Raises :class:`EmbeddingError` when the model declares no groups, the head group is empty,
    or no single submodule holds exactly those parameters.
    """
    groups = _declared_groups(model)
    head = {id(p) for p in groups[HEAD_GROUP]}
    if not head:
        raise EmbeddingError(f"{type(model).__name__}: the {HEAD_GROUP!r} parameter group is empty; "
                             "it must hold the parameters of the output layer")
    best: tuple[int, nn.Module] | None = None
    for _, module in model.named_modules():
        if {id(p) for p in module.parameters()} != head:
            continue
        size = sum(1 for _ in module.modules())
        if best is None or size < best[0]:
            best = (size, module)
    if best is None:
        raise EmbeddingError(
            f"{type(model).__name__}: no submodule has exactly the parameters of the "
            f"{HEAD_GROUP!r} group ({len(head)} tensors); make the head one module (e.g. an "
            "nn.Sequential) or declare embed(x)")
    return best[1]


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1) if t.dim() != 2 else t


def embeddings(model: nn.Module, x: torch.Tensor,
               prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Embeddings ``(B, D)`` of the batch ``x`` (module docstring: the two ways).

    ``prepare`` is applied to ``x`` first (a learner's input standardisation). The result is
    float32 on the model's device, computed in evaluation mode without gradients.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if prepare is not None:
                x = prepare(x)
            own = getattr(model, "embed", None)
            if callable(own):
                out = own(x)
                if not isinstance(out, torch.Tensor) or out.dim() < 1 or out.shape[0] != x.shape[0]:
                    raise EmbeddingError(
                        f"{type(model).__name__}.embed(x) must return a tensor with one row per "
                        f"clip ({x.shape[0]}), got "
                        f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
                return _flat(out).float()
            head = head_module(model)
            seen: dict[str, torch.Tensor] = {}

            def before(_module, args):
                if not args or not isinstance(args[0], torch.Tensor):
                    raise EmbeddingError(
                        f"{type(model).__name__}: the head module {type(head).__name__} is not "
                        "called with a tensor as its first argument; declare embed(x)")
                seen["input"] = args[0]

            def after(_module, _args, output):
                seen["output"] = output

            handles = [head.register_forward_pre_hook(before), head.register_forward_hook(after)]
            try:
                logits = model(x)
            finally:
                for h in handles:
                    h.remove()
            if "input" not in seen:
                raise EmbeddingError(
                    f"{type(model).__name__}: the head module {type(head).__name__} was not "
                    "called by forward(); the 'head' group must be the parameters of the module "
                    "that produces the logits")
            out = seen["output"]
            if out is not logits and not (isinstance(out, torch.Tensor) and isinstance(logits, torch.Tensor)
                                          and out.shape == logits.shape and torch.equal(out, logits)):
                raise EmbeddingError(
                    f"{type(model).__name__}: the output of the head module "
                    f"{type(head).__name__} is not the model's output; the 'head' group must be "
                    "the parameters of the module that produces the logits (or declare embed(x))")
            return _flat(seen["input"]).float()
    finally:
        model.train(was_training)
