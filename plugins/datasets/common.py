"""Utilities every dataset plugin shares.

- :func:`resolve_inside` joins a path read from an annotation or list file to the data root and
  rejects one that escapes it (an absolute path, ``..`` or a symbolic link pointing outside).
- :func:`require_root` turns a missing or unrecognisable data root into a :class:`DatasetError`
  that names the root, what was expected, the dataset README and the ``--root`` option.
- :func:`file_fault` is the cheap per-file check a loader runs on every clip (one ``stat``).
- :func:`probe_audio` is the header-only health probe behind ``check(root)``: it reads every
  file's header (never its samples) in parallel threads and reports missing, empty, unreadable,
  truncated and too short files, plus the distribution of lengths and sample rates.

One rule for every fault, the same in ``mcbench data check`` and ``mcbench data prepare``, and
recorded on each :class:`~mcbench.specs.Dropped` as its ``kind`` and ``effect``:

- **skip the clip** (reported with id, path and reason; every other clip is used): a file that
  is missing, empty, cannot be read, is not readable as audio, is truncated (far smaller than
  its header implies) or too short for the dataset's length rule; a path that leaves the data
  root; a clip without a label;
- **stop the dataset** (the message names the file and what to do): an annotation, list or
  metadata file that cannot be parsed, one that lists no clip, and a dataset in which no clip
  is left;
- **a note only** (the clip is used): a sample rate other than the dataset's usual one (every
  clip is resampled to 12 kHz anyway), a short clip above the length rule (zero-padded), files
  on disk that no annotation lists, macOS AppleDouble ``._*`` files (ignored), folders that are
  not part of the layout (ignored).

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

from mcbench.audio import CANNOT_READ, EMPTY, MISSING, TOO_SHORT, TRUNCATED
from mcbench.specs import DatasetError, Dropped

#: Step name recorded on problems found by :func:`probe_audio`.
PROBE_STEP = "probe"

# Fault kinds beyond those of a single audio file (mcbench.audio.KINDS).
#: A path in a dataset file that leaves the data root (``..``, absolute, a link pointing out).
OUTSIDE_ROOT = "outside the data root"
#: A clip with none of the labels in use (MTAT: none of the top-50 tags; FMA: no genre_top).
NO_LABEL = "no label"
#: A clip on a published list of unusable clips (MTAT's three).
KNOWN_BAD_CLIP = "known bad clip"
#: A clip whose path puts it in no split (MTAT: not in a folder 0…f).
NO_SPLIT = "not in a split"
#: An annotation, list or metadata file that cannot be used: the whole dataset stops.
DATASET_FILE = "unusable dataset file"
#: Nothing left to train or test on: the whole dataset stops.
NO_CLIPS = "no usable clip"

#: macOS writes a resource-fork stub "._<name>" beside every file of an archive made on a Mac.
APPLEDOUBLE_PREFIX = "._"


def dataset_readme(name: str) -> str:
    """How to read the README of dataset ``name``, for error messages: the command that prints it.

    ``mcbench datasets NAME`` prints the README text, which is installed with the package, so the
    pointer works after a plain ``pip install`` as well as in a source checkout.
    """
    return f"`mcbench datasets {name}`"


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


def is_appledouble(name: str) -> bool:
    """A macOS AppleDouble stub (``._<name>``): metadata, never audio."""
    return name.startswith(APPLEDOUBLE_PREFIX)


def stop(dataset: str, path: str | Path, reason: str) -> Dropped:
    """A fault that stops the whole dataset (``effect == "stop"``), e.g. a malformed file."""
    return Dropped(dataset, str(path), reason, "dataset", DATASET_FILE, Dropped.STOP)


def outside_root(track_id: str, relative: str, exc: DatasetError, step: str) -> Dropped:
    """The skipped-clip record of a path that leaves the data root (see :func:`resolve_inside`)."""
    return Dropped(str(track_id), str(relative), str(exc), step, OUTSIDE_ROOT)


def file_fault(path: Path) -> tuple[str, str] | None:
    """One ``stat``: ``(kind, reason)`` for a missing, empty or unreadable file, else ``None``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return MISSING, "missing"
    except OSError as exc:  # permission denied, broken link loop, name too long…
        return CANNOT_READ, f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return CANNOT_READ, "not a regular file"
    if st.st_size == 0:
        return EMPTY, "empty (0 bytes)"
    return None


