"""The built-in ``synthetic`` datasets: seeded music-like audio on disk.

Two :class:`~mcbench.specs.DatasetSpec` objects come from this one module:

- ``synthetic`` (multilabel, the 13 tags of :data:`synthetic_audio.TAGS`) is written in the
  MagnaTagATune layout: folders ``0``–``9``, ``a``–``f`` of 16 kHz mono
  MP3 clips and ``annotations_final.csv`` (tab-separated, every field double-quoted, header
  ``clip_id``, tags, ``mp3_path``, CRLF, rows by ascending ``clip_id``). Train clips are in
  folders ``0``–``b``, valid in ``c``, test in ``d``–``f``, but in proportions chosen for a demo
  (default 70/10/20 of 400 clips: most clips train, and the test set of 80 is large enough for a
  stable macro ROC-AUC) rather than MTAT's 12:1:3. It is read back by :func:`mcbench_plugins.datasets.mtat.load_mtat_partition`,
  the real MTAT reader: with 13 tag columns the top-50 rule keeps every tag that occurs.
- ``synthetic_genres`` (multiclass, the 6 genres of :data:`synthetic_audio.GENRES`) is written
  in the GTZAN layout ``genres/<genre>/<genre>.000NN.wav`` (22,050 Hz mono PCM_16) and read
  by :func:`mcbench_plugins.datasets.gtzan.load_gtzan_partition`. Its protocols: ``cv5``, seeded
  stratified 5-fold cross-validation made by the same code as GTZAN's ``cv10`` (the paper's
  Table III protocol): trial ``i`` tests on fold ``i``, validates on fold ``i + 1 mod 5`` and
  trains on the other three, every fold a run, so a demo table has the shape of Table III
  (mean ± std over folds); and ``fixed`` (the default, one split for quick demos), which is
  fold 0 of ``cv5``. The folds come from the generation seed and the clip ids alone.

Generation happens on first use (``materialize``, which the harness calls before ``tracks``):
clips are rendered in parallel worker processes with a progress bar, written into a temporary
folder next to the root (``.<root name>.partial-<host>-<pid>-<tag>``) and moved into place, the
marker file ``synthetic.json`` last. A generation that is killed (SIGKILL, SIGTERM, a power cut)
cannot remove its temporary folder; the next generation beside the same root removes every such
folder whose process, on this host, is no longer running, and ``check`` notes any it finds. The marker
records the generator version and parameters; when it is present and agrees with the parameters
given, nothing is regenerated; when it disagrees, a :class:`~mcbench.specs.DatasetError` says to
delete the folder or use another root. Parameters left out are taken from the marker, so
``mcbench run --dataset synthetic`` reads whatever was generated there.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcbench import hookimpl
from mcbench.specs import (
    MULTICLASS,
    MULTILABEL,
    DatasetError,
    DatasetSpec,
    ExpectedSplit,
    HealthReport,
    Option,
    Partition,
)

from . import synthetic_audio as sa

NAME = "synthetic"
GENRES_NAME = "synthetic_genres"
README = "datasets/synthetic/README.md"
MARKER = "synthetic.json"

TAGS: tuple[str, ...] = sa.TAGS
GENRES: tuple[str, ...] = sa.GENRES

#: MTAT's format: 16 kHz mono MP3.
TAGGING_SAMPLE_RATE = 16_000
#: GTZAN's format: 22,050 Hz mono 16-bit PCM WAV.
GENRES_SAMPLE_RATE = 22_050
ANNOTATIONS = "annotations_final.csv"
CLIP_TAGS = "clip_tags.tsv"
TRAIN_FOLDERS = "0123456789ab"
VALID_FOLDERS = "c"
TEST_FOLDERS = "def"
N_FOLDS = 5

#: Generation parameters and their defaults. Chosen so that the demo is cheap; tune them (and
#: ``train_defaults`` below) against the time budget with ``--dataset-param KEY=VALUE``.
#: ``seconds`` stays at 29.0: the front end takes 29.0 s and FCN needs at least 1280 frames.
TAGGING_DEFAULTS: dict[str, Any] = {
    "n_clips": 400,  # total clips over train/valid/test
    "seconds": 29.0,
    "seed": 0,
    "split": (0.7, 0.1, 0.2),  # train/valid/test shares (MTAT's own is 12:1:3)
}
GENRES_DEFAULTS: dict[str, Any] = {
    "n_per_genre": 40,
    "seconds": 29.0,
    "seed": 0,
}
#: Options that change how, not what, is generated (never recorded in the marker).
RUNTIME_KEYS = ("workers", "progress")

# Key streams of :func:`synthetic_audio.clip_rng`: labels and audio of a clip come from separate
# streams so that a clip can be re-rendered from its planned labels alone.
_TAGGING, _GENRE, _PLAN = 1, 2, 0
_LABELS, _AUDIO = 0, 1


# --------------------------------------------------------------------------- parameters


def _normalise(kind: str, params: Mapping[str, Any]) -> tuple[dict, set[str], dict]:
    """(generation params with defaults, names given explicitly, runtime options)."""
    defaults = TAGGING_DEFAULTS if kind == NAME else GENRES_DEFAULTS
    unknown = sorted(set(params) - set(defaults) - set(RUNTIME_KEYS))
    if unknown:
        raise DatasetError(
            f"{kind}: unknown option(s) {unknown}; accepted: {[*defaults, *RUNTIME_KEYS]}"
        )
    given = {k: v for k, v in params.items() if k in defaults and v is not None}
    gen = {**defaults, **given}
    try:
        gen["seconds"] = float(gen["seconds"])
        gen["seed"] = int(gen["seed"])
        if kind == NAME:
            gen["n_clips"] = int(gen["n_clips"])
            split = gen["split"]
            if isinstance(split, str):  # "0.6,0.2,0.2" from the command line
                split = split.split(",")
            split = [float(s) for s in split]
        else:
            gen["n_per_genre"] = int(gen["n_per_genre"])
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{kind}: bad option value ({exc})") from exc
    if not gen["seconds"] > 0:
        raise DatasetError(f"{kind}: seconds must be positive, got {gen['seconds']}")
    if gen["seed"] < 0:
        raise DatasetError(f"{kind}: seed must be >= 0, got {gen['seed']}")
    if kind == NAME:
        if len(split) != 3 or min(split) < 0 or sum(split) <= 0:
            raise DatasetError(f"{kind}: split must be three non-negative train/valid/test shares")
        gen["split"] = [round(s / sum(split), 6) for s in split]
        if gen["n_clips"] < 3:
            raise DatasetError(f"{kind}: n_clips must be at least 3 (one clip per split)")
    elif gen["n_per_genre"] < N_FOLDS:
        raise DatasetError(f"{kind}: n_per_genre must be at least {N_FOLDS} (one per fold)")
    runtime = {k: params[k] for k in RUNTIME_KEYS if k in params}
    return gen, set(given), runtime


def _marker_content(kind: str, gen: Mapping[str, Any], n_files: int) -> dict:
    return {
        "generator": "mcbench synthetic",
        "dataset": kind,
        "version": sa.GENERATOR_VERSION,
        "params": dict(gen),
        "sample_rate": TAGGING_SAMPLE_RATE if kind == NAME else GENRES_SAMPLE_RATE,
        "n_files": n_files,
    }


def read_marker(root: Path) -> dict | None:
    """The parsed ``synthetic.json`` of ``root``, or None when there is none."""
    path = Path(root) / MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(
            f"{path} is unreadable ({exc}); delete {Path(root)} to regenerate the data"
        ) from exc


def _check_marker(root: Path, marker: Mapping, kind: str, gen: Mapping, given: Iterable[str]) -> None:
    fix = f"Delete {root} to regenerate it, or pass another --root."
    if marker.get("dataset") != kind:
        raise DatasetError(
            f"{root} holds the {marker.get('dataset')!r} dataset, not {kind!r}. {fix}"
        )
    if marker.get("version") != sa.GENERATOR_VERSION:
        raise DatasetError(
            f"{root} was generated by synthetic generator version {marker.get('version')}, "
            f"this is version {sa.GENERATOR_VERSION}. {fix}"
        )
    stored = marker.get("params", {})
    differ = {k: (stored.get(k), gen[k]) for k in given if _comparable(stored.get(k)) != _comparable(gen[k])}
    if differ:
        detail = ", ".join(f"{k}: on disk {a!r}, asked {b!r}" for k, (a, b) in sorted(differ.items()))
        raise DatasetError(f"{root} was generated with other parameters ({detail}). {fix}")


def _comparable(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _resolved_params(root: Path, kind: str, params: Mapping[str, Any]) -> dict:
    """The generation parameters of the data at ``root`` (marker values, else the defaults)."""
    gen, _, _ = _normalise(kind, params)
    marker = read_marker(root)
    if marker is not None and marker.get("dataset") == kind:
        gen.update(marker.get("params", {}))
    return gen


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlannedClip:
    """One clip to generate: its id, file (relative to the root), labels and random streams."""

    id: str
    relpath: str
    split: str  # "train"/"valid"/"test" for tagging; "" for genres (folds decide)
    style: str  # the latent style (tagging) or the genre
    params: sa.ClipParams
    audio_key: tuple[int, ...]


def _split_counts(n: int, shares: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of ``n * shares``, with at least one clip per split."""
    raw = [n * s for s in shares]
    counts = [int(r) for r in raw]
    for i in sorted(range(3), key=lambda i: (counts[i] - raw[i], i))[: n - sum(counts)]:
        counts[i] += 1
    for i in range(3):  # a split with a zero share still gets one clip when n allows
        while counts[i] == 0:
            j = max(range(3), key=lambda k: counts[k])
            counts[j] -= 1
            counts[i] += 1
    return counts


