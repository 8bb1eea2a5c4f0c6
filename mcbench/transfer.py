"""Transfer learning: a run that starts from another run's weights (Wang et al., IJCNN 2019,
Sec. V-G, Table III).

The paper pre-trains CRNN-TF on MagnaTagATune (50 tags) and trains it on GTZAN (10 genres)
four ways. Each way is a :class:`Strategy`, defined once in :data:`STRATEGIES`:

============  =====================================  ==========================================
name          the paper's row                        trained on the target
============  =====================================  ==========================================
scratch       CRNN-TF (without transfer)             everything, from a random initialisation
freeze_all    Freeze CRNN-TF                         the head only (the output layer)
freeze_cnn    Freeze CNN + Fine-tune RNN             the recurrent part and the head
finetune      Fine-tune CRNN-TF                      everything, from the source's weights
============  =====================================  ==========================================

``--freeze GROUPS`` freezes any other set of groups. The groups are those a model declares with
``parameter_groups() -> {"cnn": [...], "rnn": [...], "head": [...]}`` (``rnn`` empty for a model
without a recurrent part); :func:`check_groups` states the contract.

How a transfer run is built (:func:`apply`):

* the target network is built for the target's number of outputs; every tensor of the source
  checkpoint except the head's is loaded into it — a tensor that is missing or has another
  shape refuses the run, naming the tensors (another variant, option or clip length);
* the head is new (randomly initialised from the run's seed), since its outputs are the target's
  labels;
* frozen parameters get ``requires_grad = False``: no gradient and no weight decay (the optimiser
  never sees them); frozen batch-norm layers stay in evaluation mode, so their running
  statistics are the source's, as Keras does for a layer with ``trainable = False``;
* the input standardisation (mean and standard deviation of the source's training split) is the
  source's, since the frozen layers were trained on inputs scaled that way; the record says so.

Keras models (``--backend keras``, a :class:`mcbench.keras_learner.KerasLearner`) declare the
same groups by layer names (``cnn_…``, ``rnn_…``, ``head_…``; see
:func:`mcbench.keras_learner.check_keras_groups`) and start from a Keras source run's
``best.weights.h5`` (:func:`_apply_keras`). A source of another backend is refused, naming both:
weights are not converted between torch and Keras by a transfer (the built-in models' weight
copies ``torch_to_keras`` / ``keras_to_torch`` exist for the parity tests).

``scratch`` is an ordinary run: it never reads a source and has the identity (and run id) of a
run without ``--transfer``, so the baseline row is shared with runs made without transfer.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .specs import OptionError

#: The parameter groups of the model contract, in network order.
GROUPS = ("cnn", "rnn", "head")
HEAD = "head"


@dataclass(frozen=True)
class Strategy:
    """One way of training on the target: which groups stay frozen and the paper's words."""

    name: str
    frozen: tuple[str, ...]
    #: The row of the paper's Table III, in its words.
    paper_row: str
    #: What a table row label says after the model name (``… from <source dataset>``).
    label: str
    help: str

    @property
    def needs_source(self) -> bool:
        return self.name != "scratch"


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("scratch", (), "CRNN-TF (without transfer)", "",
             "no transfer: random initialisation (an ordinary run)"),
    Strategy("freeze_all", ("cnn", "rnn"), "Freeze CRNN-TF", "freeze",
             "train only the new head on the source's frozen CNN and RNN"),
    Strategy("freeze_cnn", ("cnn",), "Freeze CNN + Fine-tune RNN", "freeze CNN + fine-tune RNN",
             "freeze the source's CNN; fine-tune its RNN and train a new head"),
    Strategy("finetune", (), "Fine-tune CRNN-TF", "fine-tune",
             "start every layer but the head from the source and train them all"),
)}
#: ``--freeze GROUPS`` with a set no named strategy has.
CUSTOM = "freeze"


class TransferError(OptionError):
    """A transfer that cannot be done: the message names the source, what differs and the fix."""


# --------------------------------------------------------------------------- the model contract


def declared_groups(network: Any) -> dict[str, list] | None:
    """``network.parameter_groups()``, or ``None`` when the network declares none."""
    method = getattr(network, "parameter_groups", None)
    return method() if callable(method) else None


