"""State on disk: atomic writes, run locks, free-space and writability checks, folder layout.

Layout of a results folder::

    <results>/runs/<dataset>/<run_id>.json         the run record
    <results>/runs/<dataset>/<run_id>.scores.npz   its test-set scores
    <results>/work/<run_id>/                       checkpoints while (and after) it trains
    <results>/work/<run_id>.lock                   held by the process training it

Every file mcbench writes goes through :func:`atomic_file`: a temporary file with a unique name
in the same folder, fsynced, then renamed over the target, so a reader sees the old file or the
new one and never a torn one, and two processes never share a temporary name. A failed write
removes its temporary file; a full disk (or a file-size limit) is reported as
:class:`DiskFullError`, naming the folder and the space needed. Plugins that write files may use
the same helpers.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .identity import to_jsonable


class StateError(Exception):
    """A file mcbench wrote earlier cannot be used; the message names it and the fix."""


class DiskFullError(StateError, OSError):
    """Not enough space (or a file-size limit) for a write; the message names the folder."""


class ReadOnlyError(StateError):
    """A folder mcbench must write to is not writable."""


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f} MB"


def _is_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def disk_full_error(folder: Path, needed: float | None, exc: BaseException | None = None) -> DiskFullError:
    free = free_bytes(folder)
    need = f" about {_mb(needed)} is needed," if needed else ""
    cause = f" ({exc.strerror or exc})" if isinstance(exc, OSError) else ""
    return DiskFullError(
        f"no space left to write in {folder}{cause}:{need} {_mb(free)} is free there. Free some "
        "space (or point --results-dir / --cache-dir / --data-dir elsewhere) and run the same "
        "command again; nothing already finished is lost.")


def free_bytes(folder: Path) -> float:
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return float(shutil.disk_usage(folder).free)
    except OSError:
        return float("inf")


def ensure_free_space(folder: Path, needed: float, what: str) -> None:
    """Raise :class:`DiskFullError` before writing ``what`` when ``folder`` lacks ``needed``
    bytes (with a 5 % margin)."""
    free = free_bytes(folder)
    if free < needed * 1.05:
        raise DiskFullError(
            f"not enough space in {folder} for {what}: about {_mb(needed)} is needed, "
            f"{_mb(free)} is free. Free some space or choose another folder, then run again.")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temporary_name(path: Path) -> Path:
    """A name beside ``path`` that no other process or thread will choose."""
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, needed: float | None = None) -> Iterator[IO[bytes]]:
    """A binary file handle whose content replaces ``path`` atomically when the block ends.

    On any error (a full disk included) the temporary file is removed and ``path`` is left as
    it was. ``needed`` (bytes), when known, is checked against the free space first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(path, exc, needed) from exc
    if needed:
        ensure_free_space(path.parent, needed, path.name)
    tmp = temporary_name(path)
    try:
        # os.open with 0o666 lets the umask decide the final mode (mkstemp would force 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _write_error(path, exc, needed) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, StateError):
            raise _write_error(path, exc, needed) from exc
        raise
    _fsync_dir(path.parent)


def _write_error(path: Path, exc: OSError, needed: float | None) -> OSError:
    if _is_full(exc):
        return disk_full_error(path.parent, needed, exc)
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return ReadOnlyError(f"cannot write {path}: {exc.strerror}. Make the folder writable or "
                             "choose another one (--results-dir, --cache-dir).")
    return exc


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, needed=len(data)) as fh:
        fh.write(data)
    return Path(path)


def json_bytes(obj: Any) -> bytes:
    text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict, indented UTF-8 JSON atomically."""
    return atomic_write_bytes(path, json_bytes(obj))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_writable(folder: Path, what: str) -> None:
    """Raise :class:`ReadOnlyError` (or :class:`DiskFullError`) now, before any work, when
    ``folder`` cannot be created or written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temporary_name(folder / "write-check")
        with open(probe, "wb") as fh:
            fh.write(b"ok")
        probe.unlink()
    except OSError as exc:
        if _is_full(exc):
            raise disk_full_error(folder, None, exc) from exc
        raise ReadOnlyError(
            f"{what} {folder} is not writable ({exc.strerror or exc}); nothing was run. Make it "
            "writable or choose another folder.") from exc


# --------------------------------------------------------------------------- layout


def _safe_part(value: str, what: str) -> str:
    if not value or "/" in value or os.sep in value or value.startswith("."):
        raise ValueError(f"{what} {value!r} cannot be used as a file name")
    return value


def runs_dir(results_dir: str | os.PathLike, dataset: str) -> Path:
    return Path(results_dir) / "runs" / _safe_part(dataset, "dataset")


def record_path(results_dir: str | os.PathLike, dataset: str, run_id: str) -> Path:
    """``<results_dir>/runs/<dataset>/<run_id>.json``."""
    return runs_dir(results_dir, dataset) / f"{_safe_part(run_id, 'run id')}.json"


def scores_path(results_dir: str | os.PathLike, dataset: str, run_id: str) -> Path:
    """``<results_dir>/runs/<dataset>/<run_id>.scores.npz`` (beside the record)."""
    return record_path(results_dir, dataset, run_id).with_name(f"{run_id}.scores.npz")


def work_dir(results_dir: str | os.PathLike, run_id: str) -> Path:
    """``<results_dir>/work/<run_id>``: checkpoints of one run."""
    return Path(results_dir) / "work" / _safe_part(run_id, "run id")


