"""The torch trainer: the paper's protocol, selection on validation, checkpoints and resume.

Protocol ``paper`` (the paper, Sec. IV–V-C): Adam (lr 1e-3, β = (0.9, 0.999),
ε = 1e-7 as in Keras), learning rate ×0.9 after every epoch, batch 32 reshuffled each epoch from
the run seed, sigmoid + binary cross-entropy for tagging and softmax + cross-entropy for genres,
L2 of eq. (2) with λ1 (conv), λ2 (output and hidden dense) and λ3 (recurrent) = 1e-6, at most 50
epochs, the checkpoint with the best **validation** metric kept (ties keep the earlier epoch),
optional early-stopping patience. Protocol ``wang2019`` (the authors' notebooks, FishInMedi/CRNN-TF):
constant lr, no L2. The table of what differs between them is :data:`mcbench.specs.PROTOCOLS`.

L2 is applied as per-group Adam ``weight_decay = 2λ``, which is the gradient of λ‖w‖² added to the
loss (AdamW would not be equivalent). Groups come from module types: convolutions → λ1; linear
layers → λ2; ``nn.GRU``/``nn.LSTM`` and modules declaring ``l2_group = "recurrent"`` → λ3; batch
norm → never penalised. A plugin module may override by declaring ``l2_group`` itself.

Resume: after every epoch the trainer writes ``last.pt`` (model, optimiser, history, best so far)
into the run's work folder and ``best.pt`` when validation improves. Shuffling and dropout are
seeded from (seed, epoch), so a run killed mid-training and started again continues from its last
completed epoch and produces the same result as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import time
from pathlib import Path

from .openmp import openmp_wait_settings

# libgomp reads these once, when torch loads it, so they are set before torch is imported (and
# act only if it is not loaded yet).
os.environ.update(openmp_wait_settings(os.environ))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn

from . import distributed
from .feeding import SplitFeeder
from .specs import (
    MULTILABEL,
    PROTOCOLS,  # noqa: F401 (the protocol table, re-exported for learners)
    FeatureSplit,
    OptionError,
    TrainConfig,
    improves,
    resolve_training,
    training_options,
)
from .storage import StateError, atomic_write_bytes


def protocol_config(name: str, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` for a named protocol (:data:`mcbench.specs.PROTOCOLS`), with
    explicit overrides (settings and the harness's own fields) applied last."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown training setting(s) {sorted(unknown)}; "
                         f"settings: {sorted(training_options())}")
    settings = {k: v for k, v in overrides.items() if k in training_options()}
    others = {k: v for k, v in overrides.items() if k not in settings}
    try:
        resolved = resolve_training(name, settings, owner="training")
    except OptionError as exc:
        raise ValueError(str(exc)) from exc
    return TrainConfig(**resolved, **others)


def seed_everything(seed: int) -> None:
    """Seed every generator a model's initialisation may draw from (torch, numpy, random)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but torch sees no CUDA device "
                           "(install a CUDA build of torch, see the README, or use --device cpu)")
    return torch.device(name)


# --------------------------------------------------------------------------- L2 groups

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_RECURRENT = (nn.GRU, nn.LSTM, nn.RNN, nn.GRUCell, nn.LSTMCell)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


