"""``mcbench bench``: a model's speed and memory without training it.

For each combination of model, variant, backend, device, precision, batch size, memory layout
and compilation, :func:`bench_case` times

* a **training step** (forward, loss, backward, Adam) — the torch trainer's own pieces
  (:class:`mcbench.training.TorchLearner`'s placement, autocast and loss, Adam over
  :func:`mcbench.training.parameter_groups`), or the Keras trainer's compiled step
  (:meth:`mcbench.keras_learner.KerasLearner._make_train_step`);
* an **evaluation step** (forward and sigmoid/softmax, no gradients),

on a random batch already on the device (the feature store's reads are timed separately, by
:func:`bench_feature_store`). Warm-up repetitions are excluded; each repetition is timed after
the device has finished its work (CUDA synchronised); the figure is the median clips/s over the
repetitions, with the minimum, maximum and interquartile range. Memory: the peak resident set
of the process (host) and, on CUDA, ``torch.cuda.max_memory_allocated``. Compute:
multiply-accumulates per clip (:mod:`mcbench.compute`) and the achieved rate as a fraction of
the device's dense-matmul rate measured in the same run (:func:`matmul_rate`), so that figure is
a ratio between two measurements of one machine, not an absolute.

Results are JSON documents ``{"machine": ..., "settings": ..., "matmul": ..., "rows": [...],
"feature_store": ...}`` saved under ``results/bench/<timestamp>-<host>.json``;
:func:`compare` gives the ratio new/old of matching rows of two documents, and
:func:`project_hours` the training time of a table from the measured throughput.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import compute
from .openmp import WAIT_VARIABLES
from .provenance import peak_rss_mb, provenance, reset_peak_rss

#: Fields that identify a row: two documents' rows with equal keys are compared.
KEY_FIELDS = ("model", "variant", "backend", "device", "precision", "batch_size",
              "channels_last", "compiled")

#: The paper's Table I workload: MagnaTagATune training split (15,244 clips), 50 epochs
#: (Wang et al., IJCNN 2019, Sec. IV).
TABLE1_TRAIN_CLIPS = 15244
TABLE1_EPOCHS = 50

BACKENDS = ("torch", "keras")
PRECISIONS = ("fp32", "bf16")


def _torch():
    """torch, imported after :mod:`mcbench.training` so that its thread settings (OpenMP's
    wait policy, read when torch loads) are the trainer's."""
    import importlib

    importlib.import_module("mcbench.training")
    import torch

    return torch


class BenchError(ValueError):
    """A combination that cannot be benchmarked (no such build, an unsupported precision)."""


@dataclass(frozen=True)
class Case:
    """One combination to time."""

    model: str
    variant: str
    backend: str = "torch"
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 32
    channels_last: bool = True
    compiled: bool = False

    def label(self) -> str:
        extra = ("" if self.channels_last or self.backend != "torch" else " nchw") + \
            (" compiled" if self.compiled else "")
        return (f"{self.model}/{self.variant} {self.backend} {self.device} {self.precision} "
                f"b{self.batch_size}{extra}")


# --------------------------------------------------------------------------- timing


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, minimum, maximum and interquartile range (numpy's linear percentiles)."""
    v = np.asarray(values, dtype=float)
    q1, q3 = np.percentile(v, [25, 75])
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "iqr": float(q3 - q1), "n": int(v.size)}


def time_repeats(fn: Callable[[], Any], repeats: int, warmup: int,
                 sync: Callable[[], None] = lambda: None) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones; ``sync``
    waits for the device (``torch.cuda.synchronize``) before each clock reading."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def _rates(batch: int, times: Sequence[float]) -> tuple[float, dict[str, float]]:
    """Clips/s per repetition: median and its spread (min, max, IQR in clips/s)."""
    s = spread([batch / t for t in times])
    return s["median"], s


def _torch_sync(device: str) -> Callable[[], None]:
    torch = _torch()

    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize()
    return lambda: None


