"""Run records: ids, atomic writes, provenance, loading, validation and aggregation over seeds.

Implements architecture.md "Runs, records, tables" and the run record schema, version 1
(``notes/record_schema.md``): one JSON file per run at
``<results_dir>/runs/<dataset>/<run_id>.json`` with its test-set scores beside it as
``<run_id>.scores.npz`` (arrays ``ids``, ``y_true``, ``y_score``, ``labels``).

Choices where the schema leaves room:

* Records are strict JSON: a non-finite float (a metric that nothing defines is NaN) is written
  as ``null``; aggregation treats ``null`` as "no value" and the metric's ``n`` says how many
  runs had one. Numpy scalars/arrays and paths are converted to plain JSON values.
* A stored record is valid only if its ``run_id`` is the hash of its stored ``config``
  (:func:`run_id`), so a hand-edited configuration cannot pass for the run that produced it.
* Aggregation groups exactly by the schema's key (dataset, protocol, model, variant,
  model_params, training protocol). Runs of one group that differ in any other configuration
  value (epochs, front end…) are still averaged, as the schema says, but a warning names the keys.
  Split fingerprints are never mixed for the same fold: such runs become separate rows labelled
  ``split <8 hex>``, greedily filled in creation order, and a warning says so.
* Warnings of aggregation are collected in the result (``Aggregate.warnings``) for the caller to
  show; unreadable record files met by :func:`load_records` are reported with ``warnings.warn``
  (category :class:`RecordWarning`) and skipped.

This module never imports torch: :func:`provenance` only asks torch about the GPU when the
caller has already imported it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import platform
import secrets
import subprocess
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
STATUSES = ("running", "complete", "failed")
#: Packages whose versions every record carries.
PROVENANCE_PACKAGES = (
    "mcbench",
    "torch",
    "numpy",
    "scipy",
    "librosa",
    "soundfile",
    "scikit-learn",
    "pluggy",
    "tabulate",
)
SCORE_ARRAYS = ("ids", "y_true", "y_score", "labels")
#: Configuration keys that vary inside one aggregated row (the repetitions themselves).
_REPETITION_KEYS = ("seed", "fold")


class RecordWarning(UserWarning):
    """A record file was skipped (unreadable, another schema version, invalid)."""


# --------------------------------------------------------------------------- JSON and ids


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values for ``obj``: non-finite floats → ``None``, numpy → Python, paths → str.

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
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    raise TypeError(f"cannot store a {type(obj).__name__} in a run record: {obj!r}")


def canonical_json(obj: Any) -> str:
    """The canonical text of ``obj`` that ids are hashed from (sorted keys, compact separators)."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(config: Mapping[str, Any]) -> str:
    """The 10 hex digits of sha256 of the canonical JSON of ``config``."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:10]


def run_id(config: Mapping[str, Any]) -> str:
    """``<model>-<variant>-<10 hex of sha256(canonical config JSON)>`` (schema: ``run_id``).

    The device is not part of ``config`` (a run resumes across devices), so it is not hashed.
    """
    model = config.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("config['model'] must be a non-empty string")
    variant = config.get("variant") or "default"
    return f"{model}-{variant}-{config_hash(config)}"


# --------------------------------------------------------------------------- atomic writes


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a torn one.

    The bytes go to a temporary file in the same folder, are fsynced, and replace ``path`` with
    ``os.replace``; on any error the temporary file is removed and the old file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open with 0o666 lets the umask decide the final mode (mkstemp would force 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict, indented UTF-8 JSON atomically (see :func:`to_jsonable`)."""
    text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def save_scores(
    path: str | os.PathLike,
    ids: Sequence[str],
    y_true: Any,
    y_score: Any,
    labels: Sequence[str],
) -> Path:
    """Save test-set scores as ``.npz`` (``ids``, ``y_true``, ``y_score``, ``labels``) atomically.

    ``y_true`` is ``(N, L)`` multi-hot or ``(N,)`` class indices; ``y_score`` is ``(N, L)``.
    """
    ids_arr = np.asarray([str(i) for i in ids], dtype=str)
    labels_arr = np.asarray([str(name) for name in labels], dtype=str)
    y_true_arr = np.asarray(y_true)
    y_score_arr = np.asarray(y_score)
    n = len(ids_arr)
    if y_true_arr.shape[:1] != (n,) or y_score_arr.shape[:1] != (n,):
        raise ValueError(
            f"scores for {n} ids, but y_true has shape {y_true_arr.shape} "
            f"and y_score {y_score_arr.shape}"
        )
    if y_score_arr.ndim == 2 and y_score_arr.shape[1] != len(labels_arr):
        raise ValueError(f"y_score has {y_score_arr.shape[1]} columns for {len(labels_arr)} labels")
    buf = io.BytesIO()
    np.savez(buf, ids=ids_arr, y_true=y_true_arr, y_score=y_score_arr, labels=labels_arr)
    return atomic_write_bytes(path, buf.getvalue())


