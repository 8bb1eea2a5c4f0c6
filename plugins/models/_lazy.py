"""One ``ModelSpec.build`` for the built-in torch models: import the implementation on first build.

The registration modules stay free of torch, so ``mcbench --help`` and the listings stay cheap;
the harness (``ModelSpec.create``) has already checked task, variant and options.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mcbench.plugins import import_string


def lazy_build(target: str) -> Callable[..., Any]:
    """A ``build`` that calls ``"module:function"`` as ``function(input_shape, n_outputs, variant=…, **params)``.

    The task does not change these networks (they return logits). A variant of ``None`` leaves
    the implementation's own default, which is the spec's default variant.
    """

    def build(input_shape: Sequence[int], n_outputs: int, *, task: str | None = None,
              variant: str | None = None, **params: Any) -> Any:
        if variant is not None:
            params["variant"] = variant
        return import_string(target)(tuple(input_shape), n_outputs, **params)

    build.__doc__ = f"``ModelSpec.build``: ``{target}`` (imported on first use), logits ``(B, n_outputs)``."
    return build


def lazy_keras_build(target: str) -> Callable[..., Any]:
    """A ``build`` for the Keras backend: imports TensorFlow quietly
    (:func:`mcbench.keras_learner.load_keras`, which says how to install it when it is missing),
    then calls ``"module:function"`` of ``keras_impl`` like :func:`lazy_build`; returns a
    ``keras.Model`` producing logits."""
    torch_build = lazy_build(target)

    def build(input_shape: Sequence[int], n_outputs: int, *, task: str | None = None,
              variant: str | None = None, **params: Any) -> Any:
        from mcbench.keras_learner import load_keras

        load_keras()
        return torch_build(input_shape, n_outputs, task=task, variant=variant, **params)

    build.__doc__ = (f"``ModelSpec.build`` (Keras): ``{target}`` (imported on first use), logits "
                     "``(B, n_outputs)``.")
    return build
