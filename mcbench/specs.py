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


class OptionError(ValueError):
    """A value given for a declared option does not fit its type; the message names both."""


# --------------------------------------------------------------------------- typed options

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               Path: "a path"}


@dataclass(frozen=True)
class Option:
    """One typed option of a plugin (a model's build option, a dataset parameter, a training
    setting): its type, default and help line live here, and everything else — command-line
    parsing, validation, the run's identity, ``mcbench models NAME`` — is derived from it.

    ``type`` is ``bool``, ``int``, ``float``, ``str`` or ``Path``, or a tuple of them tried in
    order (``(float, str)`` with ``choices=("scale", "auto")`` accepts a number or one of the
    names). Command-line text is converted by the type: booleans accept true/false, 1/0, yes/no
    and on/off in any case (never Python's truthiness of a string); ``multiple`` options take a
    list or comma-separated text and hold a tuple. ``variant_defaults`` gives a model option a
    default per variant; ``variants`` limits an option to some variants (it is not passed to,
    nor accepted for, the others). ``affects_result=False`` marks settings that change how, not
    what, is computed (decoding workers, progress bars): they are kept out of a run's identity.
    ``normalize`` maps a parsed value to its canonical form (so equal settings written
    differently identify the same run).
    """

    type: Any
    default: Any = None
    help: str = ""
    choices: tuple = ()
    multiple: bool = False
    minimum: float | None = None
    maximum: float | None = None
    variant_defaults: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[str, ...] = ()
    affects_result: bool = True
    normalize: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        bad = [t for t in types if t not in _TYPE_WORDS]
        if not types or bad:
            raise PluginError(f"Option type must be bool, int, float, str or Path (or a tuple of "
                              f"them), got {self.type!r}")

    @property
    def types(self) -> tuple:
        return self.type if isinstance(self.type, tuple) else (self.type,)

    def default_for(self, variant: str | None = None) -> Any:
        if variant is not None and variant in self.variant_defaults:
            return self.variant_defaults[variant]
        return self.default

    def describe(self) -> str:
        """``'bool, default False'`` — for listings and messages."""
        words = " or ".join(_TYPE_WORDS[t] for t in self.types)
        if self.choices:
            # choices restrict strings when strings are allowed, else the one type itself
            others = [t for t in self.types if t is not str] if str in self.types else []
            words = "one of " + ", ".join(repr(c) for c in self.choices) + "".join(
                f" or {_TYPE_WORDS[t]}" for t in others)
        if self.multiple:
            words = f"a list of ({words}), comma-separated"
        if self.variant_defaults:
            per = ", ".join(f"{v}: {d!r}" for v, d in self.variant_defaults.items())
            return f"{words}; default {per}" + (f", else {self.default!r}" if self.default is not None else "")
        return f"{words}; default {self.default!r}"

    def parse(self, value: Any, name: str, owner: str) -> Any:
        """``value`` (command-line text or a Python value) converted and checked; else
        :class:`OptionError` naming ``owner``'s option ``name`` and what it accepts."""
        if value is None:
            return None
        if self.multiple:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                items = [items]
            parsed = tuple(self._parse_one(v.strip() if isinstance(v, str) else v, name, owner)
                           for v in items if not (isinstance(v, str) and not v.strip()))
        else:
            parsed = self._parse_one(value, name, owner)
        if self.normalize is None:
            return parsed
        try:
            return self.normalize(parsed)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"{owner}: option {name!r}: {exc}") from exc

    def _fail(self, value: Any, name: str, owner: str, why: str = "") -> OptionError:
        return OptionError(f"{owner}: option {name!r} got {value!r}{why}; it takes {self.describe()}")

    def _parse_one(self, value: Any, name: str, owner: str) -> Any:
        for kind in self.types:
            try:
                out = _convert(kind, value)
            except (TypeError, ValueError):
                continue
            if self.choices and isinstance(out, str) and out not in self.choices:
                continue
            if self.choices and not isinstance(out, str) and str not in self.types \
                    and out not in self.choices:
                continue
            if isinstance(out, (int, float)) and not isinstance(out, bool):
                if self.minimum is not None and out < self.minimum:
                    raise self._fail(value, name, owner, f" (below the minimum {self.minimum})")
                if self.maximum is not None and out > self.maximum:
                    raise self._fail(value, name, owner, f" (above the maximum {self.maximum})")
            return out
        raise self._fail(value, name, owner)