def l2_group_of(module: nn.Module) -> str | None:
    declared = getattr(module, "l2_group", None)
    if declared is not None:
        return declared or None
    if isinstance(module, _CONV):
        return "conv"
    if isinstance(module, _RECURRENT):
        return "recurrent"
    if isinstance(module, nn.Linear):
        return "output"
    return None


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Adam parameter groups with ``weight_decay = 2λ`` per eq. (2) group."""
    lam = {"conv": config.l2_conv, "output": config.l2_output, "recurrent": config.l2_recurrent, None: 0.0}
    assigned: dict[int, str | None] = {}

    def visit(module: nn.Module, owner_group: str | None, owned: bool) -> None:
        declared = getattr(module, "l2_group", None)
        if isinstance(module, _NORM):
            group = None
        elif owned:
            group = owner_group
        else:
            group = l2_group_of(module)
        for p in module.parameters(recurse=False):
            assigned.setdefault(id(p), group)
        # a module declaring a group (e.g. a Grid LSTM block) owns all its sub-layers
        owns = owned or declared is not None
        for child in module.children():
            visit(child, group if owns else None, owns)

    visit(model, None, False)
    buckets: dict[str | None, list] = {}
    for p in model.parameters():
        if p.requires_grad:
            buckets.setdefault(assigned.get(id(p)), []).append(p)
    return [
        {"params": ps, "weight_decay": 2.0 * lam[g], "l2_group": g or "none"}
        for g, ps in buckets.items()
    ]


# --------------------------------------------------------------------------- batch norm

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _warm_up_batchnorm(model: nn.Module, base: dict, step: int) -> None:
    """Bias-corrected running statistics: momentum max(m, 1/(step+1)).

    Keras's BN momentum 0.99 (torch 0.01) leaves the running mean and variance ~80 % at their
    initial values after 20 steps, so evaluation in the first epochs of a short run uses
    statistics unrelated to the data (the validation metric lags far behind training). Taking the
    plain average of the batches seen so far until 1/(step+1) falls below the layer's own
    momentum (step 100 for Keras's setting) removes that start-up bias, as Adam does for its
    moments; after that the layer's own momentum applies unchanged, so long runs match Keras.
    """
    for module, momentum in base.items():
        if momentum is not None:
            module.momentum = max(momentum, 1.0 / (step + 1))


# --------------------------------------------------------------------------- the learner


def _say(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message)


def _progress(iterable, **kw):
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


class InputStandardizer(nn.Module):
    """``(x − mean) / std`` with two scalars taken from the training split, then the model.

    The paper's front end outputs decibels (about −100 to +20). Models with batch norm right
    after their first convolution are unaffected by a global affine change of the input (up to
    zero padding at the borders), but those without (Timbre CNN, End-to-end) diverge on raw dB
    values: on the synthetic data Timbre CNN's first loss was 3.2 and it never beat chance.
    Standardising is on by default (``TrainConfig.standardize``); the statistics are buffers, so
    they are saved, loaded and resumed with the weights.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.zeros((), dtype=torch.float32))
        self.register_buffer("std", torch.ones((), dtype=torch.float32))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.standardize(x))

    @torch.no_grad()
    def fit_statistics(self, x: np.ndarray, max_clips: int = 256) -> None:
        rows = np.unique(np.linspace(0, len(x) - 1, num=min(len(x), max_clips)).astype(int))
        total, total_sq, count = 0.0, 0.0, 0
        for r in rows:  # one clip at a time: x may be a memory map of a large dataset
            clip = np.asarray(x[r], dtype=np.float64)
            total += clip.sum()
            total_sq += np.square(clip).sum()
            count += clip.size
        mean = total / count
        std = max(np.sqrt(max(total_sq / count - mean**2, 0.0)), 1e-8)
        self.mean.fill_(mean)
        self.std.fill_(std)


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of returning it to the
    system (``mallopt``: no ``mmap`` allocations, no trimming of the heap's top). A training
    step allocates and frees the same large activations every step; by default each one over
    32 MB is a fresh ``mmap`` whose pages fault in again on first touch, which cost a CRNN-TF
    step on this 2-core CPU about a quarter of its time. Trimming is off rather than bounded
    because the largest activations exceed any bound worth setting: FCN-4's first conv output
    at batch 32 is 2.1 GB, and with a 1 GiB threshold it was handed back and faulted in again
    every step (15.1 -> 8.6 s a step). The peak resident memory is unchanged (the
    same tensors are live at once); it is simply not handed back between steps. Returns
    whether the setting applied (``False`` off glibc).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>; a threshold of -1 never trims
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, -1))
    except (OSError, AttributeError):
        return False


