"""Embeddings: the representation a model feeds its output layer.

Plugin contract (torch models)
------------------------------
A torch model plugin gets embeddings in one of two ways:

1. **From its declared head group** (the default). The model declares
   ``parameter_groups() -> {"cnn": [...], "rnn": [...], "head": [...]}`` (the transfer groups
   of the paper's Table III, Sec. V-G). :func:`head_module` finds the module that produces the
   logits: the smallest submodule whose parameters are exactly the ``head`` group. The
   embedding of a clip is the **input of that module**, taken with a forward pre-hook and
   flattened to one vector per clip. For CRNN-TF this is the 256-d concatenation of the eight
   scan outputs, eq. (1) of Wang et al. (IJCNN 2019); for a baseline whose head is a single
   linear layer it is that layer's input. The hook also checks that the module's output is the
   model's output (the logits), so a head group that does not end the network is refused.
2. **From its own method.** A model that declares ``embed(x) -> Tensor`` (``x`` a batch as
   ``forward`` receives it, the result ``(B, D)`` or anything that flattens to it) is asked
   directly, and its parameter groups are not consulted for embeddings. Use this when the
   head group is not one submodule, or when the representation of interest is elsewhere.

Learners that are not torch modules provide ``embed(split) -> (N, D) array`` themselves (the
MFCC + SVM baseline returns its MFCC statistics). The Keras learner returns the input of the
model's head: its first layer named ``head_…`` (the Keras twin of the head group), or the input
of the layer producing the logits in a model without groups, flattened in channels-first order
so that the Keras builds of the authors' models give the torch ports' embeddings
(:meth:`mcbench.keras_learner.KerasLearner.embed`).

Embeddings are computed in evaluation mode (dropout off, batch norm on running statistics),
without gradients; the model's training mode is restored afterwards.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .specs import OptionError
from .storage import StateError

HEAD_GROUP = "head"


class EmbeddingError(ValueError):
    """A model cannot give embeddings (no head group, no ``embed``, or a head that does not
    produce the logits); the message names the model class and what to declare."""


def _declared_groups(model: nn.Module) -> dict:
    method = getattr(model, "parameter_groups", None)
    if not callable(method):
        raise EmbeddingError(
            f"{type(model).__name__} declares neither parameter_groups() (with a 'head' group: "
            "the parameters of the module that produces the logits) nor embed(x); declare one "
            "of them to get embeddings")
    groups = method()
    if not isinstance(groups, dict) or HEAD_GROUP not in groups:
        raise EmbeddingError(
            f"{type(model).__name__}.parameter_groups() must return a dict with a "
            f"{HEAD_GROUP!r} group, got {type(groups).__name__}"
            + (f" with keys {sorted(groups)}" if isinstance(groups, dict) else ""))
    return groups


def head_module(model: nn.Module) -> nn.Module:
    """The module of ``model`` that produces the logits, from its declared ``head`` group.

    It is the smallest submodule (fewest modules inside it, ``model`` itself included as a
    candidate) whose parameters are exactly the ``head`` group of ``model.parameter_groups()``.
    Raises :class:`EmbeddingError` when the model declares no groups, the head group is empty,
    or no single submodule holds exactly those parameters.
    """
    groups = _declared_groups(model)
    head = {id(p) for p in groups[HEAD_GROUP]}
    if not head:
        raise EmbeddingError(f"{type(model).__name__}: the {HEAD_GROUP!r} parameter group is empty; "
                             "it must hold the parameters of the output layer")
    best: tuple[int, nn.Module] | None = None
    for _, module in model.named_modules():
        if {id(p) for p in module.parameters()} != head:
            continue
        size = sum(1 for _ in module.modules())
        if best is None or size < best[0]:
            best = (size, module)
    if best is None:
        raise EmbeddingError(
            f"{type(model).__name__}: no submodule has exactly the parameters of the "
            f"{HEAD_GROUP!r} group ({len(head)} tensors); make the head one module (e.g. an "
            "nn.Sequential) or declare embed(x)")
    return best[1]


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1) if t.dim() != 2 else t


def embeddings(model: nn.Module, x: torch.Tensor,
               prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Embeddings ``(B, D)`` of the batch ``x`` (module docstring: the two ways).

    ``prepare`` is applied to ``x`` first (a learner's input standardisation). The result is
    float32 on the model's device, computed in evaluation mode without gradients.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if prepare is not None:
                x = prepare(x)
            own = getattr(model, "embed", None)
            if callable(own):
                out = own(x)
                if not isinstance(out, torch.Tensor) or out.dim() < 1 or out.shape[0] != x.shape[0]:
                    raise EmbeddingError(
                        f"{type(model).__name__}.embed(x) must return a tensor with one row per "
                        f"clip ({x.shape[0]}), got "
                        f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
                return _flat(out).float()
            head = head_module(model)
            seen: dict[str, torch.Tensor] = {}

            def before(_module, args):
                if not args or not isinstance(args[0], torch.Tensor):
                    raise EmbeddingError(
                        f"{type(model).__name__}: the head module {type(head).__name__} is not "
                        "called with a tensor as its first argument; declare embed(x)")
                seen["input"] = args[0]

            def after(_module, _args, output):
                seen["output"] = output

            handles = [head.register_forward_pre_hook(before), head.register_forward_hook(after)]
            try:
                logits = model(x)
            finally:
                for h in handles:
                    h.remove()
            if "input" not in seen:
                raise EmbeddingError(
                    f"{type(model).__name__}: the head module {type(head).__name__} was not "
                    "called by forward(); the 'head' group must be the parameters of the module "
                    "that produces the logits")
            out = seen["output"]
            if out is not logits and not (isinstance(out, torch.Tensor) and isinstance(logits, torch.Tensor)
                                          and out.shape == logits.shape and torch.equal(out, logits)):
                raise EmbeddingError(
                    f"{type(model).__name__}: the output of the head module "
                    f"{type(head).__name__} is not the model's output; the 'head' group must be "
                    "the parameters of the module that produces the logits (or declare embed(x))")
            return _flat(seen["input"]).float()
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- `mcbench embed`

#: The splits ``mcbench embed --split`` accepts (every protocol produces these).
SPLITS = ("train", "valid", "test")
#: Arrays of an embeddings file (``np.load(path)`` reads them without unpickling anything).
NPZ_ARRAYS = ("embeddings", "clip_ids", "labels", "label_names", "run_id", "model", "variant",
              "dataset", "protocol", "fold", "split")


@dataclass
class EmbedRequest:
    """What ``mcbench embed`` was asked for."""

    run_id: str
    dataset: str
    split: str = "test"
    root: Path | None = None
    data_dir: Path | None = None
    results_dir: Path | None = None
    cache_dir: Path | None = None
    output: Path | None = None
    #: ``None``: the run's own protocol and fold on the run's dataset, else the dataset's default.
    protocol: str | None = None
    fold: int | None = None
    #: Dataset parameters; on the run's own dataset the run's are used for those not given.
    dataset_params: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    batch_size: int | None = None
    workers: int | None = None
    progress: bool = True
    #: Instead of the model's embeddings, the run's input features averaged over time (the
    #: "raw features" panel of Fig. 7 of the paper: a 96-d time-averaged log-mel per clip).
    input_features: bool = False
    echo: Callable[[str], None] = print


def time_averaged(x: np.ndarray) -> np.ndarray:
    """``(N, C, F, T)`` or ``(N, C, T)`` features → ``(N, C·F)`` or ``(N, C)``: the mean over the
    last (time) axis, one clip at a time (``x`` may be a memory map)."""
    return np.stack([np.asarray(clip, dtype=np.float64).mean(axis=-1).reshape(-1)
                     for clip in x]).astype(np.float32) if len(x) else np.zeros((0, 0), np.float32)


@dataclass
class EmbedResult:
    path: Path
    embeddings: np.ndarray
    clip_ids: list[str]
    labels: np.ndarray
    label_names: list[str]
    n_dropped: int


def find_run(results_dir: Path, run_id: str) -> Path:
    """The record file of ``run_id`` under ``<results_dir>/runs/<dataset>/``."""
    from .storage import _safe_part

    try:
        _safe_part(run_id, "run id")
    except ValueError as exc:
        raise OptionError(str(exc)) from exc
    import glob

    matches = sorted((Path(results_dir) / "runs").glob(f"*/{glob.escape(run_id)}.json"))
    if not matches:
        raise OptionError(f"no stored run {run_id!r} under {Path(results_dir) / 'runs'}; "
                          "`mcbench runs list` shows the stored runs (or pass --results-dir)")
    return matches[0]


def default_output(results_dir: Path, run_id: str, dataset: str, split: str) -> Path:
    """``<results>/embeddings/<run_id>.<dataset>.<split>.npz``."""
    return Path(results_dir) / "embeddings" / f"{run_id}.{dataset}.{split}.npz"


def _describe_frontend(fe: Mapping[str, Any]) -> str:
    from .features import FrontEnd

    shape = FrontEnd(**fe).shape
    settings = ", ".join(f"{k}={v}" for k, v in sorted(fe.items()) if k != "name")
    return f"{fe['name']} ({settings}; input shape {tuple(shape)})"


def check_input_fits(run_frontend: Mapping[str, Any], frontend, run_id: str, model: str,
                     dataset: str, use: str = "Embed") -> None:
    """Refuse a dataset whose front end differs from the one the run's model was trained on:
    another front end (log-mel vs waveform), another clip length or other STFT settings.
    ``use`` starts the advice (what to do with a dataset that fits)."""
    given = frontend.as_dict()
    wanted = dict(run_frontend)
    if json.dumps(given, sort_keys=True) == json.dumps(wanted, sort_keys=True):
        return
    differ = sorted(k for k in set(given) | set(wanted) if given.get(k) != wanted.get(k))
    raise OptionError(
        f"run {run_id} ({model}) was trained on {_describe_frontend(wanted)}, but dataset "
        f"{dataset!r} gives {_describe_frontend(given)}: {', '.join(differ)} differ, so its "
        f"input does not fit the model. {use} a dataset with the same front end and clip length "
        f"(for a generated dataset, e.g. --dataset-param seconds={wanted.get('seconds')}), or "
        f"train a run on this dataset.")


def _restore(learner: Any, workdir: Path, run_id: str) -> None:
    """Load the weights the run was evaluated with, where the learner keeps them."""
    load_selected = getattr(learner, "load_selected", None)
    if callable(load_selected):
        if not workdir.is_dir():
            raise StateError(
                f"run {run_id} has no checkpoints in {workdir} (they were removed, or the "
                f"results folder was copied without its work/ folder); train the run again "
                f"(`mcbench runs rm {run_id}`, then the same `mcbench run`) to get its weights")
        load_selected(workdir)


def embed_run(registry: Any, req: EmbedRequest) -> EmbedResult:
    """``mcbench embed``: the embeddings of one split of a dataset under a finished run's model.

    Everything is checked before features are computed: the run (complete, its model plugin
    present, a learner that gives embeddings, its checkpoint), the split, the protocol and fold,
    and that the dataset's front end and clip length equal the run's. The run's stored input
    standardisation is applied (it is saved with the weights).
    """
    from .features import FeatureStore, FrontEnd
    from .runner import cache_dir_for, dataset_root, default_results_dir, load_partition
    from .storage import atomic_write_bytes, read_record, work_dir
    from .training import as_learner, seed_everything

    results_dir = Path(req.results_dir or default_results_dir())
    if req.split not in SPLITS:
        raise OptionError(f"--split {req.split!r}: choose from {', '.join(SPLITS)}")
    record = read_record(find_run(results_dir, req.run_id))
    if record.status != "complete":
        raise OptionError(f"run {req.run_id} is {record.status}, not complete; only a finished "
                          "run has the weights it was evaluated with")
    ident = record.identity
    mspec = registry.model(ident.model.name)
    spec = registry.dataset(req.dataset)

    # Protocol, fold and parameters of the data to embed.
    same = spec.name == ident.dataset.name
    protocol = req.protocol or (ident.dataset.protocol if same else spec.default_protocol)
    if protocol not in spec.protocols:
        raise OptionError(f"--protocol {protocol!r}: dataset {spec.name} has protocols "
                          f"{', '.join(sorted(spec.protocols))}")
    n_folds = spec.protocols[protocol]
    if req.fold is not None:
        fold: int | None = req.fold
    elif same and protocol == ident.dataset.protocol:
        fold = ident.dataset.fold
    else:
        fold = 0 if n_folds > 1 else None
    if n_folds <= 1 and fold not in (None, 0):
        raise OptionError(f"--fold {fold}: protocol {protocol!r} of {spec.name} has a single "
                          "fixed split")
    if n_folds > 1 and not 0 <= int(fold) < n_folds:
        raise OptionError(f"--fold {fold}: protocol {protocol!r} of {spec.name} has folds "
                          f"0..{n_folds - 1}")
    if n_folds <= 1:
        fold = None
    given = dict(ident.dataset.params) if same else {}
    given.update(req.dataset_params)
    params = spec.resolve_params(given)

    # The model, as the run built it, and its weights.
    fe_run = dict(ident.dataset.frontend)
    if fe_run.get("name") != mspec.frontend(ident.model.variant):
        raise OptionError(f"run {req.run_id}: its front end {fe_run.get('name')!r} is not the "
                          f"one model {mspec.name} ({ident.model.variant}) reads now "
                          f"({mspec.frontend(ident.model.variant)!r}); the plugin has changed")
    input_shape = FrontEnd(**fe_run).shape
    seed_everything(ident.seed)
    if ident.model.backend == "keras":
        from .keras_learner import seed_keras

        seed_keras(ident.seed)
    built = mspec.create(input_shape, len(ident.dataset.labels), task=ident.dataset.task,
                         variant=ident.model.variant, backend=ident.model.backend,
                         **ident.model.options)
    learner = as_learner(built, ident.dataset.task)
    if not callable(getattr(learner, "embed", None)):
        raise OptionError(f"model {mspec.name} (backend {ident.model.backend}) gives no "
                          "embeddings: its learner has no embed(split) method")
    network = getattr(learner, "network", None)
    if isinstance(network, nn.Module) and not callable(getattr(network, "embed", None)):
        head_module(network)  # a model without a usable head group is refused before any work
    if callable(getattr(learner, "check_embed", None)):
        learner.check_embed()  # a Keras model whose groups are not usable, before any work
    _configure(learner, ident.training, req)
    _restore(learner, work_dir(results_dir, req.run_id), req.run_id)

    # The data: the partition first (cheap), the front-end check, then features of one split.
    root = dataset_root(spec, req.root, req.data_dir)
    partition = load_partition(spec, root, protocol, fold, params)
    frontend = FrontEnd(fe_run["name"], seconds=partition.clip_seconds or spec.clip_seconds)
    check_input_fits(fe_run, frontend, req.run_id, mspec.name, spec.name)
    split = partition.splits[req.split]
    if len(split) == 0:
        raise OptionError(f"split {req.split!r} of {spec.name} ({protocol}"
                          f"{'' if fold is None else f', fold {fold}'}) holds no clips")
    store = FeatureStore(cache_dir_for(req.data_dir, req.cache_dir), spec.name, root, frontend)
    store.compute(split.tracks, name=partition.protocol, workers=req.workers,
                  progress=req.progress)
    feats, dropped = store.load_split(split, partition.labels, spec.task, partition.min_seconds)
    if dropped:
        req.echo(f"{len(dropped)} clip(s) of {req.split} dropped while loading features")
    if len(feats) == 0:
        raise OptionError(f"no clip of split {req.split!r} of {spec.name} could be decoded")

    emb = (time_averaged(feats.x) if req.input_features
           else np.asarray(learner.embed(feats), dtype=np.float32))
    if emb.ndim != 2 or emb.shape[0] != len(feats):
        raise EmbeddingError(f"model {mspec.name}: embed() returned shape {emb.shape} for "
                             f"{len(feats)} clips; expected (clips, dims)")
    out = Path(req.output) if req.output else default_output(results_dir, req.run_id, spec.name,
                                                             req.split)
    buf = io.BytesIO()
    np.savez(buf, embeddings=emb, clip_ids=np.asarray(feats.ids, dtype=str),
             labels=np.asarray(feats.y), label_names=np.asarray(list(partition.labels), dtype=str),
             run_id=np.asarray(req.run_id), model=np.asarray(mspec.name),
             variant=np.asarray(ident.model.variant), dataset=np.asarray(spec.name),
             protocol=np.asarray(protocol), fold=np.asarray(-1 if fold is None else int(fold)),
             split=np.asarray(req.split))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue())
    return EmbedResult(out, emb, list(feats.ids), np.asarray(feats.y), list(partition.labels),
                       len(dropped))


def _configure(learner: Any, training: Mapping[str, Any], req: EmbedRequest) -> None:
    """Device, batch size and precision for a torch learner (what its predictions used)."""
    from .runner import check_device
    from .training import TorchLearner, resolve_device

    batch_size = int(req.batch_size or training.get("batch_size") or 32)
    if not isinstance(learner, TorchLearner):
        configure = getattr(learner, "configure_inference", None)  # the Keras learner
        if callable(configure):
            configure(req.device, batch_size)
        return

    check_device(req.device)
    learner.device = resolve_device(req.device)
    learner.batch_size = batch_size
    learner.precision = str(training.get("precision") or "fp32")