def check_groups(network: Any) -> list[str]:
    """Problems with a torch network's declared transfer groups (empty when it is fine).

    The contract: ``parameter_groups()`` returns a dict whose keys are among ``cnn``, ``rnn`` and
    ``head``; every trainable parameter is in exactly one group; ``head`` is not empty and is the
    parameters of one submodule whose output is the network's output (the logits), which
    :func:`mcbench.embed.head_module` finds. A network without ``parameter_groups()`` has
    nothing to check (it cannot be a transfer source or target).
    """
    groups = declared_groups(network)
    if groups is None:
        return []
    name = type(network).__name__
    if not isinstance(groups, Mapping):
        return [f"{name}.parameter_groups() returned {type(groups).__name__}; it must return a "
                f"dict of parameter lists with keys among {', '.join(GROUPS)}"]
    problems = []
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        problems.append(f"{name}.parameter_groups(): unknown group(s) {unknown}; the groups are "
                        f"{', '.join(GROUPS)}")
    if not groups.get(HEAD):
        problems.append(f"{name}.parameter_groups(): the {HEAD!r} group is missing or empty; it "
                        "must hold the parameters of the module that produces the logits")
    owner: dict[int, str] = {}
    for group, params in groups.items():
        for p in params:
            if id(p) in owner:
                problems.append(f"{name}.parameter_groups(): a parameter of shape "
                                f"{tuple(p.shape)} is in both {owner[id(p)]!r} and {group!r}")
            owner[id(p)] = group
    named = dict(network.named_parameters())
    missing = [n for n, p in named.items() if p.requires_grad and id(p) not in owner]
    if missing:
        problems.append(f"{name}.parameter_groups(): {len(missing)} trainable parameter(s) are in "
                        f"no group, e.g. {', '.join(missing[:3])}; every parameter must be in "
                        f"one of {', '.join(GROUPS)}")
    foreign = len(owner) - len({id(p) for p in named.values()} & set(owner))
    if foreign:
        problems.append(f"{name}.parameter_groups(): {foreign} listed parameter(s) are not "
                        "parameters of the network")
    if not problems:
        from .embed import EmbeddingError, head_module

        try:
            head_module(network)
        except EmbeddingError as exc:
            problems.append(str(exc))
    return problems


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class TransferChoice:
    """``--init-from``, ``--transfer`` and ``--freeze`` as given, checked for consistency."""

    source: str | None
    strategy: str
    frozen: tuple[str, ...]

    @property
    def is_transfer(self) -> bool:
        return self.strategy != "scratch"


def parse_choice(init_from: str | None, transfer: str | None,
                 freeze: str | Sequence[str] | None) -> TransferChoice | None:
    """Check the three options together; ``None`` when the run starts from scratch.

    ``--init-from`` alone means ``finetune``; ``--freeze GROUPS`` names the frozen groups itself
    (a set equal to a named strategy's is that strategy).
    """
    if isinstance(freeze, str):
        freeze = [g.strip() for g in freeze.split(",") if g.strip()] if freeze.strip() else []
        if not freeze:
            raise OptionError("--freeze is empty; name groups from cnn, rnn (e.g. --freeze cnn)")
    if transfer is not None and transfer not in STRATEGIES:
        raise OptionError(f"--transfer {transfer!r}: choose from {', '.join(STRATEGIES)}")
    if freeze is not None:
        if transfer is not None:
            raise OptionError("--freeze and --transfer both say what to freeze; give one of them "
                              f"(--transfer {'|'.join(STRATEGIES)}, or --freeze GROUPS)")
        bad = sorted(set(freeze) - (set(GROUPS) - {HEAD}))
        if bad:
            raise OptionError(f"--freeze {','.join(freeze)}: {', '.join(bad)} cannot be frozen; "
                              "choose from cnn, rnn (the head is always trained: it is new)")
        frozen = tuple(g for g in GROUPS if g in freeze)
        named = [s.name for s in STRATEGIES.values() if s.needs_source and s.frozen == frozen]
        strategy = named[0] if named else CUSTOM
    else:
        strategy = transfer or ("finetune" if init_from else "scratch")
        frozen = STRATEGIES[strategy].frozen
    if strategy == "scratch":
        if init_from:
            raise OptionError(f"--init-from {init_from}: --transfer scratch trains from a random "
                              "initialisation and reads no source; drop one of the two")
        return None
    if not init_from:
        given = f"--transfer {strategy}" if transfer else f"--freeze {','.join(frozen)}"
        raise OptionError(f"{given} needs --init-from SOURCE: a run id, a record file, or the "
                          "dataset the source model was trained on (e.g. --init-from mtat)")
    return TransferChoice(init_from, strategy, frozen)