class TorchLearner:
    """Wraps a plugin's ``nn.Module`` (logits out) with fit/predict/save/load."""

    def __init__(self, module: nn.Module, task: str):
        self.network = module
        self.module = InputStandardizer(module)
        self.task = task
        self.device = torch.device("cpu")
        self.history: list[dict] = []
        self.selected_epoch: int | None = None
        # the selected epoch's weights when no work folder is given (validation, quick fits)
        self._best_in_memory: dict | None = None
        self.channels_last = True
        self.batch_size = 32
        self.precision = "fp32"
        # Set by a transfer (mcbench.transfer.apply): batch-norm layers of frozen groups, which
        # stay in evaluation mode, and whether the source's input standardisation is kept.
        self.frozen_modules: list[nn.Module] = []
        self.keep_standardization = False
        # one feeder per split and device (mcbench.feeding): a resident split is uploaded once
        self._feeders: dict[tuple[int, str], SplitFeeder] = {}

    # -- helpers
    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == MULTILABEL:
            return nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        return nn.functional.cross_entropy(logits.float(), y)

    def _to_probs(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return torch.sigmoid(logits) if self.task == MULTILABEL else torch.softmax(logits, dim=1)

    def _autocast(self):
        """bfloat16 autocast when the run's precision is ``bf16`` (a training setting, part of
        the run's identity); ``fp32`` runs in full precision on every device."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    def _feeder(self, split: FeatureSplit) -> SplitFeeder:
        """The split's batches on this learner's device: resident on the GPU when it fits,
        prefetched into pinned memory otherwise, read in place on the CPU (mcbench.feeding)."""
        key = (id(split), str(self.device))
        feeder = self._feeders.get(key)
        if feeder is None or feeder.split is not split or feeder.channels_last != self.channels_last:
            feeder = self._feeders[key] = SplitFeeder(split, self.task, self.device,
                                                      self.channels_last)
        return feeder

    def _batch(self, split: FeatureSplit, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self._feeder(split).batch(idx)

    def _place(self, device: torch.device) -> None:
        """Move the module to ``device``, in channels-last layout for 2-D (spectrogram) models.

        Channels-last is a memory layout only: the numbers agree with the default layout up to
        float rounding. oneDNN's CPU convolutions and cuDNN's tensor-core kernels are faster in
        it; on the 2-core CPU it trained FCN 1.4× and CRNN 1.4× faster per clip (batch 4).
        """
        self.module.to(device)
        if device.type == "cpu":
            keep_freed_memory()
            # Subnormal floats (below 1.2e-38) as zero, as TensorFlow's CPU threads do: they
            # reach the Grid LSTM blocks and Adam's second moments, where the CPU computes
            # them ~100x slower; CRNN-TF (paper) trained 6.6 -> 11.9 clips/s at batch 8.
            torch.set_flush_denormal(True)
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)

    # -- Learner API
    def fit(self, train: FeatureSplit, valid: FeatureSplit, config: TrainConfig) -> list[dict]:
        if len(train) == 0 or len(valid) == 0:
            raise ValueError(f"cannot train on empty splits (train={len(train)}, valid={len(valid)})")
        if config.select_metric is None:
            raise ValueError("TrainConfig.select_metric is required (the validation metric)")
        self.device = resolve_device(config.device)
        self.channels_last = config.channels_last
        self.batch_size = config.batch_size
        self.precision = config.precision
        torch.manual_seed(config.seed)
        self._place(self.device)
        optimizer = torch.optim.Adam(
            parameter_groups(self.module, config), lr=config.lr, betas=(0.9, 0.999), eps=config.adam_eps
        )
        workdir = Path(config.workdir) if config.workdir else None
        state = {"epoch": -1, "best_metric": -math.inf, "best_epoch": None, "history": [], "finished": False}
        # Under torchrun (mcbench.distributed) rank 0 alone reads and writes checkpoints,
        # validates and selects; the others get its checkpoint and its decisions.
        ddp, main = distributed.active(), distributed.is_main()
        if workdir is not None:
            if main:
                workdir.mkdir(parents=True, exist_ok=True)
            last = workdir / "last.pt"
            ckpt = load_checkpoint(last, torch.device("cpu") if ddp else self.device) if (
                main and last.exists()) else None
            if ddp:
                ckpt = distributed.broadcast(ckpt)
            if ckpt is not None:
                try:
                    self.module.load_state_dict(ckpt["model"])
                    optimizer.load_state_dict(ckpt["optimizer"])
                    state = ckpt["state"]
                except (KeyError, RuntimeError, ValueError, TypeError) as exc:
                    raise unusable_checkpoint(last, exc) from exc
                if main:
                    _say(f"resuming from epoch {state['epoch'] + 2} (checkpoint {last})"
                         if not state["finished"] and state["epoch"] + 1 < config.max_epochs
                         else f"training already finished (checkpoint {last})")
        if state["epoch"] < 0 and config.standardize and not self.keep_standardization:
            self.module.fit_statistics(train.x)
        n = len(train)
        net: nn.Module = self.module
        if ddp:  # after the statistics: the wrapper broadcasts rank 0's weights and buffers
            from torch.nn.parallel import DistributedDataParallel

            distributed.per_rank_batch(config.batch_size, distributed.world_size())
            net = DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        bn_momentum = {m: m.momentum for m in self.module.modules() if isinstance(m, _BN)}
        for epoch in range(state["epoch"] + 1, config.max_epochs):
            if state["finished"]:
                break
            lr = config.lr * config.lr_decay**epoch
            for g in optimizer.param_groups:
                g["lr"] = lr
            order = np.random.default_rng([config.seed, epoch]).permutation(n)
            torch.manual_seed(config.seed * 100_003 + epoch)  # dropout masks, resume-safe
            self.module.train()
            for frozen in self.frozen_modules:  # frozen batch norm keeps its running statistics
                frozen.eval()
            t0 = time.perf_counter()
            total, seen = 0.0, 0
            batches = [order[i : i + config.batch_size] for i in range(0, n, config.batch_size)]
            weights = [1.0] * len(batches)
            if ddp:  # this rank's shard of every global batch (mcbench.distributed.shard)
                shards = [distributed.shard(b, distributed.rank(), distributed.world_size())
                          for b in batches]
                batches, weights = [b for b, _ in shards], [w for _, w in shards]
            bar = _progress(self._feeder(train).batches(batches), total=len(batches),
                            desc=f"epoch {epoch + 1}/{config.max_epochs}", unit="batch",
                            disable=not (config.progress and main), leave=False)
            for (idx, x, y), weight in zip(bar, weights):
                _warm_up_batchnorm(self.module, bn_momentum, state.setdefault("step", 0))
                state["step"] += 1
                with self._autocast():
                    logits = net(x)
                loss = self._loss(logits, y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss.item()} in epoch {epoch + 1}")
                optimizer.zero_grad(set_to_none=True)
                (loss * weight if ddp else loss).backward()
                optimizer.step()
                counted = len(idx) if weight > 0 else 0
                total += loss.item() * counted
                seen += counted
                bar.set_postfix(loss=f"{total / max(seen, 1):.4f}")
            if ddp:  # the epoch's loss over every rank's clips
                total, seen = distributed.all_sum(total), int(distributed.all_sum(seen))
            train_s = time.perf_counter() - t0
            metric = improved = None
            if main:
                scores = self.predict(valid, batch_size=config.batch_size)
                metric = float(config.select_metric(valid.y, scores))
                improved = improves(metric, state["best_metric"], config.select_higher_is_better)
            if ddp:
                metric, improved, train_s = distributed.broadcast((metric, improved, train_s))
            entry = {
                "epoch": epoch, "loss": total / seen, "valid_metric": metric, "lr": lr,
                "seconds": round(time.perf_counter() - t0, 3), "clips_per_s": round(seen / train_s, 2),
            }
            state["history"].append(entry)
            if improved:
                state["best_metric"], state["best_epoch"] = metric, epoch
            stale = epoch - (state["best_epoch"] if state["best_epoch"] is not None else epoch)
            if config.patience is not None and stale >= config.patience:
                state["finished"] = True
            if config.epoch_callback is not None and main:
                config.epoch_callback(entry)
            # One summary line per epoch even without progress bars (logs of long runs).
            if main:
                _say(
                    f"epoch {epoch + 1}/{config.max_epochs}: loss {entry['loss']:.4f}, "
                    f"valid {config.select_metric_name or 'metric'} {metric:.4f}"
                    f"{' *' if improved else ''} "
                    f"({entry['seconds']:.1f} s, {entry['clips_per_s']:.1f} clips/s)"
                )
            state["epoch"] = epoch
            if main and workdir is not None:
                if improved:
                    _atomic_torch_save({"model": self.module.state_dict()}, workdir / "best.pt")
                _atomic_torch_save(
                    {"model": self.module.state_dict(), "optimizer": optimizer.state_dict(), "state": state},
                    workdir / "last.pt",
                )
            elif main and improved:
                self._best_in_memory = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        self._feeders.clear()  # the training and validation splits leave the GPU
        distributed.barrier()  # every rank leaves training together
        # Test predictions must come from the selected checkpoint, never the last epoch.
        if not main:
            pass
        elif workdir is not None and (workdir / "best.pt").exists():
            best = workdir / "best.pt"
            try:
                self.module.load_state_dict(load_checkpoint(best, self.device)["model"])
            except (KeyError, RuntimeError, TypeError) as exc:
                raise unusable_checkpoint(best, exc) from exc
        elif self._best_in_memory is not None:
            self.module.load_state_dict(self._best_in_memory)
        self.history = state["history"]
        self.selected_epoch = state["best_epoch"]
        return self.history

    @torch.no_grad()
    def predict(self, split: FeatureSplit, batch_size: int | None = None) -> np.ndarray:
        """Probabilities ``(N, K)``; batches of the last fit's batch size unless one is given
        (on a 2-core CPU FCN-4 evaluates about 1.25× faster per clip in batches of 8 than of 32)."""
        batch_size = batch_size or self.batch_size
        self.module.eval()
        self._place(self.device)
        out = []
        for i in range(0, len(split), batch_size):
            idx = np.arange(i, min(i + batch_size, len(split)))
            x, _ = self._batch(split, idx)
            with self._autocast():
                logits = self.module(x)
            out.append(self._to_probs(logits).cpu().numpy())
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    @torch.no_grad()
    def embed(self, split: FeatureSplit, batch_size: int | None = None) -> np.ndarray:
        """Embeddings ``(N, D)`` float32: the input of the network's head module (or its own
        ``embed(x)``), see :mod:`mcbench.embed`, after the run's input standardisation."""
        from .embed import embeddings

        batch_size = batch_size or self.batch_size
        self._place(self.device)
        out = []
        for i in range(0, len(split), batch_size):
            x, _ = self._batch(split, np.arange(i, min(i + batch_size, len(split))))
            with self._autocast():
                e = embeddings(self.network, x, prepare=self.module.standardize)
            out.append(e.float().cpu().numpy())
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def load_selected(self, workdir: Path) -> Path:
        """Load the weights a finished run was evaluated with from its work folder: ``best.pt``
        (the selected epoch), or ``last.pt`` when no epoch was ever selected (then the test
        predictions came from the final weights too). Returns the file loaded."""
        for name in ("best.pt", "last.pt"):
            path = Path(workdir) / name
            if path.exists():
                self.load(path)
                return path
        raise StateError(f"no checkpoint (best.pt or last.pt) in {workdir}; train the run again "
                         "to get its weights")

    def save(self, path: Path) -> None:
        _atomic_torch_save({"model": self.module.state_dict()}, Path(path))

    def load(self, path: Path) -> None:
        try:
            self.module.load_state_dict(load_checkpoint(Path(path), torch.device("cpu"))["model"])
        except (KeyError, RuntimeError, TypeError) as exc:
            raise unusable_checkpoint(Path(path), exc) from exc

    @property
    def n_params(self) -> int:
        """Every parameter, frozen ones included (a transfer record counts the trainable ones)."""
        return sum(p.numel() for p in self.module.parameters())


