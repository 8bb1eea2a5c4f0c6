"""MagnaTagATune (MTAT) top-50 tagging with the standard 12 : 1 : 3 folder split.

The paper (Wang et al. 2019, Sec. V-A, Table I) uses MTAT's 50 most frequent tags and the split
of Dieleman & Schrauwen (2014): folders ``0``–``b`` train, ``c`` valid, ``d``–``f`` test.

Reusable pieces (the ``synthetic`` dataset writes the same on-disk format and reuses them):

- :func:`read_annotations` parses ``annotations_final.csv`` (tab-separated despite its name,
  every field double-quoted, CRLF or LF) with the ``csv`` module;
- :func:`top_tags` ranks tags by (count descending, name ascending);
- :func:`split_of` maps an ``mp3_path`` to its split;
- :func:`load_mtat_partition` builds the split and records every clip left out;
- :func:`check_mtat` reports the layout and every bad file from audio headers only.

Faults, decided once for ``check`` and ``prepare`` (see ``plugins/datasets/common.py``): a clip
whose file is missing, empty, unreadable, truncated or too short, or whose path leaves the data
root, is skipped and reported; an ``annotations_final.csv`` that cannot be parsed or lists no
clip stops the dataset with a message naming the file; a sample rate other than 16 kHz, the
three known bad clips and clips with none of the top-50 tags are notes in ``check`` (the split
always leaves the latter two out, and ``prepare`` lists them among the skipped clips).

numpy is imported inside functions so that listing plugins stays cheap.
"""

from __future__ import annotations

import csv
import itertools
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
    ExpectedSplit,
    HealthReport,
    Option,
    Partition,
    Split,
    Track,
    resolve_options,
)