def tagging_plan(n_clips: int = 400, seed: int = 0, split: Sequence[float] = (0.7, 0.1, 0.2),
                 seconds: float = 29.0) -> list[PlannedClip]:
    """Every clip of the tagging flavour, in ``clip_id`` order (ids ``1`` … ``n_clips``).

    Splits are a seeded random draw with the exact counts of ``split``; inside each split the
    latent styles (the six genre recipes plus ``free``) are dealt out evenly, so every split
    holds every style and, with a few dozen clips, every tag. Train clips fill folders ``0``–``b``
    in turn, valid clips folder ``c`` and test clips ``d``–``f``. Labels depend only on
    ``(seed, clip)``; ``seconds`` only names the file (MTAT's ``-<start>-<end>`` suffix).
    """
    import numpy as np

    counts = _split_counts(n_clips, split)
    rng = sa.clip_rng(seed, _PLAN, _TAGGING)
    order = rng.permutation(n_clips)
    split_of = np.empty(n_clips, dtype=object)
    split_of[order[: counts[0]]] = "train"
    split_of[order[counts[0]: counts[0] + counts[1]]] = "valid"
    split_of[order[counts[0] + counts[1]:]] = "test"
    styles = (*sa.GENRES, sa.FREE_STYLE)
    style_of = np.empty(n_clips, dtype=object)
    for name in ("train", "valid", "test"):
        members = np.flatnonzero(split_of == name)
        dealt = np.resize(rng.permutation(len(styles)), len(members))
        style_of[members] = [styles[k] for k in rng.permutation(dealt)]
    folders = {"train": TRAIN_FOLDERS, "valid": VALID_FOLDERS, "test": TEST_FOLDERS}
    used = {"train": 0, "valid": 0, "test": 0}
    end = int(round(seconds))
    plan = []
    for i in range(n_clips):
        clip_id = i + 1
        name = str(split_of[i])
        folder = folders[name][used[name] % len(folders[name])]
        used[name] += 1
        style = str(style_of[i])
        params = sa.sample_params(sa.clip_rng(seed, _TAGGING, clip_id, _LABELS),
                                  sa.GENRE_RECIPES.get(style))
        # <artist>-<album>-<trackno>-<title>-<start>-<end>.mp3, like MTAT's names
        rel = f"{folder}/mcbench_synthetic-seed_{seed}-{clip_id:05d}-{style}-0-{end}.mp3"
        plan.append(PlannedClip(str(clip_id), rel, name, style, params,
                                (seed, _TAGGING, clip_id, _AUDIO)))
    return plan


