"""Runs experiments: request → planned runs → data → one run at a time → records.

1. :func:`plan_runs` turns a :class:`RunRequest` into :class:`RunPlan` objects, one per (model,
   fold, seed), resolving and checking everything the user gave — models, variants, typed
   options, dataset parameters, training settings, folds, the device, that the results folder
   is writable — before any work starts.
2. For each fold the dataset's partition is read and the features of each front end are
   computed (or found) once in the feature store: a :class:`PreparedData`.
3. A plan plus its data is a :class:`Run`, with its identity (:mod:`mcbench.identity`) and id.
   :func:`execute` trains it under a lock: a finished run with this identity is skipped, an
   interrupted one resumes from its checkpoints, a failure is recorded and the next run goes on.
4. The runs execute one after the other here, or as Ray tasks (``RunRequest.executor``,
   :mod:`mcbench.executors`), each through :func:`execute`; under torchrun every rank takes
   part in each run and rank 0 alone writes (:mod:`mcbench.distributed`).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import identity as ident
from . import storage
from .features import FeatureStore, FrontEnd, prepare_partition
from .plugins import Registry
from .provenance import peak_rss_mb, provenance, reset_peak_rss
from .records import SCHEMA_VERSION, RecordError, RunRecord, validate
from .specs import (
    DatasetError,
    DatasetSpec,
    Dropped,
    FeatureSplit,
    ModelSpec,
    OptionError,
    Partition,
    PluginError,
    TrainConfig,
    identity_values,
    resolve_training,
)
from .transfer import TransferSource, check_frontend, find_source, parse_choice, strategy_label

DATA_DIR_ENV = "MCBENCH_DATA_DIR"
RESULTS_DIR_ENV = "MCBENCH_RESULTS_DIR"


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "datasets"))


def default_results_dir() -> Path:
    return Path(os.environ.get(RESULTS_DIR_ENV, "results"))


def dataset_root(spec: DatasetSpec, root: Path | None, data_dir: Path | None = None) -> Path:
    """``--root`` if given, else ``<data dir>/<dataset name>``."""
    return Path(root) if root else (data_dir or default_data_dir()) / spec.name


def cache_dir_for(data_dir: Path | None, cache_dir: Path | None) -> Path:
    return Path(cache_dir) if cache_dir else (data_dir or default_data_dir()) / ".cache" / "features"


@dataclass
class RunRequest:
    """What the user asked for, as given (the command line, or a script)."""

    models: list[str]
    dataset: str
    root: Path | None = None
    data_dir: Path | None = None
    results_dir: Path | None = None
    cache_dir: Path | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: list[int] | None = None
    protocol: str | None = None
    training_protocol: str = "paper"
    #: Training settings from the command line for every model (win over dataset suggestions).
    training: dict[str, Any] = field(default_factory=dict)
    #: Per-model training settings (model name -> settings); they win over ``training``.
    model_training: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset_params: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    select_metric: str | None = None
    workers: int | None = None
    progress: bool = True
    #: Discard the checkpoints of unfinished runs and train them from their first epoch.
    restart: bool = False
    #: Transfer learning (:mod:`mcbench.transfer`): the source (a run id, a record file or a
    #: dataset name), the strategy, or the groups to freeze.
    init_from: str | None = None
    transfer: str | None = None
    freeze: str | list[str] | None = None
    #: The backend to build every model with (``--backend``; ``None``: each model's default,
    #: torch where it has a torch build). Part of each run's identity.
    backend: str | None = None
    #: Where the runs execute (:mod:`mcbench.executors`): ``None`` runs them one after the other
    #: in this process; a :class:`~mcbench.executors.RayExecutor` fans them out as Ray tasks.
    executor: Any = None
    echo: Callable[[str], None] = print


@dataclass(frozen=True)
class RunPlan:
    """One run before its data is read: every choice resolved and checked."""

    model: str
    variant: str
    backend: str
    options: dict[str, Any]
    frontend: str
    dataset: str
    task: str
    protocol: str
    fold: int | None
    #: Dataset parameters that change the data (defaults applied): part of the identity.
    data_params: dict[str, Any]
    #: Resolved training settings, including the protocol.
    training: dict[str, Any]
    select_metric: str
    seed: int
    #: The source run when the weights start from another run's (``None``: from scratch).
    transfer: TransferSource | None = None

    @property
    def label(self) -> str:
        fold = f", fold {self.fold}" if self.fold is not None else ""
        how = ""
        if self.transfer is not None:
            how = (f", {strategy_label(self.transfer.strategy, self.transfer.frozen)} from "
                   f"{self.transfer.dataset}")
        return f"{self.model} ({self.variant}{how}), seed {self.seed}{fold}"


@dataclass
class PreparedData:
    """One fold's partition and the features of one front end, read from the store."""

    partition: Partition
    frontend: FrontEnd
    features: dict[str, FeatureSplit]
    dropped: list[Dropped]
    seconds: float

    def splits(self) -> dict[str, dict[str, Any]]:
        """Per split: fingerprint of the clip ids, size, and content digest (features + targets)."""
        return {name: {"fingerprint": self.partition.splits[name].fingerprint(),
                       "n": len(feats), "content": feats.content}
                for name, feats in self.features.items()}