def strategy_label(strategy: str, frozen: Sequence[str]) -> str:
    """The words a table row uses for a strategy (``freeze CNN + fine-tune RNN``)."""
    if strategy in STRATEGIES:
        return STRATEGIES[strategy].label
    return f"freeze {'+'.join(frozen)}"


# --------------------------------------------------------------------------- the source


@dataclass(frozen=True)
class TransferSource:
    """A finished source run for one target model: what its identity and provenance record."""

    run_id: str
    dataset: str
    record_path: Path
    record_sha256: str
    checkpoint: Path
    frontend: dict[str, Any]
    strategy: str
    frozen: tuple[str, ...]

    def identity(self) -> dict[str, Any]:
        """The target's ``identity.transfer``: the source run decides everything the source
        contributes, so its id (with the strategy) is what identifies the transfer."""
        return {"strategy": self.strategy, "frozen": list(self.frozen),
                "source_run": self.run_id, "source_dataset": self.dataset}

    def record(self, standardization: Mapping[str, float] | None) -> dict[str, Any]:
        """The record's ``transfer`` section: the identity plus where the weights came from."""
        return {**self.identity(), "trained": [g for g in GROUPS if g not in self.frozen],
                "source_record": str(self.record_path), "source_record_sha256": self.record_sha256,
                "source_checkpoint": self.checkpoint.name,
                "standardization": dict(standardization) if standardization else None}


def _changed(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(options.items()) if k not in defaults or defaults[k] != v}