def genre_plan(n_per_genre: int = 40, seed: int = 0) -> list[PlannedClip]:
    """Every clip of the genre flavour: ``<genre>.000NN`` for NN < ``n_per_genre``, genre order."""
    plan = []
    for g, genre in enumerate(sa.GENRES):
        for k in range(n_per_genre):
            track_id = f"{genre}.{k:05d}"
            params = sa.sample_genre_params(sa.clip_rng(seed, _GENRE, g, k, _LABELS), genre)
            plan.append(PlannedClip(track_id, f"genres/{genre}/{track_id}.wav", "", genre, params,
                                    (seed, _GENRE, g, k, _AUDIO)))
    return plan


# --------------------------------------------------------------------------- writing


def render(clip: PlannedClip, seconds: float, sr: int):
    """The audio of a planned clip (float32 mono)."""
    return sa.generate_clip(sa.clip_rng(*clip.audio_key), clip.params, seconds, sr)


def _write_clip(clip: PlannedClip, folder: str, seconds: float, sr: int, fmt: str, subtype: str) -> None:
    import soundfile as sf

    path = Path(folder) / clip.relpath
    sf.write(str(path), render(clip, seconds, sr), sr, format=fmt, subtype=subtype)


def _run_parallel(fn: Callable, clips: Sequence[PlannedClip], args: tuple, workers: int | None,
                  progress: bool, desc: str) -> None:
    from tqdm.auto import tqdm

    n_jobs = int(workers) if workers else min(os.cpu_count() or 1, max(1, len(clips) // 8))
    with tqdm(total=len(clips), desc=desc, unit="clip", disable=not progress) as bar:
        if n_jobs <= 1:
            for clip in clips:
                fn(clip, *args)
                bar.update(1)
            return
        from joblib import Parallel, delayed

        jobs = Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=4)
        for _ in jobs(delayed(fn)(clip, *args) for clip in clips):
            bar.update(1)


def annotations_text(plan: Sequence[PlannedClip]) -> str:
    """``annotations_final.csv`` in MTAT's exact format.

    Tab-separated, every field double-quoted, header ``clip_id``, the tags in :data:`TAGS`
    order, ``mp3_path``; cells ``"0"``/``"1"``; CRLF line ends; rows by ascending clip_id.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(["clip_id", *TAGS, "mp3_path"])
    for clip in sorted(plan, key=lambda c: int(c.id)):
        present = set(clip.params.tags)
        writer.writerow([clip.id, *("1" if t in present else "0" for t in TAGS), clip.relpath])
    return buffer.getvalue()


def _write_tagging(folder: Path, gen: Mapping[str, Any], runtime: Mapping[str, Any]) -> int:
    plan = tagging_plan(gen["n_clips"], gen["seed"], gen["split"], gen["seconds"])
    for f in TRAIN_FOLDERS + VALID_FOLDERS + TEST_FOLDERS:
        (folder / f).mkdir()
    _run_parallel(_write_clip, plan, (str(folder), gen["seconds"], TAGGING_SAMPLE_RATE, "MP3",
                                      "MPEG_LAYER_III"),
                  runtime.get("workers"), bool(runtime.get("progress", True)),
                  f"generating {NAME}")
    with open(folder / ANNOTATIONS, "w", encoding="utf-8", newline="") as handle:
        handle.write(annotations_text(plan))
    return len(plan)


def _write_genres(folder: Path, gen: Mapping[str, Any], runtime: Mapping[str, Any]) -> int:
    plan = genre_plan(gen["n_per_genre"], gen["seed"])
    for genre in GENRES:
        (folder / "genres" / genre).mkdir(parents=True)
    _run_parallel(_write_clip, plan, (str(folder), gen["seconds"], GENRES_SAMPLE_RATE, "WAV",
                                      "PCM_16"),
                  runtime.get("workers"), bool(runtime.get("progress", True)),
                  f"generating {GENRES_NAME}")
    with open(folder / CLIP_TAGS, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("id\tgenre\ttags\n")
        for clip in plan:
            handle.write(f"{clip.id}\t{clip.style}\t{','.join(clip.params.tags)}\n")
    return len(plan)


def _install(tmp: Path, root: Path) -> None:
    """Move the finished ``tmp`` folder to ``root``: one rename, or entry by entry (marker last)
    when ``root`` already exists (e.g. ``datasets/synthetic`` holding the README)."""
    if not root.exists():
        try:
            os.rename(tmp, root)
            return
        except OSError:
            if not root.is_dir():  # not a race with another generator: a real failure
                raise
    entries = sorted(p for p in tmp.iterdir() if p.name != MARKER)
    for entry in entries:
        os.rename(entry, root / entry.name)
    os.rename(tmp / MARKER, root / MARKER)


#: This machine, in the temporary folder's name: a process id means nothing on another host
#: sharing the folder.
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname() or "host")


def _partial_owner(root: Path, folder: Path) -> tuple[str, int] | None:
    """``(host, pid)`` of a generation's temporary folder beside ``root``, else ``None``."""
    prefix = f".{root.name}.partial-"
    if not folder.name.startswith(prefix):
        return None
    # <host>-<pid>-<tag> (a host name may hold "-"); "<pid>-<tag>" before hosts were recorded
    match = re.fullmatch(r"(?:(?P<host>.+)-)?(?P<pid>\d+)-[0-9a-f]{8}", folder.name[len(prefix):])
    if match is None:
        return None
    return match.group("host") or _HOST, int(match.group("pid"))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def stale_partials(root: Path) -> list[Path]:
    """Temporary folders of generations beside ``root`` whose process (on this host) is gone."""
    root = Path(root)
    if not root.parent.is_dir():
        return []
    stale = []
    for folder in sorted(root.parent.glob(f".{glob.escape(root.name)}.partial-*")):
        owner = _partial_owner(root, folder)
        if owner is not None and folder.is_dir() and owner[0] == _HOST and not _running(owner[1]):
            stale.append(folder)
    return stale


def remove_stale_partials(root: Path) -> list[Path]:
    """Remove what :func:`stale_partials` finds (left by a killed generation); return them."""
    removed = stale_partials(root)
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def _materialize(kind: str, root: Path, params: Mapping[str, Any],
                 writer: Callable[[Path, Mapping, Mapping], int], outputs: Sequence[str]) -> None:
    root = Path(root)
    gen, given, runtime = _normalise(kind, params)
    marker = read_marker(root)
    if marker is not None:
        _check_marker(root, marker, kind, gen, given)
        return
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{kind}: data root {root} exists and is not a folder")
    clash = [name for name in outputs if (root / name).exists()]
    if clash:
        raise DatasetError(
            f"{kind}: {root} already holds {', '.join(clash)} but no {MARKER}: it was not "
            f"generated here (or generation was interrupted while moving files into place). "
            f"Delete those entries, or pass another --root."
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(root)
    # a fresh name beside the root (same file system, so the final move is a rename); mkdir
    # rather than tempfile.mkdtemp, whose 0700 mode would leave the dataset private
    tmp = root.parent / f".{root.name}.partial-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        n_files = writer(tmp, gen, runtime)
        (tmp / MARKER).write_text(
            json.dumps(_marker_content(kind, gen, n_files), indent=2, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        again = read_marker(root)
        if again is not None:  # another process finished first: keep its (identical) data
            _check_marker(root, again, kind, gen, given)
            return
        _install(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def materialize(root: Path, **params: Any) -> None:
    """Generate the ``synthetic`` tagging data under ``root`` unless it is there already.

    Options: ``n_clips`` (400), ``seconds`` (29.0), ``seed`` (0), ``split`` ((0.7, 0.1, 0.2));
    ``workers`` (processes; default: the CPU count) and ``progress`` (True) change nothing in
    the output.
    """
    _materialize(NAME, root, params, _write_tagging, [ANNOTATIONS, *TRAIN_FOLDERS,
                                                       *VALID_FOLDERS, *TEST_FOLDERS])


def materialize_genres(root: Path, **params: Any) -> None:
    """Generate the ``synthetic_genres`` data under ``root`` unless it is there already.

    Options: ``n_per_genre`` (40), ``seconds`` (29.0), ``seed`` (0); ``workers``, ``progress``.
    """
    # "splits" was written by generators before the folds were computed on reading; a root
    # holding one without a marker was not generated here either.
    _materialize(GENRES_NAME, root, params, _write_genres, ["genres", "splits", CLIP_TAGS])


# --------------------------------------------------------------------------- reading


def _min_seconds(seconds: float) -> float:
    # MTAT's rule: at most 0.5 s shorter than the clip length written
    return max(0.0, float(seconds) - 0.5)


def tracks(root: Path, protocol: str = "fixed", fold: int | None = None, **params: Any) -> Partition:
    """The ``synthetic`` splits, read by the MTAT reader (generating the data first if needed)."""
    from .mtat import load_mtat_partition

    if (protocol or "fixed") != "fixed":
        raise DatasetError(f"{NAME}: unknown protocol {protocol!r}; it has only 'fixed'")
    if fold not in (None, 0):
        raise DatasetError(f"{NAME}: the fixed split has no fold {fold!r}")
    materialize(root, **params)
    gen = _resolved_params(root, NAME, params)
    partition = load_mtat_partition(Path(root), dataset=NAME, known_bad=(),
                                    min_seconds=_min_seconds(gen["seconds"]))
    partition.notes["generator"] = {"version": sa.GENERATOR_VERSION, **gen}
    partition.clip_seconds = gen["seconds"]  # the front end takes the clips as generated
    return partition


def tracks_genres(root: Path, protocol: str = "fixed", fold: int | None = None,
                  **params: Any) -> Partition:
    """The ``synthetic_genres`` splits, read by the GTZAN reader (generating first if needed).

    ``cv5`` fold ``i`` is the GTZAN reader's stratified k-fold protocol with k = 5 over the
    generated ids, seeded by the generation seed: test fold ``i``, valid fold ``i + 1 mod 5``.
    ``fixed`` is fold 0 of ``cv5``.
    """
    from .gtzan import load_gtzan_partition

    protocol = protocol or "fixed"
    if protocol not in GENRE_PROTOCOLS:
        raise DatasetError(f"{GENRES_NAME}: unknown protocol {protocol!r}; choose from "
                           f"{sorted(GENRE_PROTOCOLS)}")
    k = 0 if fold is None else int(fold)
    if protocol == "fixed" and k != 0:
        raise DatasetError(f"{GENRES_NAME}: the fixed split has no fold {fold!r}")
    if not 0 <= k < N_FOLDS:
        raise DatasetError(f"{GENRES_NAME}: {CV} has folds 0…{N_FOLDS - 1}, not {fold}")
    materialize_genres(root, **params)
    gen = _resolved_params(root, GENRES_NAME, params)
    partition = load_gtzan_partition(Path(root), protocol=CV, fold=k, seed=gen["seed"],
                                     protocols={CV: N_FOLDS}, dataset=GENRES_NAME,
                                     genres=GENRES, n_per_genre=gen["n_per_genre"],
                                     min_seconds=_min_seconds(gen["seconds"]))
    partition.protocol = protocol
    partition.fold = None if protocol == "fixed" else k
    partition.notes.update(
        split=f"seeded stratified {N_FOLDS}-fold (seed {gen['seed']}): test fold {k}, "
              f"valid fold {(k + 1) % N_FOLDS}, train the other {N_FOLDS - 2}",
        generator={"version": sa.GENERATOR_VERSION, **gen},
    )
    partition.clip_seconds = gen["seconds"]
    return partition


def _marker_notes(root: Path, kind: str) -> list[str]:
    left = [f"{p.name} beside the root was left by an interrupted generation (it is removed by the "
            "next generation, or delete it)" for p in stale_partials(root)]
    return left + _marker_line(root, kind)


def _marker_line(root: Path, kind: str) -> list[str]:
    try:
        marker = read_marker(root)
    except DatasetError as exc:
        return [str(exc)]
    if marker is None:
        return [f"no {MARKER}: this folder was not generated by mcbench (the data is generated "
                f"on first use by `mcbench run` or `mcbench data prepare`)"]
    if marker.get("dataset") != kind:
        return [f"{MARKER} says this is the {marker.get('dataset')!r} dataset, not {kind!r}"]
    line = f"generated by synthetic generator version {marker.get('version')} with {marker.get('params')}"
    if marker.get("version") != sa.GENERATOR_VERSION:
        line += f" (this mcbench has version {sa.GENERATOR_VERSION}: delete the folder to regenerate)"
    return [line]


def _length_note(seconds: float) -> str:
    return (f"clips with less than {_min_seconds(seconds):g} s of audio are skipped (at most 0.5 s "
            f"of zero-padding to the {seconds:g} s the clips were generated with)")


def _interrupted(root: Path, kind: str) -> None:
    """Explain a root that holds no generated data: not generated yet, or a killed generation
    has left its temporary folder beside it."""
    if read_marker(root) is not None or (root.exists() and any(root.iterdir())):
        return
    left = stale_partials(root)
    if left:
        raise DatasetError(
            f"{kind}: {root} holds no generated data: a generation was interrupted and left "
            f"{', '.join(p.name for p in left)} beside it. Run `mcbench data prepare {kind} "
            f"--root {root}` to generate the data again (it removes the leftover)."
        )
    if not root.exists():
        raise DatasetError(
            f"{kind}: {root} does not exist: the data is generated on first use; run "
            f"`mcbench data prepare {kind} --root {root}` (or `mcbench run`) to generate it."
        )


def check(root: Path) -> HealthReport:
    """Health of a ``synthetic`` root: the MTAT checks (headers only) plus the marker."""
    from .mtat import check_mtat

    root = Path(root)
    _interrupted(root, NAME)
    gen = _resolved_params(root, NAME, {})
    report = check_mtat(root, dataset=NAME, min_seconds=_min_seconds(gen["seconds"]),
                        expected_sr=TAGGING_SAMPLE_RATE, known_bad=())
    report.notes = [n for n in report.notes if "jongpillee" not in n]
    report.notes += [_length_note(gen["seconds"]), *_marker_notes(root, NAME)]
    return report


def check_genres(root: Path) -> HealthReport:
    """Health of a ``synthetic_genres`` root: the GTZAN checks (headers only) plus the marker."""
    from .gtzan import check_gtzan

    root = Path(root)
    _interrupted(root, GENRES_NAME)
    gen = _resolved_params(root, GENRES_NAME, {})
    report = check_gtzan(root, dataset=GENRES_NAME, genres=GENRES,
                         n_per_genre=gen["n_per_genre"], expected_sr=GENRES_SAMPLE_RATE,
                         min_seconds=_min_seconds(gen["seconds"]))
    report.notes = [n for n in report.notes if "filtered" not in n and "GTZAN clips" not in n]
    report.notes += [_length_note(gen["seconds"]), *_marker_notes(root, GENRES_NAME)]
    return report


# --------------------------------------------------------------------------- plugin

#: The k-fold protocol of ``synthetic_genres`` (the paper's GTZAN protocol with k = 5).
CV = f"cv{N_FOLDS}"
GENRE_PROTOCOLS = {"fixed": 1, CV: N_FOLDS}

#: Demo training settings for ``synthetic`` (the paper's protocol otherwise applies unchanged),
#: chosen so that ``mcbench run --models all --dataset synthetic`` finishes in under 10 minutes on
#: a 2-core CPU with every deep model well above chance. Every model's cost per epoch is fixed by
#: its design on 96 × 1360 inputs (FCN-4 needs at least 1280 frames), so the budget is spent
#: where it buys most: 280 distinct training clips seen once or twice rather than 144 seen eight
#: times, small batches (more updates per clip; on this CPU batch 4 is also no slower per clip
#: than 8), and more epochs only for the models that are cheap per epoch. Measured from scratch
#: on 2 cores (results/reference/): 7 min 37 s in all; test ROC-AUC FCN-4 0.845 (one epoch,
#: 131 s), CRNN 0.848 (two, 127 s), CRNN-TF 0.881 (two, 69 s), Timbre CNN 0.846 (five, 71 s),
#: End-to-end 0.835 (twelve, 10 s). ``--epochs 50 --batch-size 32`` restores the paper's
#: settings for every model.
TRAIN_DEFAULTS = {"max_epochs": 2, "batch_size": 4}
MODEL_TRAIN_DEFAULTS = {
    "fcn": {"max_epochs": 1},
    "timbre_cnn": {"max_epochs": 5, "batch_size": 8},
    "end_to_end": {"max_epochs": 12, "batch_size": 8},
}
#: ``synthetic_genres`` (144 training clips per fold): eight epochs of batch 8, except for the two
#: models that cost most per clip (FCN-4 about 10 GMAC, CRNN about 1.7), so that the five models
#: of Table II train on it in well under 10 minutes on a 2-core CPU.
GENRES_TRAIN_DEFAULTS = {"max_epochs": 8, "batch_size": 8}
GENRES_MODEL_TRAIN_DEFAULTS = {"fcn": {"max_epochs": 3}, "crnn": {"max_epochs": 4}}

#: Options that change how, not what, is generated (kept out of a run's identity).
_RUNTIME_PARAMS = {
    "workers": Option(int, None, "generation processes (default: the CPU count)", minimum=1,
                      affects_result=False),
    "progress": Option(bool, True, "show a progress bar while generating", affects_result=False),
}
#: The parameters of ``synthetic`` (``--dataset-param KEY=VALUE``), typed; defaults above.
TAGGING_PARAMS = {
    "n_clips": Option(int, TAGGING_DEFAULTS["n_clips"], "clips over train/valid/test", minimum=3),
    "seconds": Option(float, TAGGING_DEFAULTS["seconds"], "length of every clip", minimum=0.01),
    "seed": Option(int, TAGGING_DEFAULTS["seed"], "generation seed", minimum=0),
    "split": Option(float, TAGGING_DEFAULTS["split"], "train/valid/test shares", multiple=True,
                    minimum=0.0),
    **_RUNTIME_PARAMS,
}
#: The parameters of ``synthetic_genres``, typed.
GENRES_PARAMS = {
    "n_per_genre": Option(int, GENRES_DEFAULTS["n_per_genre"], "clips per genre",
                          minimum=N_FOLDS),
    "seconds": Option(float, GENRES_DEFAULTS["seconds"], "length of every clip", minimum=0.01),
    "seed": Option(int, GENRES_DEFAULTS["seed"], "generation seed", minimum=0),
    **_RUNTIME_PARAMS,
}

def expected_split(protocol: str = "fixed", **params) -> ExpectedSplit:
    """The generator's own counts: ``split`` shares of ``n_clips`` (largest remainder)."""
    gen = {**TAGGING_DEFAULTS, **params}
    train, valid, test = _split_counts(int(gen["n_clips"]), gen["split"])
    return ExpectedSplit(train, valid, test, clip_seconds=float(gen["seconds"]))


def expected_split_genres(protocol: str = "fixed", **params) -> ExpectedSplit:
    """``n_per_genre`` clips of each genre in ``N_FOLDS`` stratified folds: one to test, one to
    validate, the others to train (``fixed`` is fold 0)."""
    gen = {**GENRES_DEFAULTS, **params}
    n = int(gen["n_per_genre"]) * len(GENRES)
    fold = n // N_FOLDS
    return ExpectedSplit(n - 2 * fold, fold, fold, clip_seconds=float(gen["seconds"]))


SPEC = DatasetSpec(
    name=NAME,
    summary=f"synthetic music-like clips, {len(TAGS)} tags (spectral and temporal), MTAT layout; "
            "generated on first use",
    task=MULTILABEL,
    tracks=tracks,
    check=check,
    protocols={"fixed": 1},
    default_protocol="fixed",
    sample_rate=TAGGING_SAMPLE_RATE,
    clip_seconds=29.0,
    readme=README,
    materialize=materialize,
    train_defaults=TRAIN_DEFAULTS,
    model_train_defaults=MODEL_TRAIN_DEFAULTS,
    params=TAGGING_PARAMS,
    expected_split=expected_split,
    # the vocabulary; a Partition lists the tags that occur, by count, as the MTAT top-50 tag list is chosen (Law et al. 2009)
    labels=TAGS,
)

GENRES_SPEC = DatasetSpec(
    name=GENRES_NAME,
    summary=f"synthetic music-like clips, {len(GENRES)} genres defined by tag recipes, GTZAN "
            "layout; generated on first use",
    task=MULTICLASS,
    tracks=tracks_genres,
    check=check_genres,
    protocols=GENRE_PROTOCOLS,
    default_protocol="fixed",
    sample_rate=GENRES_SAMPLE_RATE,
    clip_seconds=29.0,
    readme=README,
    materialize=materialize_genres,
    train_defaults=GENRES_TRAIN_DEFAULTS,
    model_train_defaults=GENRES_MODEL_TRAIN_DEFAULTS,
    labels=GENRES,
    params=GENRES_PARAMS,
    expected_split=expected_split_genres,
)


@hookimpl
def mcbench_datasets() -> list[DatasetSpec]:
    return [SPEC, GENRES_SPEC]
