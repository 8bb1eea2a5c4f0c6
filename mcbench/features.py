"""Front ends (the paper's log-mel, the raw waveform) and the on-disk feature store.

Front end (Sec. IV of the paper, following Choi et al.'s preprocessor): 12 kHz mono audio,
centred STFT with n_fft 512 and hop 256 (Hann window, zero padding at the edges as librosa ≥ 0.10
does), power spectrogram, librosa's 96-band Slaney mel filterbank, then ``10·log10`` with a floor
of 1e-10 — exactly ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0,
top_db=None)``. The paper says "log"; we take decibels of the mel power (base-10 log scaled by 10)
because that is what librosa's reference and Choi's code produce. A 29.0 s clip gives 96 × 1360.

The log-mel is computed in torch (float64 STFT, so it matches librosa to well under 1e-3 dB),
batched in the main process; decoding and resampling run in parallel worker processes.

Feature store: features are computed once per (dataset, data root, front-end settings) and kept
as memory-mapped ``.npy`` parts plus a JSON index, then reused by every model and run. A part is
written row by row and its index flushed regularly, so an interrupted ``prepare`` resumes where it
stopped. Undecodable clips are recorded with their reason and skipped, never fatal.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import audio
from .specs import MULTILABEL, Dropped, FeatureSplit, Partition, Split, Track
from .storage import (
    DiskFullError,
    StateError,
    atomic_write_bytes,
    disk_full_error,
    ensure_free_space,
)

#: Part of every store folder's name: bump when decoding or the stored layout changes, so that
#: rows decoded (or failed) by an older version are computed again. 2: audio opened as a file
#: object (macOS "._" files no longer break MP3s), per-row feature digests.
STORE_VERSION = 2


@dataclass(frozen=True)
class FrontEnd:
    """Front-end settings; their hash names the feature-store folder."""

    name: str = "logmel"
    sample_rate: int = audio.TARGET_SR
    seconds: float = 29.0
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96

    def __post_init__(self) -> None:
        if self.name not in FRONTEND_NAMES:
            raise ValueError(f"unknown front end {self.name!r}; choose from {FRONTEND_NAMES}")

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        return 1 + self.n_samples // self.hop_length

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-clip feature shape: ``(1, n_mels, frames)`` or ``(1, samples)``."""
        if self.name == "waveform":
            return (1, self.n_samples)
        return (1, self.n_mels, self.n_frames)

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.name == "waveform":  # STFT settings do not affect waveforms
            for k in ("n_fft", "hop_length", "n_mels"):
                d.pop(k)
        return d

    def key(self) -> str:
        blob = json.dumps({"v": STORE_VERSION, **self.as_dict()}, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


FRONTEND_NAMES = ("logmel", "waveform")


# --------------------------------------------------------------------------- log-mel


def mel_filterbank(fe: FrontEnd) -> np.ndarray:
    """librosa's Slaney-normalised mel filterbank, ``(n_mels, 1 + n_fft // 2)``."""
    import librosa

    return librosa.filters.mel(sr=fe.sample_rate, n_fft=fe.n_fft, n_mels=fe.n_mels)


class LogMel:
    """Batched log-mel in torch: ``(B, S)`` waveforms → ``(B, n_mels, frames)`` float32 dB."""

    AMIN = 1e-10

    def __init__(self, fe: FrontEnd, device: str = "cpu"):
        import torch

        self.fe = fe
        self.torch = torch
        self.device = device
        self.window = torch.hann_window(fe.n_fft, periodic=True, dtype=torch.float64, device=device)
        self.fb = torch.from_numpy(mel_filterbank(fe).astype(np.float64)).to(device)

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.as_tensor(np.asarray(waves), dtype=torch.float64, device=self.device)
        # librosa pads with zeros ("constant"); torch.stft defaults to reflection.
        spec = torch.stft(
            x, n_fft=self.fe.n_fft, hop_length=self.fe.hop_length, window=self.window,
            center=True, pad_mode="constant", return_complex=True,
        )
        power = spec.real**2 + spec.imag**2
        mel = torch.matmul(self.fb, power)
        db = 10.0 * torch.log10(torch.clamp(mel, min=self.AMIN))
        return db.to(torch.float32).cpu().numpy()


def librosa_logmel(y: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """The reference our torch front end must match (used by tests and ``mfcc_svm`` docs)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=y, sr=fe.sample_rate, n_fft=fe.n_fft, hop_length=fe.hop_length, n_mels=fe.n_mels
    )
    return librosa.power_to_db(mel, ref=1.0, amin=LogMel.AMIN, top_db=None)


# --------------------------------------------------------------------------- decoding workers


def _decode_worker(args: tuple[str, str, float, int]) -> tuple[str, np.ndarray | None, float, str]:
    """Decode one clip in a worker process: (id, samples or None, decoded seconds, error)."""
    track_id, path, seconds, sr = args
    try:
        clip = audio.load_clip(path, seconds, sr)
        return track_id, clip.samples, clip.source_seconds, ""
    except audio.AudioError as exc:
        return track_id, None, 0.0, str(exc)
    except Exception as exc:  # a decoder crash on one file must not stop the others
        return track_id, None, 0.0, f"{path}: {type(exc).__name__}: {exc}"


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Worker initializer: end this process when the one that started it is gone.

    A killed ``mcbench`` (SIGKILL, an out-of-memory kill) cannot tell its decoding workers to
    stop; without this they would go on decoding a dataset nobody waits for.
    """

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _decode_isolated(decoder, job) -> tuple[str, np.ndarray | None, float, str]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        try:
            return pool.submit(decoder, job).result()
        except BrokenProcessPool:
            return job[0], None, 0.0, f"{job[1]}: the decoder crashed on this file (its process died); skipped"


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


# --------------------------------------------------------------------------- the store


@dataclass
class PartIndex:
    """JSON sidecar of one memory-mapped part."""

    ids: list[str]
    paths: list[str]
    #: per row: "" pending, "ok", or the failure reason
    status: list[str]
    source_seconds: list[float]
    frontend: dict = field(default_factory=dict)
    version: int = STORE_VERSION
    #: per row: size and modification time of the audio file when it was decoded
    stamps: list[str] = field(default_factory=list)
    #: creation time; later parts supersede earlier ones for the same id
    created: float = 0.0
    #: per row: digest of the stored feature values ("" until computed), for a run's identity
    digests: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> PartIndex:
        try:
            index = cls(**json.loads(path.read_text(encoding="utf-8")))
            n = len(index.ids)
            if not (len(index.paths) == len(index.status) == len(index.source_seconds) == n):
                raise ValueError("its lists have different lengths")
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise corrupt_cache(path, exc) from exc
        index.digests = index.digests or [""] * n
        index.stamps = index.stamps or [""] * n
        return index

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, json.dumps(asdict(self)).encode("utf-8"))


def corrupt_cache(path: Path, exc: BaseException) -> StateError:
    return StateError(
        f"feature cache file {path} is corrupt ({type(exc).__name__}: {exc}). Delete the folder "
        f"{path.parent} (it holds cached features only; they are computed again on the next run)")


def feature_digest(values: np.ndarray) -> str:
    """16 hex digits of BLAKE2b over one clip's stored float32 feature values."""
    data = np.ascontiguousarray(values, dtype=np.float32)
    return hashlib.blake2b(data.tobytes(), digest_size=8).hexdigest()


class FeatureStore:
    """Cached features of one dataset (at one root) under one front end."""

    def __init__(self, cache_dir: Path, dataset: str, root: Path, frontend: FrontEnd):
        self.frontend = frontend
        root_hash = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]
        self.dir = Path(cache_dir) / dataset / f"{root_hash}-{frontend.key()}"
        self.dir.mkdir(parents=True, exist_ok=True)
        settings = self.dir / "frontend.json"
        if not settings.exists():
            atomic_write_bytes(settings, json.dumps(
                {"dataset": dataset, "root": str(root), **frontend.as_dict()}, indent=2).encode())

    # -- index over all parts
    def _parts(self) -> list[tuple[str, PartIndex]]:
        parts = [(p.name[: -len(".index.json")], PartIndex.load(p)) for p in self.dir.glob("*.index.json")]
        return sorted(parts, key=lambda item: (item[1].created, item[0]))

    def _lookup(self) -> dict[str, tuple[str, int, str, float, str]]:
        """id → (part, row, status, decoded seconds, file stamp) of its newest stored row."""
        found: dict[str, tuple[str, int, str, float, str]] = {}
        for part, index in self._parts():
            stamps = index.stamps or [""] * len(index.ids)
            for row, (tid, st, secs, stamp) in enumerate(
                    zip(index.ids, index.status, index.source_seconds, stamps)):
                if st:
                    found[tid] = (part, row, st, secs, stamp)
        return found

    def _array(self, part: str, mode: str = "r") -> np.ndarray:
        path = self.dir / f"{part}.npy"
        try:
            arr = np.load(path, mmap_mode=mode, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise corrupt_cache(path, exc) from exc
        if arr.shape[1:] != tuple(self.frontend.shape):
            raise corrupt_cache(path, ValueError(f"rows of shape {arr.shape[1:]}, expected "
                                                 f"{self.frontend.shape}"))
        return arr

    # -- computing
    def compute(self, tracks: Sequence[Track], name: str, workers: int | None = None,
                progress: bool = True, decoder=None, device: str = "cpu") -> None:
        """Make sure every track has a stored feature row or a recorded failure.

        ``decoder`` replaces :func:`_decode_worker` (a picklable module-level function).
        ``device``: where the log-mel of each decoded batch is computed (``cuda`` while the CPU
        workers go on decoding); the rows agree with the CPU's to float32 rounding.
        """
        from filelock import FileLock

        # Two processes preparing the same features (two runs started together) take turns:
        # the second finds the first one's rows and computes nothing.
        with FileLock(str(self.dir / ".compute.lock")):
            known = self._lookup()
            # A file replaced since it was decoded (a regenerated dataset, a re-download) is redone.
            todo = [t for t in tracks if t.id not in known or known[t.id][4] != file_stamp(t.path)]
            if not todo:
                return
            part = self._resume_part(name, todo)
            index = PartIndex.load(self.dir / f"{part}.index.json")
            self._fill(part, index, workers or default_workers(), progress, decoder, device)

    def _resume_part(self, name: str, todo: Sequence[Track]) -> str:
        """An unfinished part holding these tracks (after an interruption), or a new one."""
        wanted = {t.id for t in todo}
        for part, index in self._parts():
            pending = {tid for tid, st in zip(index.ids, index.status) if not st}
            if pending and pending <= set(index.ids) and wanted <= set(index.ids):
                return part
        digest = hashlib.sha256("\n".join(sorted(wanted)).encode()).hexdigest()[:8]
        part = f"{name}-{digest}"
        self._allocate(self.dir / f"{part}.npy", len(todo))
        PartIndex(
            ids=[t.id for t in todo], paths=[str(t.path) for t in todo], status=[""] * len(todo),
            source_seconds=[0.0] * len(todo), frontend=self.frontend.as_dict(),
            stamps=[file_stamp(t.path) for t in todo], created=time.time(),
            digests=[""] * len(todo),
        ).save(self.dir / f"{part}.index.json")
        return part

    def _allocate(self, path: Path, n_rows: int) -> None:
        """Create a part's ``.npy`` with every byte allocated on disk now.

        A sparse file written through a memory map would fail later with SIGBUS ("Bus error")
        when the disk fills up; allocating first turns that into a clear error before any
        decoding, naming the folder and the space needed.
        """
        shape = (n_rows, *self.frontend.shape)
        needed = float(np.prod(shape)) * 4 + 4096
        ensure_free_space(self.dir, needed, f"the features of {n_rows} clip(s)")
        try:
            np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape).flush()
            if hasattr(os, "posix_fallocate"):
                fd = os.open(path, os.O_RDWR)
                try:
                    os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
                finally:
                    os.close(fd)
        except OSError as exc:
            path.unlink(missing_ok=True)
            if isinstance(exc, DiskFullError):
                raise
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise disk_full_error(self.dir, needed, exc) from exc
            raise

    def _fill(self, part: str, index: PartIndex, workers: int, progress: bool, decoder=None,
              device: str = "cpu") -> None:
        from tqdm.auto import tqdm

        decoder = decoder or _decode_worker
        rows = [r for r, st in enumerate(index.status) if not st]
        arr = self._array(part, "r+")
        logmel = LogMel(self.frontend, device) if self.frontend.name == "logmel" else None
        jobs = [(index.ids[r], index.paths[r], self.frontend.seconds, self.frontend.sample_rate) for r in rows]
        row_of = {index.ids[r]: r for r in rows}
        index_path = self.dir / f"{part}.index.json"
        bar = tqdm(total=len(index.ids), initial=len(index.ids) - len(rows), unit="clip",
                   desc=f"features {self.dir.parent.name}/{part}", disable=not progress)
        last_flush = time.monotonic()

        def store(results: Iterable[tuple[str, np.ndarray | None, float, str]]) -> None:
            nonlocal last_flush
            batch_rows, batch_waves = [], []
            for tid, samples, secs, err in results:
                r = row_of[tid]
                index.source_seconds[r] = round(float(secs), 4)
                if samples is None:
                    index.status[r] = err or "failed"
                else:
                    batch_rows.append(r)
                    batch_waves.append(samples)
            if batch_rows:
                feats = logmel(np.stack(batch_waves))[:, None] if logmel else np.stack(batch_waves)[:, None]
                for r, f in zip(batch_rows, feats):
                    arr[r] = f
                    index.status[r] = "ok"
                    index.digests[r] = feature_digest(f)
            bar.update(len(results))
            if time.monotonic() - last_flush > 2.0:
                arr.flush()
                index.save(index_path)
                last_flush = time.monotonic()

        chunk = 8
        try:
            if workers <= 1 or len(jobs) < 4:
                for i in range(0, len(jobs), chunk):
                    store([decoder(j) for j in jobs[i : i + chunk]])
            else:
                self._fill_parallel(jobs, decoder, workers, chunk, store)
        finally:
            arr.flush()
            index.save(index_path)
            bar.close()

    @staticmethod
    def _fill_parallel(jobs, decoder, workers: int, chunk: int, store) -> None:
        done: set[str] = set()
        pending: list = []

        def flush() -> None:
            store(pending[:])
            done.update(r[0] for r in pending)
            pending.clear()

        try:
            # "spawn" keeps workers independent of any threads torch started in this process.
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                     initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
                for result in pool.map(decoder, jobs, chunksize=2):
                    pending.append(result)
                    if len(pending) == chunk:
                        flush()
            if pending:
                flush()
        except BrokenProcessPool:
            if pending:
                flush()
            # A decoder crash (not an exception: the worker died) took the pool down. Decode the
            # rest one file per process, so that only the file that crashes is lost.
            for job in jobs:
                if job[0] not in done:
                    store([_decode_isolated(decoder, job)])

    # -- reading
    def failures(self, ids: Iterable[str]) -> dict[str, str]:
        known = self._lookup()
        return {i: known[i][2] for i in ids if i in known and known[i][2] != "ok"}

    def load_split(self, split: Split, labels: Sequence[str], task: str,
                   min_seconds: float = 0.0) -> tuple[FeatureSplit, list[Dropped]]:
        """Features of a split whose tracks were computed; failed or too-short clips are dropped."""
        known = self._lookup()
        keep: list[Track] = []
        dropped: list[Dropped] = []
        for t in split.tracks:
            if t.id not in known:
                raise RuntimeError(f"track {t.id} of split {split.name} has no features; call compute() first")
            part, row, status, secs, _ = known[t.id]
            if status != "ok":
                dropped.append(Dropped(t.id, str(t.path), status, "decode"))
            elif secs < min_seconds:
                dropped.append(Dropped(
                    t.id, str(t.path),
                    f"too short: decoded {secs:.3f} s < required {min_seconds:.3f} s", "length"))
            else:
                keep.append(t)
        locations = [known[t.id][:2] for t in keep]
        parts = {p for p, _ in locations}
        if len(parts) == 1:
            (part,) = parts
            arr = self._array(part)
            rows = [r for _, r in locations]
            # Consecutive rows (a split stored in order, as prepare_partition stores them) stay
            # a memory-mapped view: a training batch is read from disk or the page cache when
            # used, and the resident memory does not grow with the split's size.
            if rows and rows == list(range(rows[0], rows[0] + len(rows))):
                x = arr[rows[0] : rows[0] + len(rows)]
            else:
                x = arr[np.asarray(rows, dtype=np.int64)]
        else:
            x = np.empty((len(keep), *self.frontend.shape), dtype=np.float32)
            cache: dict[str, np.ndarray] = {}
            for i, (part, row) in enumerate(locations):
                x[i] = cache.setdefault(part, self._array(part))[row]
        y = targets(keep, len(labels), task)
        content = self._content_digest(keep, locations)
        return FeatureSplit(split.name, [t.id for t in keep], x, y, task, list(labels),
                            content=content), dropped

    def _content_digest(self, keep: Sequence[Track], locations: Sequence[tuple[str, int]]) -> str:
        """16 hex digits of sha256 over (clip id, feature digest, labels) of the kept clips, in
        split order: the same data gives the same digest wherever it is stored, and a file
        replaced under the same clip id gives another."""
        indexes = {part: PartIndex.load(self.dir / f"{part}.index.json") for part, _ in locations}
        missing = {part for part, row in locations if not indexes[part].digests[row]}
        for part in missing:  # stores written before digests existed: fill them in once
            arr, index = self._array(part), indexes[part]
            for row, st in enumerate(index.status):
                if st == "ok" and not index.digests[row]:
                    index.digests[row] = feature_digest(arr[row])
            index.save(self.dir / f"{part}.index.json")
        h = hashlib.sha256()
        for t, (part, row) in zip(keep, locations):
            labels = ",".join(str(i) for i in t.labels)
            h.update(f"{t.id}\t{indexes[part].digests[row]}\t{labels}\n".encode())
        return h.hexdigest()[:16]


