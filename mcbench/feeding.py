"""Batches of a feature split on the training device.

The feature store hands the trainer memory-mapped arrays. On the CPU a batch is read from the
map and used in place. On CUDA the host-to-device copy is the part that can hide behind
compute, in one of two ways:

* **resident**: when the whole split fits comfortably in free GPU memory (at most
  :data:`RESIDENT_FRACTION` of what ``torch.cuda.mem_get_info`` reports free), it is copied to
  the GPU once and every batch is gathered there — no host traffic after the first epoch's
  start;
* **prefetched**: otherwise a background thread reads the next batches from the map into
  pinned host memory (:data:`PREFETCH_DEPTH` ahead) while the GPU computes the current one, and
  each is copied with ``non_blocking=True``, so the copy overlaps the previous step.

Either way a batch holds the clips of its indices in sorted order (sorted reads are sequential
on a memory map) and the same numbers as a plain read: the two modes change where bytes wait,
never what a batch contains.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from .specs import MULTILABEL, FeatureSplit

#: Largest share of the free GPU memory a resident split may take (the rest is for the model,
#: its activations and the optimiser).
RESIDENT_FRACTION = 0.4
#: Batches the prefetching thread reads ahead.
PREFETCH_DEPTH = 2


def fits_resident(nbytes: int, free_bytes: int, fraction: float = RESIDENT_FRACTION) -> bool:
    """Whether a split of ``nbytes`` may stay on a device with ``free_bytes`` free."""
    return nbytes <= fraction * free_bytes


def _free_bytes(device: torch.device) -> int:
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


class SplitFeeder:
    """Batches ``(x, y)`` of one split on ``device`` (module docstring).

    ``resident`` and ``prefetch`` default to what suits the device (both off on the CPU;
    on CUDA, resident when the split fits, prefetched otherwise); tests may force either.
    """

    def __init__(self, split: FeatureSplit, task: str, device: torch.device,
                 channels_last: bool = False, *, resident: bool | None = None,
                 prefetch: bool | None = None):
        self.split, self.task, self.device = split, task, torch.device(device)
        self.channels_last = channels_last
        cuda = self.device.type == "cuda"
        nbytes = int(np.prod(split.x.shape)) * 4 + int(np.prod(np.shape(split.y))) * 8
        if resident is None:
            resident = cuda and fits_resident(nbytes, _free_bytes(self.device))
        self.resident = bool(resident)
        self.prefetch = bool(cuda and not self.resident) if prefetch is None else bool(prefetch)
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None

    # -- host side
    def _host(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        order = np.sort(idx)
        x = torch.from_numpy(np.ascontiguousarray(self.split.x[order], dtype=np.float32))
        y = torch.from_numpy(np.asarray(self.split.y[order]).astype(
            np.float32 if self.task == MULTILABEL else np.int64))
        if self.device.type == "cuda":
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nb = self.device.type == "cuda"
        x = x.to(self.device, non_blocking=nb)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=nb)

    def _upload(self) -> None:
        """The whole split on the device, copied in chunks of at most 256 clips."""
        xs, ys = [], []
        for start in range(0, len(self.split), 256):
            x, y = self._host(np.arange(start, min(start + 256, len(self.split))))
            xs.append(x.to(self.device, non_blocking=True))
            ys.append(y.to(self.device, non_blocking=True))
        self._x, self._y = torch.cat(xs), torch.cat(ys)

    # -- batches
    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch, now."""
        if self.resident:
            if self._x is None:
                self._upload()
            pick = torch.as_tensor(np.sort(idx), device=self.device)
            x, y = self._x.index_select(0, pick), self._y.index_select(0, pick)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            return x, y
        return self._to_device(*self._host(idx))

    def batches(self, index_batches: Sequence[np.ndarray]
                ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """``(idx, x, y)`` for every index batch in order; read ahead in a thread when
        prefetching. Stopping early (an exception in the consumer) stops the thread."""
        if not self.prefetch:
            for idx in index_batches:
                yield (idx, *self.batch(idx))
            return
        yield from self._prefetched(index_batches)

    def _prefetched(self, index_batches: Iterable[np.ndarray]):
        ready: queue.Queue = queue.Queue(maxsize=PREFETCH_DEPTH)
        stop = threading.Event()
        done = object()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for idx in index_batches:
                    if not put((idx, *self._host(idx))):
                        return
                put(done)
            except BaseException as exc:  # handed to the consumer, raised there
                put(exc)

        worker = threading.Thread(target=produce, name="mcbench-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = ready.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                idx, x, y = item
                yield (idx, *self._to_device(x, y))
        finally:
            stop.set()
            worker.join(timeout=5)