def _convert(kind: Any, value: Any) -> Any:
    import math
    import os

    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(value)
    if isinstance(value, bool):  # True is not the number 1 here
        raise ValueError(value)
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError(value)
    if kind is float:
        out = float(value.strip()) if isinstance(value, str) else value
        if not isinstance(out, (int, float)) or not math.isfinite(out):
            raise ValueError(value)
        return float(out)
    if kind is Path:
        if isinstance(value, (str, os.PathLike)) and str(value):
            return Path(value)
        raise ValueError(value)
    if isinstance(value, str):
        return value
    raise ValueError(value)


def check_declared_options(declared: Mapping[str, Any], owner: str) -> None:
    """Raise :class:`PluginError` unless every declaration is an :class:`Option` whose own
    default fits it (a plugin's mistake is reported when it registers, not in a user's run)."""
    for name, opt in declared.items():
        if not isinstance(opt, Option):
            raise PluginError(
                f"{owner}: option {name!r} must be declared as mcbench.specs.Option(type, default, "
                f"help), e.g. Option(int, 16, 'channels per layer'); got {type(opt).__name__}")
        for variant, default in [(None, opt.default), *opt.variant_defaults.items()]:
            try:
                opt.parse(default, name, owner)
            except OptionError as exc:
                where = f" for variant {variant!r}" if variant else ""
                raise PluginError(f"{owner}: the declared default{where} does not fit: {exc}") from exc


def resolve_options(declared: Mapping[str, Option], given: Mapping[str, Any], owner: str,
                    variant: str | None = None) -> dict[str, Any]:
    """Every declared option that applies (to ``variant``), parsed, with defaults filled in.

    Unknown names and values of the wrong type raise :class:`OptionError` naming the option and
    what it accepts; an option given for a variant it does not apply to is an error too.
    """
    import difflib

    unknown = sorted(set(given) - set(declared))
    if unknown:
        hints = [f"{u!r}" + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
            u, list(declared), n=1)) else "") for u in unknown]
        known = ", ".join(sorted(declared)) or "none"
        raise OptionError(f"{owner}: unknown option {', '.join(hints)}; its options: {known}")
    out: dict[str, Any] = {}
    for name, opt in declared.items():
        applies = not opt.variants or variant is None or variant in opt.variants
        if not applies:
            if name in given:
                raise OptionError(f"{owner}: option {name!r} applies to variant(s) "
                                  f"{', '.join(opt.variants)} only, not {variant!r}")
            continue
        value = given[name] if name in given else opt.default_for(variant)
        out[name] = opt.parse(value, name, owner)
    return out


def identity_values(declared: Mapping[str, Option], resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved options that can change a result (``affects_result``), for a run's identity."""
    return {k: v for k, v in resolved.items() if k not in declared or declared[k].affects_result}


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
    """A fault found in a dataset: a clip left out of a split, or one that stops the dataset.

    ``kind`` names the fault ("missing", "truncated", "too short", …) so that reports group by
    it. ``effect`` is the decision taken for it, the same in ``data check`` and ``data
    prepare``: :data:`SKIP` leaves this clip out and uses every other one (reported, never
    silently lost); :data:`STOP` means the dataset cannot be used until the fault is fixed, and
    ``reason`` says what to do.
    """

    # Plain class attributes (no annotation), so not dataclass fields.
    SKIP = "skip"
    STOP = "stop"

    id: str
    path: str
    reason: str
    step: str = ""
    kind: str = ""
    effect: str = "skip"

    @property
    def fatal(self) -> bool:
        return self.effect == self.STOP


@dataclass
class Split:
    """An ordered list of tracks forming one split (``train``, ``valid`` or ``test``)."""

    name: str
    tracks: list[Track]

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tracks]

    def fingerprint(self) -> str:
        """Hash of the sorted track ids : equal splits, equal fingerprint, so results
        from different splits are never mixed."""
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
        """No problem of any kind (notes alone, such as resampled clips, are fine)."""
        return not self.problems

    @property
    def fatal(self) -> list[Dropped]:
        """The problems that make the whole dataset unusable (``effect == "stop"``)."""
        return [p for p in self.problems if p.fatal]

    @property
    def skipped(self) -> list[Dropped]:
        """The problems that leave one clip out (``effect == "skip"``)."""
        return [p for p in self.problems if not p.fatal]


