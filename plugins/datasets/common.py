"""Utilities every dataset plugin shares (datasets.md §1).

- :func:`resolve_inside` joins a path read from an annotation or list file to the data root and
  rejects one that escapes it (an absolute path, ``..`` or a symbolic link pointing outside).
- :func:`require_root` turns a missing or unrecognisable data root into a :class:`DatasetError`
  that names the root, what was expected, the dataset README and the ``--root`` option.
- :func:`file_problem` is the cheap per-file check a loader runs on every clip (one ``stat``).
- :func:`probe_audio` is the header-only health probe behind ``check(root)``: it reads every
  file's header (never its samples) in parallel threads and reports missing, empty, unreadable,
  short and wrongly sampled files, plus the distribution of lengths and sample rates.

Nothing here imports numpy, pandas or torch at module level: dataset plugins import this module
at registration time, and listing plugins must stay cheap.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mcbench.specs import DatasetError, Dropped

#: The repository checkout holding this file (``plugins/datasets/common.py`` → two levels up).
_REPO = Path(__file__).resolve().parents[2]

#: Step name recorded on problems found by :func:`probe_audio`.
PROBE_STEP = "probe"


def dataset_readme(name: str) -> str:
    """Where the README of dataset ``name`` is, for error messages.

    The absolute path inside the source checkout when it exists there (an editable install), else
    the path relative to the repository, ``datasets/<name>/README.md``.
    """
    relative = Path("datasets") / name / "README.md"
    candidate = _REPO / relative
    return str(candidate) if candidate.is_file() else relative.as_posix()


def resolve_inside(root: Path, relative: str) -> Path:
    """Join ``relative`` (a path read from a dataset file) to ``root`` and resolve it.

    Raises :class:`DatasetError` when the result leaves ``root``: an absolute path, ``..``
    components climbing out, or a symbolic link inside the root that points elsewhere. A path in
    an annotation file that escapes the dataset root is never opened. Link the whole data root
    (``--root`` may itself be a link) rather than folders inside it.
    """
    text = str(relative)
    # os.path rather than pathlib: loaders call this once per annotation row (25,863 for MTAT).
    base = os.path.realpath(root)
    if not text.strip():
        raise DatasetError(f"empty path in a dataset file under {base}")
    if "\x00" in text:
        raise DatasetError(f"path {text!r} contains a NUL byte; it is not a file under {base}")
    if os.path.isabs(text) or text.startswith(("/", "\\")):
        raise DatasetError(
            f"path {text!r} is absolute; paths in dataset files must be relative to the data "
            f"root {base}"
        )
    resolved = os.path.realpath(os.path.join(base, text))
    if resolved != base and not resolved.startswith(base.rstrip(os.sep) + os.sep):
        raise DatasetError(
            f"path {text!r} escapes the data root {base} (it resolves to {resolved}); "
            "paths in dataset files must stay inside the root"
        )
    return Path(resolved)


def require_root(root: Path, dataset: str, markers: Sequence[str], readme: str) -> Path:
    """Check that ``root`` exists and holds at least one of ``markers``; return it resolved.

    ``markers`` are relative paths (files or folders) that identify the dataset's layout. The
    error names the root, what was expected there, the README telling how to obtain and lay out
    the data, and the ``--root`` option.
    """
    root = Path(root).expanduser()
    expected = ", ".join(f"'{m}'" for m in markers)
    hint = (
        f"See {readme} for how to obtain the {dataset} data and lay it out, "
        f"or pass --root PATH to point mcbench at an existing copy."
    )
    if not root.exists():
        raise DatasetError(f"{dataset}: data root {root} does not exist. {hint}")
    if not root.is_dir():
        raise DatasetError(f"{dataset}: data root {root} is not a folder. {hint}")
    if not any((root / m).exists() for m in markers):
        raise DatasetError(
            f"{dataset}: {root} does not look like a {dataset} data root: expected "
            f"{'one of ' if len(markers) > 1 else ''}{expected} in it. {hint}"
        )
    return root.resolve()


def file_problem(path: Path) -> str | None:
    """One ``stat``: ``"missing"``, ``"empty (0 bytes)"``, ``"not a regular file"`` or ``None``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:  # permission denied, broken link loop, name too long…
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size == 0:
        return "empty (0 bytes)"
    return None


