"""MagnaTagATune (MTAT) top-50 tagging with the standard 12 : 1 : 3 folder split (datasets.md §2).

The paper (Wang et al. 2019, Sec. IV-A, Table II) uses MTAT's 50 most frequent tags and the split
of Dieleman & Schrauwen (2014): folders ``0``–``b`` train, ``c`` valid, ``d``–``f`` test.

Reusable pieces (the ``synthetic`` dataset writes the same on-disk format and reuses them):

- :func:`read_annotations` parses ``annotations_final.csv`` (§2.2: tab-separated, every field
  double-quoted, CRLF or LF) with the ``csv`` module;
- :func:`top_tags` ranks tags by (count descending, name ascending), §2.3;
- :func:`split_of` maps an ``mp3_path`` to its split, §2.4;
- :func:`load_mtat_partition` runs the whole §2.4 procedure and records every drop;
- :func:`check_mtat` reports the layout and every bad file from audio headers only.

numpy is imported inside functions so that listing plugins stays cheap.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcbench import hookimpl
from mcbench.specs import (
    MULTILABEL,
    DatasetError,
    DatasetSpec,
    Dropped,
    HealthReport,
    Partition,
    Split,
    Track,
)

from .common import dataset_readme, file_problem, probe_audio, require_root, resolve_inside

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

NAME = "mtat"
ANNOTATIONS = "annotations_final.csv"
#: The 16 audio folders of the unzipped ``mp3.zip`` (§2.1).
FOLDERS = tuple("0123456789abcdef")
#: Folder → split (§2.4 step 2; Dieleman & Schrauwen 2014).
FOLDER_SPLIT = {**{f: "train" for f in "0123456789ab"}, "c": "valid", "d": "test", "e": "test", "f": "test"}
SAMPLE_RATE = 16_000
#: Default length rule (§2.4 step 4): at most 0.5 s of zero-padding to the 29.0 s front-end input.
MIN_SECONDS = 28.5
#: jongpillee/music_dataset_split keeps only clips with at least 29.1 s of decoded audio.
JONGPILLEE_MIN_SECONDS = 29.1

#: The three unusable clips of §2.5 (jordipons/musicnn-training ``aux/mtt/partition_gt.py``):
#: clip_id → (mp3_path, problem). All are in training folders.
KNOWN_BAD = {
    "35644": ("6/norine_braun-now_and_zen-08-gently-117-146.mp3", "missing/empty in the mp3 archive"),
    "55753": (
        "8/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3",
        "corrupted mp3",
    ),
    "57881": (
        "9/american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien_xiveme_"
        "ordre_couperin-88-117.mp3",
        "corrupted mp3",
    ),
}
KNOWN_BAD_IDS: tuple[str, ...] = tuple(KNOWN_BAD)

#: Step names recorded on dropped clips and in ``Partition.notes["dropped_per_step"]``.
STEP_SPLIT = "split"
STEP_NO_TAGS = "no_top_tags"
STEP_KNOWN_BAD = "known_bad"
STEP_AUDIO = "missing_audio"


# --------------------------------------------------------------------------- annotations


@dataclass
class Annotations:
    """The parsed tag matrix of ``annotations_final.csv``, in file row order."""

    clip_ids: list[str]
    paths: list[str]
    tag_names: list[str]
    #: ``(N, n_tags)`` uint8, 1 where the tag applies, columns in ``tag_names`` order.
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.clip_ids)


def read_annotations(path: Path) -> Annotations:
    """Parse ``annotations_final.csv`` (datasets.md §2.2).

    The file is tab-separated with every field double-quoted; the header is ``clip_id``, the tag
    names, ``mp3_path``; cells are ``0`` or ``1``; line ends are CRLF or LF (``newline=""`` hands
    both to the csv module, which removes them). A malformed row raises :class:`DatasetError`
    naming the file and the line.
    """
    import numpy as np

    path = Path(path)
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # tolerate a byte-order mark
    except OSError as exc:
        raise DatasetError(f"cannot open {path}: {exc.strerror or exc}") from exc
    clip_ids: list[str] = []
    paths: list[str] = []
    cells: list[str] = []
    seen: dict[str, int] = {}
    with handle:
        reader = csv.reader(handle, delimiter="\t", quotechar='"', strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path} is empty; expected the {ANNOTATIONS} tag matrix")
            if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
                raise DatasetError(
                    f"{path}, line 1: expected a tab-separated header 'clip_id', <tags…>, "
                    f"'mp3_path', found {header[:2]!r}…{header[-1:]!r} ({len(header)} fields). "
                    "Is this MTAT's annotations_final.csv (tab-separated despite its name)?"
                )
            tag_names = header[1:-1]
            duplicated = sorted({t for t in tag_names if tag_names.count(t) > 1})
            if duplicated:
                raise DatasetError(f"{path}, line 1: tag columns appear twice: {duplicated}")
            n_fields = len(header)
            allowed = {"0", "1"}
            for row in reader:
                line = reader.line_num
                if not row or row == [""]:
                    continue  # a blank (e.g. trailing) line
                if len(row) != n_fields:
                    raise DatasetError(
                        f"{path}, line {line}: expected {n_fields} tab-separated fields, "
                        f"found {len(row)}"
                    )
                clip_id = row[0].strip()
                if not clip_id:
                    raise DatasetError(f"{path}, line {line}: empty clip_id")
                if clip_id in seen:
                    raise DatasetError(
                        f"{path}, line {line}: clip_id {clip_id!r} already on line {seen[clip_id]}"
                    )
                tags = row[1:-1]
                if not allowed.issuperset(tags):
                    bad = next(t for t in tags if t not in allowed)
                    raise DatasetError(
                        f"{path}, line {line}: tag cells must be \"0\" or \"1\", found {bad!r}"
                    )
                mp3_path = row[-1].strip()
                if not mp3_path:
                    raise DatasetError(f"{path}, line {line}: empty mp3_path")
                seen[clip_id] = line
                clip_ids.append(clip_id)
                paths.append(mp3_path)
                cells.append("".join(tags))
        except csv.Error as exc:
            raise DatasetError(f"{path}, line {reader.line_num}: {exc}") from exc
    n_tags = len(tag_names)
    flat = np.frombuffer("".join(cells).encode("ascii"), dtype=np.uint8)
    matrix = (flat - ord("0")).reshape(len(clip_ids), n_tags).astype(np.uint8)
    return Annotations(clip_ids, paths, list(tag_names), matrix)


def top_tags(tag_names: Sequence[str], counts: Sequence[int] | np.ndarray, k: int = 50) -> list[str]:
    """The ``k`` most frequent tags (datasets.md §2.3, §6).

    Sorted by (count descending, tag name ascending), an explicit key rather than an argsort whose
    tie order depends on the algorithm; tags with a zero count are never chosen, so with fewer than
    ``k`` used tags all of them are returned.
    """
    if len(tag_names) != len(counts):
        raise ValueError(f"{len(tag_names)} tag names but {len(counts)} counts")
    ranked = sorted((-int(c), str(name)) for name, c in zip(tag_names, counts, strict=True) if int(c) > 0)
    return [name for _, name in ranked[:k]]


def split_of(mp3_path: str) -> str | None:
    """``train`` (folders ``0``–``b``), ``valid`` (``c``), ``test`` (``d``–``f``), else ``None``."""
    folder = mp3_path.replace("\\", "/").split("/", 1)[0]
    return FOLDER_SPLIT.get(folder)


def audio_dir(root: Path) -> Path | None:
    """The folder holding ``0``…``f``: the root itself, else ``<root>/mp3`` (§2.1); else None."""
    for base in (root, root / "mp3"):
        if any((base / f).is_dir() for f in FOLDERS):
            return base
    return None


# --------------------------------------------------------------------------- split


def load_mtat_partition(
    root: Path,
    *,
    dataset: str = NAME,
    top_k: int = 50,
    tags: Sequence[str] | None = None,
    known_bad: Iterable[str] = KNOWN_BAD_IDS,
    min_seconds: float = MIN_SECONDS,
    check_files: bool = True,
) -> Partition:
    """The standard MTAT split (datasets.md §2.4).

    1. Parse ``<root>/annotations_final.csv``; the labels are ``tags`` when given, else the
       top-``top_k`` tags counted over **all** rows (§2.3).
    2. Split by the folder of ``mp3_path``: ``0``–``b`` train, ``c`` valid, ``d``–``f`` test.
    3. Drop clips with none of the labels.
    4. Drop the known bad clips (§2.5) and, when ``check_files``, clips whose audio file is
       missing or empty (one ``stat`` each; decoding is the feature store's job, which also drops
       clips that decode shorter than ``min_seconds`` and logs their decoded length).
    5. Keep the annotation row order inside each split.

    Every drop is recorded (id, path, reason, step) and the count per step is in
    ``Partition.notes``. Audio paths are resolved under the root, or under ``<root>/mp3``; a path
    that escapes the root raises :class:`DatasetError`.
    """
    import numpy as np

    readme = dataset_readme(dataset)
    root = require_root(root, dataset, [ANNOTATIONS], readme)
    annotations = read_annotations(root / ANNOTATIONS)
    if tags is None:
        labels = top_tags(annotations.tag_names, annotations.matrix.sum(axis=0, dtype=np.int64), top_k)
        label_source = f"top {top_k} by count over all {len(annotations)} rows"
    else:
        labels = [str(t) for t in tags]
        unknown = [t for t in labels if t not in annotations.tag_names]
        if unknown:
            raise DatasetError(f"{root / ANNOTATIONS}: tags {unknown} are not columns of the file")
        if len(set(labels)) != len(labels):
            raise DatasetError(f"tags given twice: {sorted({t for t in labels if labels.count(t) > 1})}")
        label_source = "given"
    if not labels:
        raise DatasetError(f"{root / ANNOTATIONS}: no tag is used by any clip")
    column = {name: i for i, name in enumerate(annotations.tag_names)}
    y = annotations.matrix[:, [column[t] for t in labels]]

    base = audio_dir(root)
    if base is None:
        if check_files:
            raise DatasetError(
                f"{dataset}: no audio folders 0…f under {root} or {root / 'mp3'}. Unzip the "
                f"concatenated mp3.zip parts there (see {readme}), or pass --root PATH."
            )
        base = root

    known = {str(i) for i in known_bad}
    splits: dict[str, list[Track]] = {"train": [], "valid": [], "test": []}
    dropped: list[Dropped] = []
    before = {"train": 0, "valid": 0, "test": 0}
    steps = (STEP_SPLIT, STEP_NO_TAGS, STEP_KNOWN_BAD, STEP_AUDIO)
    per_split = {s: dict.fromkeys(steps[1:], 0) for s in splits}
    for i, (clip_id, rel) in enumerate(zip(annotations.clip_ids, annotations.paths, strict=True)):
        path = resolve_inside(base, rel)
        split = split_of(rel)
        if split is None:
            dropped.append(Dropped(clip_id, str(path), "mp3_path is not in a folder 0…f", STEP_SPLIT))
            continue
        before[split] += 1
        positives = np.flatnonzero(y[i])
        if positives.size == 0:
            drop = Dropped(clip_id, str(path), f"none of the {len(labels)} tags", STEP_NO_TAGS)
        elif clip_id in known:
            problem = KNOWN_BAD.get(clip_id, ("", "listed as a known bad clip"))[1]
            drop = Dropped(clip_id, str(path), f"known bad clip: {problem}", STEP_KNOWN_BAD)
        elif check_files and (problem := file_problem(path)) is not None:
            drop = Dropped(clip_id, str(path), f"audio file {problem}", STEP_AUDIO)
        else:
            splits[split].append(Track(clip_id, path, tuple(int(p) for p in positives)))
            continue
        dropped.append(drop)
        per_split[split][drop.step] += 1

    per_step = {s: sum(1 for d in dropped if d.step == s) for s in steps}
    notes: dict[str, Any] = {
        "annotations": str(root / ANNOTATIONS),
        "audio_dir": str(base),
        "rows": len(annotations),
        "labels_from": label_source,
        "rows_per_split": before,
        "dropped_per_step": per_step,
        "dropped_per_split": per_split,
        "kept_per_split": {s: len(t) for s, t in splits.items()},
        "known_bad": sorted(known, key=lambda s: (len(s), s)),
        "check_files": check_files,
        "min_seconds": float(min_seconds),
    }
    return Partition(
        dataset=dataset,
        protocol="fixed",
        fold=None,
        labels=labels,
        splits={name: Split(name, tracks) for name, tracks in splits.items()},
        dropped=dropped,
        notes=notes,
        min_seconds=float(min_seconds),
    )


def check_mtat(
    root: Path,
    *,
    dataset: str = NAME,
    min_seconds: float = MIN_SECONDS,
    expected_sr: int | None = SAMPLE_RATE,
    progress: bool = True,
) -> HealthReport:
    """Health report of an MTAT root (datasets.md §1 "Bad audio", §2.4 step 4).

    Finds the annotations and the audio folders, reads every listed file's header (never the
    samples) and reports missing, empty, unreadable, short and wrongly sampled files, the
    distribution of lengths and sample rates, and mp3 files on disk that no row lists.
    """
    readme = dataset_readme(dataset)
    root = require_root(root, dataset, [ANNOTATIONS], readme)
    annotations = read_annotations(root / ANNOTATIONS)
    base = audio_dir(root)
    notes: list[str] = []
    if base is None:
        notes.append(f"no audio folders 0…f under {root} or {root / 'mp3'}; see {readme}")
        layout = f"{ANNOTATIONS} without audio folders"
        base = root
    else:
        where = "the root" if base == root else "<root>/mp3"
        present = [f for f in FOLDERS if (base / f).is_dir()]
        layout = f"{ANNOTATIONS} + audio folders under {where}"
        missing_folders = [f for f in FOLDERS if f not in present]
        if missing_folders:
            notes.append(f"audio folders missing: {', '.join(missing_folders)}")

    problems: list[Dropped] = []
    items: list[tuple[str, Path]] = []
    listed: set[str] = set()
    for clip_id, rel in zip(annotations.clip_ids, annotations.paths, strict=True):
        try:
            path = resolve_inside(base, rel)
        except DatasetError as exc:
            problems.append(Dropped(clip_id, rel, str(exc), "path"))
            continue
        listed.add(os.path.normcase(str(path)))
        items.append((clip_id, path))
    probed, stats = probe_audio(items, expected_sr=expected_sr, min_seconds=min_seconds, progress=progress)
    problems += probed
    n_absent = sum(1 for p in probed if p.reason == "missing")
    n_found = len(items) - n_absent

    on_disk = [p for f in FOLDERS if (base / f).is_dir() for p in (base / f).glob("*.mp3")]
    unlisted = [p for p in on_disk if os.path.normcase(str(p.resolve())) not in listed]
    if unlisted:
        notes.append(f"{len(unlisted)} mp3 files on disk are not listed in {ANNOTATIONS}")
    listed_ids = set(annotations.clip_ids)
    bad_here = [clip_id for clip_id in KNOWN_BAD_IDS if clip_id in listed_ids]
    if bad_here:
        notes.append(f"known bad clips, always dropped by the split: {', '.join(bad_here)}")
    notes.append(
        f"clips with less than {min_seconds:g} s of audio are dropped (pass min_duration="
        f"{JONGPILLEE_MIN_SECONDS} for the jongpillee/music_dataset_split convention)"
    )
    return HealthReport(
        dataset=dataset,
        root=root,
        layout=layout,
        n_listed=len(annotations),
        n_found=n_found,
        problems=problems,
        stats=stats,
        notes=notes,
    )


# --------------------------------------------------------------------------- plugin

_TRACK_PARAMS = ("top_k", "tags", "known_bad", "min_seconds", "min_duration", "check_files")


def tracks(root: Path, protocol: str = "fixed", fold: int | None = None, **params: Any) -> Partition:
    """``DatasetSpec.tracks`` for MTAT: the fixed folder split (:func:`load_mtat_partition`).

    ``min_duration`` is accepted as another name for ``min_seconds`` (jongpillee's convention
    is ``min_duration=29.1``). ``tags`` and ``known_bad`` may be comma-separated strings, as
    ``--dataset-param tags=guitar,rock`` gives them.
    """
    protocol = protocol or "fixed"
    if protocol != "fixed":
        raise DatasetError(f"{NAME}: unknown protocol {protocol!r}; MTAT has only 'fixed'")
    if fold not in (None, 0):
        raise DatasetError(f"{NAME}: the fixed split has no fold {fold!r}")
    unknown = sorted(set(params) - set(_TRACK_PARAMS))
    if unknown:
        raise DatasetError(f"{NAME}: unknown option(s) {unknown}; accepted: {list(_TRACK_PARAMS)}")
    if "min_duration" in params:
        if "min_seconds" in params and float(params["min_seconds"]) != float(params["min_duration"]):
            raise DatasetError(f"{NAME}: give min_seconds or min_duration, not both")
        params["min_seconds"] = params.pop("min_duration")
    if "min_seconds" in params:
        params["min_seconds"] = float(params["min_seconds"])
    if "top_k" in params:
        params["top_k"] = int(params["top_k"])
    for key in ("tags", "known_bad"):  # from the command line: "guitar,rock" or a JSON list
        if isinstance(params.get(key), str):
            params[key] = [t.strip() for t in params[key].split(",") if t.strip()]
    return load_mtat_partition(Path(root), **params)


def check(root: Path) -> HealthReport:
    """``DatasetSpec.check`` for MTAT."""
    return check_mtat(Path(root))


SPEC = DatasetSpec(
    name=NAME,
    summary="MagnaTagATune, top-50 tags, standard 12:1:3 folder split (Dieleman & Schrauwen 2014)",
    task=MULTILABEL,
    tracks=tracks,
    check=check,
    protocols={"fixed": 1},
    default_protocol="fixed",
    sample_rate=SAMPLE_RATE,
    clip_seconds=29.0,
    readme="datasets/mtat/README.md",
)


@hookimpl
def mcbench_datasets() -> list[DatasetSpec]:
    return [SPEC]
