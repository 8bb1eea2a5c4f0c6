"""Plain data types shared by the harness and every plugin.

These are the nouns of the plugin contract (see ``hookspecs.py``): a plugin returns
``ModelSpec``, ``DatasetSpec`` or ``MetricSpec`` objects; a dataset plugin describes its
clips as ``Track`` objects grouped into ``Split`` objects inside a ``Partition``; the
harness hands a model's learner ``FeatureSplit`` objects and a ``TrainConfig``.

Nothing here imports torch, numpy or any other heavy library at module level, so listing
plugins stays cheap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

#: Multi-label tagging (MTAT): sigmoid outputs, binary cross-entropy.
MULTILABEL = "multilabel"
#: Single-label classification (FMA genres, GTZAN): softmax outputs, cross-entropy.
MULTICLASS = "multiclass"
TASKS = (MULTILABEL, MULTICLASS)

#: The split names every protocol produces. Model selection uses ``valid``, never ``test``.
SPLIT_NAMES = ("train", "valid", "test")


class PluginError(Exception):
    """A plugin is missing, broken, or two plugins claim the same name."""


class DatasetError(Exception):
    """A dataset root is missing or malformed; the message says what to do."""


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Track:
    """One clip: a stable id, the audio file, and the indices of its positive labels.

    For a multiclass dataset ``labels`` holds exactly one class index.
    """

    id: str
    path: Path
    labels: tuple[int, ...]


@dataclass(frozen=True)
class Dropped:
    """A clip left out of a split, and why (reported, never silently lost)."""

    id: str
    path: str
    reason: str
    step: str = ""


@dataclass
class Split:
    """An ordered list of tracks forming one split (``train``, ``valid`` or ``test``)."""

    name: str
    tracks: list[Track]

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tracks]

    def fingerprint(self) -> str:
        """Hash of the sorted track ids (datasets.md §1): equal splits, equal fingerprint."""
        digest = hashlib.sha256("\n".join(sorted(self.ids)).encode("utf-8"))
        return digest.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.tracks)


@dataclass
class Partition:
    """What ``DatasetSpec.tracks`` returns: the label names and the splits of one protocol/fold."""

    dataset: str
    protocol: str
    fold: int | None
    labels: list[str]
    splits: dict[str, Split]
    dropped: list[Dropped] = field(default_factory=list)
    #: Free-form bookkeeping the dataset wants in the run record (drop counts per step, seed…).
    notes: dict[str, Any] = field(default_factory=dict)
    #: Clips whose decoded audio is shorter than this are dropped by the feature store and
    #: reported (MTAT: 28.5 s, i.e. at most 0.5 s of zero-padding; 0 keeps every clip).
    min_seconds: float = 0.0
    #: Seconds the front end crops or pads every clip to, when the data itself decides it (the
    #: synthetic dataset's ``seconds`` parameter); ``None`` uses ``DatasetSpec.clip_seconds``.
    clip_seconds: float | None = None

    def fingerprint(self) -> dict[str, str]:
        return {name: split.fingerprint() for name, split in self.splits.items()}


@dataclass
class HealthReport:
    """What ``DatasetSpec.check`` returns: the layout found and every problem, computing nothing."""

    dataset: str
    root: Path
    layout: str
    n_listed: int
    n_found: int
    problems: list[Dropped] = field(default_factory=list)
    #: e.g. {"sample_rates": {"16000": 25860}, "durations": {"min": 1.2, "median": 29.1, ...}}
    stats: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.n_found > 0 and not self.problems


@dataclass
class DatasetSpec:
    """A dataset plugin.

    ``tracks(root, protocol, fold, **params)`` returns a :class:`Partition`;
    ``check(root)`` returns a :class:`HealthReport` without decoding any audio beyond headers.
    ``materialize(root)``, when given, creates the data under ``root`` (the synthetic dataset
    writes its audio and annotation files this way); real datasets leave it ``None``.
    """

    name: str
    summary: str
    task: str
    tracks: Callable[..., Partition]
    check: Callable[[Path], HealthReport]
    #: protocol name -> number of folds (1 for a fixed split).
    protocols: Mapping[str, int] = field(default_factory=lambda: {"fixed": 1})
    default_protocol: str = "fixed"
    #: Native sample rate of the audio files (the front end resamples to 12 kHz).
    sample_rate: int = 0
    #: Seconds of audio the front end crops or pads every clip to (29.0 s in the paper).
    clip_seconds: float = 29.0
    #: Where a user learns how to obtain the data and how to lay it out.
    readme: str = ""
    materialize: Callable[[Path], None] | None = None
    #: Training settings this dataset suggests (e.g. fewer epochs for a demo dataset).
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    #: Per-model additions to ``train_defaults``, keyed by model name: a demo dataset can give a
    #: model that is cheap per epoch more epochs. Models not named get ``train_defaults``.
    model_train_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Static label names, when they do not depend on the files (else see Partition.labels).
    labels: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise PluginError(f"dataset {self.name!r}: task must be one of {TASKS}, got {self.task!r}")
        if self.default_protocol not in self.protocols:
            raise PluginError(
                f"dataset {self.name!r}: default protocol {self.default_protocol!r} "
                f"is not among {sorted(self.protocols)}"
            )


# --------------------------------------------------------------------------- features


@dataclass
class FeatureSplit:
    """Features and targets of one split, as a learner receives them.

    ``x`` is ``(N, 1, 96, T)`` for log-mel or ``(N, 1, S)`` for waveforms, often a read-only
    memory map. ``y`` is an ``(N, L)`` float32 multi-hot matrix (multilabel) or ``(N,)`` int64
    class indices (multiclass).
    """

    name: str
    ids: list[str]
    x: np.ndarray
    y: np.ndarray
    task: str
    labels: list[str]

    def __len__(self) -> int:
        return len(self.ids)


# --------------------------------------------------------------------------- models


@dataclass
class TrainConfig:
    """Training settings (models.md §9). Non-torch learners read what applies to them."""

    protocol: str = "paper"
    max_epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    #: Multiplicative learning-rate decay applied after every epoch (1.0 = constant).
    lr_decay: float = 0.9
    #: Adam epsilon: 1e-7 is Keras's default, which the paper's code used.
    adam_eps: float = 1e-7
    #: L2 coefficients of eq. (2): conv (λ1), output/dense (λ2), recurrent (λ3).
    l2_conv: float = 1e-6
    l2_output: float = 1e-6
    l2_recurrent: float = 1e-6
    #: Epochs without validation improvement before stopping; ``None`` disables early stopping.
    patience: int | None = None
    seed: int = 0
    device: str = "auto"
    #: Where checkpoints go; a run started again with the same workdir resumes.
    workdir: Path | None = None
    #: Validation metric used for checkpoint selection: ``(y_true, y_score) -> float``.
    select_metric: Callable[[Any, Any], float] | None = None
    select_metric_name: str = ""
    progress: bool = True
    #: Standardise inputs with the training split's mean and standard deviation (two scalars).
    standardize: bool = True
    #: Keep 4-D inputs and conv weights in channels-last memory layout (speed only; see
    #: ``TorchLearner._place``).
    channels_last: bool = True
    #: Called after every epoch with its history entry (observers, tests of interruption).
    epoch_callback: Callable[[dict], None] | None = None


@runtime_checkable
class Learner(Protocol):
    """What ``ModelSpec.build`` returns when the model is not a plain ``torch.nn.Module``.

    A torch plugin may return an ``nn.Module``: the harness wraps it in its own torch learner.
    """

    def fit(self, train: FeatureSplit, valid: FeatureSplit, config: TrainConfig) -> list[dict]: ...

    def predict(self, split: FeatureSplit) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...


@dataclass
class ModelSpec:
    """A model plugin.

    ``build(input_shape, n_outputs, *, task, variant, **params)`` returns a ``torch.nn.Module``
    producing logits ``(B, n_outputs)`` or a :class:`Learner`. ``input_shape`` excludes the batch
    axis: ``(1, 96, T)`` for log-mel, ``(1, S)`` for waveforms. Import heavy libraries inside
    ``build``, never at module level.
    """

    name: str
    summary: str
    build: Callable[..., Any]
    tasks: tuple[str, ...] = TASKS
    #: variant name -> one-line description; the first key is the default unless named below.
    variants: Mapping[str, str] = field(default_factory=lambda: {"default": ""})
    default_variant: str = ""
    #: The front end this model reads: a name, or a mapping variant -> name.
    input: str | Mapping[str, str] = "logmel"
    #: Citation of the paper the design comes from.
    source: str = ""
    #: Documented keyword options of ``build`` (name -> description).
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.variants:
            raise PluginError(f"model {self.name!r} declares no variants")
        if not self.default_variant:
            self.default_variant = next(iter(self.variants))
        if self.default_variant not in self.variants:
            raise PluginError(
                f"model {self.name!r}: default variant {self.default_variant!r} "
                f"is not among {list(self.variants)}"
            )
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise PluginError(f"model {self.name!r}: unknown task(s) {bad}; use {TASKS}")

    def create(self, input_shape: Sequence[int], n_outputs: int, *, task: str,
               variant: str | None = None, **params: Any) -> Any:
        """Check the task, variant and options against this spec, then call ``build``.

        The harness always builds through here, so a plugin's ``build`` need not repeat these
        checks. Unknown options raise ``TypeError`` (like an unexpected keyword argument).
        """
        variant = variant or self.default_variant
        if task not in self.tasks:
            raise ValueError(f"model {self.name!r}: unknown task {task!r} for this model; "
                             f"it supports {list(self.tasks)}")
        if variant not in self.variants:
            raise ValueError(f"model {self.name!r}: unknown variant {variant!r}; "
                             f"choose from {list(self.variants)}")
        unknown = sorted(set(params) - set(self.options))
        if unknown and not self.options:
            raise TypeError(f"model {self.name!r} takes no options, got {unknown}")
        if unknown:
            raise TypeError(f"model {self.name!r}: unknown option(s) {unknown}; "
                            f"options: {sorted(self.options)}")
        return self.build(tuple(input_shape), n_outputs, task=task, variant=variant, **params)

    def frontend(self, variant: str | None = None) -> str:
        variant = variant or self.default_variant
        if isinstance(self.input, str):
            return self.input
        return self.input.get(variant, self.input.get(self.default_variant, "logmel"))


# --------------------------------------------------------------------------- metrics


@dataclass
class MetricResult:
    """A metric's value on one split, with optional per-label values and bookkeeping counts."""

    value: float
    #: One dict per label/class, e.g. {"label": "guitar", "value": 0.91, "n_pos": 12, "n_neg": 30}.
    per_label: list[dict[str, Any]] | None = None
    #: Bookkeeping (n_labels_skipped, skipped names, n_clips_no_labels, confusion matrix…).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricSpec:
    """A metric plugin. ``compute(y_true, y_score, labels, **params) -> MetricResult``."""

    key: str
    name: str
    tasks: tuple[str, ...]
    compute: Callable[..., MetricResult]
    higher_is_better: bool = True
    #: The default checkpoint-selection metric for its tasks (macro ROC-AUC, accuracy).
    selects: bool = False
    #: Shown in the default comparison table (extras such as PR-AUC are not).
    headline: bool = True
    #: Column order in tables (lower first).
    order: int = 100
    summary: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