@dataclass(frozen=True)
class DataSource:
    """Where a run's data is read from, so that another process (a Ray task, see
    :mod:`mcbench.executors`) opens the same features from the feature store again instead of
    receiving them: the dataset, its root, the feature cache, the protocol and fold, the
    resolved dataset parameters and the front end."""

    dataset: str
    root: Path
    cache: Path
    protocol: str
    fold: int | None
    params: dict[str, Any]
    frontend: str

    def open(self, registry: Registry) -> PreparedData:
        """The prepared data (features already in the store are read, never recomputed)."""
        spec = registry.dataset(self.dataset)
        params = dict(self.params)
        for key in HARNESS_PARAMS:  # no progress bars or decoding pools inside a task
            if key in spec.params and not spec.params[key].affects_result:
                params.pop(key, None)
        partition = load_partition(spec, self.root, self.protocol, self.fold, params)
        return prepare_data(spec, partition, self.frontend, self.cache, self.root, 1, False)


@dataclass
class Run:
    """A plan with its data: what is trained, its identity and its id."""

    plan: RunPlan
    data: PreparedData
    identity: dict[str, Any]
    run_id: str

    @classmethod
    def make(cls, plan: RunPlan, data: PreparedData, world_size: int = 1) -> Run:
        """``world_size``: processes of a data-parallel run (:mod:`mcbench.distributed`); above
        1 it is part of the identity (per-rank batch norm changes the numbers), at 1 the
        identity is the one it always was."""
        training = {**plan.training, "select_metric": plan.select_metric}
        if world_size > 1:
            training["data_parallel_world_size"] = world_size
        identity = {
            "code_version": ident.RESULT_VERSION,
            "model": {"name": plan.model, "variant": plan.variant, "backend": plan.backend,
                      "options": ident.to_jsonable(plan.options)},
            "dataset": {"name": plan.dataset, "task": plan.task, "protocol": plan.protocol,
                        "fold": plan.fold, "params": ident.to_jsonable(plan.data_params),
                        "labels": list(data.partition.labels),
                        "frontend": data.frontend.as_dict(), "splits": data.splits()},
            "training": ident.to_jsonable(training),
            "seed": plan.seed,
            "transfer": plan.transfer.identity() if plan.transfer else None,
        }
        return cls(plan, data, identity, ident.run_id(identity))


@dataclass
class RunOutcome:
    run_id: str
    model: str
    status: str  # "complete", "skipped" (already complete), "failed", "unsupported"
    record: RunRecord | None = None
    error: str | None = None


