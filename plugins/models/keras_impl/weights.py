"""Weight copying between the torch ports and the Keras builds, layer by layer.

A model module lists its layer pairs ``(torch module, Keras layer name, kind)``; :func:`copy_weights`
copies every pair in either direction and refuses a pair list that leaves any torch parameter,
torch batch-norm statistic or Keras weight uncopied (two models built with different options).

Layout rules (PyTorch ↔ Keras):

* ``conv2d``: weight ``(O, I, kh, kw)`` ↔ kernel ``(kh, kw, I, O)``; ``conv1d``: ``(O, I, k)`` ↔
  ``(k, I, O)``.
* ``dense``: weight ``(out, in)`` ↔ kernel ``(in, out)``. After a flatten, PyTorch reads the map
  as ``(C, F, T)`` and Keras as ``(F, T, C)``; ``flatten_from=(C, F, T)`` reorders the rows.
* ``batchnorm``: weight, bias, running mean, running variance ↔ γ, β, moving mean, moving
  variance.
* ``gru_keras2``: :class:`~mcbench_plugins.models.impl.recurrent.KerasGRU` ↔ ``GRU(reset_after=
  False)``: both stack the gates [z, r, h]; weights are transposed, the one bias is shared.
* ``grid_lstm``: the torch port's ``GridLSTMBlock`` (PyTorch layout, (out, in)) ↔ the Keras
  ``GridLSTMBlock`` (TF1's layout, (in, out)): projections and kernels are transposed.
* ``gru_torch``: ``nn.GRU`` (gates [r, z, n], biases ``bias_ih``/``bias_hh``) ↔ ``GRU(reset_after=
  True)`` (gates [z, r, h], bias rows [input, recurrent]): the first two gate blocks swap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LayerPair:
    """One torch module and the Keras layer holding the same weights."""

    torch_module: object
    keras_name: str
    kind: str
    #: ``(C, F, T)`` of the flattened map in front of a dense layer, else ``None``.
    flatten_from: tuple[int, ...] | None = None


def _swap_first_two_gates(a: np.ndarray, axis: int) -> np.ndarray:
    """[r, z, n] ↔ [z, r, h] along ``axis`` (three equal blocks)."""
    first, second, third = np.split(a, 3, axis=axis)
    return np.concatenate([second, first, third], axis=axis)


def _dense_to_keras(weight: np.ndarray, flatten_from) -> np.ndarray:
    if flatten_from is None:
        return weight.T
    out = weight.shape[0]
    return weight.reshape(out, *flatten_from).transpose(2, 3, 1, 0).reshape(-1, out)


def _dense_to_torch(kernel: np.ndarray, flatten_from) -> np.ndarray:
    if flatten_from is None:
        return kernel.T
    c, f, t = flatten_from
    out = kernel.shape[1]
    return kernel.reshape(f, t, c, out).transpose(3, 2, 0, 1).reshape(out, -1)


# For each kind: (torch tensor names in Keras weight order, to_keras, to_torch). ``to_keras`` maps
# the torch arrays (in that order) to the Keras weights; ``to_torch`` does the reverse.
_Convert = Callable[[list[np.ndarray], LayerPair], list[np.ndarray]]
KINDS: dict[str, tuple[tuple[str, ...], _Convert, _Convert]] = {
    "conv2d": (
        ("weight", "bias"),
        lambda w, p: [w[0].transpose(2, 3, 1, 0), w[1]],
        lambda k, p: [k[0].transpose(3, 2, 0, 1), k[1]],
    ),
    "conv1d": (
        ("weight", "bias"),
        lambda w, p: [w[0].transpose(2, 1, 0), w[1]],
        lambda k, p: [k[0].transpose(2, 1, 0), k[1]],
    ),
    "dense": (
        ("weight", "bias"),
        lambda w, p: [_dense_to_keras(w[0], p.flatten_from), w[1]],
        lambda k, p: [_dense_to_torch(k[0], p.flatten_from), k[1]],
    ),
    "batchnorm": (
        ("weight", "bias", "running_mean", "running_var"),
        lambda w, p: list(w),
        lambda k, p: list(k),
    ),
    "gru_keras2": (
        ("weight_ih", "weight_hh", "bias"),
        lambda w, p: [w[0].T, w[1].T, w[2]],
        lambda k, p: [k[0].T, k[1].T, k[2]],
    ),
    "grid_lstm": (
        ("project_m", "project_c", "time_kernel", "time_bias", "depth_kernel", "depth_bias"),
        lambda w, p: [w[0].T, w[1].T, w[2].T, w[3], w[4].T, w[5]],
        lambda k, p: [k[0].T, k[1].T, k[2].T, k[3], k[4].T, k[5]],
    ),
    "gru_torch": (
        ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
        lambda w, p: [
            _swap_first_two_gates(w[0], 0).T,
            _swap_first_two_gates(w[1], 0).T,
            np.stack([_swap_first_two_gates(w[2], 0), _swap_first_two_gates(w[3], 0)]),
        ],
        lambda k, p: [
            _swap_first_two_gates(k[0].T, 0),
            _swap_first_two_gates(k[1].T, 0),
            _swap_first_two_gates(k[2][0], 0),
            _swap_first_two_gates(k[2][1], 0),
        ],
    ),
}


def recurrent_kind(module) -> str:
    """``grid_lstm`` for the torch port's ``GridLSTMBlock``, ``gru_keras2`` for its ``KerasGRU``,
    ``gru_torch`` for ``nn.GRU``."""
    from mcbench_plugins.models.impl.recurrent import GridLSTMBlock, KerasGRU
    from torch import nn

    if isinstance(module, GridLSTMBlock):
        return "grid_lstm"
    if isinstance(module, KerasGRU):
        return "gru_keras2"
    if isinstance(module, nn.GRU):
        return "gru_torch"
    raise TypeError(f"no Keras twin for the recurrent block {type(module).__name__}")


def conv_block_pairs(block, name: str) -> list[LayerPair]:
    """The conv and batch-norm pairs of one torch ``conv_block`` and its Keras twin ``name``."""
    from torch import nn

    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != 1 or len(norms) > 1:
        raise ValueError(f"{name}: expected one Conv2d and at most one BatchNorm2d in {block}")
    pairs = [LayerPair(convs[0], f"{name}_conv", "conv2d")]
    if norms:
        pairs.append(LayerPair(norms[0], f"{name}_bn", "batchnorm"))
    return pairs


def linear_layers(module) -> list:
    """The ``nn.Linear`` modules of ``module`` in definition order."""
    from torch import nn

    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _keras_layer(keras_model, name: str):
    try:
        return keras_model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"Keras model {keras_model.name!r} has no layer {name!r}; build the torch and Keras "
            f"models with the same variant and options"
        ) from None


def _check_coverage(torch_module, keras_model, pairs: Sequence[LayerPair]) -> None:
    torch_covered = {id(getattr(p.torch_module, n)) for p in pairs for n in KINDS[p.kind][0]}
    torch_all = {
        name: t
        for name, t in list(torch_module.named_parameters()) + list(torch_module.named_buffers())
        if not name.endswith("num_batches_tracked")
    }
    missed = [name for name, t in torch_all.items() if id(t) not in torch_covered]
    keras_covered = {id(v) for p in pairs for v in _keras_layer(keras_model, p.keras_name).weights}
    keras_missed = [v.path for v in keras_model.weights if id(v) not in keras_covered]
    if missed or keras_missed:
        raise ValueError(
            "the torch and Keras models do not hold the same weights (built with different "
            f"variants or options?): uncopied torch tensors {missed}, uncopied Keras weights "
            f"{keras_missed}"
        )


def copy_weights(
    torch_module, keras_model, pairs: Iterable[LayerPair], direction: str
) -> None:
    """Copy every pair ``torch_to_keras`` or ``keras_to_torch``; shapes must match exactly."""
    import torch

    pairs = list(pairs)
    if direction not in ("torch_to_keras", "keras_to_torch"):
        raise ValueError(f"direction must be 'torch_to_keras' or 'keras_to_torch', got {direction!r}")
    _check_coverage(torch_module, keras_model, pairs)
    for pair in pairs:
        names, to_keras, to_torch = KINDS[pair.kind]
        layer = _keras_layer(keras_model, pair.keras_name)
        if pair.kind.startswith("gru_") and not hasattr(layer, "cell"):
            raise ValueError(f"{pair.keras_name}: the torch block is a GRU, the Keras one is "
                             f"{type(layer).__name__}; build both with the same cell")
        if pair.kind.startswith("gru_") and layer.cell.reset_after != (pair.kind == "gru_torch"):
            raise ValueError(
                f"{pair.keras_name}: the torch GRU is {pair.kind} but the Keras GRU has "
                f"reset_after={layer.cell.reset_after}; build both with the same keras_gru"
            )
        torch_tensors = [getattr(pair.torch_module, n) for n in names]
        if direction == "torch_to_keras":
            values = to_keras([t.detach().cpu().numpy() for t in torch_tensors], pair)
            targets = layer.get_weights()
            for value, target, weight in zip(values, targets, layer.weights, strict=True):
                if value.shape != target.shape:
                    raise ValueError(f"{weight.path}: torch gives shape {value.shape}, Keras "
                                     f"holds {target.shape}")
            layer.set_weights([v.astype(t.dtype) for v, t in zip(values, targets, strict=True)])
        else:
            values = to_torch(layer.get_weights(), pair)
            with torch.no_grad():
                for name, value, tensor in zip(names, values, torch_tensors, strict=True):
                    if tuple(value.shape) != tuple(tensor.shape):
                        raise ValueError(f"{pair.keras_name} → torch {name}: Keras gives shape "
                                         f"{value.shape}, torch holds {tuple(tensor.shape)}")
                    tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(tensor.dtype))
