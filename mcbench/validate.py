"""``mcbench plugins validate NAME``: does a model, dataset or metric plugin honour the contract?

Every problem is a ``[FAIL]`` line naming the plugin and what to fix; checks that could not run
are ``[SKIP]`` lines saying how to run them.

For a **model**, for every variant and task it declares, on the CPU and in seconds:

1. metadata: a summary, known tasks, a front end the harness can compute;
2. build: ``build(input_shape, n_outputs, task=…, variant=…)`` succeeds for a small input (or the
   default 29-s input when the design needs it) and returns an ``nn.Module`` or a learner;
3. outputs: predictions have shape ``(N, K)``, are finite, and are probabilities for the task
   (in [0, 1]; rows summing to 1 for multiclass) unless the learner declares
   ``scores_are_probabilities = False`` (e.g. SVM decision values);
4. learning: a few optimiser steps on a tiny fixed batch lower the loss (torch models); a Keras
   model overfits a fixed batch of ten clips (``KERAS_STEPS`` Adam steps at a learning rate of
   ``KERAS_LR``, the same dropout masks at every step) to below ``KERAS_FRACTION`` of the loss
   of the best prediction that ignores the input (the labels' frequencies), so a model whose
   output does not depend on its input, or that has no trainable weights, fails; other
   learners: fitting a tiny separable set beats chance;
5. persistence: save → load into a freshly built model gives identical predictions.

For a **dataset** (:func:`validate_dataset`):

1. the spec: a name usable on the command line, a summary, a known task, callable ``tracks`` and
   ``check``, protocols with a positive number of folds each and the default among them, static
   labels (when declared) non-empty and unique, typed parameters, training suggestions that are
   settings, a positive clip length;
2. with ``--root PATH`` (the data, or for a dataset with ``materialize`` a folder to generate it
   into): ``check(root)`` returns a :class:`~mcbench.specs.HealthReport`; for every protocol and
   fold, ``tracks(root, protocol, fold, **params)`` returns a :class:`~mcbench.specs.Partition` of
   this dataset, protocol and fold with non-empty, unique label names and the splits ``train``,
   ``valid`` and ``test``, each non-empty with unique ids, pairwise disjoint (no id and no file in
   two splits); every clip's label indices in range (exactly one for a multiclass dataset); the
   targets a learner receives of the task's shape and dtype (``(N, L)`` float32 multi-hot, or
   ``(N,)`` int64 class indices); every file present and the first clip of each split readable
   as audio. Without ``--root`` these checks are skipped and the output says how to run them.

For a **metric** (:func:`validate_metric`), for every task it declares, on small seeded inputs
shaped as the harness passes them (tagging: ``y_true`` an ``(N, L)`` 0/1 float32 matrix;
genres: ``(N,)`` int64 class indices; ``y_score`` an ``(N, L)`` float64 matrix): the spec's key,
name, summary and tasks; ``compute(y_true, y_score, labels, **params)`` returns a finite number
(a plain number or a :class:`~mcbench.specs.MetricResult`), leaves its inputs unchanged and gives
the same value twice; and perfect scores rank above reversed ones in the direction
``higher_is_better`` says.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from .audio import info as audio_info
from .evaluation import metric_value
from .features import FRONTEND_NAMES, FrontEnd, targets
from .specs import (
    MULTICLASS,
    MULTILABEL,
    SPLIT_NAMES,
    TASKS,
    DatasetSpec,
    Dropped,
    FeatureSplit,
    HealthReport,
    MetricSpec,
    ModelSpec,
    OptionError,
    Partition,
    PluginError,
    Split,
    Track,
    TrainConfig,
    check_declared_options,
    check_training_keys,
)

SMALL_SECONDS = 4.0
N_OUTPUTS = 5


class Check:
    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self.failures = 0

    def must(self, ok: bool, what: str, fix: str = "") -> bool:
        """A check whose ``fix`` (what the plugin must change) is shown only when it fails."""
        return self(ok, what, "" if ok else fix)

    def skip(self, what: str, how: str) -> None:
        self.echo(f"  [SKIP] {what}: {how}")

    def note(self, what: str) -> None:
        self.echo(f"  [NOTE] {what}")

    #: When set, PASS lines are counted instead of shown (later folds of a k-fold protocol).
    quiet = False
    passes = 0

    def __call__(self, ok: bool, what: str, detail: str = "") -> bool:
        mark = "PASS" if ok else "FAIL"
        if ok:
            self.passes += 1
        if not (ok and self.quiet):
            self.echo(f"  [{mark}] {what}" + (f": {detail}" if detail else ""))
        if not ok:
            self.failures += 1
        return ok


def _tiny_split(shape: tuple[int, ...], task: str, n: int, rng: np.random.Generator) -> FeatureSplit:
    """A separable toy set: the label is written into the input as an offset."""
    y_idx = np.arange(n) % N_OUTPUTS
    x = rng.normal(0.0, 1.0, size=(n, *shape)).astype(np.float32)
    x += (y_idx[:, None] / N_OUTPUTS).reshape(n, *([1] * len(shape))).astype(np.float32) * 3.0
    if task == MULTILABEL:
        y = np.zeros((n, N_OUTPUTS), dtype=np.float32)
        y[np.arange(n), y_idx] = 1.0
    else:
        y = y_idx.astype(np.int64)
    labels = [f"label{i}" for i in range(N_OUTPUTS)]
    return FeatureSplit("validate", [f"c{i}" for i in range(n)], x, y, task, labels)


def _build(spec: ModelSpec, variant: str, task: str, check: Check, backend: str | None = None):
    """Try a small input first, then the default 29-s input (some designs need it)."""
    errors = []
    for seconds in (SMALL_SECONDS, 29.0):
        shape = FrontEnd(spec.frontend(variant), seconds=seconds).shape
        try:
            return spec.create(shape, N_OUTPUTS, task=task, variant=variant,
                               backend=backend), shape
        except Exception as exc:
            errors.append(f"input {shape}: {type(exc).__name__}: {exc}")
    check(False, "build", " | ".join(errors))
    return None, None


def validate_model(spec: ModelSpec, task: str | None = None, variant: str | None = None,
                   echo: Callable[[str], None] = print, backend: str | None = None) -> bool:
    """``backend``: the build to check (``None``: the model's default backend); every variant
    that build offers unless ``variant`` names one."""
    import torch

    from .training import TorchLearner, as_learner

    check = Check(echo)
    backend = backend or spec.backend
    echo(f"validating model plugin {spec.name!r}" + (f" ({backend} build)" if len(spec.builds) > 1 else ""))
    check(bool(spec.summary.strip()), "has a one-line summary")
    if backend not in spec.builds:
        check(False, "backend has a build", f"{backend!r}: the model has {list(spec.builds)}")
        return False
    if backend != spec.backend:
        from .runner import check_backend_installed

        try:
            check_backend_installed(backend)
        except Exception as exc:  # names the extra to install
            check(False, f"{backend} is installed", str(exc))
            return False
    offered = [v for v in spec.variants if backend in spec.backends_of(v)]
    variants = [variant] if variant else offered
    unknown = [v for v in variants if v not in spec.variants]
    if unknown:
        check(False, "variant exists", f"{unknown} not in {list(spec.variants)}")
        return False
    tasks = [task] if task else list(spec.tasks)
    for v in variants:
        fe = spec.frontend(v)
        check(fe in FRONTEND_NAMES, f"variant {v}: front end {fe!r} is one the harness computes",
              "" if fe in FRONTEND_NAMES else f"known: {FRONTEND_NAMES}")
        for t in tasks:
            echo(f"variant {v}, task {t}")
            torch.manual_seed(0)
            if backend == "keras":  # seeded initial weights: the same verdict every time
                from .keras_learner import seed_keras

                seed_keras(0)
            built, shape = _build(spec, v, t, check, backend)
            if built is None:
                continue
            try:
                learner = as_learner(built, t)
            except TypeError as exc:
                check(False, "build returns an nn.Module or a learner", str(exc))
                continue
            check(True, "build", f"input {shape} → {type(built).__name__}")
            rng = np.random.default_rng(0)
            data = _tiny_split(shape, t, 20, rng)
            if isinstance(learner, TorchLearner):
                _check_torch(learner, data, t, check)
            elif type(learner).__name__ == "KerasLearner":
                _check_keras(learner, data, t, check)
            else:
                _check_learner(learner, data, t, check)
            _check_persistence(spec, v, t, shape, learner, data, check, backend)
    echo("OK: the plugin honours the contract" if check.failures == 0 else
         f"{check.failures} check(s) failed; see the FAIL lines above")
    return check.failures == 0


def _check_outputs(scores: np.ndarray, n: int, task: str, probabilities: bool, check: Check) -> None:
    ok_shape = check(scores.shape == (n, N_OUTPUTS), "output shape",
                     f"expected ({n}, {N_OUTPUTS}), got {scores.shape}")
    if not ok_shape:
        return
    finite = check(bool(np.all(np.isfinite(scores))), "outputs are finite")
    if not (finite and probabilities):
        return
    in_range = bool(np.all((scores >= 0) & (scores <= 1)))
    check(in_range, "outputs are probabilities in [0, 1]")
    if task == MULTICLASS:
        sums = scores.sum(axis=1)
        check(bool(np.allclose(sums, 1.0, atol=1e-4)), "class probabilities sum to 1",
              f"row sums range {sums.min():.4f}..{sums.max():.4f}")


def _check_torch(learner, data: FeatureSplit, task: str, check: Check) -> None:
    import torch

    module = learner.module
    x = torch.from_numpy(np.ascontiguousarray(data.x[:4]))
    try:
        logits = module.eval()(x)
    except Exception as exc:
        check(False, "forward pass", f"{type(exc).__name__}: {exc}")
        return
    if not check(isinstance(logits, torch.Tensor) and tuple(logits.shape) == (4, N_OUTPUTS),
                 "forward returns logits (B, K)",
                 f"got {getattr(logits, 'shape', type(logits).__name__)}"):
        return
    _check_outputs(learner.predict(data, batch_size=8), len(data), task, True, check)
    _check_transfer_groups(learner, x, check)
    y = torch.from_numpy(data.y[:4])

    def loss_now() -> float:
        torch.manual_seed(123)  # same dropout masks before and after
        module.train()
        with torch.no_grad():
            return float(learner._loss(module(x), y))

    before = loss_now()
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    module.train()
    for step in range(8):
        torch.manual_seed(step)
        loss = learner._loss(module(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_now()
    check(after < before, "a few training steps lower the loss", f"{before:.4f} → {after:.4f}")


#: The Keras learning check (module docstring, step 4).
KERAS_STEPS = 40
KERAS_LR = 1e-2
KERAS_FRACTION = 0.5
KERAS_BATCH = 10


def constant_prediction_loss(y: np.ndarray, task: str) -> float:
    """The lowest mean cross-entropy any prediction that ignores the input reaches on targets
    ``y``: the entropy of the labels' frequencies (per label, averaged, for tagging)."""
    eps = 1e-7
    if task == MULTILABEL:
        p = np.clip(np.asarray(y, dtype=np.float64).mean(axis=0), eps, 1 - eps)
        return float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))
    counts = np.bincount(np.asarray(y, dtype=np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _check_keras(learner, data: FeatureSplit, task: str, check: Check) -> None:
    """Outputs, transfer groups and learning of a Keras model (module docstring)."""
    import tensorflow as tf

    from .keras_learner import _dropout_seeds, check_keras_groups, keras_transfer_groups, load_keras

    keras = load_keras()
    model = learner.model
    x = np.ascontiguousarray(data.x[:KERAS_BATCH])
    y = np.asarray(data.y[:KERAS_BATCH])
    try:
        logits = np.asarray(model(x[:4], training=False))
    except Exception as exc:
        check(False, "forward pass", f"{type(exc).__name__}: {exc}")
        return
    if not check.must(logits.shape == (4, N_OUTPUTS), "the model returns logits (B, K)",
                      f"got shape {logits.shape} for a batch of 4 and {N_OUTPUTS} outputs"):
        return
    _check_outputs(learner.predict(data, batch_size=8), len(data), task, True, check)
    if keras_transfer_groups(learner.network) is not None:
        problems = check_keras_groups(learner.network)
        if not problems:
            try:
                learner.check_embed()
                emb = learner.embed(data, batch_size=8)
                if emb.shape[0] != len(data):
                    problems.append(f"embeddings of shape {emb.shape} for {len(data)} clips")
            except Exception as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
        check(not problems, "transfer groups (layers named cnn_…, rnn_…, head_…) hold every "
                            "layer with weights; head produces the logits", "; ".join(problems))
    variables = model.trainable_variables
    if not check.must(bool(variables), "the model has trainable weights",
                      f"Keras model {learner.network.name!r} has no trainable weights, so it "
                      "cannot learn; build it from layers with weights (Dense, Conv2D, …) that "
                      "are not frozen (trainable=True)"):
        return
    if task == MULTILABEL:
        data_loss = keras.losses.BinaryCrossentropy(from_logits=True)
        target = y.astype(np.float32)
    else:
        data_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        target = y.astype(np.int64)
    optimizer = keras.optimizers.Adam(learning_rate=KERAS_LR)

    def loss_now() -> float:
        _dropout_seeds(model, 0, 0)  # the same dropout masks before, during and after
        return float(data_loss(target, tf.cast(model(x, training=True), tf.float32)))

    try:
        before = loss_now()
        for _ in range(KERAS_STEPS):
            _dropout_seeds(model, 0, 0)
            with tf.GradientTape() as tape:
                loss = data_loss(target, tf.cast(model(x, training=True), tf.float32))
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
        after = loss_now()
    except Exception as exc:
        check(False, "training steps on a fixed batch", f"{type(exc).__name__}: {exc}")
        return
    floor = constant_prediction_loss(y, task)
    goal = KERAS_FRACTION * floor
    check(bool(np.isfinite(after)) and after < goal,
          f"{KERAS_STEPS} training steps on {len(x)} fixed clips fit them",
          f"loss {before:.4f} → {after:.4f}, below {goal:.4f} needed ({KERAS_FRACTION:g} × "
          f"{floor:.4f}, the loss of the best prediction that ignores the input)"
          + ("" if after < goal else "; the output does not depend on the input enough to fit "
             "ten clips: check that every layer is connected to the input and that the model "
             "returns logits, not probabilities"))


def _check_transfer_groups(learner, x, check: Check) -> None:
    """When the network declares ``parameter_groups()`` (what transfer learning and
    ``mcbench embed`` use): the groups partition its parameters and ``head`` is the module
    whose output is the logits (:func:`mcbench.transfer.check_groups`)."""
    from .embed import EmbeddingError, embeddings
    from .transfer import check_groups, declared_groups

    network = learner.network
    if declared_groups(network) is None:
        return
    problems = check_groups(network)
    if not problems:
        try:
            embeddings(network, x, prepare=learner.module.standardize)
        except EmbeddingError as exc:
            problems.append(str(exc))
    check(not problems, "transfer groups (cnn, rnn, head) hold every parameter once; head "
                        "produces the logits", "; ".join(problems))


def _check_learner(learner, data: FeatureSplit, task: str, check: Check) -> None:
    probabilities = getattr(learner, "scores_are_probabilities", True)
    config = TrainConfig(max_epochs=2, batch_size=8, progress=False,
                         select_metric=lambda yt, ys: 0.0, workdir=None)
    try:
        learner.fit(data, data, config)
    except Exception as exc:
        check(False, "fit on a tiny set", f"{type(exc).__name__}: {exc}")
        return
    scores = np.asarray(learner.predict(data))
    _check_outputs(scores, len(data), task, probabilities, check)
    if scores.shape == (len(data), N_OUTPUTS):
        truth = data.y.argmax(1) if task == MULTILABEL else data.y
        acc = float(np.mean(scores.argmax(1) == truth))
        check(acc > 1.5 / N_OUTPUTS, "fitting a separable tiny set beats chance",
              f"training accuracy {acc:.2f} (chance {1 / N_OUTPUTS:.2f})")


def _check_persistence(spec, variant, task, shape, learner, data, check: Check,
                       backend: str | None = None) -> None:
    import torch

    from .training import as_learner

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.bin"
        try:
            before = np.asarray(learner.predict(data))
            learner.save(path)
            torch.manual_seed(999)  # a different initialisation, to prove load() restores it all
            fresh = as_learner(spec.create(shape, N_OUTPUTS, task=task, variant=variant,
                                           backend=backend), task)
            fresh.load(path)
            after = np.asarray(fresh.predict(data))
        except Exception as exc:
            check(False, "save → load", f"{type(exc).__name__}: {exc}")
            return
    same = before.shape == after.shape and np.allclose(before, after, atol=1e-6, rtol=0)
    check(same, "save → load gives identical predictions",
          "" if same else f"max difference {np.max(np.abs(before - after)) if before.shape == after.shape else 'shape'}")


# --------------------------------------------------------------------------- datasets

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
#: What a plugin's code may raise without stopping the validation (``KeyboardInterrupt`` stops it).
_FAILURES = (Exception, SystemExit)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _label_names(names: Any, what: str, owner: str, check: Check, at_least: int) -> bool:
    """Label names: strings, non-empty, unique, at least ``at_least`` of them."""
    names = list(names) if isinstance(names, (list, tuple)) else names
    if not check.must(isinstance(names, list) and all(isinstance(n, str) and n.strip() for n in names),
                 f"{what} are non-empty strings",
                 f"{owner}: got {names!r:.120}; give a list of label names"):
        return False
    if not check.must(len(names) >= at_least, f"{what}: at least {at_least}",
                 f"{owner}: got {len(names)}; a classifier needs at least {at_least} label(s)"):
        return False
    dupes = sorted({n for n in names if names.count(n) > 1})
    return check.must(not dupes, f"{what} are unique",
                 f"{owner}: {dupes} occur more than once; every label name must be unique")


def _check_dataset_spec(spec: DatasetSpec, owner: str, check: Check) -> None:
    check.must(isinstance(spec.name, str) and bool(_NAME_RE.fullmatch(spec.name)),
          "name is usable on the command line and in file names",
          f"{owner}: use letters, digits, '_', '.' or '-' (no spaces or commas)")
    check.must(isinstance(spec.summary, str) and bool(spec.summary.strip()), "has a one-line summary",
          f"{owner}: set DatasetSpec.summary")
    check.must(spec.task in TASKS, "task is known", f"{owner}: task {spec.task!r}; use one of {TASKS}")
    check.must(callable(spec.tracks), "tracks is callable",
          f"{owner}: DatasetSpec.tracks must be a function (root, protocol, fold, **params) -> Partition")
    check.must(callable(spec.check), "check is callable",
          f"{owner}: DatasetSpec.check must be a function (root) -> HealthReport")
    check.must(spec.materialize is None or callable(spec.materialize), "materialize is None or callable",
          f"{owner}: DatasetSpec.materialize must be None or a function (root, **params)")
    protocols = dict(spec.protocols) if isinstance(spec.protocols, Mapping) else {}
    bad = {p: n for p, n in protocols.items()
           if not isinstance(p, str) or not p or not isinstance(n, int) or isinstance(n, bool) or n < 1}
    check.must(bool(protocols) and not bad, "protocols name a positive number of folds each",
          f"{owner}: " + (f"{bad} " if bad else "no protocols ") +
          "— protocols maps a name to its number of folds (1 for a fixed split), e.g. {'fixed': 1}")
    check.must(spec.default_protocol in protocols, "default protocol is one of the protocols",
          f"{owner}: {spec.default_protocol!r} is not among {sorted(protocols)}")
    if spec.labels:
        _label_names(spec.labels, "declared labels", owner, check,
                     2 if spec.task == MULTICLASS else 1)
    else:
        check.note("no static labels declared (each partition names its labels)")
    try:
        check_declared_options(spec.params, owner)
        check(True, "parameters are typed Options", ", ".join(spec.params) or "none")
    except PluginError as exc:
        check.must(False, "parameters are typed Options", str(exc))
    try:
        check_training_keys(spec.train_defaults, f"{owner}, train_defaults")
        for model, settings in spec.model_train_defaults.items():
            check_training_keys(settings, f"{owner}, model_train_defaults[{model!r}]")
        check(True, "suggested training settings are settings")
    except PluginError as exc:
        check.must(False, "suggested training settings are settings", str(exc))
    check.must(_is_number(spec.clip_seconds) and spec.clip_seconds > 0, "clip length is positive",
          f"{owner}: clip_seconds {spec.clip_seconds!r}; the seconds every clip is cropped or "
          "padded to (29.0 in the paper)")
    check.must(isinstance(spec.sample_rate, int) and spec.sample_rate >= 0,
          "sample rate is a non-negative integer",
          f"{owner}: sample_rate {spec.sample_rate!r}; the audio files' native rate in Hz (0: unknown)")
    if not (isinstance(spec.readme, str) and spec.readme.strip()):
        check.note("no readme: `mcbench datasets NAME` cannot say how to obtain the data")


def _check_health(spec: DatasetSpec, root: Path, owner: str, check: Check) -> None:
    try:
        report = spec.check(root)
    except _FAILURES as exc:
        check.must(False, "check(root) returns a HealthReport", f"{owner}: check() raised {_error(exc)}")
        return
    if not check.must(isinstance(report, HealthReport), "check(root) returns a HealthReport",
                 f"{owner}: check() returned {type(report).__name__}; return "
                 "mcbench.specs.HealthReport(dataset, root, layout, n_listed, n_found, problems)"):
        return
    fields_ok = (report.dataset == spec.name and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for n in (report.n_listed, report.n_found))
        and isinstance(report.problems, list) and all(isinstance(p, Dropped) for p in report.problems)
        and isinstance(report.notes, list) and all(isinstance(n, str) for n in report.notes)
        and isinstance(report.stats, dict))
    check.must(fields_ok, "the HealthReport's fields are well formed",
          f"{owner}: dataset {report.dataset!r} (must be {spec.name!r}), n_listed "
          f"{report.n_listed!r} and n_found {report.n_found!r} (counts), problems a list of "
          "mcbench.specs.Dropped, notes a list of strings, stats a dict")
    if fields_ok:
        check.note(f"check(): {report.n_found} of {report.n_listed} clips found, "
                   f"{len(report.problems)} problem(s)")


def _check_partition(spec: DatasetSpec, part: Any, protocol: str, fold: int | None, owner: str,
                     check: Check) -> None:
    where = f"{owner}, protocol {protocol!r}" + (f" fold {fold}" if fold is not None else "")
    if not check.must(isinstance(part, Partition), "tracks() returns a Partition",
                 f"{where}: got {type(part).__name__}; return mcbench.specs.Partition(dataset, "
                 "protocol, fold, labels, splits)"):
        return
    check.must(part.dataset == spec.name and part.protocol == protocol and part.fold == fold,
          "the partition names this dataset, protocol and fold",
          f"{where}: got dataset {part.dataset!r}, protocol {part.protocol!r}, fold {part.fold!r}")
    if not _label_names(part.labels, "partition labels", where, check,
                        2 if spec.task == MULTICLASS else 1):
        return
    if spec.labels:
        extra = sorted(set(part.labels) - set(spec.labels))
        check.must(not extra, "partition labels are among the declared labels",
              f"{where}: {extra} are not in DatasetSpec.labels")
    splits = part.splits if isinstance(part.splits, dict) else {}
    if not check.must(set(splits) == set(SPLIT_NAMES) and all(
            isinstance(s, Split) and s.name == n for n, s in splits.items()),
            "splits are train, valid and test",
            f"{where}: got {sorted(splits) if splits else type(part.splits).__name__}; "
            f"splits maps each of {list(SPLIT_NAMES)} to a mcbench.specs.Split of that name"):
        return
    bad_tracks = [(n, t) for n, s in splits.items() for t in s.tracks if not (
        isinstance(t, Track) and isinstance(t.id, str) and t.id and isinstance(t.path, (str, Path))
        and isinstance(t.labels, tuple))]
    if not check.must(not bad_tracks, "every clip is a Track(id, path, labels)",
                 f"{where}: {len(bad_tracks)} are not, e.g. in {bad_tracks[0][0]}: "
                 f"{bad_tracks[0][1]!r:.120} (id a non-empty str, path a Path, labels a tuple of "
                 "label indices)" if bad_tracks else ""):
        return
    empty = [n for n in SPLIT_NAMES if not splits[n].tracks]
    check.must(not empty, "every split holds clips", f"{where}: {empty} are empty")
    for name in SPLIT_NAMES:
        ids = splits[name].ids
        dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) < len(ids) else []
        check.must(not dupes, f"{name}: clip ids are unique", f"{where}: {dupes[:5]} repeat in {name}")
    for a, b in combinations(SPLIT_NAMES, 2):
        shared = sorted(set(splits[a].ids) & set(splits[b].ids))
        paths = sorted({str(t.path) for t in splits[a].tracks} & {str(t.path) for t in splits[b].tracks})
        check.must(not shared and not paths, f"{a} and {b} are disjoint",
              f"{where}: {len(shared)} id(s) {shared[:3]} and {len(paths)} file(s) {paths[:2]} "
              f"are in both; a clip must be in one split only")
    n_labels = len(part.labels)
    for name in SPLIT_NAMES:
        tracks = splits[name].tracks
        wrong = [t for t in tracks if not all(isinstance(i, int) and not isinstance(i, bool)
                                              and 0 <= i < n_labels for i in t.labels)
                 or len(set(t.labels)) != len(t.labels)
                 or (spec.task == MULTICLASS and len(t.labels) != 1)]
        rule = "exactly one class index" if spec.task == MULTICLASS else "distinct label indices"
        if not check.must(not wrong, f"{name}: labels are {rule} in 0..{n_labels - 1}",
                     f"{where}: {len(wrong)} clip(s), e.g. {wrong[0].id!r} with labels "
                     f"{wrong[0].labels!r}" if wrong else ""):
            continue
        y = targets(tracks, n_labels, spec.task)
        shape, dtype = ((len(tracks), n_labels), np.float32) if spec.task == MULTILABEL else \
            ((len(tracks),), np.int64)
        check.must(y.shape == shape and y.dtype == dtype,
              f"{name}: targets are {dtype.__name__} of shape {shape}", f"{where}: got {y.dtype} {y.shape}")
        missing = [t for t in tracks if not Path(t.path).is_file()]
        if not check.must(not missing, f"{name}: every clip's file exists",
                     f"{where}: {len(missing)} missing, e.g. {missing[0].path}" if missing else ""):
            continue
        if tracks:
            try:
                head = audio_info(tracks[0].path)
                check(True, f"{name}: the first clip is readable audio",
                      f"{Path(tracks[0].path).name}: {head.sample_rate} Hz, {head.seconds:.2f} s")
            except _FAILURES as exc:
                check.must(False, f"{name}: the first clip is readable audio", f"{where}: {_error(exc)}")
    check.must(isinstance(part.dropped, list) and all(isinstance(d, Dropped) for d in part.dropped),
          "dropped clips are Dropped records", f"{where}: got {part.dropped!r:.120}")
    check.must(_is_number(part.min_seconds) and part.min_seconds >= 0 and (
        part.clip_seconds is None or _is_number(part.clip_seconds) and part.clip_seconds > 0),
        "min_seconds ≥ 0 and clip_seconds None or positive",
        f"{where}: min_seconds {part.min_seconds!r}, clip_seconds {part.clip_seconds!r}")


