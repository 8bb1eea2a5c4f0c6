"""The run record: its schema (one place), validation on write and on read, and migration.

One JSON file per run (see :mod:`mcbench.storage` for where). The schema is declared here with
pydantic models in strict mode, so a value of the wrong type is an error naming the field — a
metric whose value is the string ``"0.9"`` is never stored as a result — and unknown fields are
refused. :func:`json_schema` gives the JSON Schema document shipped with the package
(``mcbench/schema/run-record.schema.json``).

Version 2 (this one) identifies a run by its :mod:`identity <mcbench.identity>`; the run id is
the hash of the identity and a record whose id does not match its identity is invalid. Version 1
records (a hash of the command-line configuration, no content digest of the data) are migrated
when read: their configuration becomes an identity with ``code_version`` 0 and unknown
(``null``) content digests, they keep their old id (``migrated_from`` says so), and since no new
run can have that identity they are shown in tables but never reused as a new run's result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .identity import run_id as identity_run_id

SCHEMA_VERSION = 2
STATUSES = ("running", "complete", "failed")
TASK_NAMES = ("multilabel", "multiclass")


class RecordError(ValueError):
    """A record file or object is not a valid run record; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class SplitData(_Strict):
    """What one split's data is: its clip-id fingerprint, size, and content digest."""

    fingerprint: str = Field(description="16 hex digits of sha256 of the sorted clip ids")
    n: int = Field(ge=0, description="clips in the split after every drop")
    content: str | None = Field(
        description="16 hex digits of sha256 over (clip id, feature digest, targets) in split "
                    "order; null only in records migrated from schema version 1")


class DatasetIdentity(_Strict):
    name: str = Field(min_length=1)
    task: Literal["multilabel", "multiclass"]
    protocol: str = Field(min_length=1)
    fold: int | None = None
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="dataset parameters that change the data, "
                                               "defaults applied")
    labels: list[str]
    frontend: dict[str, Any]
    splits: dict[str, SplitData]


class ModelIdentity(_Strict):
    name: str = Field(min_length=1)
    variant: str = Field(min_length=1)
    backend: str | None = Field(description="what trains the model: torch, keras, or a "
                                            "learner's own (e.g. sklearn); null in migrated records")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="every option of the build, defaults applied")


class Identity(_Strict):
    """Everything that can change a run's result (see :mod:`mcbench.identity`)."""

    code_version: int = Field(ge=0)
    model: ModelIdentity
    dataset: DatasetIdentity
    training: dict[str, Any] = Field(description="resolved training settings and the "
                                                 "selection metric")
    seed: int
    transfer: dict[str, Any] | None = Field(
        default=None, description="the source run and strategy when the weights start from "
                                  "another run")


class MetricEntry(_Strict):
    name: str
    value: float | None = Field(description="null when the metric is undefined on this split")
    higher_is_better: bool
    headline: bool
    order: float
    per_label: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class HistoryEntry(BaseModel):
    """One epoch (or one fit, for learners without epochs). Learners may add fields."""

    model_config = ConfigDict(strict=True, extra="allow")
    epoch: int = Field(ge=0)
    loss: float | None = None
    valid_metric: float | None = None
    lr: float | None = None
    seconds: float | None = None
    clips_per_s: float | None = None


class DroppedClip(_Strict):
    id: str
    path: str
    reason: str
    step: str = ""


class SplitInfo(_Strict):
    sizes: dict[str, int]
    n_dropped: int = Field(ge=0)
    dropped: list[DroppedClip] = Field(default_factory=list)
    notes: dict[str, Any] = Field(default_factory=dict)