def load_scores(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays saved by :func:`save_scores`, keyed ``ids``, ``y_true``, ``y_score``, ``labels``."""
    with np.load(Path(path), allow_pickle=False) as npz:
        missing = [k for k in SCORE_ARRAYS if k not in npz.files]
        if missing:
            raise ValueError(f"{path}: not a scores file, missing arrays {missing}")
        return {k: npz[k] for k in SCORE_ARRAYS}


# --------------------------------------------------------------------------- paths


def _safe_part(value: str, what: str) -> str:
    if not value or "/" in value or os.sep in value or value.startswith("."):
        raise ValueError(f"{what} {value!r} cannot be used as a file name")
    return value


def record_path(results_dir: str | os.PathLike, dataset: str, run_id: str) -> Path:
    """``<results_dir>/runs/<dataset>/<run_id>.json``."""
    folder = Path(results_dir) / "runs" / _safe_part(dataset, "dataset")
    return folder / f"{_safe_part(run_id, 'run id')}.json"


def scores_path(results_dir: str | os.PathLike, dataset: str, run_id: str) -> Path:
    """``<results_dir>/runs/<dataset>/<run_id>.scores.npz`` (beside the record)."""
    return record_path(results_dir, dataset, run_id).with_name(f"{run_id}.scores.npz")


# --------------------------------------------------------------------------- provenance


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    with contextlib.suppress(OSError, IndexError):
        text = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace")
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 ..."
        words = text.split("Kernel Module", 1)[1].split()
        return words[0]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return out.splitlines()[0].strip() if out else None
    return None


def _gpu_info() -> dict[str, Any]:
    """GPU name, driver and CUDA runtime, asked of torch only if the caller imported it."""
    info: dict[str, Any] = {"gpu": None, "cuda_driver": None, "cuda_runtime": None}
    torch = sys.modules.get("torch")
    if torch is None:
        return info
    try:
        if not torch.cuda.is_available():
            return info
        info["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
        info["cuda_runtime"] = getattr(torch.version, "cuda", None)
    except Exception:  # a broken CUDA setup must not fail a run's bookkeeping
        return info
    info["cuda_driver"] = _nvidia_driver()
    return info


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout holding this package, else of the cwd; else None."""
    for folder in (Path(__file__).resolve().parent, Path.cwd()):
        try:
            out = subprocess.run(
                ["git", "-C", str(folder), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out:
            return out
    return None


def provenance() -> dict[str, Any]:
    """``{"hardware": ..., "packages": ..., "git_commit": ...}`` for a run record; never fails.

    ``hardware`` holds ``platform``, ``python``, ``cpu``, ``cpu_count``, ``gpu``,
    ``cuda_driver`` (the NVIDIA kernel driver) and ``cuda_runtime`` (torch's CUDA version).
    """
    hardware = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        **_gpu_info(),
    }
    return {"hardware": hardware, "packages": _package_versions(), "git_commit": git_commit()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB; NaN where unavailable.

    Linux: ``VmHWM`` from ``/proc/self/status``, because ``getrusage``'s ``ru_maxrss`` survives
    ``exec`` and would report the parent's peak for a freshly started process.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# --------------------------------------------------------------------------- validation


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_metric_block(block: Any, where: str) -> list[str]:
    if not isinstance(block, dict):
        return [f"{where} must be an object of metrics"]
    problems = []
    for key, entry in block.items():
        at = f"{where}.{key}"
        if not isinstance(entry, dict):
            problems.append(f"{at} must be an object")
            continue
        if not isinstance(entry.get("name"), str):
            problems.append(f"{at}.name must be a string")
        if "value" not in entry or not (entry["value"] is None or _is_number(entry["value"])):
            problems.append(f"{at}.value must be a number or null")
        for flag in ("higher_is_better", "headline"):
            if not isinstance(entry.get(flag), bool):
                problems.append(f"{at}.{flag} must be true or false")
        if not _is_number(entry.get("order")):
            problems.append(f"{at}.order must be a number")
        if entry.get("per_label") is not None and not isinstance(entry["per_label"], list):
            problems.append(f"{at}.per_label must be a list or null")
    return problems


def validate_record(record: Any) -> list[str]:
    """Every problem that keeps ``record`` from being a valid version-1 record; empty if valid.

    All records need ``schema_version``, ``run_id`` (matching the config hash), ``status``,
    ``created`` and a ``config`` with ``model``, ``variant``, ``dataset``, ``protocol``, ``seed``.
    A complete record also needs ``finished``, ``task``, ``labels``, ``split.fingerprint`` and
    ``test`` metrics. Optional fields are type-checked when present.
    """
    if not isinstance(record, dict):
        return ["a record must be a JSON object"]
    problems: list[str] = []
    if record.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version must be {SCHEMA_VERSION}")
    status = record.get("status")
    if status not in STATUSES:
        problems.append(f"status must be one of {STATUSES}, not {status!r}")
    if not isinstance(record.get("created"), str):
        problems.append("created must be an ISO 8601 string")

    config = record.get("config")
    if not isinstance(config, dict):
        problems.append("config must be an object")
    else:
        for key in ("model", "variant", "dataset", "protocol"):
            if not isinstance(config.get(key), str) or not config.get(key):
                problems.append(f"config.{key} must be a non-empty string")
        if not _is_int(config.get("seed")):
            problems.append("config.seed must be an integer")
        if config.get("fold") is not None and not _is_int(config["fold"]):
            problems.append("config.fold must be an integer or null")
        for key in ("model_params", "dataset_params", "frontend", "training"):
            if config.get(key) is not None and not isinstance(config[key], dict):
                problems.append(f"config.{key} must be an object")
        training = config.get("training")
        if isinstance(training, dict) and "protocol" in training:
            if not isinstance(training["protocol"], str):
                problems.append("config.training.protocol must be a string")

    rid = record.get("run_id")
    if not isinstance(rid, str):
        problems.append("run_id must be a string")
    elif isinstance(config, dict) and isinstance(config.get("model"), str) and config["model"]:
        try:
            expected = run_id(config)
        except (TypeError, ValueError) as exc:
            problems.append(f"config cannot be hashed: {exc}")
        else:
            if rid != expected:
                problems.append(f"run_id {rid!r} does not match its config (expected {expected!r})")

    if status == "complete":
        if not isinstance(record.get("finished"), str):
            problems.append("finished must be an ISO 8601 string")
        if not isinstance(record.get("task"), str):
            problems.append("task must be a string")
        labels = record.get("labels")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            problems.append("labels must be a list of strings")
        split = record.get("split")
        fingerprint = split.get("fingerprint") if isinstance(split, dict) else None
        if not isinstance(fingerprint, dict) or not all(
            isinstance(v, str) for v in fingerprint.values()
        ):
            problems.append("split.fingerprint must be an object of split name -> hash string")
        if "test" not in record:
            problems.append("test metrics are missing")
    if "test" in record:
        problems += _check_metric_block(record["test"], "test")
    if record.get("valid") is not None:
        problems += _check_metric_block(record["valid"], "valid")

    optional_types = {
        "history": list,
        "timings": dict,
        "hardware": dict,
        "packages": dict,
        "peak_memory_mb": dict,
        "device": str,
        "scores_path": str,
        "git_commit": str,
    }
    for key, kind in optional_types.items():
        if record.get(key) is not None and not isinstance(record[key], kind):
            problems.append(f"{key} must be a {kind.__name__} or null")
    for key in ("selected_epoch", "n_params"):
        if record.get(key) is not None and not _is_int(record[key]):
            problems.append(f"{key} must be an integer or null")
    return problems


# --------------------------------------------------------------------------- loading


def _warn(message: str) -> None:
    warnings.warn(message, RecordWarning, stacklevel=3)


def load_records(
    results_dir: str | os.PathLike,
    dataset: str | None = None,
    status: str | None = "complete",
) -> list[dict]:
    """Records under ``<results_dir>/runs/`` (one dataset's folder, or all), with ``status``.

    ``status=None`` returns every status. Files that cannot be read or parsed, records of other
    schema versions and invalid records are skipped with a :class:`RecordWarning`. Sorted by
    dataset, creation time and run id.
    """
    runs = Path(results_dir) / "runs"
    if dataset is not None:
        folders = [runs / _safe_part(dataset, "dataset")]
    elif runs.is_dir():
        folders = sorted(p for p in runs.iterdir() if p.is_dir())
    else:
        folders = []
    records = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                _warn(f"skipping unreadable run record {path}: {exc}")
                continue
            if not isinstance(record, dict):
                _warn(f"skipping {path}: not a run record (a JSON object)")
                continue
            version = record.get("schema_version")
            if version != SCHEMA_VERSION:
                _warn(
                    f"skipping {path}: schema version {version!r}, this mcbench reads {SCHEMA_VERSION}"
                )
                continue
            if status is not None and record.get("status") != status:
                continue
            problems = validate_record(record)
            config_dataset = (record.get("config") or {}).get("dataset")
            if not problems and config_dataset != folder.name:
                problems.append(
                    f"stored under runs/{folder.name} but config.dataset is {config_dataset!r}"
                )
            if problems:
                _warn(f"skipping invalid run record {path}: " + "; ".join(problems))
                continue
            records.append(record)
    records.sort(key=lambda r: (r["config"]["dataset"], r.get("created", ""), r["run_id"]))
    return records


# --------------------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class Stat:
    """One metric of one row: mean ± sample std (ddof=1) over the runs that have a value.

    ``std`` is ``None`` when ``n < 2`` and ``mean`` is ``None`` when ``n == 0``. ``values`` are
    the runs' values (row run order); ``per_fold`` maps each fold (``None`` for a fixed split)
    to its values over seeds.
    """

    mean: float | None
    std: float | None
    n: int
    name: str
    order: float
    higher_is_better: bool
    headline: bool
    values: tuple[float, ...] = ()
    per_fold: Mapping[int | None, tuple[float, ...]] = field(default_factory=dict)


@dataclass
class Row:
    """One table row: the runs of one model configuration on one dataset protocol and split."""

    model: str
    variant: str
    label: str
    dataset: str
    protocol: str
    n_runs: int
    seeds: list[int]
    metrics: dict[str, Stat]
    model_params: dict[str, Any] = field(default_factory=dict)
    training_protocol: str | None = None
    folds: list[int | None] = field(default_factory=list)
    #: Short split fingerprint, set only when this group's runs were split by fingerprint.
    fingerprint: str | None = None
    run_ids: list[str] = field(default_factory=list)


class Aggregate(list):
    """A ``list[Row]`` that also carries the aggregation's warnings (``.warnings``)."""

    def __init__(self, rows: Iterable[Row] = (), notes: Iterable[str] = ()):
        super().__init__(rows)
        self.warnings: list[str] = list(notes)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and (obj or not prefix):
        flat: dict[str, Any] = {}
        for k, v in obj.items():
            flat.update(_flatten(v, f"{prefix}{k}."))
        return flat
    return {prefix[:-1]: canonical_json(obj)}


def _differing_keys(dicts: Sequence[Mapping[str, Any]]) -> list[str]:
    flats = [_flatten(dict(d)) for d in dicts]
    keys = sorted(set().union(*flats)) if flats else []
    return [k for k in keys if len({f.get(k, "<absent>") for f in flats}) > 1]


def _short_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:8]


def _base_label(model: str, variant: str) -> str:
    return model if variant == "default" else f"{model} ({variant})"


def _metric_stats(records: Sequence[dict], where: str, notes: list[str]) -> dict[str, Stat]:
    keys = sorted({k for r in records for k in r.get("test", {})})
    stats = {}
    for key in keys:
        entries = [(r, r["test"][key]) for r in records if key in r.get("test", {})]
        # The newest record's metadata wins if a plugin changed its name or order meanwhile.
        latest = max(entries, key=lambda e: e[0].get("created", ""))[1]
        meta = ("name", "order", "higher_is_better", "headline")
        if len({tuple(canonical_json(e.get(m)) for m in meta) for _, e in entries}) > 1:
            notes.append(
                f"{where}: metric {key!r} is described differently across runs; using the newest"
            )
        values: list[float] = []
        per_fold: dict[int | None, list[float]] = {}
        for record, entry in entries:
            if entry.get("value") is None:
                continue
            values.append(float(entry["value"]))
            per_fold.setdefault(record["config"].get("fold"), []).append(float(entry["value"]))
        arr = np.asarray(values, dtype=float)
        stats[key] = Stat(
            mean=float(arr.mean()) if len(arr) else None,
            std=float(arr.std(ddof=1)) if len(arr) > 1 else None,
            n=len(arr),
            name=str(latest["name"]),
            order=latest["order"],
            higher_is_better=bool(latest["higher_is_better"]),
            headline=bool(latest["headline"]),
            values=tuple(values),
            per_fold={fold: tuple(v) for fold, v in per_fold.items()},
        )
    return stats


def _split_by_fingerprint(records: Sequence[dict]) -> list[list[dict]]:
    """Partition one group so that no fold mixes two split fingerprints.

    Runs with the same (fold, fingerprint) stay together; those clusters fill rows greedily in
    order of their first creation time, each row taking at most one fingerprint per fold.
    """
    clusters: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        fold = canonical_json(record["config"].get("fold"))
        fp = canonical_json(record["split"]["fingerprint"])
        clusters.setdefault((fold, fp), []).append(record)
    ordered = sorted(
        clusters.items(), key=lambda kv: (min(r.get("created", "") for r in kv[1]), kv[0])
    )
    rows: list[dict[str, list[dict]]] = []
    for (fold, _fp), members in ordered:
        for row in rows:
            if fold not in row:
                row[fold] = members
                break
        else:
            rows.append({fold: members})
    return [[r for members in row.values() for r in members] for row in rows]


def aggregate(records: Iterable[dict]) -> Aggregate:
    """Rows of mean ± std over seeds (and folds) per the schema's aggregation rule.

    Only ``complete`` records are used (others are ignored). Groups: (dataset, protocol, model,
    variant, model_params, training protocol). Labels are ``model`` for the ``default`` variant,
    else ``model (variant)``, with ``[...]`` added to tell apart rows that would read the same
    (differing model parameters, training protocol, or ``split <hash>``).
    """
    notes: list[str] = []
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        if record.get("status") != "complete":
            continue
        c = record["config"]
        training_protocol = (c.get("training") or {}).get("protocol")
        key = (
            c["dataset"],
            c["protocol"],
            c["model"],
            c["variant"],
            canonical_json(c.get("model_params") or {}),
            canonical_json(training_protocol),
        )
        groups.setdefault(key, []).append(record)

    rows: list[Row] = []
    for key in sorted(groups):
        dataset, protocol, model, variant, _, _ = key
        group = sorted(groups[key], key=lambda r: (r.get("created", ""), r["run_id"]))
        parts = _split_by_fingerprint(group)
        c0 = group[0]["config"]
        base = _base_label(model, variant)
        where = f"{dataset}/{protocol}: {base}"
        if len(parts) > 1:
            notes.append(
                f"{where}: runs on {len(parts)} different splits of the same fold(s) "
                "(split fingerprints differ); shown as separate rows labelled by split"
            )
        for part in parts:
            fingerprint = None
            if len(parts) > 1:
                fingerprint = _short_hash(
                    sorted(
                        [
                            canonical_json(r["config"].get("fold")),
                            canonical_json(r["split"]["fingerprint"]),
                        ]
                        for r in part
                    )
                )
            configs = [
                {k: v for k, v in r["config"].items() if k not in _REPETITION_KEYS} for r in part
            ]
            differing = _differing_keys(configs)
            if differing:
                notes.append(
                    f"{where}: its runs differ in config {', '.join(differing)} "
                    "but are averaged together (the schema groups by model, variant, "
                    "model_params and training protocol)"
                )
            seen: dict[tuple, str] = {}
            for r in part:
                rep = (r["config"].get("fold"), r["config"]["seed"])
                if rep in seen:
                    notes.append(
                        f"{where}: runs {seen[rep]} and {r['run_id']} share seed {rep[1]}"
                        + (f" and fold {rep[0]}" if rep[0] is not None else "")
                        + "; both are counted"
                    )
                seen.setdefault(rep, r["run_id"])
            folds = sorted(
                {r["config"].get("fold") for r in part}, key=lambda f: (f is not None, f or 0)
            )
            rows.append(
                Row(
                    model=model,
                    variant=variant,
                    label=base,
                    dataset=dataset,
                    protocol=protocol,
                    n_runs=len(part),
                    seeds=sorted({r["config"]["seed"] for r in part}),
                    metrics=_metric_stats(part, where, notes),
                    model_params=dict(c0.get("model_params") or {}),
                    training_protocol=(c0.get("training") or {}).get("protocol"),
                    folds=folds,
                    fingerprint=fingerprint,
                    run_ids=[r["run_id"] for r in part],
                )
            )
    _disambiguate_labels(rows)
    rows.sort(key=lambda r: (r.dataset, r.protocol, r.model, r.variant, r.label))
    return Aggregate(rows, notes)


def _disambiguate_labels(rows: list[Row]) -> None:
    """Add ``[k=v, training=…, split …]`` to labels that would otherwise read the same.

    A parameter a row does not set shows as ``k=default`` (the model's own default applies).
    """
    same: dict[tuple, list[Row]] = {}
    for row in rows:
        same.setdefault((row.dataset, row.protocol, row.model, row.variant), []).append(row)
    for members in same.values():
        if len(members) < 2:
            continue
        param_keys = _differing_keys([m.model_params for m in members])
        show_training = len({m.training_protocol for m in members}) > 1
        for row in members:
            flat = _flatten(row.model_params)
            bits = [f"{k}={json.loads(flat[k]) if k in flat else 'default'}" for k in param_keys]
            if show_training:
                bits.append(f"training={row.training_protocol}")
            if row.fingerprint:
                bits.append(f"split {row.fingerprint}")
            if bits:
                row.label = f"{row.label} [{', '.join(bits)}]"