def validate_dataset(spec: DatasetSpec, root: Path | None = None, params: Mapping[str, Any] | None = None,
                     protocol: str | None = None, echo: Callable[[str], None] = print) -> bool:
    """Check a dataset plugin's spec and, with ``root``, what it reads there (module docstring)."""
    check = Check(echo)
    owner = f"dataset {spec.name!r}"
    echo(f"validating dataset plugin {spec.name!r}")
    _check_dataset_spec(spec, owner, check)
    protocols = dict(spec.protocols) if isinstance(spec.protocols, Mapping) else {}
    if protocol is not None and not check.must(protocol in protocols, f"protocol {protocol!r} exists",
                                          f"{owner}: choose from {sorted(protocols)}"):
        return False
    if root is None:
        how = f"run `mcbench plugins validate {spec.name} --root PATH` with the folder holding the data"
        if spec.materialize is not None:
            how += (" (this dataset generates its data: an empty folder will do; --dataset-param "
                    "KEY=VALUE makes it small)")
        check.skip("check(root), tracks() for every protocol and fold, the splits, labels and "
                   "targets", how)
    else:
        root = Path(root)
        try:
            resolved = spec.resolve_params(dict(params or {}))
        except (OptionError, PluginError) as exc:
            check.must(False, "dataset parameters", str(exc))
            return False
        if spec.materialize is not None:
            try:
                spec.materialize(root, **resolved)
                check(True, "materialize(root) generates the data", str(root))
            except _FAILURES as exc:
                check.must(False, "materialize(root) generates the data", f"{owner}: {_error(exc)}")
        if check.must(root.is_dir(), "the root is a folder", f"{root} does not exist or is not a folder"):
            _check_health(spec, root, owner, check)
            for name in [protocol] if protocol else list(protocols):
                n = protocols[name]
                for fold in [None] if n <= 1 else range(n):
                    echo(f"protocol {name}" + (f", fold {fold}" if fold is not None else ""))
                    try:
                        part = spec.tracks(root, name, fold, **resolved)
                    except _FAILURES as exc:
                        check.must(False, "tracks() reads the root",
                                   f"{owner}, protocol {name!r}, fold {fold}: {_error(exc)}")
                        continue
                    before, check.quiet = check.passes, bool(fold)  # folds after the first: FAILs
                    try:
                        _check_partition(spec, part, name, fold, owner, check)
                    finally:
                        check.quiet = False
                    if fold:
                        echo(f"  [PASS] {check.passes - before} checks as for fold 0 (a failure "
                             "would be shown)")
    echo("OK: the plugin honours the contract" if check.failures == 0 else
         f"{check.failures} check(s) failed; see the FAIL lines above")
    return check.failures == 0


