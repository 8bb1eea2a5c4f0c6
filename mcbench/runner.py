"""Runs experiments: dataset → features → learner → scores → metrics → run record.

A run is (model + variant + params, dataset + protocol + fold, training protocol, seed). Its id
is a hash of that configuration, so running the same thing again skips a finished run and resumes
an interrupted one from its checkpoints instead of starting over. One model failing is recorded
and reported; the other models still run.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import results
from .features import FeatureStore, FrontEnd, prepare_partition
from .plugins import Registry
from .specs import DatasetError, DatasetSpec, Dropped, FeatureSplit, Partition, TrainConfig

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
    #: Explicit TrainConfig settings from the command line (win over dataset suggestions).
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
    echo: Callable[[str], None] = print


@dataclass
class RunOutcome:
    run_id: str
    model: str
    status: str  # "complete", "skipped" (already complete), "failed", "unsupported"
    record: dict | None = None
    error: str | None = None


def load_partition(spec: DatasetSpec, root: Path, protocol: str, fold: int | None,
                   params: dict[str, Any]) -> Partition:
    if spec.materialize is not None:
        spec.materialize(root, **params)
    if not Path(root).exists():
        raise DatasetError(
            f"dataset {spec.name!r}: data root {root} does not exist. "
            f"See {spec.readme or 'the dataset README'} for how to obtain it, then pass --root."
        )
    return spec.tracks(root, protocol, fold, **params)


def folds_for(spec: DatasetSpec, protocol: str, requested: list[int] | None) -> list[int | None]:
    n = spec.protocols[protocol]
    if n <= 1:
        return [None]
    folds = requested if requested is not None else list(range(n))
    bad = [f for f in folds if not 0 <= f < n]
    if bad:
        raise ValueError(f"protocol {protocol!r} of {spec.name} has folds 0..{n - 1}; got {bad}")
    return folds


def run_experiments(registry: Registry, req: RunRequest) -> list[RunOutcome]:
    spec = registry.dataset(req.dataset)
    protocol = req.protocol or spec.default_protocol
    if protocol not in spec.protocols:
        raise ValueError(f"dataset {spec.name} has protocols {sorted(spec.protocols)}; got {protocol!r}")
    root = dataset_root(spec, req.root, req.data_dir)
    results_dir = req.results_dir or default_results_dir()
    cache = cache_dir_for(req.data_dir, req.cache_dir)
    metrics = registry.metrics_for(spec.task)
    if not metrics:
        raise ValueError(f"no metric plugin applies to task {spec.task!r}")
    selector = registry.selection_metric(spec.task, req.select_metric)
    outcomes: list[RunOutcome] = []

    for fold in folds_for(spec, protocol, req.folds):
        partition = load_partition(spec, root, protocol, fold, req.dataset_params)
        feature_cache: dict[str, tuple[dict[str, FeatureSplit], list[Dropped]]] = {}
        for model_name in req.models:
            mspec = registry.model(model_name)
            if spec.task not in mspec.tasks:
                req.echo(f"skip {model_name}: it does not support {spec.task} ({spec.name})")
                outcomes.append(RunOutcome("", model_name, "unsupported"))
                continue
            variant = req.variants.get(model_name, mspec.default_variant)
            if variant not in mspec.variants:
                raise ValueError(f"model {model_name} has variants {list(mspec.variants)}; got {variant!r}")
            frontend = FrontEnd(mspec.frontend(variant), seconds=partition.clip_seconds or spec.clip_seconds)
            if frontend.key() not in feature_cache:
                t0 = time.perf_counter()
                store = FeatureStore(cache, spec.name, root, frontend)
                feats, dropped = prepare_partition(store, partition, spec.task, req.workers, req.progress)
                feature_cache[frontend.key()] = (feats, dropped)
                if dropped:
                    req.echo(f"{len(dropped)} clip(s) dropped while loading features (see the run record)")
                features_s = time.perf_counter() - t0
            else:
                features_s = 0.0
            feats, dropped = feature_cache[frontend.key()]
            training = training_settings(spec, req, model_name)
            for seed in req.seeds:
                config = {
                    "model": model_name, "variant": variant,
                    "model_params": dict(req.model_params.get(model_name, {})),
                    "dataset": spec.name, "protocol": protocol, "fold": fold,
                    "dataset_params": dict(req.dataset_params),
                    "frontend": frontend.as_dict(),
                    "training": {"protocol": req.training_protocol, **_jsonable_training(training)},
                    "seed": seed, "select_metric": selector.key,
                }
                outcome = _run_one(registry, req, mspec, spec, partition, feats, dropped, config,
                                   metrics, selector, results_dir, features_s)
                outcomes.append(outcome)
    return outcomes


def training_settings(spec: DatasetSpec, req: RunRequest, model: str) -> dict[str, Any]:
    """The training settings of one model's runs, from the weakest source to the strongest.

    The dataset's suggestion, its per-model suggestion, the user's setting for every model, the
    user's setting for this model: ``--epochs 5`` overrides a demo dataset's per-model epochs,
    ``--epochs fcn=2`` overrides ``--epochs 5`` for FCN only.
    """
    return {
        **dict(spec.train_defaults),
        **dict(spec.model_train_defaults.get(model, {})),
        **req.training,
        **req.model_training.get(model, {}),
    }


def _jsonable_training(training: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(training.items()) if k not in {"device", "workdir", "progress"}}


def _run_one(registry, req, mspec, dspec, partition, feats, dropped, config, metrics, selector,
             results_dir: Path, features_s: float) -> RunOutcome:
    from .evaluation import evaluate, selection_function

    rid = results.run_id(config)
    rpath = results.record_path(results_dir, dspec.name, rid)
    label = f"{config['model']} ({config['variant']}), seed {config['seed']}" + (
        f", fold {config['fold']}" if config["fold"] is not None else "")
    if rpath.exists():
        try:
            import json

            existing = json.loads(rpath.read_text())
            if existing.get("status") == "complete":
                req.echo(f"✓ {label}: already complete ({rpath}); skipping")
                return RunOutcome(rid, config["model"], "skipped", existing)
        except ValueError:
            pass
    training = config["training"]
    req.echo(f"▶ {label} on {dspec.name} [{rid}]: up to {training.get('max_epochs', TrainConfig.max_epochs)} "
             f"epoch(s), batch {training.get('batch_size', TrainConfig.batch_size)}")
    started = _now()
    t_start = time.perf_counter()
    workdir = results_dir / "work" / rid
    try:
        from .training import as_learner, protocol_config, seed_everything

        labels = partition.labels
        # The initial weights depend on the run's seed only, not on what ran before in this
        # process: `--models all` and one model at a time give the same run the same record.
        seed_everything(config["seed"])
        built = mspec.create(feats["train"].x.shape[1:], len(labels), task=dspec.task,
                            variant=config["variant"], **config["model_params"])
        learner = as_learner(built, dspec.task)
        train_cfg = protocol_config(
            config["training"]["protocol"],
            **{k: v for k, v in config["training"].items() if k != "protocol"},
            seed=config["seed"], device=req.device, workdir=workdir,
            select_metric=selection_function(selector, labels), select_metric_name=selector.name,
            progress=req.progress,
        )
        t0 = time.perf_counter()
        history = learner.fit(feats["train"], feats["valid"], train_cfg)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        test = feats["test"]
        scores = learner.predict(test)
        predict_s = time.perf_counter() - t0
        test_metrics = evaluate(metrics, test.y, scores, labels, where=f"run {rid}, test split")
    except KeyboardInterrupt:
        req.echo(f"interrupted: {label}. Run the same command again to resume from the last epoch.")
        raise
    except Exception as exc:
        err = f"{type(exc).__name__}: {exc}"
        req.echo(f"✗ {label} failed: {err}")
        record = _base_record(rid, config, dspec, partition, dropped, started, "failed")
        record["error"] = err
        record["traceback"] = traceback.format_exc(limit=20)
        results.atomic_write_json(rpath, record)
        return RunOutcome(rid, config["model"], "failed", record, err)

    spath = results.scores_path(results_dir, dspec.name, rid)
    results.save_scores(spath, test.ids, test.y, scores, labels)
    record = _base_record(rid, config, dspec, partition, dropped, started, "complete")
    device = getattr(learner, "device", "cpu")
    record.update({
        "finished": _now(),
        "device": str(device),
        "history": history or [],
        "selected_epoch": getattr(learner, "selected_epoch", None),
        "n_params": getattr(learner, "n_params", None),
        "test": test_metrics,
        "timings": {"features_s": round(features_s, 3), "fit_s": round(fit_s, 3),
                    "predict_s": round(predict_s, 3), "total_s": round(time.perf_counter() - t_start, 3)},
        "peak_memory_mb": {"cpu_rss": results.peak_rss_mb(), "cuda": _cuda_peak_mb(device)},
        "scores_path": spath.name,
    })
    record.update(results.provenance())
    results.atomic_write_json(rpath, record)
    headline = ", ".join(
        f"{m['name']} {m['value']:.4f}" for m in sorted(test_metrics.values(), key=lambda m: m["order"])
        if m.get("headline") and isinstance(m.get("value"), float)
    )
    req.echo(f"✓ {label}: {headline}")
    return RunOutcome(rid, config["model"], "complete", record)


def _base_record(rid, config, dspec, partition, dropped, started, status) -> dict:
    all_dropped = list(partition.dropped) + list(dropped)
    return {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": rid,
        "status": status,
        "created": started,
        "config": config,
        "task": dspec.task,
        "labels": list(partition.labels),
        "split": {
            "fingerprint": partition.fingerprint(),
            "sizes": {n: len(s) for n, s in partition.splits.items()},
            "n_dropped": len(all_dropped),
            "dropped": [d.__dict__ for d in all_dropped],
            "notes": partition.notes,
        },
    }


def _cuda_peak_mb(device) -> float | None:
    if str(device).startswith("cuda"):
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