@dataclass
class RunContext:
    """Where and how runs execute; nothing here changes a result."""

    results_dir: Path
    device: str = "auto"
    workers: int | None = None
    progress: bool = True
    restart: bool = False
    echo: Callable[[str], None] = print


# --------------------------------------------------------------------------- planning


def folds_for(spec: DatasetSpec, protocol: str, requested: list[int] | None) -> list[int | None]:
    n = spec.protocols[protocol]
    if n <= 1:
        if requested is not None and requested not in ([0], []):
            kfold = [p for p, k in spec.protocols.items() if k > 1]
            hint = (f"pick a k-fold protocol with --protocol ({', '.join(kfold)})" if kfold
                    else f"{spec.name} has no k-fold protocol, so drop --folds")
            raise OptionError(f"--folds: protocol {protocol!r} of {spec.name} has a single fixed "
                              f"split; {hint}")
        return [None]
    folds = requested if requested is not None else list(range(n))
    bad = [f for f in folds if not 0 <= f < n]
    if bad:
        raise OptionError(f"--folds: protocol {protocol!r} of {spec.name} has folds 0..{n - 1}; "
                          f"got {bad}")
    return list(folds)


def check_device(device: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, and CUDA only where torch sees it."""
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise OptionError(f"--device {device!r}: use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise OptionError(f"--device {device}: torch sees no CUDA device (this torch is "
                              f"{torch.__version__}; install a CUDA build, see the README, or "
                              "use --device cpu)")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise OptionError(f"--device {device}: there are {torch.cuda.device_count()} CUDA "
                              f"device(s), cuda:0..cuda:{torch.cuda.device_count() - 1}")


def _model_plans(req: RunRequest, spec: DatasetSpec, mspec: ModelSpec,
                 protocol: str, folds: list[int | None], data_params: dict[str, Any],
                 selector: str, source: TransferSource | None) -> list[RunPlan]:
    variant = req.variants.get(mspec.name, mspec.default_variant_for(req.backend))
    options = mspec.resolve_options(variant, req.model_params.get(mspec.name, {}))
    backend = mspec.check_backend(req.backend, variant, options)
    check_backend_installed(backend)
    training = resolve_training(
        req.training_protocol, spec.train_defaults, spec.model_train_defaults.get(mspec.name, {}),
        req.training, req.model_training.get(mspec.name, {}), owner=f"training of {mspec.name}")
    return [RunPlan(model=mspec.name, variant=variant, backend=backend, options=options,
                    frontend=mspec.frontend(variant), dataset=spec.name, task=spec.task,
                    protocol=protocol, fold=fold, data_params=data_params, training=training,
                    select_metric=selector, seed=seed, transfer=source)
            for fold in folds for seed in req.seeds]


#: How to install what a backend needs, when it is missing (backend -> (modules, install line)).
BACKEND_INSTALLS = {"keras": (("tensorflow", "keras"), 'pip install -c constraints.txt -e ".[tensorflow]"')}


def check_backend_installed(backend: str) -> None:
    """:class:`OptionError` saying how to install a backend's libraries when they are missing
    (looked up without importing them)."""
    import importlib.util

    modules, install = BACKEND_INSTALLS.get(backend, ((), ""))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise OptionError(f"--backend {backend} needs {' and '.join(missing)}, which is not "
                          f"installed; install it with {install} (from the mcbench checkout)")


def _transfer_source(registry: Registry, req: RunRequest, spec: DatasetSpec, mspec: ModelSpec,
                     choice) -> TransferSource | None:
    """The checked source run of one target model, or ``None`` for a run from scratch."""
    if choice is None:
        return None
    variant = req.variants.get(mspec.name, mspec.default_variant_for(req.backend))
    options = mspec.resolve_options(variant, req.model_params.get(mspec.name, {}))
    backend = mspec.check_backend(req.backend, variant, options)
    if backend not in ("torch", "keras"):
        raise OptionError(f"--init-from: model {mspec.name} (backend {backend}) cannot "
                          "start from another run's weights; only torch networks that declare "
                          "parameter_groups() and Keras models whose layers are named cnn_…, "
                          "rnn_… and head_… can. Run it without --init-from/--transfer")
    model = {"name": mspec.name, "variant": variant, "backend": backend,
             "options": ident.to_jsonable(options)}
    return find_source(choice, model, Path(req.results_dir or default_results_dir()),
                       [d.name for d in registry.specs("dataset")], spec.name,
                       ident.to_jsonable(mspec.resolve_options(variant, {})))


def plan_runs(registry: Registry, req: RunRequest) -> tuple[list[RunPlan], list[str]]:
    """Every run of ``req``, checked before any work (module docstring), and the models skipped
    because they do not support the dataset's task."""
    spec = registry.dataset(req.dataset)
    if not req.models:
        raise OptionError("--models: no model given; name one or more (see `mcbench models`), "
                          "or use all")
    if not req.seeds:
        raise OptionError("--seeds must be at least 1")
    for option, names in (("--variant", req.variants), ("--param", req.model_params),
                          ("--epochs/--batch-size MODEL=N", req.model_training)):
        for name in names:
            if name not in req.models:
                raise OptionError(f"{option} names model {name!r}, which is not among the models "
                                  f"of this run (--models {','.join(req.models)})")
    protocol = req.protocol or spec.default_protocol
    if protocol not in spec.protocols:
        raise OptionError(f"--protocol {protocol!r}: dataset {spec.name} has protocols "
                          f"{', '.join(sorted(spec.protocols))}")
    folds = folds_for(spec, protocol, req.folds)
    params = spec.resolve_params(req.dataset_params)
    data_params = identity_values(spec.params, params)
    if not registry.metrics_for(spec.task):
        raise PluginError(f"no metric plugin applies to task {spec.task!r}")
    selector = registry.selection_metric(spec.task, req.select_metric).key
    choice = parse_choice(req.init_from, req.transfer, req.freeze)
    plans, unsupported = [], []
    for name in req.models:
        mspec = registry.model(name)
        if spec.task not in mspec.tasks:
            unsupported.append(name)
            continue
        source = _transfer_source(registry, req, spec, mspec, choice)
        plans.extend(_model_plans(req, spec, mspec, protocol, folds, data_params, selector,
                                  source))
    return plans, unsupported


# --------------------------------------------------------------------------- data


def load_partition(spec: DatasetSpec, root: Path, protocol: str, fold: int | None,
                   params: dict[str, Any]) -> Partition:
    """The dataset's partition for one protocol and fold; ``params`` are typed and completed by
    the dataset's declared parameters first (an error names a wrong one before any work)."""
    params = spec.resolve_params(params)
    if spec.materialize is not None:
        spec.materialize(root, **params)
    if not Path(root).exists():
        raise DatasetError(
            f"dataset {spec.name!r}: data root {root} does not exist. "
            f"See `mcbench datasets {spec.name}` for how to obtain it, then pass --root."
        )
    return spec.tracks(root, protocol, fold, **params)


def frontend_for(spec: DatasetSpec, partition: Partition, frontend_name: str) -> FrontEnd:
    """The front end a model reading ``frontend_name`` gets on this partition (its clip length)."""
    return FrontEnd(frontend_name, seconds=partition.clip_seconds or spec.clip_seconds)


def prepare_data(spec: DatasetSpec, partition: Partition, frontend_name: str, cache: Path,
                 root: Path, workers: int | None, progress: bool) -> PreparedData:
    t0 = time.perf_counter()
    frontend = frontend_for(spec, partition, frontend_name)
    store = FeatureStore(cache, spec.name, root, frontend)
    feats, dropped = prepare_partition(store, partition, spec.task, workers, progress)
    return PreparedData(partition, frontend, feats, dropped, time.perf_counter() - t0)


#: Dataset parameters the harness fills from its own options unless the user gave them: a
#: dataset declaring ``progress`` (bool) or ``workers`` (int) hears ``--no-progress`` and
#: ``--workers``. Both change how, not what, data is made (``affects_result=False``).
HARNESS_PARAMS = {"progress": lambda req: req.progress, "workers": lambda req: req.workers}


def harness_params(spec: DatasetSpec, req: RunRequest) -> dict[str, Any]:
    """``req.dataset_params`` with :data:`HARNESS_PARAMS` filled in where the dataset declares
    them as not affecting results."""
    filled = {key: get(req) for key, get in HARNESS_PARAMS.items()
              if key in spec.params and not spec.params[key].affects_result and get(req) is not None}
    return {**filled, **req.dataset_params}


def run_experiments(registry: Registry, req: RunRequest) -> list[RunOutcome]:
    """Plan, prepare and execute every run of ``req`` (module docstring)."""
    from . import distributed

    plans, unsupported = plan_runs(registry, req)
    spec = registry.dataset(req.dataset)
    results_dir = Path(req.results_dir or default_results_dir())
    check_device(req.device)
    device = req.device
    if distributed.requested():  # one of several ranks started by torchrun
        if req.executor is not None:
            raise OptionError("--executor ray fans runs out over processes itself; under "
                              "torchrun (one run across processes) use the local executor")
        device = distributed.setup(req.device)
    main = distributed.is_main()
    if main:
        storage.check_writable(storage.runs_dir(results_dir, spec.name), "the results folder")
        storage.check_writable(results_dir / "work", "the results folder")
    echo = req.echo if main else (lambda _message: None)
    ctx = RunContext(results_dir, device, req.workers, req.progress and main, req.restart, echo)
    outcomes = [RunOutcome("", name, "unsupported") for name in unsupported]
    for name in unsupported:
        echo(f"skip {name}: it does not support {spec.task} ({spec.name})")
    root = dataset_root(spec, req.root, req.data_dir)
    cache = cache_dir_for(req.data_dir, req.cache_dir)
    params = spec.resolve_params(harness_params(spec, req))
    by_fold: dict[int | None, list[RunPlan]] = {}
    for plan in plans:
        by_fold.setdefault(plan.fold, []).append(plan)

    def runs():
        """Each run with where its data comes from, the features of a fold and front end
        prepared once, before the first of its runs is handed on."""
        for fold, fold_plans in by_fold.items():
            # under torchrun rank 0 materialises the data and computes the features first;
            # the other ranks then read what it made (mcbench.distributed)
            with distributed.main_first():
                partition = load_partition(spec, root, fold_plans[0].protocol, fold, params)
            for plan in fold_plans:  # a source with another input is refused before any features
                if plan.transfer is not None:
                    check_frontend(plan.transfer, frontend_for(spec, partition, plan.frontend),
                                   spec.name)
            prepared: dict[str, PreparedData] = {}
            for plan in fold_plans:
                if plan.frontend not in prepared:
                    with distributed.main_first():  # the others read rank 0's features
                        prepared[plan.frontend] = data = prepare_data(
                            spec, partition, plan.frontend, cache, root, req.workers,
                            ctx.progress)
                    if data.dropped:
                        echo(f"{len(data.dropped)} clip(s) dropped while loading features "
                             "(see the run record)")
                yield Run.make(plan, prepared[plan.frontend], distributed.world_size()), DataSource(
                    spec.name, Path(root).resolve(), Path(cache).resolve(), plan.protocol, fold,
                    dict(params), plan.frontend)

    if req.executor is None:
        outcomes.extend(execute(registry, run, ctx) for run, _ in runs())
    else:
        outcomes.extend(req.executor.run_all(registry, runs(), ctx))
    return outcomes


# --------------------------------------------------------------------------- one run


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _stored(path: Path, ctx: RunContext) -> RunRecord | None:
    """The valid record at ``path``, or ``None``; an invalid one is set aside (renamed, never
    deleted) with a warning, so that it neither blocks the run nor is taken for its result."""
    if not path.exists():
        return None
    try:
        return storage.read_record(path)
    except RecordError as exc:
        moved = storage.set_aside(path, str(exc))
        ctx.echo(f"warning: {exc}. It is not this run's result; moved it to {moved.name} and "
                 "running again.")
        return None


def execute(registry: Registry, run: Run, ctx: RunContext) -> RunOutcome:
    """Train and evaluate one run under its lock, unless a valid record of it is complete."""
    from . import distributed

    if distributed.active():
        return _execute_ranks(registry, run, ctx)
    lock = storage.RunLock(ctx.results_dir, run.run_id)
    lock.acquire(on_wait=lambda who: ctx.echo(
        f"… {run.plan.label} [{run.run_id}] is being trained by {who}; waiting for it "
        "(Ctrl-C to stop)"))
    try:
        rpath = storage.record_path(ctx.results_dir, run.plan.dataset, run.run_id)
        existing = _stored(rpath, ctx)
        if existing is not None and existing.status == "complete":
            ctx.echo(f"✓ {run.plan.label}: already complete ({rpath}); skipping")
            return RunOutcome(run.run_id, run.plan.model, "skipped", existing)
        workdir = storage.work_dir(ctx.results_dir, run.run_id)
        if ctx.restart and workdir.exists():
            shutil.rmtree(workdir)
            ctx.echo(f"--restart: removed the checkpoints of {run.run_id}")
        return _train(registry, run, ctx, rpath, workdir)
    finally:
        lock.release()


def _execute_ranks(registry: Registry, run: Run, ctx: RunContext) -> RunOutcome:
    """One run of a data-parallel group (:mod:`mcbench.distributed`): rank 0 takes the lock,
    skips a finished run or removes checkpoints for ``--restart``, and tells the others; all
    ranks train; rank 0 alone writes."""
    from . import distributed

    main = distributed.is_main()
    lock = storage.RunLock(ctx.results_dir, run.run_id) if main else None
    rpath = storage.record_path(ctx.results_dir, run.plan.dataset, run.run_id)
    workdir = storage.work_dir(ctx.results_dir, run.run_id)
    try:
        existing = None
        if main:
            lock.acquire(on_wait=lambda who: ctx.echo(
                f"… {run.plan.label} [{run.run_id}] is being trained by {who}; waiting for it"))
            existing = _stored(rpath, ctx)
            if existing is not None and existing.status == "complete":
                ctx.echo(f"✓ {run.plan.label}: already complete ({rpath}); skipping")
            else:
                existing = None
                if ctx.restart and workdir.exists():
                    shutil.rmtree(workdir)
                    ctx.echo(f"--restart: removed the checkpoints of {run.run_id}")
        if distributed.broadcast(existing is not None):
            return RunOutcome(run.run_id, run.plan.model, "skipped", existing)
        return _train(registry, run, ctx, rpath, workdir)
    finally:
        if lock is not None:
            lock.release()


def _base_record(run: Run, started: str, status: str) -> dict[str, Any]:
    partition = run.data.partition
    dropped = list(partition.dropped) + list(run.data.dropped)
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run.run_id, "status": status,
        "created": started, "identity": run.identity,
        "split": {"sizes": {n: len(s) for n, s in run.data.features.items()},
                  "n_dropped": len(dropped),
                  "dropped": [{"id": d.id, "path": d.path, "reason": d.reason, "step": d.step}
                              for d in dropped],
                  "notes": ident.to_jsonable(partition.notes)},
        "transfer": run.plan.transfer.record(None) if run.plan.transfer else None,
    }