def set_aside(path: Path, why: str) -> Path:
    """Rename an unusable file to ``<name>.invalid-<time>`` so that nothing is deleted."""
    target = path.with_name(f"{path.name}.invalid-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, target)
    (target.with_name(target.name + ".why")).write_text(why + "\n", encoding="utf-8")
    return target


# --------------------------------------------------------------------------- locks


class RunLock:
    """An exclusive lock on one run, across processes (and machines sharing a filesystem that
    supports ``fcntl`` locks). The holder's process id, host and start time are written beside
    the lock, so a second process can say who holds it while it waits."""

    def __init__(self, results_dir: str | os.PathLike, run_id: str):
        from filelock import FileLock

        folder = Path(results_dir) / "work"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{_safe_part(run_id, 'run id')}.lock"
        self.owner_path = folder / f"{run_id}.owner.json"
        self._lock = FileLock(str(self.path))

    def holder(self) -> str:
        try:
            info = json.loads(self.owner_path.read_text(encoding="utf-8"))
            return f"process {info['pid']} on {info['host']} (since {info['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def acquire(self, on_wait: Callable[[str], None] | None = None, poll: float = 1.0) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait(self.holder())
            self._lock.acquire(poll_interval=poll)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with contextlib.suppress(OSError):
            atomic_write_json(self.owner_path, info)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.owner_path.unlink()
        self._lock.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


# --------------------------------------------------------------------------- records and scores

SCORE_ARRAYS = ("ids", "y_true", "y_score", "labels")


class RecordWarning(UserWarning):
    """A record file was skipped (unreadable, another schema version, invalid)."""


def read_record(path: Path):
    """The :class:`~mcbench.records.RunRecord` stored at ``path``, or
    :class:`~mcbench.records.RecordError` naming the file and what is wrong with it."""
    from .records import RecordError, validate

    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: unreadable ({exc})") from exc
    record = validate(obj, source=str(path))
    if record.run_id != Path(path).name[: -len(".json")]:
        raise RecordError(f"{path}: holds run {record.run_id!r}, not the run its name says")
    if record.dataset != Path(path).parent.name:
        raise RecordError(f"{path}: stored under runs/{Path(path).parent.name} but its dataset "
                          f"is {record.dataset!r}")
    return record


def write_record(path: Path, record) -> Path:
    """Validate ``record`` (a RunRecord or its JSON object) and write it atomically."""
    from .records import validate

    valid = validate(record, source=f"the record of run {Path(path).stem}")
    return atomic_write_bytes(path, json_bytes(valid.to_json()))


def record_files(results_dir: str | os.PathLike, dataset: str | None = None) -> list[Path]:
    runs = Path(results_dir) / "runs"
    if dataset is not None:
        folders = [runs_dir(results_dir, dataset)]
    elif runs.is_dir():
        folders = sorted(p for p in runs.iterdir() if p.is_dir())
    else:
        folders = []
    return [p for f in folders if f.is_dir() for p in sorted(f.glob("*.json"))]


def load_records(results_dir: str | os.PathLike, dataset: str | None = None,
                 status: str | None = "complete", warn: Callable[[str], None] | None = None) -> list:
    """Valid records under ``<results_dir>/runs/`` (one dataset, or all) with ``status``
    (``None``: any). Invalid files are skipped, each with one warning naming it and the field;
    sorted by dataset, creation time and run id."""
    import warnings

    from .records import RecordError

    warn = warn or (lambda m: warnings.warn(m, RecordWarning, stacklevel=3))
    records = []
    for path in record_files(results_dir, dataset):
        try:
            record = read_record(path)
        except RecordError as exc:
            warn(f"skipping invalid run record {exc}")
            continue
        if status is None or record.status == status:
            records.append(record)
    records.sort(key=lambda r: (r.dataset, r.created, r.run_id))
    return records


def save_scores(path: str | os.PathLike, ids, y_true, y_score, labels) -> Path:
    """Save test-set scores as ``.npz`` (``ids``, ``y_true``, ``y_score``, ``labels``) atomically.

    ``y_true`` is ``(N, L)`` multi-hot or ``(N,)`` class indices; ``y_score`` is ``(N, L)``.
    """
    import io

    import numpy as np

    ids_arr = np.asarray([str(i) for i in ids], dtype=str)
    labels_arr = np.asarray([str(name) for name in labels], dtype=str)
    y_true_arr, y_score_arr = np.asarray(y_true), np.asarray(y_score)
    n = len(ids_arr)
    if y_true_arr.shape[:1] != (n,) or y_score_arr.shape[:1] != (n,):
        raise ValueError(f"scores for {n} ids, but y_true has shape {y_true_arr.shape} "
                         f"and y_score {y_score_arr.shape}")
    if y_score_arr.ndim == 2 and y_score_arr.shape[1] != len(labels_arr):
        raise ValueError(f"y_score has {y_score_arr.shape[1]} columns for {len(labels_arr)} labels")
    buf = io.BytesIO()
    np.savez(buf, ids=ids_arr, y_true=y_true_arr, y_score=y_score_arr, labels=labels_arr)
    return atomic_write_bytes(path, buf.getvalue())


def load_scores(path: str | os.PathLike) -> dict:
    """The arrays saved by :func:`save_scores` (never unpickles)."""
    import zipfile

    import numpy as np

    try:
        with np.load(Path(path), allow_pickle=False) as npz:
            missing = [k for k in SCORE_ARRAYS if k not in npz.files]
            if missing:
                raise StateError(f"{path}: not a scores file, missing arrays {missing}")
            return {k: npz[k] for k in SCORE_ARRAYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise StateError(f"{path}: unreadable scores file ({exc}); remove the run with "
                         "`mcbench runs rm` and run it again") from exc
