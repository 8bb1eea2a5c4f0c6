"""GTZAN genre classification (datasets.md §4), the paper's transfer target (Table III).

Protocols (§4.3):

- ``cv10`` (default, the paper's): seeded stratified 10-fold cross-validation over the 1,000
  canonical ids; trial ``i`` tests on fold ``i``, selects on fold ``(i + 1) mod 10`` (mcbench
  never selects on test) and trains on the other eight. Folds are assigned before any file is
  looked at, so a missing or broken file leaves every other clip's fold unchanged.
- ``filtered``: the fault-filtered, artist-disjoint split of Kereliuk, Sturm & Larsen (2015),
  read from ``train_filtered.txt``, ``valid_filtered.txt`` and ``test_filtered.txt``.

Four on-disk layouts are recognised (§4.1, detected in this order): ``genres/<g>/*.wav``
(genres.tar.gz), ``genres/<g>/*.au`` (Marsyas), ``Data/genres_original/<g>/*.wav`` (Kaggle) and
``<g>/<g>.000NN.*`` directly under the root. macOS ``._*`` stubs are ignored.

numpy and scikit-learn are imported inside functions so that listing plugins stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcbench import hookimpl
from mcbench.specs import (
    MULTICLASS,
    DatasetError,
    DatasetSpec,
    Dropped,
    HealthReport,
    Partition,
    Split,
    Track,
)

from .common import dataset_readme, file_problem, probe_audio, require_root

NAME = "gtzan"
#: Canonical label order (§4.1): the folder names, alphabetical. mirdata spells hiphop "hip-hop".
GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)
SAMPLE_RATE = 22_050
N_PER_GENRE = 100
N_FOLDS = 10
PROTOCOLS = {"cv10": N_FOLDS, "filtered": 1}
LIST_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}

#: Layout name → (folder of the genre folders relative to the root, accepted suffixes), in the
#: detection order of §4.1.
LAYOUTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("genres/<genre>/*.wav", "genres", (".wav",)),
    ("genres/<genre>/*.au", "genres", (".au",)),
    ("Data/genres_original/<genre>/*.wav", "Data/genres_original", (".wav",)),
    ("<genre>/<genre>.000NN.*", ".", (".wav", ".au", ".mp3", ".flac", ".ogg")),
)

_ID = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})$")

STEP_AUDIO = "missing_audio"
STEP_PROBE = "unreadable_audio"


def canonical_ids(genres: Sequence[str] = GENRES, n_per_genre: int = N_PER_GENRE) -> list[str]:
    """``<genre>.000NN`` for every genre and NN < ``n_per_genre``, sorted (genre order)."""
    return sorted(f"{g}.{n:05d}" for g in genres for n in range(n_per_genre))


def genre_of(track_id: str) -> str:
    match = _ID.match(track_id)
    if match is None:
        raise DatasetError(f"{track_id!r} is not a GTZAN id (<genre>.000NN)")
    return match.group("genre")


def discover_files(root: Path, genres: Sequence[str] = GENRES) -> tuple[str, dict[str, Path]]:
    """Find the layout under ``root`` and the audio file of every clip: ``(layout, {id: path})``.

    The first layout of :data:`LAYOUTS` with at least one matching file wins. A file counts when
    its name is ``<genre>.<5 digits><suffix>`` inside the folder of that genre; AppleDouble stubs
    (``._*``) and anything else (Kaggle's images and CSV files) are ignored. Returns ``("", {})``
    when no layout matches.
    """
    root = Path(root)
    for layout, folder, suffixes in LAYOUTS:
        base = root / folder
        found: dict[str, Path] = {}
        for genre in genres:
            genre_dir = base / genre
            if not genre_dir.is_dir():
                continue
            for path in sorted(genre_dir.iterdir()):
                name = path.name
                if name.startswith("._") or path.suffix.lower() not in suffixes:
                    continue
                stem = name[: -len(path.suffix)]
                match = _ID.match(stem)
                if match is None or match.group("genre") != genre:
                    continue
                previous = found.get(stem)
                # Two files for one clip (flat layout): prefer the earlier suffix in the list.
                if previous is None or suffixes.index(path.suffix.lower()) < suffixes.index(
                    previous.suffix.lower()
                ):
                    found[stem] = path
        if found:
            return layout, dict(sorted(found.items()))
    return "", {}


def cv_folds(ids: Sequence[str], labels: Sequence[int], n_splits: int = N_FOLDS, seed: int = 0) -> dict[str, int]:
    """Stratified k-fold assignment ``{id: fold}`` (§4.3 step 1).

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
    """Ids from one ``*_filtered.txt`` list: lines ``<genre>/<genre>.000NN.wav`` (§4.3).

    Blank lines are skipped; any other line that is not such a path raises :class:`DatasetError`
    naming the file and line.
    """
    ids: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
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


def _check_files(
    wanted: Sequence[str], files: dict[str, Path], root: Path, check_audio: bool
) -> tuple[set[str], list[Dropped]]:
    """Ids whose audio is usable, and a Dropped record for every other id of ``wanted``."""
    dropped: list[Dropped] = []
    present: list[tuple[str, Path]] = []
    for track_id in wanted:
        path = files.get(track_id)
        if path is None:
            dropped.append(Dropped(track_id, "", f"no audio file for {track_id} under {root}", STEP_AUDIO))
            continue
        problem = file_problem(path)
        if problem is not None:
            dropped.append(Dropped(track_id, str(path), f"audio file {problem}", STEP_AUDIO))
            continue
        present.append((track_id, path))
    if check_audio and present:
        # GTZAN is small: reading 1,000 WAV/AU headers takes well under a second, and it finds
        # the Kaggle copy's non-RIFF jazz.00054.wav before the feature store tries to decode it.
        problems, _ = probe_audio(present, expected_sr=None, min_seconds=0.0, progress=False, step=STEP_PROBE)
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
) -> Partition:
    """The splits of one GTZAN protocol and fold (datasets.md §4.3).

    ``cv10``: folds from :func:`cv_folds` over :func:`canonical_ids`; test = fold ``fold``,
    valid = fold ``(fold + 1) mod 10``, train = the rest; the seed and every clip's fold are
    recorded in ``notes``. ``filtered``: the three list files from ``lists_dir`` or the root.
    In both, ids are ``<genre>.000NN``, labels index ``genres``, each split is in sorted id
    order (cv10) or list order (filtered), and a missing, empty or unreadable file (header read
    when ``check_audio``) is dropped and reported without changing any other clip's split.
    """
    readme = dataset_readme(dataset)
    if protocol not in PROTOCOLS:
        raise DatasetError(f"{dataset}: unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    root = require_root(root, dataset, ["genres", "Data/genres_original", *genres], readme)
    layout, files = discover_files(root, genres)
    if not files:
        raise DatasetError(
            f"{dataset}: no GTZAN audio found under {root}: expected one of "
            f"{', '.join(name for name, _, _ in LAYOUTS)}. See {readme}, or pass --root PATH."
        )
    label_of = {g: i for i, g in enumerate(genres)}
    notes: dict[str, Any] = {"layout": layout, "n_files_found": len(files)}

    if protocol == "cv10":
        fold = 0 if fold is None else int(fold)
        if not 0 <= fold < N_FOLDS:
            raise DatasetError(f"{dataset}: cv10 has folds 0…{N_FOLDS - 1}, not {fold}")
        ids = canonical_ids(genres, n_per_genre)
        folds = cv_folds(ids, [label_of[genre_of(i)] for i in ids], N_FOLDS, seed)
        valid_fold = (fold + 1) % N_FOLDS
        membership = {
            "test": [i for i in ids if folds[i] == fold],
            "valid": [i for i in ids if folds[i] == valid_fold],
            "train": [i for i in ids if folds[i] not in (fold, valid_fold)],
        }
        notes.update(
            seed=int(seed), n_folds=N_FOLDS, test_fold=fold, valid_fold=valid_fold, folds=folds
        )
        extra = sorted(set(files) - set(ids))
        if extra:
            notes["files_outside_canonical_ids"] = extra
    else:
        if fold not in (None, 0):
            raise DatasetError(f"{dataset}: the filtered protocol has no fold {fold!r}")
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
    usable, dropped = _check_files(wanted, files, root, check_audio)
    splits = {
        split: Split(
            split,
            [Track(i, files[i], (label_of[genre_of(i)],)) for i in membership[split] if i in usable],
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
        min_seconds=0.0,
    )


def check_gtzan(
    root: Path,
    *,
    dataset: str = NAME,
    genres: Sequence[str] = GENRES,
    n_per_genre: int = N_PER_GENRE,
    expected_sr: int | None = SAMPLE_RATE,
    progress: bool = True,
) -> HealthReport:
    """Health report of a GTZAN root: layout, canonical ids without a file, and every file whose
    header is unreadable or not at 22,050 Hz, with the distribution of lengths (headers only)."""
    readme = dataset_readme(dataset)
    root = require_root(root, dataset, ["genres", "Data/genres_original", *genres], readme)
    layout, files = discover_files(root, genres)
    ids = canonical_ids(genres, n_per_genre)
    problems = [
        Dropped(i, "", "no audio file in the layout found", STEP_AUDIO) for i in ids if i not in files
    ]
    probed, stats = probe_audio(
        sorted(files.items()), expected_sr=expected_sr, min_seconds=0.0, progress=progress
    )
    problems += probed
    notes: list[str] = []
    if not files:
        notes.append(f"no GTZAN audio found; expected one of {[name for name, _, _ in LAYOUTS]}; see {readme}")
    extra = sorted(set(files) - set(ids))
    if extra:
        notes.append(f"{len(extra)} files outside the canonical ids: {', '.join(extra[:10])}")
    lists = [name for name in LIST_FILES.values() if (root / name).is_file()]
    notes.append(
        f"filtered-protocol lists in the root: {', '.join(lists)}" if lists
        else f"no filtered-protocol lists in the root (only needed for --protocol filtered; see {readme})"
    )
    return HealthReport(
        dataset=dataset,
        root=root,
        layout=layout or "none",
        n_listed=len(ids),
        n_found=sum(1 for i in ids if i in files),
        problems=problems,
        stats=stats,
        notes=notes,
    )


# --------------------------------------------------------------------------- plugin

_TRACK_PARAMS = ("seed", "lists_dir", "check_audio")


def tracks(root: Path, protocol: str = "cv10", fold: int | None = None, **params: Any) -> Partition:
    """``DatasetSpec.tracks`` for GTZAN (:func:`load_gtzan_partition`); ``fold`` defaults to 0."""
    unknown = sorted(set(params) - set(_TRACK_PARAMS))
    if unknown:
        raise DatasetError(f"{NAME}: unknown option(s) {unknown}; accepted: {list(_TRACK_PARAMS)}")
    if "seed" in params:
        params["seed"] = int(params["seed"])
    if params.get("lists_dir") is not None:
        params["lists_dir"] = Path(params["lists_dir"])
    return load_gtzan_partition(Path(root), protocol=protocol or "cv10", fold=fold, **params)


def check(root: Path) -> HealthReport:
    """``DatasetSpec.check`` for GTZAN."""
    return check_gtzan(Path(root))


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
)


@hookimpl
def mcbench_datasets() -> list[DatasetSpec]:
    return [SPEC]
