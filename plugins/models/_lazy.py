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