def matmul_rate(device: str = "cpu", precision: str = "fp32", n: int | None = None,
                repeats: int = 3) -> dict[str, Any]:
    """The device's dense-matmul rate, multiply-accumulates per second: the median of
    ``repeats`` timed products of two ``n × n`` matrices (``n`` 2048 on a CPU, 8192 on CUDA) in
    float32, or bfloat16 for ``bf16``, after one warm-up.

    On a CPU with oneDNN, both of torch's dense kernels are timed and the faster one is the
    rate: ``torch.matmul`` (the BLAS torch was built with, MKL in the x86 wheels) and oneDNN's
    inner product (``torch._C._nn.mkldnn_linear``), the library that runs the convolutions. On
    AMD CPUs MKL takes a slower code path (2048²: 169 against oneDNN's 398 GFLOP/s on the
    2-core AMD EPYC this was written on), and a rate below the convolutions' would put models'
    fractions above 1. ``kernels`` holds each kernel's rate.
    """
    torch = _torch()

    from .training import resolve_device

    dev = resolve_device(device)
    n = n or (8192 if dev.type == "cuda" else 2048)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dev, dtype)
    b = torch.randn(n, n, generator=gen).to(dev, dtype)
    seconds = {name: statistics.median(time_repeats(fn, repeats, 1, _torch_sync(dev.type)))
               for name, fn in dense_kernels(a, b).items()}
    kernel = min(seconds, key=seconds.get)
    t = seconds[kernel]
    return {"device": device, "precision": precision, "n": n, "seconds": t,
            "macs_per_s": n**3 / t, "kernel": kernel,
            "kernels": {name: n**3 / sec for name, sec in seconds.items()}}


def dense_kernels(a, b) -> dict[str, Callable[[], Any]]:
    """The products ``a @ b`` :func:`matmul_rate` times, by name (the oneDNN one returns a
    oneDNN tensor; ``.to_dense()`` reads it)."""
    torch = _torch()

    kernels = {"torch.matmul": lambda: torch.matmul(a, b)}
    if a.device.type == "cpu" and a.dtype == torch.float32 and torch.backends.mkldnn.is_available():
        a_dnn, b_dnn = a.to_mkldnn(), b.t().contiguous().to_mkldnn()  # linear takes b transposed
        kernels["onednn"] = lambda: torch._C._nn.mkldnn_linear(a_dnn, b_dnn, None)
    return kernels