def _model_text(model: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """``crnn_tf (paper; units=16)``: the options that differ from the variant's defaults."""
    opts = ", ".join(f"{k}={json.dumps(v)}"
                     for k, v in _changed(model.get("options") or {}, defaults).items())
    backend = model.get("backend")
    if backend and backend != "torch":
        opts = f"{opts}; {backend} backend" if opts else f"{backend} backend"
    return f"{model.get('name')} ({model.get('variant')}{'; ' + opts if opts else ''})"


def _describe_candidate(record) -> str:
    ident = record.identity
    epochs = ident.training.get("max_epochs")
    fold = "" if ident.dataset.fold is None else f", fold {ident.dataset.fold}"
    return f"{record.run_id} (seed {ident.seed}{fold}, {epochs} epoch(s), created {record.created})"


def _records_on(results_dir: Path, dataset: str) -> list:
    from .records import RecordError
    from .storage import read_record

    out = []
    for path in sorted((Path(results_dir) / "runs" / dataset).glob("*.json")):
        try:
            out.append((path, read_record(path)))
        except RecordError:
            continue
    return out


def _option_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


def _source_command(model: Mapping[str, Any], dataset: str, defaults: Mapping[str, Any]) -> str:
    parts = [f"mcbench run --models {model['name']} --dataset {dataset}"]
    if model.get("variant") not in (None, "default"):
        parts.append(f"--variant {model['name']}={model['variant']}")
    for k, v in _changed(model.get("options") or {}, defaults).items():
        parts.append(f"--param {model['name']}.{k}={_option_text(v)}")
    if model.get("backend") not in (None, "torch"):
        parts.append(f"--backend {model['backend']}")
    return " ".join(parts) + " --root …  (with the training settings the source should have)"


#: The checkpoint a transfer reads, per backend of the source run, in order of preference.
CHECKPOINTS = {"torch": ("best.pt", "last.pt"), "keras": ("best.weights.h5",)}


def find_source(choice: TransferChoice, model: Mapping[str, Any], results_dir: Path,
                datasets: Sequence[str], target_dataset: str,
                defaults: Mapping[str, Any] | None = None) -> TransferSource:
    """The source run ``--init-from`` means for a target model (``model``: name, variant,
    backend, typed options after defaults; ``defaults``: the variant's default options, so
    that messages show only what was changed), checked before any work.

    ``--init-from`` is a record file (``….json``), a run id, or a dataset name meaning "the
    finished run of this model, variant and options on that dataset"; several or none is an
    error that names the candidates, or the command that makes one.
    """
    from .embed import find_run
    from .storage import read_record, work_dir

    defaults = dict(defaults or {})
    given = choice.source or ""
    path = Path(given)
    if given.endswith(".json") or path.is_file():
        if not path.is_file():
            raise TransferError(f"--init-from {given}: no such record file")
        record_path = path
    elif given in datasets:
        finished = [(p, r) for p, r in _records_on(results_dir, given) if r.status == "complete"]
        fits = [(p, r) for p, r in finished
                if r.identity.model.name == model["name"]
                and r.identity.model.variant == model["variant"]
                and r.identity.model.backend == model["backend"]
                and r.identity.model.options == model["options"]
                and r.identity.transfer is None]
        if not fits:
            others = sorted({_model_text(r.identity.model.model_dump(), defaults) for _, r in finished
                             if r.identity.model.name == model["name"]})
            also = (f" (finished runs of {model['name']} there have other settings: "
                    f"{'; '.join(others)})") if others else ""
            raise TransferError(
                f"--init-from {given}: no finished run of {_model_text(model, defaults)} on {given} under "
                f"{Path(results_dir) / 'runs' / given}{also}. Train the source first:\n  "
                f"{_source_command(model, given, defaults)}")
        if len(fits) > 1:
            raise TransferError(
                f"--init-from {given}: {len(fits)} finished runs of {_model_text(model, defaults)} on "
                f"{given} could be the source:\n  "
                + "\n  ".join(_describe_candidate(r) for _, r in fits)
                + "\npass one of these run ids to --init-from")
        record_path = fits[0][0]
    else:
        record_path = find_run(results_dir, given)
    record = read_record(record_path)
    ident = record.identity
    if record.status != "complete":
        raise TransferError(f"--init-from {given}: run {record.run_id} is {record.status}; only a "
                            "finished run has the weights it was evaluated with")
    if ident.dataset.name == target_dataset:
        raise TransferError(f"--init-from {given}: run {record.run_id} was trained on "
                            f"{target_dataset} itself; a transfer source is trained on another "
                            "dataset (e.g. mtat for gtzan)")
    source_model = ident.model.model_dump(mode="json")
    differ = [k for k in ("name", "variant") if source_model.get(k) != model.get(k)]
    if source_model.get("backend") != model.get("backend"):
        # Weights are not converted between backends: a Keras target needs a Keras source.
        differ.append(f"backend ({source_model.get('backend')} in the source, "
                      f"{model.get('backend')} here)")
    src_opts, opts = source_model.get("options") or {}, model.get("options") or {}
    differ += [f"option {k} ({json.dumps(src_opts.get(k))} in the source, "
               f"{json.dumps(opts.get(k))} here)"
               for k in sorted(set(src_opts) | set(opts)) if src_opts.get(k) != opts.get(k)]
    if differ:
        raise TransferError(
            f"--init-from {given}: the source run {record.run_id} is "
            f"{source_model.get('name')} ({source_model.get('variant')}), the target "
            f"{_model_text(model, defaults)}: {', '.join(differ)} differ, so the source's "
            "weights do not fit. Start from a run of the same model, variant and options, or "
            "train one:\n  " + _source_command(model, ident.dataset.name, defaults))
    workdir = work_dir(results_dir, record.run_id)
    names = CHECKPOINTS.get(str(source_model.get("backend")), CHECKPOINTS["torch"])
    checkpoint = next((workdir / n for n in names if (workdir / n).is_file()), None)
    if checkpoint is None:
        raise TransferError(
            f"--init-from {given}: the source run {record.run_id} has no checkpoint in {workdir} "
            f"({' or '.join(names)}; the results folder may have been copied without work/). Train "
            f"it again: `mcbench runs rm {record.run_id}`, then\n  "
            + _source_command(model, ident.dataset.name, defaults))
    sha = hashlib.sha256(record_path.read_bytes()).hexdigest()
    return TransferSource(record.run_id, ident.dataset.name, record_path, sha, checkpoint,
                          dict(ident.dataset.frontend), choice.strategy, choice.frozen)


def check_frontend(source: TransferSource, frontend, target_dataset: str) -> None:
    """Refuse a target whose front end (kind, clip length, STFT settings) is not the source's:
    the CNN's input, and with it the recurrent layers' widths, would differ."""
    from .embed import check_input_fits

    try:
        check_input_fits(source.frontend, frontend, source.run_id, "the transfer source",
                         target_dataset, use="Train the target on")
    except OptionError as exc:
        raise TransferError(f"--init-from: {exc}") from exc


# --------------------------------------------------------------------------- applying it



def _check_target(problems: list[str], declared: bool, undeclared: str) -> None:
    """Refuse a target model whose transfer groups are missing or inconsistent."""
    if not declared:
        problems = [*problems, undeclared]
    if problems:
        raise TransferError("cannot transfer into this model: " + "; ".join(problems))


def apply(learner: Any, source: TransferSource,
          rebuild: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Load the source's weights (all but the head) into a freshly built torch or Keras
    learner, freeze the chosen groups, and keep the source's input standardisation (module
    docstring).

    ``rebuild(n_outputs)`` builds the target's model again with another number of outputs; a
    Keras target needs it (:func:`_apply_keras`). Returns the record's ``transfer`` section.
    Raises :class:`TransferError` when the learner is neither a torch network nor a Keras
    model with valid groups, or when a tensor does not fit.
    """
    import torch

    from .embed import head_module
    from .training import TorchLearner, load_checkpoint

    if type(learner).__name__ == "KerasLearner":
        return _apply_keras(learner, source, rebuild)
    if not isinstance(learner, TorchLearner):
        raise TransferError(f"run from {source.run_id}: this model's learner "
                            f"({type(learner).__name__}) is not a torch network, so it cannot "
                            "start from another run's weights")
    network = learner.network
    _check_target(check_groups(network), declared_groups(network) is not None,
                  f"{type(network).__name__} declares no parameter_groups(); a transfer needs "
                  "its cnn, rnn and head groups")
    head = head_module(network)
    head_name = next(n for n, m in network.named_modules() if m is head)
    head_prefix = f"network.{head_name}." if head_name else "network."

    state = load_checkpoint(source.checkpoint, torch.device("cpu"))["model"]
    target = learner.module.state_dict()

    def is_head(key: str) -> bool:
        return key.startswith(head_prefix)

    wrong = [f"{k}: {tuple(state[k].shape)} in the source, {tuple(v.shape)} here"
             for k, v in target.items() if not is_head(k) and k in state and state[k].shape != v.shape]
    missing = [k for k in target if not is_head(k) and k not in state]
    extra = [k for k in state if not is_head(k) and k not in target]
    if wrong or missing or extra:
        bits = []
        if wrong:
            bits.append(f"{len(wrong)} tensor(s) have other shapes ({'; '.join(wrong[:3])})")
        if missing:
            bits.append(f"{len(missing)} are not in the source ({', '.join(missing[:3])})")
        if extra:
            bits.append(f"{len(extra)} of the source are not in this model ({', '.join(extra[:3])})")
        raise TransferError(
            f"the weights of source run {source.run_id} ({source.checkpoint}) do not fit this "
            f"model: {'; '.join(bits)}. The source must have the same model, variant, options "
            "and input shape (front end and clip length) as the target")
    merged = {k: (v if is_head(k) else state[k].to(v.dtype)) for k, v in target.items()}
    learner.module.load_state_dict(merged)

    groups = declared_groups(network)
    frozen_ids = {id(p) for g in source.frozen for p in groups.get(g, [])}
    for p in network.parameters():
        if id(p) in frozen_ids:
            p.requires_grad_(False)
    learner.frozen_modules = [
        m for m in network.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        and any(True for _ in m.parameters()) and all(id(p) in frozen_ids for p in m.parameters())]
    learner.keep_standardization = True
    stats = {"from_source": True, "mean": float(learner.module.mean), "std": float(learner.module.std)}
    section = source.record(stats)
    section["n_trainable"] = sum(p.numel() for p in network.parameters() if p.requires_grad)
    section["n_frozen_norm_layers"] = len(learner.frozen_modules)
    return section


def _apply_keras(learner: Any, source: TransferSource,
                 rebuild: Callable[[int], Any] | None) -> dict[str, Any]:
    """:func:`apply` for a :class:`mcbench.keras_learner.KerasLearner`.

    The source's ``.weights.h5`` holds a model with the source's number of outputs, so the
    target's model is built again with that many (``rebuild``) and the file loaded into it with
    Keras's own reader, which refuses a tensor of another shape; then every layer of the ``cnn``
    and ``rnn`` groups (batch-norm moving statistics included) and the input standardisation
    are copied into the target, layer by layer in network order. The head keeps its new
    initialisation. Freezing is ``layer.trainable = False``: no gradient, no L2 term, and a
    frozen ``BatchNormalization`` runs in inference mode on the source's statistics.
    """
    from .keras_learner import (
        KerasLearner,
        _layers,
        check_keras_groups,
        keras_transfer_groups,
        load_keras,
    )
    from .storage import read_record

    network = learner.network
    _check_target(check_keras_groups(network), keras_transfer_groups(network) is not None,
                  f"Keras model {network.name!r} declares no transfer groups; a transfer needs "
                  "its layers with weights named cnn_…, rnn_… and head_…")
    if rebuild is None:
        raise TransferError(f"run from {source.run_id}: a Keras target needs its build "
                            "(apply(..., rebuild=...)) to read the source's weights")
    ident = read_record(source.record_path).identity
    n_source = len(ident.dataset.labels)
    try:
        donor = KerasLearner(rebuild(n_source), ident.dataset.task)
        donor.load(source.checkpoint)
    except Exception as exc:
        raise TransferError(
            f"the weights of source run {source.run_id} ({source.checkpoint}) do not fit this "
            f"model: {exc}. The source must have the same model, variant, options and input "
            "shape (front end and clip length) as the target") from exc
    mine = [layer for layer in _layers(network) if layer.weights]
    theirs = [layer for layer in _layers(donor.network) if layer.weights]
    if len(mine) != len(theirs) or any(type(a) is not type(b) for a, b in zip(mine, theirs)):
        raise TransferError(
            f"the weights of source run {source.run_id} do not fit this model: the rebuilt "
            f"source has {len(theirs)} layers with weights, this model {len(mine)} (or of other "
            "kinds); the build must give the same layers whatever the number of outputs")
    groups = keras_transfer_groups(network)
    head = {id(layer) for layer in groups["head"]}
    for layer, other in zip(mine, theirs):
        if id(layer) in head:
            continue
        values = other.get_weights()
        wrong = [f"{w.path}: {tuple(v.shape)} in the source, {tuple(w.shape)} here"
                 for w, v in zip(layer.weights, values) if tuple(w.shape) != tuple(v.shape)]
        if wrong or len(values) != len(layer.weights):
            raise TransferError(
                f"the weights of source run {source.run_id} do not fit layer {layer.name!r}: "
                f"{'; '.join(wrong) or 'another number of tensors'}. The source must have the "
                "same model, variant, options and input shape as the target")
        layer.set_weights(values)
    learner.standardizer.mean.assign(float(donor.standardizer.mean.numpy()))
    learner.standardizer.std.assign(float(donor.standardizer.std.numpy()))
    keras = load_keras()
    frozen_norms = 0
    for group in source.frozen:
        for layer in groups.get(group, []):
            layer.trainable = False
            frozen_norms += isinstance(layer, keras.layers.BatchNormalization)
    learner.keep_standardization = True
    stats = {"from_source": True, "mean": float(learner.standardizer.mean.numpy()),
             "std": float(learner.standardizer.std.numpy())}
    section = source.record(stats)
    section["n_trainable"] = int(sum(int(math.prod(v.shape)) for v in learner.model.trainable_weights))
    section["n_frozen_norm_layers"] = frozen_norms
    return section