@dataclass(frozen=True)
class ExpectedSplit:
    """How many clips one fold of a protocol holds, known without the data: what a dataset's
    published split lists or its generator's parameters say (a reader may drop a few unreadable
    clips). ``clip_seconds`` is the length the front end takes when it differs from the
    dataset's :attr:`DatasetSpec.clip_seconds` (a generated dataset's own clip length)."""

    train: int
    valid: int
    test: int
    clip_seconds: float | None = None


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
    #: The keyword parameters of ``tracks`` (and ``materialize``), typed: ``--dataset-param
    #: KEY=VALUE`` is parsed and checked by these, and ``tracks`` receives every one of them with
    #: its default filled in. Those with ``affects_result=False`` stay out of a run's identity.
    params: Mapping[str, Option] = field(default_factory=dict)
    #: ``expected_split(protocol, **params)`` -> :class:`ExpectedSplit`: the clips of one fold,
    #: for compute estimates before any data exists (``mcbench reproduce --dry-run``).
    expected_split: Callable[..., ExpectedSplit] | None = None

    def __post_init__(self) -> None:
        owner = f"dataset {self.name!r}"
        if self.task not in TASKS:
            raise PluginError(f"{owner}: task must be one of {TASKS}, got {self.task!r}")
        if self.default_protocol not in self.protocols:
            raise PluginError(
                f"{owner}: default protocol {self.default_protocol!r} "
                f"is not among {sorted(self.protocols)}"
            )
        check_declared_options(self.params, owner)
        check_training_keys(self.train_defaults, f"{owner}, train_defaults")
        for model, settings in self.model_train_defaults.items():
            check_training_keys(settings, f"{owner}, model_train_defaults[{model!r}]")

    def resolve_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter of ``tracks``, parsed by its :class:`Option`, defaults filled in."""
        return resolve_options(self.params, given, owner=f"dataset {self.name!r}")


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
    #: Digest of the split's content (features and targets in order) for a run's identity;
    #: empty when the split was not read from the feature store.
    content: str = ""

    def __len__(self) -> int:
        return len(self.ids)


# --------------------------------------------------------------------------- models


#: The training protocols (paper, Sec. IV–V-C; the authors' notebooks, FishInMedi/CRNN-TF):
#: settings that differ between them. Every other setting has its :class:`TrainConfig` default.
#: ``paper``: learning rate ×0.9 after every epoch and the L2 penalty of eq. (2) with
#: λ1 = λ2 = λ3 = 1e-6; ``wang2019``: a constant learning rate and no L2, as in the notebooks.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "paper": {"lr_decay": 0.9, "l2_conv": 1e-6, "l2_output": 1e-6, "l2_recurrent": 1e-6},
    "wang2019": {"lr_decay": 1.0, "l2_conv": 0.0, "l2_output": 0.0, "l2_recurrent": 0.0},
}

#: Floating-point precision of training and evaluation. ``fp32`` is what the paper ran (a K40);
#: ``bf16`` autocasts convolutions and matrix products to bfloat16 (faster on recent GPUs).
PRECISIONS = ("fp32", "bf16")


def _setting(kind: Any, default: Any, help: str, **kw: Any) -> Any:
    """A :class:`TrainConfig` field that users and dataset plugins may set, typed by an Option."""
    return field(default=default, metadata={"option": Option(kind, default, help, **kw)})


@dataclass
class TrainConfig:
    """Training settings of one run. Non-torch learners read what applies to them.

    Fields declared with an :class:`Option` are *settings*: a dataset plugin may suggest them
    (``DatasetSpec.train_defaults``), the command line may set them, and they are part of a
    run's identity. The others are how the harness hands a run to a learner (device, work
    folder, the selection function, progress) and cannot change its numbers beyond floating-point
    rounding (the device, the memory layout).
    """

    protocol: str = _setting(str, "paper", "training protocol", choices=tuple(PROTOCOLS))
    max_epochs: int = _setting(int, 50, "maximum number of epochs (the paper: 50)", minimum=1)
    batch_size: int = _setting(int, 32, "clips per batch (the paper: 32)", minimum=1)
    lr: float = _setting(float, 1e-3, "Adam learning rate (the paper: 1e-3)", minimum=0.0)
    #: Multiplicative learning-rate decay applied after every epoch (1.0 = constant).
    lr_decay: float = _setting(float, 0.9, "learning rate ×this after every epoch", minimum=0.0)
    #: Adam epsilon: 1e-7 is Keras's default, which the paper's code used.
    adam_eps: float = _setting(float, 1e-7, "Adam epsilon (Keras's default 1e-7)", minimum=0.0)
    #: L2 coefficients of eq. (2): conv (λ1), output/dense (λ2), recurrent (λ3).
    l2_conv: float = _setting(float, 1e-6, "λ1 of eq. (2), convolution kernels", minimum=0.0)
    l2_output: float = _setting(float, 1e-6, "λ2 of eq. (2), dense and output layers", minimum=0.0)
    l2_recurrent: float = _setting(float, 1e-6, "λ3 of eq. (2), recurrent layers", minimum=0.0)
    #: Epochs without validation improvement before stopping; ``None`` disables early stopping.
    patience: int | None = _setting(int, None, "early-stopping patience in epochs (off)", minimum=1)
    #: Standardise inputs with the training split's mean and standard deviation (two scalars).
    standardize: bool = _setting(bool, True, "standardise inputs with the training split's "
                                 "mean and std")
    precision: str = _setting(str, "fp32", "fp32 (the paper) or bf16 autocast", choices=PRECISIONS)
    seed: int = 0
    device: str = "auto"
    #: Where checkpoints go; a run started again with the same workdir resumes.
    workdir: Path | None = None
    #: Validation metric used for checkpoint selection: ``(y_true, y_score) -> float``.
    select_metric: Callable[[Any, Any], float] | None = None
    select_metric_name: str = ""
    #: Whether a larger ``select_metric`` is better (ROC-AUC, accuracy) or a smaller (a loss):
    #: the selection metric plugin's own ``higher_is_better``. See :func:`improves`.
    select_higher_is_better: bool = True
    progress: bool = True
    #: Keep 4-D inputs and conv weights in channels-last memory layout (speed only; see
    #: ``TorchLearner._place``).
    channels_last: bool = True
    #: Called after every epoch with its history entry (observers, tests of interruption).
    epoch_callback: Callable[[dict], None] | None = None


def training_options() -> dict[str, Option]:
    """The settings of :class:`TrainConfig` (name → Option), in declaration order."""
    import dataclasses

    return {f.name: f.metadata["option"] for f in dataclasses.fields(TrainConfig)
            if "option" in f.metadata}


#: Command-line flags whose names differ from the setting they set.
TRAINING_FLAG_NAMES = {"max_epochs": "--epochs", "batch_size": "--batch-size",
                       "protocol": "--training-protocol"}


def improves(value: float, best: float | None, higher_is_better: bool = True) -> bool:
    """Whether a validation value beats the best so far in the metric's direction. A value
    that is not finite (the metric was undefined on the validation split) never does; the first
    finite one always does; a tie keeps the earlier epoch (the paper selects on validation,
    Sec. V-C)."""
    import math

    if not math.isfinite(value):
        return False
    if best is None or not math.isfinite(best):
        return True
    return value > best if higher_is_better else value < best


def resolve_training(protocol: str, *layers: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Every training setting of a run: the protocol's table over the defaults, then ``layers``
    from the weakest to the strongest (dataset suggestion, its per-model one, the user's)."""
    declared = training_options()
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    merged.pop("protocol", None)
    if protocol not in PROTOCOLS:
        raise OptionError(f"unknown training protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    return resolve_options(declared, {"protocol": protocol, **PROTOCOLS[protocol], **merged},
                           owner=owner)


