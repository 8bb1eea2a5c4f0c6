"""GTZAN genre classification, the paper's transfer target (Wang et al. 2019, Sec. V-G, Table III).

Protocols:

- ``cv10`` (default, the paper's): seeded stratified 10-fold cross-validation over the 1,000
  canonical ids; trial ``i`` tests on fold ``i``, selects on fold ``(i + 1) mod 10`` (mcbench
  never selects on test) and trains on the other eight. Folds are assigned before any file is
  looked at, so a missing or broken file leaves every other clip's fold unchanged.
- ``filtered``: the fault-filtered, artist-disjoint split of Kereliuk, Sturm & Larsen (2015),
  read from ``train_filtered.txt``, ``valid_filtered.txt`` and ``test_filtered.txt``.

Four on-disk layouts are recognised (detected in this order): ``genres/<g>/*.wav``
(genres.tar.gz), ``genres/<g>/*.au`` (Marsyas), ``Data/genres_original/<g>/*.wav`` (Kaggle) and
``<g>/<g>.000NN.*`` directly under the root. macOS ``._*`` stubs are ignored.

Faults, decided once for ``check`` and ``prepare`` (see ``plugins/datasets/common.py``): a clip
whose file is missing, empty, unreadable (the Kaggle copy's ``jazz.00054.wav`` is not a RIFF
file), truncated, shorter than :data:`MIN_SECONDS` or a link leaving the data root is skipped
and reported; a malformed list file stops the ``filtered`` protocol with a message naming the
file and line; another sample rate, folders that are no genre and ``._*`` files are notes.

numpy and scikit-learn are imported inside functions so that listing plugins stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcbench import hookimpl
from mcbench.specs import (
    MULTICLASS,
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
    MISSING,
    appledouble_note,
    dataset_readme,
    file_fault,
    is_appledouble,
    outside_root,
    probe_audio,
    require_root,
    resolve_inside,
    sample_rate_note,
)

NAME = "gtzan"
#: Canonical label order: the folder names, alphabetical. mirdata spells hiphop "hip-hop".
GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)
SAMPLE_RATE = 22_050
N_PER_GENRE = 100
N_FOLDS = 10
PROTOCOLS = {"cv10": N_FOLDS, "filtered": 1}
LIST_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}
#: Length rule, MTAT's: at most 0.5 s of zero-padding to the 29.0 s front-end input. GTZAN clips
#: last 30 s (a few 29.9 s), so only a damaged or cut clip falls below.
MIN_SECONDS = 28.5

#: Layout name → (folder of the genre folders relative to the root, accepted suffixes), in
#: detection order.
LAYOUTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("genres/<genre>/*.wav", "genres", (".wav",)),
    ("genres/<genre>/*.au", "genres", (".au",)),
    ("Data/genres_original/<genre>/*.wav", "Data/genres_original", (".wav",)),
    ("<genre>/<genre>.000NN.*", ".", (".wav", ".au", ".mp3", ".flac", ".ogg")),
)

_ID = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})$")

STEP_AUDIO = "missing_audio"
STEP_PROBE = "unreadable_audio"
STEP_PATH = "path"


def canonical_ids(genres: Sequence[str] = GENRES, n_per_genre: int = N_PER_GENRE) -> list[str]:
    """``<genre>.000NN`` for every genre and NN < ``n_per_genre``, sorted (genre order)."""
    return sorted(f"{g}.{n:05d}" for g in genres for n in range(n_per_genre))


def genre_of(track_id: str) -> str:
    match = _ID.match(track_id)
    if match is None:
        raise DatasetError(f"{track_id!r} is not a GTZAN id (<genre>.000NN)")
    return match.group("genre")


@dataclass
class Discovery:
    """What :func:`scan_layout` found under a data root."""

    #: Name of the layout found (a key of :data:`LAYOUTS`), ``""`` when none matched.
    layout: str = ""
    #: id → audio file of every clip found inside the root.
    files: dict[str, Path] = field(default_factory=dict)
    #: id → skipped-clip record of a file that is a link leaving the data root.
    outside: dict[str, Dropped] = field(default_factory=dict)
    #: Folders beside the genre folders that are no genre (ignored).
    unknown_folders: list[str] = field(default_factory=list)
    #: macOS ``._*`` files in the genre folders (ignored).
    n_appledouble: int = 0

    def notes(self) -> list[str]:
        notes = []
        if self.unknown_folders:
            base = next((folder for name, folder, _ in LAYOUTS if name == self.layout), ".")
            notes.append(
                f"folder(s) {', '.join(self.unknown_folders)} under "
                f"{'the root' if base == '.' else base + '/'} are no GTZAN genre and are ignored "
                f"(the genres are {', '.join(GENRES)})"
            )
        stubs = appledouble_note(self.n_appledouble)
        return notes + ([stubs] if stubs else [])


def scan_layout(root: Path, genres: Sequence[str] = GENRES) -> Discovery:
    """Find the layout under ``root`` and the audio file of every clip.

    The first layout of :data:`LAYOUTS` with at least one matching file wins. A file counts when
    its name is ``<genre>.<5 digits><suffix>`` inside the folder of that genre; AppleDouble stubs
    (``._*``, counted) and anything else (Kaggle's images and CSV files) are ignored. A file that
    is a symbolic link leaving the data root is never opened: it is recorded in ``outside`` and
    its clip skipped, as every path in mcbench's dataset loaders. Folders beside the genre
    folders that are not genres are listed in ``unknown_folders``.
    """
    root = Path(root)
    for layout, folder, suffixes in LAYOUTS:
        base = root / folder
        found: dict[str, Path] = {}
        outside: dict[str, Dropped] = {}
        stubs = 0
        for genre in genres:
            genre_dir = base / genre
            if not genre_dir.is_dir():
                continue
            for path in sorted(genre_dir.iterdir()):
                name = path.name
                if is_appledouble(name):
                    stubs += 1
                    continue
                if path.suffix.lower() not in suffixes:
                    continue
                stem = name[: -len(path.suffix)]
                match = _ID.match(stem)
                if match is None or match.group("genre") != genre:
                    continue
                relative = path.relative_to(root).as_posix()
                try:
                    resolve_inside(root, relative)
                except DatasetError as exc:
                    outside[stem] = outside_root(stem, relative, exc, STEP_PATH)
                    continue
                previous = found.get(stem)
                # Two files for one clip (flat layout): prefer the earlier suffix in the list.
                if previous is None or suffixes.index(path.suffix.lower()) < suffixes.index(
                    previous.suffix.lower()
                ):
                    found[stem] = path
        if found or outside:
            others = []
            if folder != "." and base.is_dir():
                others = sorted(p.name for p in base.iterdir()
                                if p.is_dir() and p.name not in genres and not p.name.startswith("."))
            outside = {i: d for i, d in outside.items() if i not in found}
            return Discovery(layout, dict(sorted(found.items())), outside, others, stubs)
    return Discovery()


def discover_files(root: Path, genres: Sequence[str] = GENRES) -> tuple[str, dict[str, Path]]:
    """``(layout, {id: path})`` of :func:`scan_layout`; ``("", {})`` when no layout matches."""
    found = scan_layout(root, genres)
    return found.layout, found.files


def cv_folds(ids: Sequence[str], labels: Sequence[int], n_splits: int = N_FOLDS, seed: int = 0) -> dict[str, int]:
    """Stratified k-fold assignment ``{id: fold}``.

    ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)`` over the ids **sorted**, so the
    folds depend only on the seed and the id set (not on the order given, nor on which files
    exist); each fold holds the same number of clips per class when the counts allow.
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    sorted_ids = [ids[i] for i in order]
    y = np.asarray([labels[i] for i in order])
    folds: dict[str, int] = {}
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for fold, (_, test_index) in enumerate(splitter.split(np.zeros(len(y)), y)):
        for i in test_index:
            folds[sorted_ids[i]] = fold
    return folds


