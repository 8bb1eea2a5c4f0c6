"""What identifies a run, and its id.

A run's identity is everything that can change its result, and nothing else:

* ``code_version`` — :data:`RESULT_VERSION`, bumped whenever mcbench changes how a result is
  computed (a trainer fix, a new front-end default), so older runs are not taken for new ones;
* ``model`` — plugin name, variant, backend, and every option after defaults are applied, as
  typed JSON values (``false`` is never the string ``"False"``);
* ``dataset`` — plugin name, task, protocol, fold, the parameters that change the data (after
  defaults), the label list, the front-end settings, and per split its fingerprint (the sorted
  clip ids), its size and a digest of its *content*: the features the store computed for each
  kept clip, in split order, with its targets. Two copies of a dataset under different folders
  are the same data; a file replaced under the same clip id is not;
* ``training`` — the resolved training settings (protocol, epochs, batch size, learning rate
  and its decay, Adam ε, the L2 coefficients of eq. (2) of the paper, patience,
  standardisation, precision) and the checkpoint-selection metric;
* ``seed`` and, where a run starts from another run's weights, ``transfer``.

Not part of it, because they cannot change a result beyond floating-point rounding: the device
(a run interrupted on a GPU may resume on the CPU; the record says where each run trained),
the memory layout, decoding workers, progress bars and every folder path. Reduced precision
(``precision = "bf16"``) does change results and is part of the training settings.

The run id is ``<model>-<variant>-<10 hex digits of sha256 of the canonical JSON of the
identity>``: the same identity always gives the same id, anything else a new one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

#: Bump when a change to mcbench alters the numbers a run produces (see the module docstring).
RESULT_VERSION = 1

#: Identity keys that vary inside one table row: the repetitions themselves.
REPETITION_KEYS = ("seed", "dataset.fold")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values for ``obj``: non-finite floats → ``None``, numpy → Python, paths →
    text, tuples → lists.

    Raises ``TypeError`` for anything else, so an object whose text changes between runs (a
    default ``repr`` with a memory address) never reaches a hash or a record.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    np = sys.modules.get("numpy")  # numpy values exist only where numpy was imported
    if np is not None and isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if np is not None and isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    raise TypeError(f"cannot store a {type(obj).__name__} in a run record: {obj!r}")


def canonical_json(obj: Any) -> str:
    """The canonical text of ``obj`` that ids are hashed from (sorted keys, compact separators)."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest(obj: Any, n: int = 10) -> str:
    """``n`` hex digits of sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:n]


def run_id(identity: Mapping[str, Any]) -> str:
    """``<model>-<variant>-<10 hex of sha256(canonical identity JSON)>``."""
    model = identity.get("model") or {}
    name, variant = model.get("name"), model.get("variant") or "default"
    if not isinstance(name, str) or not name:
        raise ValueError("identity['model']['name'] must be a non-empty string")
    return f"{name}-{variant}-{digest(identity)}"


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"training": {"lr": 0.001}}`` → ``{"training.lr": 0.001}`` (lists stay values; an
    empty mapping has no fields)."""
    if isinstance(obj, Mapping):
        flat: dict[str, Any] = {}
        for k, v in obj.items():
            flat.update(flatten(v, f"{prefix}{k}."))
        return flat
    return {prefix[:-1]: obj}


#: Short names of identity fields for row labels and ``--where`` (the full path always works).
_SHORT_PREFIXES = (("model.options.", ""), ("training.", ""), ("dataset.params.", "data."),
                   ("model.", ""), ("dataset.", "data."), ("transfer.", "transfer."))
_RENAMES = {"max_epochs": "epochs", "name": "model"}


def short_name(key: str) -> str:
    """A readable name for a flattened identity key (``training.max_epochs`` → ``epochs``)."""
    for prefix, short in _SHORT_PREFIXES:
        if key.startswith(prefix):
            rest = key[len(prefix):]
            return short + _RENAMES.get(rest, rest)
    return key


def grouping_key(identity: Mapping[str, Any]) -> dict[str, Any]:
    """The identity without what varies inside one table row: the seed, the fold, and the
    per-fold split data (each fold has its own clips). Runs are averaged together only when
    this is equal (and, per fold, their data is the same; see :mod:`mcbench.aggregate`)."""
    key = {k: v for k, v in identity.items() if k != "seed"}
    dataset = dict(key.get("dataset") or {})
    dataset.pop("fold", None)
    dataset.pop("splits", None)
    key["dataset"] = dataset
    return key


def split_data(identity: Mapping[str, Any]) -> Any:
    """The per-split fingerprints and content digests of a run (what a fold's data is)."""
    return (identity.get("dataset") or {}).get("splits")