def check_training_keys(settings: Mapping[str, Any], owner: str) -> None:
    """Raise :class:`PluginError` for suggested training settings that are not settings."""
    try:
        resolve_options(training_options(), settings, owner=owner)
    except OptionError as exc:
        flags = ", ".join(f"{flag} sets {name!r}" for name, flag in TRAINING_FLAG_NAMES.items())
        raise PluginError(f"{exc} (command-line flags are named differently: {flags})") from exc


@runtime_checkable
class Learner(Protocol):
    """What ``ModelSpec.build`` returns when the model is not a plain ``torch.nn.Module``.

    A torch plugin may return an ``nn.Module``: the harness wraps it in its own torch learner.
    """

    def fit(self, train: FeatureSplit, valid: FeatureSplit, config: TrainConfig) -> list[dict]: ...

    def predict(self, split: FeatureSplit) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...


@dataclass(frozen=True)
class Build:
    """One backend's build of a model (an entry of ``ModelSpec.builds``).

    ``build`` is called as ``ModelSpec.build`` is. ``variants`` lists the variants this build
    offers (empty: every variant of the model); ``choices`` limits option values (option name ->
    the values this build takes). Both are checked when a run is planned, before any work.
    """

    build: Callable[..., Any]
    variants: tuple[str, ...] = ()
    choices: Mapping[str, tuple] = field(default_factory=dict)