class RunRecord(_Strict):
    """One run: its identity, how its data was split, how it trained, and its test metrics."""

    schema_version: Literal[2] = SCHEMA_VERSION
    run_id: str = Field(min_length=1)
    status: Literal["running", "complete", "failed"]
    created: str = Field(description="ISO 8601 time the run started")
    finished: str | None = None
    identity: Identity
    split: SplitInfo
    device: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    selected_epoch: int | None = None
    n_params: int | None = None
    test: dict[str, MetricEntry] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    peak_memory_mb: dict[str, float | None] = Field(default_factory=dict)
    scores_path: str | None = None
    hardware: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, str | None] = Field(default_factory=dict)
    git_commit: str | None = None
    notes: dict[str, Any] = Field(default_factory=dict,
                                  description="facts a learner or the harness reports about "
                                              "this run (e.g. reused input standardisation)")
    transfer: dict[str, Any] | None = Field(
        default=None, description="where the weights came from when the run started from "
                                  "another run: strategy, frozen and trained groups, the source "
                                  "run, its dataset, record file and its sha256, the checkpoint, "
                                  "and the input standardisation taken from the source")
    distributed: dict[str, Any] | None = Field(
        default=None, description="a data-parallel run (torchrun): world_size, backend (nccl or "
                                  "gloo), per_rank_batch, effective_batch (the batch size the "
                                  "optimiser sees) and how batch norm was computed; null for one "
                                  "process")
    error: str | None = None
    traceback: str | None = None
    migrated_from: int | None = Field(default=None, description="schema version this record "
                                                                "was migrated from")

    @model_validator(mode="after")
    def _consistent(self) -> RunRecord:
        if self.migrated_from is None:
            expected = identity_run_id(self.identity.model_dump(mode="json"))
            if self.run_id != expected:
                raise ValueError(f"run_id {self.run_id!r} does not match its identity "
                                 f"(expected {expected!r}): the record was edited or copied")
        if self.status == "complete":
            missing = [k for k in ("finished", "scores_path") if getattr(self, k) is None]
            if not self.test:
                missing.append("test")
            if missing:
                raise ValueError(f"a complete record needs {', '.join(missing)}")
        if self.status == "failed" and not self.error:
            raise ValueError("a failed record needs its error")
        return self

    # -- convenient views
    @property
    def model(self) -> str:
        return self.identity.model.name

    @property
    def variant(self) -> str:
        return self.identity.model.variant

    @property
    def dataset(self) -> str:
        return self.identity.dataset.name

    @property
    def protocol(self) -> str:
        return self.identity.dataset.protocol

    @property
    def fold(self) -> int | None:
        return self.identity.dataset.fold

    @property
    def seed(self) -> int:
        return self.identity.seed

    def identity_dict(self) -> dict[str, Any]:
        return self.identity.model_dump(mode="json")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)


def format_errors(exc: ValidationError) -> str:
    """``field.path: message`` for every problem pydantic found."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def validate(obj: Any, source: str = "record") -> RunRecord:
    """A :class:`RunRecord` from a JSON object (migrating older versions), or
    :class:`RecordError` naming ``source`` and every invalid field."""
    if isinstance(obj, RunRecord):
        obj = obj.to_json()
    if not isinstance(obj, Mapping):
        raise RecordError(f"{source}: not a run record (a JSON object), but a "
                          f"{type(obj).__name__}")
    version = obj.get("schema_version")
    if version == 1:
        try:
            obj = migrate_v1(obj)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"{source}: a version-1 record that cannot be migrated ({exc})") from exc
    elif version != SCHEMA_VERSION:
        raise RecordError(f"{source}: schema version {version!r}; this mcbench reads "
                          f"{SCHEMA_VERSION} (and migrates 1)")
    try:
        return RunRecord.model_validate(dict(obj))
    except ValidationError as exc:
        raise RecordError(f"{source}: {format_errors(exc)}") from exc


def migrate_v1(old: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 record as version 2 (see the module docstring)."""
    config = old["config"]
    split = old.get("split") or {}
    sizes = split.get("sizes") or {}
    training = dict(config.get("training") or {})
    training["select_metric"] = config.get("select_metric")
    identity = {
        "code_version": 0,
        "model": {"name": config["model"], "variant": config["variant"], "backend": None,
                  "options": dict(config.get("model_params") or {})},
        "dataset": {
            "name": config["dataset"], "task": old.get("task") or "multilabel",
            "protocol": config["protocol"], "fold": config.get("fold"),
            "params": dict(config.get("dataset_params") or {}),
            "labels": list(old.get("labels") or []),
            "frontend": dict(config.get("frontend") or {}),
            "splits": {name: {"fingerprint": fp, "n": int(sizes.get(name, 0)), "content": None}
                       for name, fp in (split.get("fingerprint") or {}).items()},
        },
        "training": training,
        "seed": config["seed"],
        "transfer": None,
    }
    new = {k: v for k, v in old.items() if k not in {"config", "task", "labels", "split"}}
    new.update(schema_version=SCHEMA_VERSION, identity=identity, migrated_from=1,
               split={"sizes": {k: int(v) for k, v in sizes.items()},
                      "n_dropped": int(split.get("n_dropped", 0)),
                      "dropped": list(split.get("dropped") or []),
                      "notes": dict(split.get("notes") or {})})
    if new.get("status") == "failed" and not new.get("error"):
        new["error"] = "failed (no error stored)"
    return new


def json_schema() -> dict[str, Any]:
    """The JSON Schema document of :class:`RunRecord` (the file shipped with the package)."""
    schema = RunRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mcbench run record"
    schema["$comment"] = f"schema_version {SCHEMA_VERSION}; generated by mcbench.records.json_schema()"
    return schema