def _probe_one(path: Path) -> tuple[str | None, Any]:
    """(problem, header) for one file; header is ``mcbench.audio.AudioInfo`` when readable."""
    from mcbench.audio import AudioError, info

    problem = file_problem(path)
    if problem is not None:
        return problem, None
    try:
        return None, info(path)
    except AudioError as exc:
        # The Dropped record holds the path already: keep the reason short.
        message = str(exc)
        prefix = f"{path}: "
        message = message[len(prefix):] if message.startswith(prefix) else message
        return message.replace(f"Error opening {str(path)!r}: ", ""), None


def _duration_stats(seconds: list[float]) -> dict[str, float | int]:
    if not seconds:
        return {"n": 0}
    import numpy as np

    values = np.asarray(seconds, dtype=np.float64)
    return {
        "min": round(float(values.min()), 3),
        "p1": round(float(np.percentile(values, 1)), 3),
        "median": round(float(np.median(values)), 3),
        "max": round(float(values.max()), 3),
        "n": int(values.size),
    }


def probe_audio(
    items: Sequence[tuple[str, Path]],
    *,
    expected_sr: int | None,
    min_seconds: float,
    workers: int | None = None,
    progress: bool = True,
    step: str = PROBE_STEP,
) -> tuple[list[Dropped], dict]:
    """Read the header of every ``(id, path)`` in ``items``; report problems and statistics.

    Only headers are read (``mcbench.audio.info``, i.e. ``soundfile.info``): the length of an MP3
    comes from libsndfile's frame count, which is what decoding yields. Threads suffice because
    the work is file I/O inside libsndfile, which runs without the GIL.

    Returns ``(problems, stats)``. ``problems`` holds a :class:`Dropped` per file that is missing,
    empty, unreadable as audio, shorter than ``min_seconds`` or not at ``expected_sr``, in the
    order of ``items``; each reason carries the measured value so that a decoder problem is
    visible. ``stats`` describes the readable files: ``{"sample_rates": {"16000": n, ...},
    "channels": {"1": n}, "formats": {"MP3": n}, "durations": {"min", "p1", "median", "max",
    "n"}}`` (keys are strings so the report survives a JSON round trip).
    """
    paths = [Path(p) for _, p in items]
    n_workers = workers or min(16, 4 * (os.cpu_count() or 1))
    results: list[tuple[str | None, Any]] = []
    from tqdm.auto import tqdm

    with (
        ThreadPoolExecutor(max_workers=max(1, n_workers)) as pool,
        tqdm(total=len(paths), desc="reading audio headers", unit="file",
             disable=not progress, leave=False) as bar,
    ):
        for result in pool.map(_probe_one, paths):
            results.append(result)
            bar.update(1)

    problems: list[Dropped] = []
    sample_rates: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    durations: list[float] = []
    for (track_id, path), (problem, header) in zip(items, results, strict=True):
        if header is None:
            problems.append(Dropped(str(track_id), str(path), problem or "unreadable", step))
            continue
        sample_rates[str(header.sample_rate)] += 1
        channels[str(header.channels)] += 1
        formats[header.format] += 1
        seconds = header.seconds
        durations.append(seconds)
        reasons = []
        if seconds < min_seconds:
            reasons.append(f"too short: {seconds:.3f} s < {min_seconds:g} s")
        if expected_sr is not None and header.sample_rate != expected_sr:
            reasons.append(f"sample rate {header.sample_rate} Hz, expected {expected_sr} Hz")
        if reasons:
            problems.append(Dropped(str(track_id), str(path), "; ".join(reasons), step))

    stats = {
        "sample_rates": dict(sorted(sample_rates.items(), key=lambda kv: (-kv[1], kv[0]))),
        "channels": dict(sorted(channels.items(), key=lambda kv: (-kv[1], kv[0]))),
        "formats": dict(sorted(formats.items(), key=lambda kv: (-kv[1], kv[0]))),
        "durations": _duration_stats(durations),
        "n_probed": len(paths),
        "n_readable": len(durations),
    }
    return problems, stats