def _atomic_torch_save(obj, path: Path) -> None:
    """Serialise in memory first, so that a full disk surfaces as the OSError of our own write
    (torch's zip writer turns it into an unrelated RuntimeError), then replace ``path``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getbuffer())


def unusable_checkpoint(path: Path, exc: BaseException) -> StateError:
    return StateError(
        f"checkpoint {path} cannot be used ({type(exc).__name__}: {str(exc)[:300]}). Delete the "
        f"folder {path.parent} or pass --restart to train this run from its first epoch")


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """A checkpoint written by this trainer, loaded with ``weights_only=True``: tensors and
    plain values only, so a crafted file cannot run code. Anything else is an error naming the
    file and the fix."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated zip, a pickle with code, another format
        raise unusable_checkpoint(path, exc) from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise unusable_checkpoint(path, ValueError("not a checkpoint written by mcbench"))
    return ckpt


def as_learner(built, task: str):
    """A plugin's ``build`` result as a learner: ``nn.Module`` → :class:`TorchLearner`,
    ``keras.Model`` → :class:`mcbench.keras_learner.KerasLearner`."""
    if isinstance(built, nn.Module):
        return TorchLearner(built, task)
    from .keras_learner import KerasLearner, is_keras_model

    if is_keras_model(built):
        return KerasLearner(built, task)
    missing = [m for m in ("fit", "predict", "save", "load") if not callable(getattr(built, m, None))]
    if missing:
        raise TypeError(
            f"build() returned {type(built).__name__}, which is neither a torch.nn.Module nor a "
            f"learner (missing {', '.join(missing)})"
        )
    return built