def _random_batch(shape: Sequence[int], n_outputs: int, task: str, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    if task == "multilabel":
        y = (rng.random((batch, n_outputs)) > 0.9).astype(np.float32)
    else:
        y = rng.integers(0, n_outputs, size=batch).astype(np.int64)
    return x, y


@dataclass
class Steps:
    """One combination's training and evaluation steps on a fixed batch, ready to time.

    ``train()`` runs one optimiser step, ``evaluate()`` one forward pass without gradients;
    ``sync()`` waits for the device. ``n_params``: trainable parameters of the model.
    """

    train: Callable[[], Any]
    evaluate: Callable[[], Any]
    sync: Callable[[], None]
    n_params: int
    #: the model's mode switch (``train(True)`` before training steps), if it has one
    set_training: Callable[[bool], Any] = lambda _flag: None


def torch_steps(spec, case: Case, shape: Sequence[int], n_outputs: int = 50,
                task: str = "multilabel", seed: int = 0) -> Steps:
    """The torch trainer's step (:class:`~mcbench.training.TorchLearner`'s placement,
    channels-last layout, bf16 autocast and loss; Adam over its parameter groups with the
    ``paper`` protocol's L2) and its evaluation, on one random batch already on the device."""
    torch = _torch()

    from .training import TorchLearner, parameter_groups, protocol_config, resolve_device

    torch.manual_seed(seed)
    module = spec.create(tuple(shape), n_outputs, task=task, variant=case.variant, backend="torch")
    if not isinstance(module, torch.nn.Module):
        raise BenchError(f"model {case.model!r}: its torch build returned "
                         f"{type(module).__name__}, not a torch module")
    device = resolve_device(case.device)
    learner = TorchLearner(module, task)
    learner.device, learner.precision = device, case.precision
    learner.channels_last = case.channels_last
    learner._place(device)
    config = protocol_config("paper", batch_size=case.batch_size, device=case.device,
                             precision=case.precision, channels_last=case.channels_last)
    optimizer = torch.optim.Adam(parameter_groups(learner.module, config), lr=config.lr,
                                 betas=(0.9, 0.999), eps=config.adam_eps)
    x_np, y_np = _random_batch(shape, n_outputs, task, case.batch_size, seed)
    x = torch.from_numpy(x_np).to(device)
    if case.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(y_np).to(device)
    net = torch.compile(learner.module) if case.compiled else learner.module

    def train_step() -> torch.Tensor:
        with learner._autocast():
            logits = net(x)
        loss = learner._loss(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def eval_step() -> torch.Tensor:
        with torch.no_grad(), learner._autocast():
            return learner._to_probs(net(x))

    return Steps(train_step, eval_step, _torch_sync(device.type), learner.n_params,
                 learner.module.train)


def keras_steps(spec, case: Case, shape: Sequence[int], n_outputs: int = 50,
                task: str = "multilabel", seed: int = 0) -> Steps:
    """The Keras trainer's compiled step (:meth:`~mcbench.keras_learner.KerasLearner.
    _make_train_step`: loss, the ``paper`` protocol's L2, Adam, batch-norm warm-up; TensorFlow's
    op determinism on, as :meth:`~mcbench.keras_learner.KerasLearner.fit` sets it) and its
    compiled prediction, on one random batch."""
    if case.precision != "fp32":
        raise BenchError(f"{case.label()}: the Keras learner trains in float32 only")
    if case.compiled or not case.channels_last:
        raise BenchError(f"{case.label()}: --compile and --no-channels-last apply to torch only")
    from .keras_learner import KerasLearner, _resolve_device, load_keras, seed_keras
    from .training import protocol_config

    keras = load_keras()
    import tensorflow as tf

    seed_keras(seed)
    tf.get_logger().setLevel("ERROR")  # every case traces its own step: no retracing warnings
    tf.config.experimental.enable_op_determinism()
    model = spec.create(tuple(shape), n_outputs, task=task, variant=case.variant, backend="keras")
    learner = KerasLearner(model, task)
    learner._tf_device, learner.device = _resolve_device(case.device)
    config = protocol_config("paper", batch_size=case.batch_size, device=case.device)
    x, y = _random_batch(shape, n_outputs, task, case.batch_size, seed)
    with tf.device(learner._tf_device):
        optimizer = keras.optimizers.Adam(learning_rate=config.lr, beta_1=0.9, beta_2=0.999,
                                          epsilon=config.adam_eps)
        optimizer.build(learner.model.trainable_variables)
    train_fn = learner._make_train_step(optimizer, config)
    predict_fn = learner._make_predict()
    step = [0]

    def train_step() -> float:
        with tf.device(learner._tf_device):
            # float() waits for the result, as the trainer does after every step
            loss = float(train_fn(x, y, np.int64(step[0])))
        step[0] += 1
        return loss

    def eval_step() -> np.ndarray:
        with tf.device(learner._tf_device):
            return predict_fn(x).numpy()

    return Steps(train_step, eval_step, lambda: None, learner.n_params)


def _measure(steps: Steps, case: Case, repeats: int, warmup: int) -> dict[str, Any]:
    cuda = case.device.startswith("cuda") and case.backend == "torch"
    if cuda:
        torch = _torch()

        torch.cuda.reset_peak_memory_stats(case.device)
    steps.set_training(True)
    train_times = time_repeats(steps.train, repeats, warmup, steps.sync)
    steps.set_training(False)
    eval_times = time_repeats(steps.evaluate, repeats, warmup, steps.sync)
    cuda_peak = None
    if cuda:
        torch = _torch()

        cuda_peak = torch.cuda.max_memory_allocated(case.device) / 2**20
    return {"train_times": train_times, "eval_times": eval_times, "cuda_peak_mb": cuda_peak,
            "n_params": steps.n_params}


def bench_case(spec, case: Case, *, repeats: int = 5, warmup: int = 2, n_outputs: int = 50,
               task: str = "multilabel", input_shape: Sequence[int] | None = None,
               matmul: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    """Time one combination; returns its row (see the module docstring and :data:`ROW_FIELDS`).

    ``spec`` is the model's :class:`~mcbench.specs.ModelSpec`; ``input_shape`` (batch axis
    excluded) defaults to its front end's; ``matmul`` is the :func:`matmul_rate` of the row's
    device and precision (for the fraction of the dense-matmul rate; ``None``: not computed).
    Raises :class:`BenchError` for a combination the model or backend does not offer.
    """
    if repeats < 1 or warmup < 0:
        raise BenchError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if case.backend not in spec.backends_of(case.variant):
        raise BenchError(f"model {case.model!r} variant {case.variant!r} has no {case.backend} "
                         f"build (its builds: {', '.join(spec.backends_of(case.variant)) or 'none'})")
    if task not in spec.tasks:
        task = spec.tasks[0]
    shape = tuple(input_shape) if input_shape is not None else compute.input_shape_of(spec, case.variant)
    reset_peak_rss()
    if case.backend not in BACKENDS:
        raise BenchError(f"unknown backend {case.backend!r}; choose from {', '.join(BACKENDS)}")
    make = keras_steps if case.backend == "keras" else torch_steps
    measured = _measure(make(spec, case, shape, n_outputs, task, seed), case, repeats, warmup)
    host_peak = peak_rss_mb()
    train, train_spread = _rates(case.batch_size, measured["train_times"])
    evaluate, eval_spread = _rates(case.batch_size, measured["eval_times"])
    macs = compute.macs_per_clip(spec, case.variant, n_outputs, task, input_shape=shape)
    row: dict[str, Any] = {
        **asdict(case),
        "input_shape": list(shape),
        "n_params": measured["n_params"],
        "train_clips_per_s": round(train, 3),
        "eval_clips_per_s": round(evaluate, 3),
        "train_spread": {k: round(v, 3) for k, v in train_spread.items()},
        "eval_spread": {k: round(v, 3) for k, v in eval_spread.items()},
        "peak_memory_mb": round(measured["cuda_peak_mb"] if measured["cuda_peak_mb"] is not None
                                else host_peak, 1),
        "host_peak_rss_mb": round(host_peak, 1),
        "cuda_max_allocated_mb": (None if measured["cuda_peak_mb"] is None
                                  else round(measured["cuda_peak_mb"], 1)),
        "macs_per_clip": macs,
        "repeats": repeats,
        "warmup": warmup,
    }
    rate = matmul["macs_per_s"] if matmul else None
    row["train_matmul_fraction"] = (None if not (macs and rate) else
                                    round(train * compute.train_macs_per_clip(macs) / rate, 4))
    row["eval_matmul_fraction"] = None if not (macs and rate) else round(evaluate * macs / rate, 4)
    return row


#: Fields every row carries.
ROW_FIELDS = (*KEY_FIELDS, "input_shape", "n_params", "train_clips_per_s", "eval_clips_per_s",
              "train_spread", "eval_spread", "peak_memory_mb", "host_peak_rss_mb",
              "cuda_max_allocated_mb", "macs_per_clip", "train_matmul_fraction",
              "eval_matmul_fraction", "repeats", "warmup")


# --------------------------------------------------------------------------- feature store


def bench_feature_store(n_clips: int = 256, batch_size: int = 32, seconds: float = 29.0,
                        repeats: int = 5, folder: Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Clips/s read from the feature store into a training batch.

    Stores ``n_clips`` random log-mel rows (``seconds`` long: 96 × 1360 at the paper's 29 s) as
    one part of a :class:`mcbench.features.FeatureStore` in ``folder`` (a temporary folder by
    default, removed afterwards), as ``prepare_partition`` stores a partition (train rows, then
    the others), loads the train split (three quarters of the rows) with
    :meth:`~mcbench.features.FeatureStore.load_split`, and reads every batch of an epoch the way
    the trainer does (:meth:`mcbench.training.TorchLearner._batch`: the batch's indices sorted,
    one fancy-indexed copy) for a shuffled order (``random``) and for consecutive indices
    (``contiguous``). The part was just written, so it is read from the page cache: the figure
    is the store's copy rate, not the disk's. Reports the median clips/s over ``repeats`` epochs
    (after one warm-up epoch), whether the split stayed memory-mapped, and the growth of the
    resident set while loading and reading it.
    """
    from .features import FeatureStore, FrontEnd, PartIndex, feature_digest
    from .specs import Split, Track
    from .training import TorchLearner

    fe = FrontEnd(seconds=seconds)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        store = FeatureStore(Path(tmp) / "cache", "bench", Path(tmp), fe)
        tracks = [Track(f"clip{i:06d}", Path(tmp) / f"clip{i:06d}.wav", (i % 50,))
                  for i in range(n_clips)]
        part = "bench-part"
        store._allocate(store.dir / f"{part}.npy", n_clips)
        arr = store._array(part, "r+")
        rng = np.random.default_rng(seed)
        digests = []
        for i in range(n_clips):
            arr[i] = rng.standard_normal(fe.shape, dtype=np.float32)
            digests.append(feature_digest(arr[i]))
        arr.flush()
        del arr
        PartIndex(ids=[t.id for t in tracks], paths=[str(t.path) for t in tracks],
                  status=["ok"] * n_clips, source_seconds=[seconds] * n_clips,
                  frontend=fe.as_dict(), stamps=[""] * n_clips, created=time.time(),
                  digests=digests).save(store.dir / f"{part}.index.json")
        n_train = max(1, (3 * n_clips) // 4)
        rss_before = _current_rss_mb()
        train, _ = store.load_split(Split("train", tracks[:n_train]), [str(i) for i in range(50)],
                                    "multilabel")
        learner = TorchLearner(_Identity(), "multilabel")
        out: dict[str, Any] = {"n_clips": n_train, "batch_size": batch_size,
                               "clip_bytes": int(np.prod(fe.shape)) * 4, "shape": list(fe.shape),
                               "memory_mapped": isinstance(train.x, np.memmap),
                               "source": "page cache (just written)"}
        for name in ("random", "contiguous"):
            rates = []
            for r in range(repeats + 1):  # the first epoch is a warm-up
                order = (np.random.default_rng([seed, r]).permutation(n_train) if name == "random"
                         else np.arange(n_train))
                t0 = time.perf_counter()
                for i in range(0, n_train, batch_size):
                    learner._batch(train, order[i : i + batch_size])
                if r:
                    rates.append(n_train / (time.perf_counter() - t0))
            s = spread(rates)
            out[f"{name}_clips_per_s"] = round(s["median"], 1)
            out[f"{name}_spread"] = {k: round(v, 1) for k, v in s.items()}
        out["rss_growth_mb"] = round(_current_rss_mb() - rss_before, 1)
        out["split_mb"] = round(n_train * out["clip_bytes"] / 2**20, 1)
        del train
    return out


class _Identity:
    """Stands in for a module where only :meth:`TorchLearner._batch` is used."""

    def __call__(self, x):
        return x


def _current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


# --------------------------------------------------------------------------- machine, documents


def machine_info(backends: Iterable[str] = ()) -> dict[str, Any]:
    """Provenance (hardware, packages, git commit) plus the torch build, its threads and their
    OpenMP wait setting and, when the Keras backend ran, TensorFlow's version and GPUs."""
    torch = _torch()

    info = provenance()
    info["host"] = socket.gethostname()
    info["torch"] = torch_build()
    info["torch_threads"] = torch.get_num_threads()
    # how the OpenMP threads waited (mcbench.openmp): spinning or sleeping changes step times
    info["openmp_wait"] = {k: os.environ.get(k) for k in WAIT_VARIABLES}
    if "keras" in backends:
        info["tensorflow"] = {"version": info["packages"].get("tensorflow"),
                              "keras": info["packages"].get("keras"), "op_determinism": True}
    return info


def torch_build() -> dict[str, Any]:
    """torch's version, its build (``CPU`` or ``CUDA x.y``) and whether CUDA is usable here."""
    torch = _torch()

    cuda = getattr(torch.version, "cuda", None)
    available = bool(torch.cuda.is_available())
    return {"version": torch.__version__, "build": f"CUDA {cuda}" if cuda else "CPU",
            "cuda_available": available,
            "gpu": torch.cuda.get_device_name(0) if available else None}


def default_output(results_dir: Path | str = "results", when: float | None = None) -> Path:
    """``<results_dir>/bench/<UTC timestamp>-<host>.json``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname()) or "host"
    return Path(results_dir) / "bench" / f"{stamp}-{host}.json"


def load_document(path: Path | str) -> dict[str, Any]:
    """A bench JSON document; a clear error when the file is missing or not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BenchError(f"bench result {path} does not exist (give a file that an earlier "
                         f"`mcbench bench` wrote under results/bench/)") from exc
    except (OSError, ValueError) as exc:
        raise BenchError(f"bench result {path} is not readable JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise BenchError(f"bench result {path} has no \"rows\" list; is it a `mcbench bench` JSON?")
    return doc


def row_key(row: dict[str, Any]) -> tuple:
    return tuple(row.get(k) for k in KEY_FIELDS)


def compare(new_rows: Sequence[dict], old_rows: Sequence[dict]) -> list[dict[str, Any]]:
    """Rows present in both (equal :data:`KEY_FIELDS`): the ratio new/old of training and
    evaluation clips/s and of peak memory (> 1: faster, or more memory)."""
    old = {row_key(r): r for r in old_rows}
    out = []
    for r in new_rows:
        o = old.get(row_key(r))
        if o is None:
            continue

        def ratio(field: str, r: dict = r, o: dict = o) -> float | None:
            a, b = r.get(field), o.get(field)
            return None if not a or not b else round(a / b, 3)

        out.append({**{k: r[k] for k in KEY_FIELDS if k in r},
                    "train_ratio": ratio("train_clips_per_s"), "eval_ratio": ratio("eval_clips_per_s"),
                    "memory_ratio": ratio("peak_memory_mb"),
                    "old_train_clips_per_s": o.get("train_clips_per_s"),
                    "new_train_clips_per_s": r.get("train_clips_per_s")})
    return out


def backend_ratios(rows: Sequence[dict], over: str = "keras", base: str = "torch") -> list[dict]:
    """Within one document: ``base`` ÷ ``over`` clips/s for rows equal but for the backend
    (e.g. torch ÷ keras, > 1: torch faster)."""
    others = {tuple(r.get(k) for k in KEY_FIELDS if k not in ("backend", "channels_last", "compiled")): r
              for r in rows if r.get("backend") == over}
    out = []
    for r in rows:
        if r.get("backend") != base or r.get("compiled") or not r.get("channels_last", True):
            continue
        o = others.get(tuple(r.get(k) for k in KEY_FIELDS if k not in ("backend", "channels_last", "compiled")))
        if o is None:
            continue
        out.append({"model": r["model"], "variant": r["variant"], "device": r["device"],
                    "precision": r["precision"], "batch_size": r["batch_size"],
                    f"train_{base}_over_{over}": round(r["train_clips_per_s"] / o["train_clips_per_s"], 3),
                    f"eval_{base}_over_{over}": round(r["eval_clips_per_s"] / o["eval_clips_per_s"], 3)})
    return out


def project_hours(rows: Sequence[dict], clips: int = TABLE1_TRAIN_CLIPS,
                  epochs: int = TABLE1_EPOCHS, batch_size: int | None = 32) -> dict[str, Any]:
    """Projected training time of a table: ``clips × epochs / train_clips_per_s`` per model.

    For the paper's Table I (Wang et al., IJCNN 2019): 15,244 MagnaTagATune training clips and
    50 epochs per model. Per (model, variant, backend, device, precision) the row of
    ``batch_size`` is used (``None``, or no such row: the fastest); rows without a training rate
    are left out. Validation passes are not counted. Returns ``{"per_model": [...], "totals":
    {(device, backend, precision) as "device/backend/precision": hours}}``.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("train_clips_per_s"):
            groups.setdefault((r["model"], r["variant"], r["backend"], r["device"], r["precision"]),
                              []).append(r)
    per_model, totals = [], {}
    for (model, variant, backend, device, precision), rs in groups.items():
        chosen = [r for r in rs if r.get("batch_size") == batch_size] or rs
        best = max(chosen, key=lambda r: r["train_clips_per_s"])
        hours = clips * epochs / best["train_clips_per_s"] / 3600
        per_model.append({"model": model, "variant": variant, "backend": backend, "device": device,
                          "precision": precision, "batch_size": best["batch_size"],
                          "train_clips_per_s": best["train_clips_per_s"], "hours": round(hours, 4)})
        key = f"{device}/{backend}/{precision}"
        totals[key] = totals.get(key, 0.0) + hours
    return {"clips": clips, "epochs": epochs, "per_model": per_model,
            "totals": {k: round(v, 4) for k, v in totals.items()}}


# --------------------------------------------------------------------------- output


TABLE_COLUMNS = ("model", "variant", "backend", "device", "precision", "batch_size",
                 "train_clips_per_s", "train_iqr", "eval_clips_per_s", "eval_iqr",
                 "peak_memory_mb", "gmacs_per_clip", "train_matmul_fraction")


def flat_rows(rows: Sequence[dict]) -> list[dict[str, Any]]:
    """Rows as flat records (spreads as ``*_min/max/iqr`` columns, GMACs) for tables and CSV."""
    out = []
    for r in rows:
        flat = {k: v for k, v in r.items() if not isinstance(v, (dict, list))}
        for which in ("train", "eval"):
            for k, v in (r.get(f"{which}_spread") or {}).items():
                if k != "median":
                    flat[f"{which}_{k}"] = v
        flat["input_shape"] = "x".join(str(d) for d in r.get("input_shape", []))
        macs = r.get("macs_per_clip")
        flat["gmacs_per_clip"] = None if macs is None else round(macs / 1e9, 3)
        out.append(flat)
    return out


def format_rows(rows: Sequence[dict], fmt: str = "table") -> str:
    """``table`` (the main columns), ``csv`` (every flat column) or ``json`` (the rows)."""
    if fmt == "json":
        return json.dumps(list(rows), indent=2)
    flat = flat_rows(rows)
    if fmt == "csv":
        import csv
        import io

        columns: list[str] = []
        for f in flat:
            columns += [k for k in f if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return buf.getvalue()
    if fmt != "table":
        raise BenchError(f"unknown format {fmt!r}; choose table, json or csv")
    from tabulate import tabulate

    columns = list(TABLE_COLUMNS)
    for extra, default in (("channels_last", True), ("compiled", False)):
        if any(f.get(extra, default) != default for f in flat):  # shown when they vary
            columns.insert(columns.index("batch_size") + 1, extra)
    table = [{c: f.get(c) for c in columns} for f in flat]
    return tabulate(table, headers="keys", tablefmt="simple", floatfmt="g", missingval="-")


def format_compare(ratios: Sequence[dict]) -> str:
    from tabulate import tabulate

    if not ratios:
        return "no rows in common with the earlier result (compare matches model, variant, " \
               "backend, device, precision, batch size, layout and compilation)"
    return tabulate(ratios, headers="keys", tablefmt="simple", floatfmt="g", missingval="-")


# --------------------------------------------------------------------------- a whole run


def plan_cases(registry, models: Sequence[str], variants: dict[str, list[str]],
               backends: Sequence[str], devices: Sequence[str], precisions: Sequence[str],
               batch_sizes: Sequence[int], channels_last: bool = True,
               compiled: bool = False) -> tuple[list[Case], list[str]]:
    """Every combination to time, and a line for each one left out (with the reason).

    A model without a variant named in ``variants`` gets, per backend, the variant that backend's
    build runs by default (:meth:`~mcbench.specs.ModelSpec.default_variant_for`), unless several
    backends are benchmarked and their defaults differ: then the first variant every one of them
    builds (FCN-4 on torch and Keras: ``wang2019``, the only one of its Keras build), so that the
    backends are compared on one architecture. ``all`` takes every variant.
    """
    cases, skipped = [], []
    for name in models:
        spec = registry.model(name)
        runnable = [b for b in backends if b in spec.backends]
        if not runnable:
            skipped.append(f"{name}: no {'/'.join(backends)} build (its backend: "
                           f"{', '.join(spec.backends)}); not benchmarked")
            continue
        common = None
        if len(runnable) > 1 and len({spec.default_variant_for(b) for b in runnable}) > 1:
            common = next((v for v in spec.variants
                           if all(b in spec.backends_of(v) for b in runnable)), None)
        for backend in runnable:
            wanted = variants.get(name)
            if wanted == ["all"]:
                wanted = list(spec.variants)
            for variant in wanted or [common or spec.default_variant_for(backend)]:
                if variant not in spec.variants:
                    raise BenchError(f"--variant {name}={variant}: model {name!r} has no variant "
                                     f"{variant!r}; choose from {', '.join(spec.variants)}")
                if backend not in spec.backends_of(variant):
                    skipped.append(f"{name}/{variant}: no {backend} build of this variant")
                    continue
                for device in devices:
                    for precision in precisions:
                        if backend == "keras" and precision != "fp32":
                            skipped.append(f"{name}/{variant} keras {precision}: the Keras "
                                           "learner trains in float32 only")
                            continue
                        for batch in batch_sizes:
                            cases.append(Case(name, variant, backend, device, precision, batch,
                                              channels_last or backend == "keras",
                                              compiled and backend == "torch"))
    # The backends of one (model, variant, device, precision, batch) run one after the other,
    # so that a change in the machine's load during a long run biases their ratio least.
    order = {name: i for i, name in enumerate(models)}
    variant_order = {(c.model, c.variant): i for i, c in reversed(list(enumerate(cases)))}
    cases.sort(key=lambda c: (order[c.model], variant_order[(c.model, c.variant)], c.device,
                              precisions.index(c.precision), batch_sizes.index(c.batch_size)))
    return cases, skipped


def _case_in_child(plugin_dirs: list[str] | None, case: Case, kwargs: dict[str, Any]) -> dict[str, Any]:
    """:func:`bench_case` in a fresh process (``run_bench(isolate=True)``)."""
    from .plugins import Registry

    registry = Registry(plugin_dirs=[Path(p) for p in plugin_dirs] if plugin_dirs else None)
    return bench_case(registry.model(case.model), case, **kwargs)


def run_bench(registry, cases: Sequence[Case], *, repeats: int = 5, warmup: int = 2,
              store: bool = True, input_shape: Sequence[int] | None = None,
              progress: Callable[[str], None] | None = None,
              settings: dict[str, Any] | None = None, isolate: bool = False,
              plugin_dirs: Sequence[Path] | None = None) -> dict[str, Any]:
    """Time every case (and the feature store when ``store``) and return the JSON document.

    ``isolate`` runs each case in a fresh process (spawned; ``plugin_dirs`` are loaded there
    again), so that its peak memory is its own and no library state (TensorFlow's thread pools
    and caches, torch's allocator) carries over from an earlier case.
    """
    say = progress or (lambda _m: None)
    # the machine and the commit as the run starts (the code that is measured)
    machine = machine_info({c.backend for c in cases})
    matmul: dict[tuple[str, str], dict] = {}
    rows, failed = [], []
    for i, case in enumerate(cases, start=1):
        key = (case.device, case.precision)
        try:
            if key not in matmul:
                say(f"[{i}/{len(cases)}] measuring the dense-matmul rate on {case.device} "
                    f"({case.precision})")
                matmul[key] = matmul_rate(case.device, case.precision)
            say(f"[{i}/{len(cases)}] {case.label()} ...")
            kwargs = {"repeats": repeats, "warmup": warmup, "input_shape": input_shape,
                      "matmul": matmul[key]}
            if isolate:
                from concurrent.futures import ProcessPoolExecutor
                from multiprocessing import get_context

                from .features import exit_with_parent

                dirs = [str(p) for p in plugin_dirs] if plugin_dirs else None
                # a killed mcbench bench must not leave its measuring child running
                with ProcessPoolExecutor(1, mp_context=get_context("spawn"),
                                         initializer=exit_with_parent,
                                         initargs=(os.getpid(),)) as pool:
                    row = pool.submit(_case_in_child, dirs, case, kwargs).result()
            else:
                row = bench_case(registry.model(case.model), case, **kwargs)
        except BenchError as exc:
            failed.append(str(exc))
            say(f"[{i}/{len(cases)}] {case.label()}: skipped ({exc})")
            continue
        except Exception as exc:  # one combination failing (out of memory, no compiler for
            # --compile) must not lose the others' measurements; it is listed in the document
            failed.append(f"{case.label()}: failed: {type(exc).__name__}: {exc}")
            say(f"[{i}/{len(cases)}] {case.label()}: FAILED ({type(exc).__name__}: {exc})")
            continue
        rows.append(row)
        say(f"[{i}/{len(cases)}] {case.label()}: train {row['train_clips_per_s']:.2f} clips/s, "
            f"eval {row['eval_clips_per_s']:.2f} clips/s, peak {row['peak_memory_mb']:.0f} MB")
    doc: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "settings": {"repeats": repeats, "warmup": warmup, "isolated": isolate, **(settings or {})},
        "matmul": [v for v in matmul.values()],
        "rows": rows,
        "skipped": failed,
    }
    if store:
        say("feature store: reading training batches from a memory-mapped part ...")
        doc["feature_store"] = bench_feature_store()
    doc["backend_ratios"] = backend_ratios(rows)
    return doc


def save_document(doc: dict[str, Any], path: Path) -> Path:
    from .storage import atomic_write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, doc)
    return path


def projection_text(doc: dict[str, Any], clips: int = TABLE1_TRAIN_CLIPS,
                    epochs: int = TABLE1_EPOCHS) -> str:
    """The :func:`project_hours` of a bench document as a table and one total line per
    (device, backend, precision)."""
    from tabulate import tabulate

    projection = project_hours(doc["rows"], clips=clips, epochs=epochs)
    if not projection["per_model"]:
        return "no row with a training rate to project from"
    gpu = (doc.get("machine", {}).get("torch") or {}).get("gpu")
    where = f" on {gpu}" if gpu else ""
    lines = [f"projected training time{where}: {clips:,} clips x {epochs} epochs per model "
             "(validation passes not counted)",
             tabulate(projection["per_model"], headers="keys", tablefmt="simple", floatfmt="g")]
    for key, hours in projection["totals"].items():
        n = sum(1 for p in projection["per_model"] if f"{p['device']}/{p['backend']}/{p['precision']}" == key)
        lines.append(f"total {key}: {hours:.2f} h ({hours * 60:.1f} min) for {n} model variant(s)")
    return "\n".join(lines)


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m mcbench.bench project FILE [--clips N] [--epochs N]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mcbench.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("project", help="projected training time of Table I from a bench JSON")
    p.add_argument("file", type=Path)
    p.add_argument("--clips", type=int, default=TABLE1_TRAIN_CLIPS)
    p.add_argument("--epochs", type=int, default=TABLE1_EPOCHS)
    args = parser.parse_args(argv)
    try:
        doc = load_document(args.file)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(projection_text(doc, args.clips, args.epochs))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