def _write(path: Path, record: dict, ctx: RunContext) -> str | None:
    """Write a record; on failure say so and return the error (the other runs go on)."""
    try:
        storage.write_record(path, record)
    except (OSError, storage.StateError, RecordError) as exc:
        ctx.echo(f"✗ could not write the record {path}: {exc}")
        return str(exc)
    return None


def record_failure(run: Run, ctx: RunContext, error: str) -> RunOutcome:
    """Record ``run`` as failed with ``error`` when the process training it died before it could
    say so itself (a Ray worker killed for memory, a lost node); a complete record is kept."""
    with storage.RunLock(ctx.results_dir, run.run_id):
        rpath = storage.record_path(ctx.results_dir, run.plan.dataset, run.run_id)
        existing = _stored(rpath, ctx)
        if existing is not None and existing.status == "complete":
            return RunOutcome(run.run_id, run.plan.model, "complete", existing)
        failed = _base_record(run, _now(), "failed")
        failed.update(error=error, **provenance())
        _write(rpath, failed, ctx)
    return RunOutcome(run.run_id, run.plan.model, "failed", None, error)


def stored_complete(run: Run, ctx: RunContext) -> RunRecord | None:
    """The complete record of ``run`` if one is stored (read without its lock: a quick look
    before handing the run to another process, which checks again under the lock)."""
    rpath = storage.record_path(ctx.results_dir, run.plan.dataset, run.run_id)
    try:
        existing = storage.read_record(rpath) if rpath.exists() else None
    except RecordError:
        return None
    return existing if existing is not None and existing.status == "complete" else None