# --------------------------------------------------------------------------- metrics

METRIC_CLIPS = 30
METRIC_LABELS = 16
METRIC_CLASSES = 5


def metric_inputs(task: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                               np.ndarray, list[str]]:
    """``(y_true, random, perfect, reversed, labels)`` for one task, shaped as the harness passes
    them. Every tagging label and clip has a positive and a negative; every class occurs.
    ``perfect`` scores rank every positive above every negative, ``reversed`` every negative first.
    """
    if task == MULTILABEL:
        n, k = METRIC_CLIPS, METRIC_LABELS
        y = np.zeros((n, k), dtype=np.float32)
        y[np.arange(n), np.arange(n) % k] = 1.0  # every label occurs, every clip has a tag
        y[rng.random((n, k)) < 0.1] = 1.0
        y[np.arange(n), (np.arange(n) + 1) % k] = 0.0  # and every clip misses a tag
        perfect = np.where(y > 0, rng.uniform(0.6, 0.95, (n, k)), rng.uniform(0.05, 0.4, (n, k)))
        rev = 1.0 - perfect
        random = rng.random((n, k))
    else:
        n, k = METRIC_CLIPS, METRIC_CLASSES
        y = rng.permutation(np.arange(n) % k).astype(np.int64)
        rest = rng.dirichlet(np.ones(k - 1), size=n) * 0.3
        perfect = np.empty((n, k))
        for i in range(n):
            perfect[i] = np.insert(rest[i], y[i], 0.7)
        rev = (1.0 - perfect) / (k - 1)  # the true class gets the lowest probability
        logits = rng.normal(size=(n, k))
        random = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = [f"label{i}" for i in range(k)]
    return y, random.astype(np.float64), perfect.astype(np.float64), rev.astype(np.float64), labels