from .common import (
    KNOWN_BAD_CLIP,
    NO_LABEL,
    NO_SPLIT,
    appledouble_note,
    dataset_readme,
    file_fault,
    is_appledouble,
    outside_root,
    probe_audio,
    require_root,
    resolve_inside,
    sample_rate_note,
    stop,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

NAME = "mtat"
ANNOTATIONS = "annotations_final.csv"
#: Where the annotation file and the audio are published.
SOURCE_URL = "https://mirg.city.ac.uk/codeapps/the-magnatagatune-dataset"
#: The 16 audio folders of the unzipped ``mp3.zip``.
FOLDERS = tuple("0123456789abcdef")
#: Folder → split (Dieleman & Schrauwen 2014).
FOLDER_SPLIT = {**{f: "train" for f in "0123456789ab"}, "c": "valid", "d": "test", "e": "test", "f": "test"}
SAMPLE_RATE = 16_000
#: Default length rule: at most 0.5 s of zero-padding to the 29.0 s front-end input (MTAT clips
#: decode to about 29.1 s, so only a clip that lost audio falls below).
MIN_SECONDS = 28.5
#: jongpillee/music_dataset_split keeps only clips with at least 29.1 s of decoded audio.
JONGPILLEE_MIN_SECONDS = 29.1

#: The three unusable clips of the release (jordipons/musicnn-training ``aux/mtt/partition_gt.py``):
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
STEP_PATH = "path"


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


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> DatasetError:
    """Name the file, the line and the byte that is not UTF-8 (text decoding reads ahead in
    blocks, so the line is found again from the raw bytes)."""
    try:
        data = path.read_bytes()
        data.decode("utf-8")
        line, byte = "?", "?"
    except UnicodeDecodeError as again:
        line, byte = data.count(b"\n", 0, again.start) + 1, f"0x{data[again.start]:02x}"
    except OSError:
        line, byte = "?", "?"
    return DatasetError(
        f"{path}, line {line}: not UTF-8 text (byte {byte}). MTAT's {ANNOTATIONS} is plain ASCII; "
        f"download it again from {SOURCE_URL}, or convert this copy to UTF-8 "
        f"(e.g. iconv -f latin1 -t utf-8)"
    )


def read_annotations(path: Path) -> Annotations:
    """Parse ``annotations_final.csv``.

    The file is tab-separated with every field double-quoted; the header is ``clip_id``, the tag
    names, ``mp3_path``; cells are ``0`` or ``1``; line ends are CRLF or LF (``newline=""`` hands
    both to the csv module, which removes them). A file that is not UTF-8, not tab-separated,
    lists no clip or has a malformed row raises :class:`DatasetError` naming the file and the
    line: the dataset cannot be used until the file is replaced.
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
        try:
            first = handle.readline()
            if not first.strip():
                raise DatasetError(
                    f"{path} is empty; expected the {ANNOTATIONS} tag matrix "
                    f"(download it again from {SOURCE_URL})"
                )
            if "\t" not in first:
                commas = first.count(",")
                raise DatasetError(
                    f"{path} is not tab-separated: its first line has no tab"
                    + (f" but {commas} commas" if commas else "")
                    + f". MTAT's {ANNOTATIONS} is tab-separated despite its name, every field "
                    "double-quoted; a spreadsheet program may have saved it again with commas. "
                    f"Download it again from {SOURCE_URL}"
                )
            reader = csv.reader(itertools.chain([first], handle), delimiter="\t", quotechar='"',
                                strict=True)
            header = next(reader)
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
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from exc
    if not clip_ids:
        raise DatasetError(
            f"{path} lists no clips: it holds only the header line (the real file has 25,863 "
            f"rows). Download it again from {SOURCE_URL}"
        )
    n_tags = len(tag_names)
    flat = np.frombuffer("".join(cells).encode("ascii"), dtype=np.uint8)
    matrix = (flat - ord("0")).reshape(len(clip_ids), n_tags).astype(np.uint8)
    return Annotations(clip_ids, paths, list(tag_names), matrix)


def top_tags(tag_names: Sequence[str], counts: Sequence[int] | np.ndarray, k: int = 50) -> list[str]:
    """The ``k`` most frequent tags.

    Sorted by (count descending, tag name ascending), an explicit key rather than an argsort whose
    tie order depends on the algorithm (in the real data "female voice" and "metal" tie at the
    boundary, and the public lists order them differently); tags with a zero count are never
    chosen, so with fewer than ``k`` used tags all of them are returned.
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
    """The folder holding ``0``…``f``: the root itself, else ``<root>/mp3``; else None."""
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
    """The standard MTAT split.

    1. Parse ``<root>/annotations_final.csv``; the labels are ``tags`` when given, else the
       top-``top_k`` tags counted over **all** rows.
    2. Split by the folder of ``mp3_path``: ``0``–``b`` train, ``c`` valid, ``d``–``f`` test.
    3. Drop clips with none of the labels.
    4. Drop the known bad clips and, when ``check_files``, clips whose path leaves the data
       root or whose audio file is missing or empty (one ``stat`` each; decoding is the feature
       store's job, which also drops clips that are truncated or decode shorter than
       ``min_seconds``, and logs their decoded length).
    5. Keep the annotation row order inside each split.

    Every drop is recorded (id, path, reason, step, kind) and the count per step is in
    ``Partition.notes``. Audio paths are resolved under the root, or under ``<root>/mp3``.
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
        raise DatasetError(
            f"{root / ANNOTATIONS}: no tag is used by any clip (every tag cell is \"0\"); "
            f"download the file again from {SOURCE_URL}"
        )
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
    steps = (STEP_SPLIT, STEP_NO_TAGS, STEP_KNOWN_BAD, STEP_PATH, STEP_AUDIO)
    per_split = {s: dict.fromkeys(steps[1:], 0) for s in splits}
    for i, (clip_id, rel) in enumerate(zip(annotations.clip_ids, annotations.paths, strict=True)):
        split = split_of(rel)
        try:
            path = resolve_inside(base, rel)
        except DatasetError as exc:  # never opened, whatever its folder says
            dropped.append(outside_root(clip_id, rel, exc, STEP_PATH))
            if split is not None:
                before[split] += 1
                per_split[split][STEP_PATH] += 1
            continue
        if split is None:
            dropped.append(Dropped(clip_id, str(path), "mp3_path is not in a folder 0…f", STEP_SPLIT,
                                   NO_SPLIT))
            continue
        before[split] += 1
        positives = np.flatnonzero(y[i])
        if positives.size == 0:
            drop = Dropped(clip_id, str(path), f"none of the {len(labels)} tags", STEP_NO_TAGS,
                           NO_LABEL)
        elif clip_id in known:
            problem = KNOWN_BAD.get(clip_id, ("", "listed as a known bad clip"))[1]
            drop = Dropped(clip_id, str(path), f"known bad clip: {problem}", STEP_KNOWN_BAD,
                           KNOWN_BAD_CLIP)
        elif check_files and (fault := file_fault(path)) is not None:
            drop = Dropped(clip_id, str(path), f"audio file {fault[1]}", STEP_AUDIO, fault[0])
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
    known_bad: Iterable[str] = KNOWN_BAD_IDS,
    progress: bool = True,
) -> HealthReport:
    """Health report of an MTAT root, from audio headers only.

    Finds the annotations and the audio folders, reads every listed file's header (never the
    samples) and reports, as clips that will be skipped, files that are missing, empty,
    unreadable, truncated or shorter than ``min_seconds`` and paths that leave the root; an
    unusable annotation file is reported as the fault that stops the dataset. Notes: the
    distribution of lengths and sample rates, clips at another rate than ``expected_sr`` (they
    are resampled and used), mp3 files on disk that no row lists, ignored macOS ``._*`` files,
    the known bad clips (always left out, never probed) and clips with none of the top-50 tags.
    """
    import numpy as np

    readme = dataset_readme(dataset)
    root = require_root(root, dataset, [ANNOTATIONS], readme)
    try:
        annotations = read_annotations(root / ANNOTATIONS)
    except DatasetError as exc:
        return HealthReport(dataset=dataset, root=root, layout=f"{ANNOTATIONS} (unusable)",
                            n_listed=0, n_found=0, problems=[stop(dataset, root / ANNOTATIONS, str(exc))])
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

    known = {str(i) for i in known_bad}
    problems: list[Dropped] = []
    items: list[tuple[str, Path]] = []
    listed: set[str] = set()
    for clip_id, rel in zip(annotations.clip_ids, annotations.paths, strict=True):
        listed.add(os.path.normcase(os.path.normpath(os.path.join(base, rel))))
        try:
            path = resolve_inside(base, rel)
        except DatasetError as exc:
            problems.append(outside_root(clip_id, rel, exc, STEP_PATH))
            continue
        listed.add(os.path.normcase(str(path)))
        if clip_id not in known:
            items.append((clip_id, path))
    probed, stats = probe_audio(items, expected_sr=expected_sr, min_seconds=min_seconds, progress=progress)
    problems += probed
    n_absent = sum(1 for p in probed if p.reason == "missing")
    n_found = len(items) - n_absent

    on_disk = [p for f in FOLDERS if (base / f).is_dir() for p in (base / f).glob("*.mp3")]
    stubs = sum(1 for p in on_disk if is_appledouble(p.name))
    unlisted = [p for p in on_disk if not is_appledouble(p.name)
                and not {os.path.normcase(str(p)), os.path.normcase(str(p.resolve()))} & listed]
    if unlisted:
        notes.append(
            f"{len(unlisted)} mp3 file(s) on disk are not listed in {ANNOTATIONS} and are not "
            f"used (e.g. {', '.join(str(p.relative_to(base)) for p in sorted(unlisted)[:3])})"
        )
    notes += [n for n in (appledouble_note(stubs), sample_rate_note(stats)) if n]
    listed_ids = set(annotations.clip_ids)
    bad_here = [clip_id for clip_id in KNOWN_BAD_IDS if clip_id in listed_ids and clip_id in known]
    if bad_here:
        notes.append(
            "known bad clips of the MTAT release (jordipons/musicnn-training), always left out "
            "and not probed: "
            + ", ".join(f"{c} ({KNOWN_BAD[c][1]})" for c in bad_here)
        )
    counts = annotations.matrix.sum(axis=0, dtype=np.int64)
    top = top_tags(annotations.tag_names, counts)
    column = [annotations.tag_names.index(t) for t in top]
    n_untagged = int((annotations.matrix[:, column].sum(axis=1) == 0).sum()) if top else len(annotations)
    if n_untagged:
        notes.append(f"{n_untagged} clip(s) have none of the top-{len(top)} tags and are left out "
                     "by the split")
    notes.append(
        f"clips with less than {min_seconds:g} s of audio are skipped (at most 0.5 s of "
        f"zero-padding to the 29 s input; pass min_duration={JONGPILLEE_MIN_SECONDS} for the "
        "jongpillee/music_dataset_split convention)"
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

#: The parameters of :func:`tracks` (``--dataset-param KEY=VALUE``), typed.
PARAMS = {
    "top_k": Option(int, 50, "the labels are the top_k most frequent tags over all rows",
                    minimum=1),
    "tags": Option(str, None, "an explicit label list instead of the top_k (comma-separated)",
                   multiple=True),
    "known_bad": Option(str, tuple(KNOWN_BAD_IDS), "clip ids left out as known bad",
                        multiple=True),
    "min_seconds": Option(float, MIN_SECONDS, "clips that decode shorter are dropped",
                          minimum=0.0),
    "check_files": Option(bool, True, "drop clips whose audio file is missing or empty"),
}


def tracks(root: Path, protocol: str = "fixed", fold: int | None = None, **params: Any) -> Partition:
    """``DatasetSpec.tracks`` for MTAT: the fixed folder split (:func:`load_mtat_partition`);
    ``params`` are those of :data:`PARAMS`, typed here (the harness has typed them already when it calls)."""
    protocol = protocol or "fixed"
    if protocol != "fixed":
        raise DatasetError(f"{NAME}: unknown protocol {protocol!r}; MTAT has only 'fixed'")
    if fold not in (None, 0):
        raise DatasetError(f"{NAME}: the fixed split has no fold {fold!r}")
    params = resolve_options(PARAMS, params, owner=f"dataset {NAME!r}")
    for key in ("tags", "known_bad"):
        if params.get(key) is not None:
            params[key] = list(params[key])
    return load_mtat_partition(Path(root), **params)


def check(root: Path) -> HealthReport:
    """``DatasetSpec.check`` for MTAT."""
    return check_mtat(Path(root))


def expected_split(protocol: str = "fixed", **params) -> ExpectedSplit:
    """The standard split's clip counts after the reader's drops (empty and too-short clips),
    as in the published split lists of Lee et al. (jongpillee/music_dataset_split)."""
    return ExpectedSplit(train=15_244, valid=1_529, test=4_332)


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
    params=PARAMS,
    expected_split=expected_split,
)


@hookimpl
def mcbench_datasets() -> list[DatasetSpec]:
    return [SPEC]