def _checkpoint_bytes(learner: Any) -> float:
    n_params = getattr(learner, "n_params", None) or 0
    # best.pt (weights) + last.pt (weights and Adam's two moments), float32
    return float(n_params) * 4 * 4 + 2**20


def _train(registry: Registry, run: Run, ctx: RunContext, rpath: Path, workdir: Path) -> RunOutcome:
    from . import distributed
    from .evaluation import evaluate, selection_function

    plan, feats = run.plan, run.data.features
    training = plan.training
    main = distributed.is_main()  # under torchrun rank 0 alone writes (mcbench.distributed)
    parallel = (f" on {distributed.world_size()} processes ({training['batch_size'] // distributed.world_size()} "
                "per process)" if distributed.active() else "")
    ctx.echo(f"▶ {plan.label} on {plan.dataset} [{run.run_id}]: up to {training['max_epochs']} "
             f"epoch(s), batch {training['batch_size']}{parallel}")
    started = _now()
    t_start = time.perf_counter()
    reset_peak_rss()
    if main and _write(rpath, _base_record(run, started, "running"), ctx):
        return RunOutcome(run.run_id, plan.model, "failed", None, "cannot write its record")
    stage = "building the model"
    try:
        from .training import as_learner, seed_everything
        from .transfer import apply as apply_transfer

        mspec = registry.model(plan.model)
        selector = registry.selection_metric(plan.task, plan.select_metric)
        labels = run.data.partition.labels
        # The initial weights depend on the run's seed only, not on what ran before in this
        # process: `--models all` and one model at a time give the same run the same record.
        seed_everything(plan.seed)
        if plan.backend == "keras":
            from .keras_learner import seed_keras

            seed_keras(plan.seed)
        built = mspec.create(feats["train"].x.shape[1:], len(labels), task=plan.task,
                             variant=plan.variant, backend=plan.backend, **plan.options)
        learner = as_learner(built, plan.task)
        if distributed.active():
            from .training import TorchLearner

            if not isinstance(learner, TorchLearner):
                raise OptionError(f"model {plan.model} (backend {plan.backend}) is not a torch "
                                  "network; a data-parallel run (torchrun) trains torch networks "
                                  "only: run it in one process")
        transferred = None
        if plan.transfer is not None:
            stage = f"loading the weights of source run {plan.transfer.run_id}"
            transferred = apply_transfer(learner, plan.transfer, rebuild=lambda n: mspec.create(
                feats["train"].x.shape[1:], n, task=plan.task, variant=plan.variant,
                backend=plan.backend, **plan.options))
        if main:
            storage.ensure_free_space(workdir.parent, _checkpoint_bytes(learner),
                                      f"the checkpoints of {run.run_id}")
        config = TrainConfig(**training, seed=plan.seed, device=ctx.device, workdir=workdir,
                             select_metric=selection_function(selector, labels),
                             select_metric_name=selector.name,
                             select_higher_is_better=selector.higher_is_better,
                             progress=ctx.progress)
        stage = "training"
        t0 = time.perf_counter()
        history = learner.fit(feats["train"], feats["valid"], config)
        fit_s = time.perf_counter() - t0
        if not main:
            return RunOutcome(run.run_id, plan.model, "complete", None)
        stage = "evaluating on the test split"
        t0 = time.perf_counter()
        test = feats["test"]
        scores = learner.predict(test)
        predict_s = time.perf_counter() - t0
        test_metrics = evaluate(registry.metrics_for(plan.task), test.y, scores, labels,
                                where=f"run {run.run_id}, test split")
        for key, entry in test_metrics.items():
            if entry.get("error"):
                ctx.echo(f"warning: {entry['error']}; {key} is left out of this run's results "
                         "(the record keeps the error)")
        device = str(getattr(learner, "device", "cpu"))
        record = _base_record(run, started, "complete")
        record.update({
            "finished": _now(), "device": device, "history": history or [],
            "selected_epoch": getattr(learner, "selected_epoch", None),
            "n_params": getattr(learner, "n_params", None), "test": test_metrics,
            "timings": {"features_s": round(run.data.seconds, 3), "fit_s": round(fit_s, 3),
                        "predict_s": round(predict_s, 3),
                        "total_s": round(time.perf_counter() - t_start, 3)},
            "peak_memory_mb": {"cpu_rss": peak_rss_mb(), "cuda": _cuda_peak_mb(device)},
            "scores_path": storage.scores_path(ctx.results_dir, plan.dataset, run.run_id).name,
            "notes": ident.to_jsonable(getattr(learner, "record_notes", {}) or {}),
            "distributed": distributed.describe(training["batch_size"]),
            **provenance(),
        })
        if transferred is not None:
            record["transfer"] = ident.to_jsonable(transferred)
        stage = "checking the results"
        record = validate(record, source=f"the results of run {run.run_id}").to_json()
        stage = "writing the results"
        storage.save_scores(storage.scores_path(ctx.results_dir, plan.dataset, run.run_id),
                            test.ids, test.y, scores, labels)
        error = _write(rpath, record, ctx)
        if error:
            return RunOutcome(run.run_id, plan.model, "failed", None, error)
    except KeyboardInterrupt:
        ctx.echo(f"interrupted: {plan.label}. Run the same command again to resume from the "
                 "last epoch.")
        raise
    except Exception as exc:
        err = f"{type(exc).__name__} while {stage}: {exc}"
        ctx.echo(f"✗ {plan.label} failed: {err}")
        if main:
            failed = _base_record(run, started, "failed")
            failed.update(error=err, traceback=traceback.format_exc(limit=20), **provenance())
            _write(rpath, failed, ctx)
        return RunOutcome(run.run_id, plan.model, "failed", None, err)
    final = validate(record)
    headline = ", ".join(
        f"{m.name} {m.value:.4f}" for m in sorted(final.test.values(), key=lambda m: m.order)
        if m.headline and m.value is not None)
    ctx.echo(f"✓ {plan.label}: {headline}")
    return RunOutcome(run.run_id, plan.model, "complete", final)


def _cuda_peak_mb(device: str) -> float | None:
    if device.startswith("cuda"):
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return None