def file_problem(path: Path) -> str | None:
    """The reason of :func:`file_fault` alone: ``"missing"``, ``"empty (0 bytes)"``…, or None."""
    fault = file_fault(path)
    return None if fault is None else fault[1]


def _probe_one(path: Path) -> tuple[tuple[str, str] | None, Any]:
    """((kind, reason) or None, header) for one file; header is ``mcbench.audio.AudioInfo``."""
    from mcbench.audio import AudioError, info

    fault = file_fault(path)
    if fault is not None:
        return fault, None
    try:
        header = info(path)
    except AudioError as exc:
        # The Dropped record holds the path already: keep the reason short.
        return (exc.kind, str(exc)[len(f"{path}: "):]), None
    truncated = header.truncation()
    if truncated:
        return (TRUNCATED, f"truncated ({truncated})"), header
    return None, header


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

    Only headers are read (``mcbench.audio.info``): the length of an MP3 comes from libsndfile's
    frame count, which is what decoding yields for a complete file. Threads suffice because the
    work is file I/O inside libsndfile, which runs without the GIL.

    Returns ``(problems, stats)``. ``problems`` holds a skipped-clip :class:`Dropped` per file
    that is missing, empty, cannot be read, is not readable as audio, is truncated (smaller than
    ``mcbench.audio.TRUNCATED_BELOW`` of the size its header implies) or is shorter than
    ``min_seconds``, in the order of ``items``; each carries its ``kind``, and its reason the
    measured value so that a decoder problem is visible. A sample rate other than
    ``expected_sr`` is no problem (every clip is resampled): it is counted in
    ``stats["other_sample_rate"]`` (see :func:`sample_rate_note`). ``stats`` describes the
    readable files: ``{"sample_rates": {"16000": n, ...}, "channels": {"1": n}, "formats":
    {"MP3": n}, "durations": {"min", "p1", "median", "max", "n"}}`` (keys are strings so the
    report survives a JSON round trip).
    """
    paths = [Path(p) for _, p in items]
    n_workers = workers or min(16, 4 * (os.cpu_count() or 1))
    results: list[tuple[tuple[str, str] | None, Any]] = []
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
    other_rate: list[str] = []
    for (track_id, path), (fault, header) in zip(items, results, strict=True):
        if fault is not None:
            kind, reason = fault
            problems.append(Dropped(str(track_id), str(path), reason, step, kind))
            continue
        sample_rates[str(header.sample_rate)] += 1
        channels[str(header.channels)] += 1
        formats[header.format] += 1
        seconds = header.seconds
        durations.append(seconds)
        if expected_sr is not None and header.sample_rate != expected_sr:
            other_rate.append(str(track_id))
        if seconds < min_seconds:
            problems.append(Dropped(str(track_id), str(path),
                                    f"too short: {seconds:.3f} s < {min_seconds:g} s", step,
                                    TOO_SHORT))

    stats = {
        "sample_rates": dict(sorted(sample_rates.items(), key=lambda kv: (-kv[1], kv[0]))),
        "channels": dict(sorted(channels.items(), key=lambda kv: (-kv[1], kv[0]))),
        "formats": dict(sorted(formats.items(), key=lambda kv: (-kv[1], kv[0]))),
        "durations": _duration_stats(durations),
        "n_probed": len(paths),
        "n_readable": len(durations),
    }
    if expected_sr is not None and other_rate:
        stats["other_sample_rate"] = {"expected": expected_sr, "n": len(other_rate),
                                      "examples": other_rate[:5]}
    return problems, stats


def sample_rate_note(stats: dict) -> str | None:
    """The note for clips at another sample rate than the dataset's usual one, or ``None``."""
    other = stats.get("other_sample_rate") or {}
    if not other.get("n"):
        return None
    rates = ", ".join(f"{r} Hz" for r in stats["sample_rates"] if int(r) != other["expected"])
    return (
        f"{other['n']} clip(s) are not at {other['expected']} Hz ({rates}; e.g. "
        f"{', '.join(other['examples'])}): they are resampled to 12 kHz like every clip and used"
    )


def appledouble_note(count: int) -> str | None:
    """The note for ignored macOS ``._*`` files, or ``None`` when there are none."""
    if not count:
        return None
    return (f"{count} macOS AppleDouble file(s) (._<name>, resource-fork stubs from a Mac "
            "archive) ignored")