def file_stamp(path: str | Path) -> str:
    """Size and modification time of a file ("missing" if absent): a cheap content fingerprint."""
    try:
        st = Path(path).stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def targets(tracks: Sequence[Track], n_labels: int, task: str) -> np.ndarray:
    """Multi-hot ``(N, L)`` float32 for tagging, class indices ``(N,)`` int64 for genres."""
    if task == MULTILABEL:
        y = np.zeros((len(tracks), n_labels), dtype=np.float32)
        for i, t in enumerate(tracks):
            y[i, list(t.labels)] = 1.0
        return y
    return np.asarray([t.labels[0] for t in tracks], dtype=np.int64)


def prepare_partition(store: FeatureStore, partition: Partition, task: str,
                      workers: int | None = None, progress: bool = True,
                      device: str = "cpu") -> tuple[dict[str, FeatureSplit], list[Dropped]]:
    """Compute (or reuse) the features of every split of a partition and load them; the
    log-mel on ``device`` (:meth:`FeatureStore.compute`)."""
    all_tracks = [t for s in partition.splits.values() for t in s.tracks]
    store.compute(all_tracks, name=partition.protocol, workers=workers, progress=progress,
                  device=device)
    out, dropped = {}, []
    for name, split in partition.splits.items():
        out[name], d = store.load_split(split, partition.labels, task, partition.min_seconds)
        dropped += d
    return out, dropped