@dataclass
class ModelSpec:
    """A model plugin.

    ``build(input_shape, n_outputs, *, task, variant, **params)`` returns a ``torch.nn.Module``
    producing logits ``(B, n_outputs)``, a ``keras.Model`` producing logits (backend
    ``"keras"``), or a :class:`Learner`. ``input_shape`` excludes the batch axis: ``(1, 96, T)``
    for log-mel, ``(1, S)`` for waveforms. Import heavy libraries inside ``build``, never at
    module level.

    A model gives either one ``build`` (with its ``backend``) or one build per backend in
    ``builds`` (backend name -> a build function, or a :class:`Build` naming the variants and
    option values that backend offers); ``backends`` is derived from that, and ``backend`` is
    the default one (``torch`` when offered, else the first listed). A run on a backend whose
    build does not offer the default variant gets that build's first variant unless one is
    named (:meth:`default_variant_for`).
    """

    name: str
    summary: str
    build: Callable[..., Any] | None = None
    tasks: tuple[str, ...] = TASKS
    #: variant name -> one-line description; the first key is the default unless named below.
    variants: Mapping[str, str] = field(default_factory=lambda: {"default": ""})
    default_variant: str = ""
    #: The front end this model reads: a name, or a mapping variant -> name.
    input: str | Mapping[str, str] = "logmel"
    #: Citation of the paper the design comes from.
    source: str = ""
    #: The keyword options of ``build``, typed (name -> :class:`Option`).
    options: Mapping[str, Option] = field(default_factory=dict)
    #: What ``build`` returns: ``"torch"`` (an ``nn.Module`` producing logits, trained by the
    #: harness's torch learner), ``"keras"`` (a ``keras.Model`` producing logits, trained by
    #: the harness's Keras learner) or the name of the library behind the :class:`Learner` it
    #: returns (e.g. ``"sklearn"``). Part of a run's identity. With ``builds``: the default
    #: backend (``None``: ``torch`` when offered, else the first of ``builds``).
    backend: str | None = None
    #: One build per backend (backend name -> build function or :class:`Build`), instead of
    #: ``build``; ``--backend NAME`` chooses one.
    builds: Mapping[str, Callable[..., Any] | Build] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.build is not None and self.builds:
            # dataclasses.replace() of a spec passes both, consistent: that is fine
            default = self.builds.get(self.backend or "torch")
            if getattr(default, "build", default) is not self.build:
                raise PluginError(f"model {self.name!r}: give either build (with backend) or "
                                  "builds (backend -> build), not both")
        if self.build is None and not self.builds:
            raise PluginError(f"model {self.name!r}: no build; give build=... or "
                              "builds={'torch': ..., 'keras': ...}")
        if self.build is not None and not self.builds:
            self.builds = {self.backend or "torch": self.build}
        self.builds = {b: f if isinstance(f, Build) else Build(f) for b, f in self.builds.items()}
        bad = [b for b, f in self.builds.items() if not callable(f.build)]
        if bad:
            raise PluginError(f"model {self.name!r}: the build of backend(s) {bad} is not callable")
        if self.backend is None:
            self.backend = "torch" if "torch" in self.builds else next(iter(self.builds))
        if self.backend not in self.builds:
            raise PluginError(f"model {self.name!r}: default backend {self.backend!r} is not "
                              f"among its builds {list(self.builds)}")
        self.build = self.builds[self.backend].build
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
        check_declared_options(self.options, f"model {self.name!r}")
        unknown = sorted({v for o in self.options.values() for v in [*o.variants, *o.variant_defaults]}
                         - set(self.variants))
        if unknown:
            raise PluginError(f"model {self.name!r}: options name unknown variant(s) {unknown}")
        for backend, b in self.builds.items():
            where = f"model {self.name!r}, backend {backend!r}"
            if set(b.variants) - set(self.variants):
                raise PluginError(f"{where}: unknown variant(s) "
                                  f"{sorted(set(b.variants) - set(self.variants))}")
            if set(b.choices) - set(self.options):
                raise PluginError(f"{where}: choices for unknown option(s) "
                                  f"{sorted(set(b.choices) - set(self.options))}")

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends this model has a build for (``--backend`` chooses one)."""
        return tuple(self.builds)

    def backends_of(self, variant: str | None = None) -> tuple[str, ...]:
        """The backends whose build offers ``variant`` (default: the default variant)."""
        variant = variant or self.default_variant
        return tuple(b for b, f in self.builds.items() if not f.variants or variant in f.variants)

    def default_variant_for(self, backend: str | None = None) -> str:
        """The variant a run gets when none is named: the model's default, unless the backend's
        build does not offer it; then the first variant that build offers."""
        build = self.builds.get(backend or self.backend)
        if build is None or not build.variants or self.default_variant in build.variants:
            return self.default_variant
        return build.variants[0]

    def check_backend(self, backend: str | None, variant: str | None,
                      options: Mapping[str, Any]) -> str:
        """The backend to build with (``None``: the default one), checked against the builds,
        the variant and the resolved ``options``; else :class:`OptionError` saying what the
        model offers."""
        backend = backend or self.backend
        variant = variant or self.default_variant
        if backend not in self.builds:
            raise OptionError(f"model {self.name!r} has no {backend} build; its backend(s): "
                              f"{', '.join(self.backends)} (choose with --backend)")
        b = self.builds[backend]
        if b.variants and variant not in b.variants:
            others = self.backends_of(variant)
            raise OptionError(
                f"model {self.name!r}: variant {variant!r} has no {backend} build; the {backend} "
                f"build offers variant(s) {', '.join(b.variants)}"
                + (f", and {variant!r} runs on {', '.join(others)}" if others else ""))
        for name, allowed in b.choices.items():
            if name in options and options[name] not in allowed:
                raise OptionError(
                    f"model {self.name!r}: option {name}={options[name]!r} has no {backend} "
                    f"build; the {backend} build takes {name} "
                    f"{' or '.join(repr(a) for a in allowed)}")
        return backend

    def resolve_options(self, variant: str | None, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option of ``build`` that applies to ``variant``, parsed, defaults filled in.

        Raises :class:`OptionError` for an unknown variant or option, or a value of the wrong
        type, naming it and what is accepted.
        """
        variant = variant or self.default_variant
        if variant not in self.variants:
            raise OptionError(f"model {self.name!r}: unknown variant {variant!r}; "
                              f"choose from {list(self.variants)}")
        return resolve_options(self.options, given, owner=f"model {self.name!r}", variant=variant)

    def create(self, input_shape: Sequence[int], n_outputs: int, *, task: str,
               variant: str | None = None, backend: str | None = None, **params: Any) -> Any:
        """Check the task, variant, backend and options against this spec, then call the
        backend's build (``None``: the default backend's) with every option that applies
        (defaults filled in, values typed).

        The harness always builds through here, so a plugin's ``build`` need not repeat these
        checks. Unknown options and wrongly typed values raise :class:`OptionError`.
        """
        variant = variant or self.default_variant
        if task not in self.tasks:
            raise ValueError(f"model {self.name!r}: unknown task {task!r} for this model; "
                             f"it supports {list(self.tasks)}")
        resolved = self.resolve_options(variant, params)
        build = self.builds[self.check_backend(backend, variant, resolved)].build
        return build(tuple(input_shape), n_outputs, task=task, variant=variant, **resolved)

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