def read_split_list(path: Path, genres: Sequence[str] = GENRES) -> list[str]:
    """Ids from one ``*_filtered.txt`` list: lines ``<genre>/<genre>.000NN.wav``.

    Blank lines are skipped; any other line that is not such a path, or a file that is not
    UTF-8 text, raises :class:`DatasetError` naming the file and line.
    """
    ids: list[str] = []
    data = Path(path).read_bytes()
    try:
        text_all = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); the published "
            "lists are plain ASCII (coreyker/dnn-mgr gtzan/*_filtered.txt): download them again"
        ) from exc
    for line_number, line in enumerate(text_all.splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        parts = text.replace("\\", "/").split("/")
        stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
        match = _ID.match(stem)
        if len(parts) != 2 or match is None or match.group("genre") != parts[0] or parts[0] not in genres:
            raise DatasetError(
                f"{path}, line {line_number}: expected '<genre>/<genre>.000NN.wav' with a "
                f"genre among {list(genres)}, found {text!r}"
            )
        ids.append(stem)
    return ids


def _find_lists(root: Path, lists_dir: Path | None, readme: str) -> dict[str, Path]:
    folder = Path(lists_dir) if lists_dir is not None else root
    paths = {split: folder / name for split, name in LIST_FILES.items()}
    absent = [p.name for p in paths.values() if not p.is_file()]
    if absent:
        raise DatasetError(
            f"{NAME}: the 'filtered' protocol needs {', '.join(absent)} in {folder}. They are "
            f"public (coreyker/dnn-mgr gtzan/*_filtered.txt; see {readme}); put them in the data "
            "root or pass their folder as lists_dir."
        )
    return paths


def _no_file(track_id: str, root: Path, layout: str) -> str:
    return f"no audio file for {track_id} in the layout found ({layout or 'none'}) under {root}"


def _check_files(
    wanted: Sequence[str], found: Discovery, root: Path, check_audio: bool, min_seconds: float
) -> tuple[set[str], list[Dropped]]:
    """Ids whose audio is usable, and a skipped-clip record for every other id of ``wanted``."""
    dropped: list[Dropped] = []
    present: list[tuple[str, Path]] = []
    for track_id in wanted:
        path = found.files.get(track_id)
        if track_id in found.outside:
            dropped.append(found.outside[track_id])
            continue
        if path is None:
            dropped.append(Dropped(track_id, "", _no_file(track_id, root, found.layout),
                                   STEP_AUDIO, MISSING))
            continue
        fault = file_fault(path)
        if fault is not None:
            dropped.append(Dropped(track_id, str(path), f"audio file {fault[1]}", STEP_AUDIO, fault[0]))
            continue
        present.append((track_id, path))
    if check_audio and present:
        # GTZAN is small: reading 1,000 WAV/AU headers takes well under a second, and it finds
        # the Kaggle copy's non-RIFF jazz.00054.wav, truncated and too short clips before the
        # feature store decodes them.
        problems, _ = probe_audio(present, expected_sr=None, min_seconds=min_seconds,
                                  progress=False, step=STEP_PROBE)
        dropped += problems
    bad = {d.id for d in dropped}
    return {i for i, _ in present if i not in bad}, dropped


def load_gtzan_partition(
    root: Path,
    *,
    protocol: str = "cv10",
    fold: int | None = 0,
    seed: int = 0,
    lists_dir: Path | None = None,
    dataset: str = NAME,
    genres: Sequence[str] = GENRES,
    n_per_genre: int = N_PER_GENRE,
    check_audio: bool = True,
    min_seconds: float = MIN_SECONDS,
    protocols: Mapping[str, int] = PROTOCOLS,
) -> Partition:
    """The splits of one GTZAN protocol and fold.

    ``protocols`` maps each protocol this reader may be asked for to its number of folds (GTZAN's
    own: :data:`PROTOCOLS`; a dataset in the GTZAN layout, such as ``synthetic_genres``, passes
    its own). A protocol of k > 1 folds is seeded stratified k-fold cross-validation
    (:func:`cv_folds` over :func:`canonical_ids`; ``cv10`` is the paper's, Table III): test =
    fold ``fold``, valid = fold ``(fold + 1) mod k``, train = the other k − 2; the seed and every
    clip's fold are recorded in ``notes``. A protocol of one fold (``filtered``) reads the three
    list files from ``lists_dir`` or the root.
    In both, ids are ``<genre>.000NN``, labels index ``genres``, each split is in sorted id
    order (cv10) or list order (filtered). A clip whose file is missing, empty, a link leaving
    the root or (headers read when ``check_audio``) unreadable, truncated or shorter than
    ``min_seconds`` is skipped and reported without changing any other clip's split; the
    feature store also drops a clip that decodes shorter than ``min_seconds``.
    """
    readme = dataset_readme(dataset)
    if protocol not in protocols:
        raise DatasetError(f"{dataset}: unknown protocol {protocol!r}; choose from {sorted(protocols)}")
    n_folds = int(protocols[protocol])
    if n_folds > 1:  # checked before the data root is looked at
        fold = 0 if fold is None else int(fold)
        if not 0 <= fold < n_folds:
            raise DatasetError(f"{dataset}: {protocol} has folds 0…{n_folds - 1}, not {fold}")
    elif fold not in (None, 0):
        raise DatasetError(f"{dataset}: the {protocol} protocol has no fold {fold!r}")
    root = require_root(root, dataset, ["genres", "Data/genres_original", *genres], readme)
    found = scan_layout(root, genres)
    if not found.files and not found.outside:
        raise DatasetError(
            f"{dataset}: no GTZAN audio found under {root}: expected one of "
            f"{', '.join(name for name, _, _ in LAYOUTS)}. See {readme}, or pass --root PATH."
        )
    label_of = {g: i for i, g in enumerate(genres)}
    notes: dict[str, Any] = {"layout": found.layout, "n_files_found": len(found.files),
                             "min_seconds": float(min_seconds)}
    if found.notes():
        notes["warnings"] = found.notes()

    if n_folds > 1:
        ids = canonical_ids(genres, n_per_genre)
        folds = cv_folds(ids, [label_of[genre_of(i)] for i in ids], n_folds, seed)
        valid_fold = (fold + 1) % n_folds
        membership = {
            "test": [i for i in ids if folds[i] == fold],
            "valid": [i for i in ids if folds[i] == valid_fold],
            "train": [i for i in ids if folds[i] not in (fold, valid_fold)],
        }
        notes.update(
            seed=int(seed), n_folds=n_folds, test_fold=fold, valid_fold=valid_fold, folds=folds
        )
        extra = sorted(set(found.files) - set(ids))
        if extra:
            notes["files_outside_canonical_ids"] = extra
    else:
        fold = None
        lists = _find_lists(root, lists_dir, readme)
        membership = {split: read_split_list(path, genres) for split, path in lists.items()}
        seen: dict[str, str] = {}
        for split in ("train", "valid", "test"):
            for track_id in membership[split]:
                if track_id in seen:
                    raise DatasetError(
                        f"{dataset}: {track_id} is listed in both {LIST_FILES[seen[track_id]]} "
                        f"and {LIST_FILES[split]}"
                    )
                seen[track_id] = split
        notes["lists"] = {split: str(path) for split, path in lists.items()}

    wanted = [i for split in ("train", "valid", "test") for i in membership[split]]
    usable, dropped = _check_files(wanted, found, root, check_audio, min_seconds)
    splits = {
        split: Split(
            split,
            [Track(i, found.files[i], (label_of[genre_of(i)],)) for i in membership[split]
             if i in usable],
        )
        for split in ("train", "valid", "test")
    }
    split_of_id = {i: s for s, members in membership.items() for i in members}
    notes["listed_per_split"] = {s: len(m) for s, m in membership.items()}
    notes["kept_per_split"] = {s: len(sp) for s, sp in splits.items()}
    notes["dropped_per_split"] = {
        s: sorted(d.id for d in dropped if split_of_id[d.id] == s) for s in ("train", "valid", "test")
    }
    return Partition(
        dataset=dataset,
        protocol=protocol,
        fold=fold,
        labels=list(genres),
        splits=splits,
        dropped=dropped,
        notes=notes,
        min_seconds=float(min_seconds),
    )


def check_gtzan(
    root: Path,
    *,
    dataset: str = NAME,
    genres: Sequence[str] = GENRES,
    n_per_genre: int = N_PER_GENRE,
    expected_sr: int | None = SAMPLE_RATE,
    min_seconds: float = MIN_SECONDS,
    progress: bool = True,
) -> HealthReport:
    """Health report of a GTZAN root, from audio headers only.

    Problems (each clip will be skipped): canonical ids without a file, files that are empty,
    unreadable, truncated or shorter than ``min_seconds``, and links leaving the data root.
    Notes: the layout, sample rates other than ``expected_sr`` (resampled and used), folders that
    are no genre, ignored ``._*`` files, files outside the canonical ids, the filtered-protocol
    lists, and the distribution of lengths.
    """
    readme = dataset_readme(dataset)
    root = require_root(root, dataset, ["genres", "Data/genres_original", *genres], readme)
    found = scan_layout(root, genres)
    ids = canonical_ids(genres, n_per_genre)
    problems: list[Dropped] = []
    probe: list[tuple[str, Path]] = []
    for i in ids:
        if i in found.outside:
            problems.append(found.outside[i])
        elif i in found.files:
            probe.append((i, found.files[i]))
        else:
            problems.append(Dropped(i, "", _no_file(i, root, found.layout), STEP_AUDIO, MISSING))
    extra = sorted(set(found.files) - set(ids))
    probed, stats = probe_audio(
        probe + [(i, found.files[i]) for i in extra], expected_sr=expected_sr,
        min_seconds=min_seconds, progress=progress,
    )
    problems += [p for p in probed if p.id not in extra]
    notes: list[str] = []
    if not found.files:
        notes.append(f"no GTZAN audio found; expected one of {[name for name, _, _ in LAYOUTS]}; see {readme}")
    notes += found.notes()
    if extra:
        notes.append(f"{len(extra)} files outside the canonical ids are not used: {', '.join(extra[:10])}")
    rate = sample_rate_note(stats)
    if rate:
        notes.append(rate)
    notes.append(
        f"clips with less than {min_seconds:g} s of audio are skipped (at most 0.5 s of "
        "zero-padding to the 29 s input; GTZAN clips last about 30 s)"
    )
    present = [name for name in LIST_FILES.values() if (root / name).is_file()]
    if present:
        notes.append(f"filtered-protocol lists in the root: {', '.join(present)}")
        for name in present:
            try:
                read_split_list(root / name, genres)
            except DatasetError as exc:
                notes.append(f"--protocol filtered cannot be used: {exc}")
    else:
        notes.append(
            f"no filtered-protocol lists in the root (only needed for --protocol filtered; see {readme})"
        )
    return HealthReport(
        dataset=dataset,
        root=root,
        layout=found.layout or "none",
        n_listed=len(ids),
        n_found=sum(1 for i in ids if i in found.files),
        problems=problems,
        stats=stats,
        notes=notes,
    )


# --------------------------------------------------------------------------- plugin

#: The parameters of :func:`tracks` (``--dataset-param KEY=VALUE``), typed.
PARAMS = {
    "seed": Option(int, 0, "seed of the stratified 10-fold assignment (cv10)", minimum=0),
    # The lists' content is in the split fingerprints, so their folder is not.
    "lists_dir": Option(Path, None, "folder of the filtered-protocol list files (default: "
                        "the data root)", affects_result=False),
    "check_audio": Option(bool, True, "read every file's header and drop unreadable clips"),
    "min_seconds": Option(float, MIN_SECONDS, "clips with less audio are skipped", minimum=0.0),
}


def tracks(root: Path, protocol: str = "cv10", fold: int | None = None, **params: Any) -> Partition:
    """``DatasetSpec.tracks`` for GTZAN (:func:`load_gtzan_partition`); ``fold`` defaults to 0;
    ``params`` are those of :data:`PARAMS`, typed here (the harness has typed them already when it calls)."""
    params = resolve_options(PARAMS, params, owner=f"dataset {NAME!r}")
    return load_gtzan_partition(Path(root), protocol=protocol or "cv10", fold=fold, **params)


def check(root: Path) -> HealthReport:
    """``DatasetSpec.check`` for GTZAN."""
    return check_gtzan(Path(root))


def expected_split(protocol: str = "cv10", **params) -> ExpectedSplit:
    """``cv10``: 1,000 clips in 10 folds, one to test, one to validate, eight to train;
    ``filtered``: the lengths of the fault-filtered lists (443, 197 and 290 clips)."""
    if protocol == "filtered":
        return ExpectedSplit(train=443, valid=197, test=290)
    return ExpectedSplit(train=800, valid=100, test=100)


SPEC = DatasetSpec(
    name=NAME,
    summary="GTZAN, 10 genres; stratified 10-fold CV (the paper's) or the fault-filtered split",
    task=MULTICLASS,
    tracks=tracks,
    check=check,
    protocols=PROTOCOLS,
    default_protocol="cv10",
    sample_rate=SAMPLE_RATE,
    clip_seconds=29.0,
    readme="datasets/gtzan/README.md",
    labels=GENRES,
    params=PARAMS,
    expected_split=expected_split,
)


@hookimpl
def mcbench_datasets() -> list[DatasetSpec]:
    return [SPEC]