def _metric_call(spec: MetricSpec, y_true, y_score, labels, owner: str, what: str,
                 check: Check) -> float | None:
    """The metric's value on these inputs as the harness reads it, or None after a FAIL line."""
    try:
        result = spec.compute(y_true.copy(), y_score.copy(), list(labels), **dict(spec.params))
    except _FAILURES as exc:
        check.must(False, f"compute() on {what}", f"{owner} raised {_error(exc)}")
        return None
    try:
        value, _ = metric_value(spec, result)
    except TypeError as exc:
        check.must(False, f"compute() on {what} returns a number or a MetricResult", str(exc))
        return None
    if value is None:
        raw = getattr(result, "value", result)
        check.must(False, f"compute() on {what} returns a finite number",
              f"{owner} returned {raw!r}; on inputs where every label has a positive and a "
              "negative it must be a finite number")
    return value


def validate_metric(spec: MetricSpec, task: str | None = None,
                    echo: Callable[[str], None] = print) -> bool:
    """Call a metric plugin on small seeded inputs for each task it declares (module docstring)."""
    check = Check(echo)
    owner = f"metric {getattr(spec, 'key', '?')!r}"
    echo(f"validating metric plugin {spec.key!r}")
    check.must(isinstance(spec.key, str) and bool(_KEY_RE.fullmatch(spec.key)),
          "key is usable in --metrics and --select-metric",
          f"{owner}: use letters, digits, '_', '.', '-' or '@' (no spaces or commas)")
    check.must(isinstance(spec.name, str) and bool(spec.name.strip()), "has a display name",
          f"{owner}: set MetricSpec.name (the table column, e.g. 'ROC-AUC')")
    check.must(isinstance(spec.summary, str) and bool(spec.summary.strip()), "has a one-line summary",
          f"{owner}: set MetricSpec.summary")
    check.must(isinstance(spec.higher_is_better, bool), "higher_is_better is True or False",
          f"{owner}: got {spec.higher_is_better!r}")
    check.must(callable(spec.compute), "compute is callable",
          f"{owner}: compute(y_true, y_score, labels, **params) -> MetricResult or a number")
    tasks = tuple(spec.tasks) if isinstance(spec.tasks, (tuple, list)) else ()
    unknown = [t for t in tasks if t not in TASKS]
    if not check.must(bool(tasks) and not unknown, "tasks are known",
                 f"{owner}: tasks {spec.tasks!r}; use a tuple of {TASKS}"):
        return _metric_verdict(check, echo)
    if task is not None and not check.must(task in tasks, f"task {task!r} is declared",
                                      f"{owner} declares {list(tasks)}"):
        return _metric_verdict(check, echo)
    if not callable(spec.compute):
        return _metric_verdict(check, echo)
    for t in [task] if task else tasks:
        echo(f"task {t}")
        y, random, perfect, rev, labels = metric_inputs(t, np.random.default_rng(0))
        kept_y, kept_s = y.copy(), random.copy()
        value = _metric_call(spec, y, random, labels, owner, "random scores", check)
        check.must(np.array_equal(y, kept_y) and np.array_equal(random, kept_s),
              "compute() leaves its inputs unchanged",
              f"{owner} wrote into y_true or y_score; every metric of a run reads the same arrays")
        if value is None:
            continue
        check(True, "compute() on random scores returns a finite number", f"{value:.4g}")
        again = _metric_call(spec, y, random, labels, owner, "the same inputs again", check)
        if again is not None:
            check.must(again == value, "the same inputs give the same value",
                  f"{owner}: {value!r} then {again!r}")
        best = _metric_call(spec, y, perfect, labels, owner, "perfect scores", check)
        worst = _metric_call(spec, y, rev, labels, owner, "reversed scores", check)
        if best is None or worst is None:
            continue
        hib = spec.higher_is_better
        ordered = best > worst if hib else best < worst
        if ordered:
            detail = f"perfect {best:.4g}, reversed {worst:.4g}"
        elif best == worst:
            detail = (f"{owner} gives perfect and reversed scores the same value {best:.4g}; it "
                      "must depend on how the scores rank the clips")
        else:
            detail = (f"{owner}: perfect scores give {best:.4g}, reversed ones {worst:.4g}, but "
                      f"higher_is_better={hib}; set higher_is_better={not hib} in its MetricSpec "
                      "(tables mark the best value by it) or fix compute()")
        check(ordered, f"perfect scores are {'higher' if hib else 'lower'} than reversed ones "
              f"(higher_is_better={hib})", detail)
    return _metric_verdict(check, echo)


def _metric_verdict(check: Check, echo: Callable[[str], None]) -> bool:
    echo("OK: the plugin honours the contract" if check.failures == 0 else
         f"{check.failures} check(s) failed; see the FAIL lines above")
    return check.failures == 0
