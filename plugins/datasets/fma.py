"""The ``fma`` dataset: Free Music Archive, medium subset, single-label genre (Defferrard et al.,
"FMA: A Dataset for Music Analysis", ISMIR 2017; mdeff/fma), the genre dataset of the paper's
Table II (Wang et al. 2019).

Data root::

    <root>/fma_metadata/tracks.csv       # 106,574 tracks x 52 columns, two-level header
    <root>/fma_metadata/genres.csv       # 163 genres
    <root>/fma_medium/ddd/dddddd.mp3     # or fma_large/ (it holds every medium clip)

The split is the official ``('set', 'split')`` column, never re-split. Medium means
``subset`` in {small, medium}: the column stores the *smallest* subset holding a track
(mdeff/fma ``utils.py``). The classes are the distinct ``genre_top`` titles of the chosen subset in ASCII order, checked
against the root genres of ``genres.csv``; for medium they are the 16 of
:data:`MEDIUM_CLASSES`. Ids are the int ``track_id`` zero-padded to six digits.

Decisions written down here:

- The label order comes from the metadata of the whole subset, before any audio is checked, so a
  missing file never shifts the label indices.
- ``check_fma`` probes headers with no expected sample rate: FMA clips are mostly, not all,
  44.1 kHz, and every clip is resampled anyway, so another rate is a note, not a problem.
  Clips shorter than 29.0 s are listed in the notes, not as problems: they decode and are
  zero-padded. A clip that is missing, empty, unreadable or truncated (far smaller than its
  header implies) is skipped and reported, in ``check`` and ``prepare`` alike; a ``tracks.csv``
  or ``genres.csv`` that cannot be parsed stops the dataset with a message naming the file.
- An explicit ``audio_dir`` is relative to the data root and may not leave it (as every path in
  mcbench's dataset loaders); link the whole data root, not folders inside it.
- ``fma_full`` is never picked as an audio folder: its clips are untrimmed tracks, not the 30 s
  excerpts the benchmark is defined on.

pandas is imported inside the functions: this module is the plugin's registration module, and
listing plugins must stay cheap.
"""

from __future__ import annotations

import ast
import csv
import itertools
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcbench import hookimpl
from mcbench.audio import NOT_AUDIO, TOO_SHORT
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
    NO_LABEL,
    dataset_readme,
    file_fault,
    file_problem,
    probe_audio,
    require_root,
    resolve_inside,
    stop,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

NAME = "fma"
README = "datasets/fma/README.md"
SAMPLE_RATE = 44_100
CLIP_SECONDS = 29.0
PROTOCOL = "official"

METADATA_DIR = "fma_metadata"
TRACKS_CSV = f"{METADATA_DIR}/tracks.csv"
GENRES_CSV = f"{METADATA_DIR}/genres.csv"

#: Subsets from smallest to largest; each contains the ones before it.
SUBSETS = ("small", "medium", "large")

#: Audio archives that contain every clip of a subset, in the order they are looked for.
AUDIO_FOLDERS = {
    "small": ("fma_small", "fma_medium", "fma_large"),
    "medium": ("fma_medium", "fma_large"),
    "large": ("fma_large",),
}

#: ``('set', 'split')`` value -> mcbench split name.
SPLIT_VALUES = {"training": "train", "validation": "valid", "test": "test"}

#: The 16 root genres of FMA medium in label order (exact spellings of ``genres.csv``).
MEDIUM_CLASSES = (
    "Blues",
    "Classical",
    "Country",
    "Easy Listening",
    "Electronic",
    "Experimental",
    "Folk",
    "Hip-Hop",
    "Instrumental",
    "International",
    "Jazz",
    "Old-Time / Historic",
    "Pop",
    "Rock",
    "Soul-RnB",
    "Spoken",
)

#: Columns the loader reads.
SPLIT_COL = ("set", "split")
SUBSET_COL = ("set", "subset")
GENRE_TOP_COL = ("track", "genre_top")
GENRES_COL = ("track", "genres")
REQUIRED_COLUMNS = (SPLIT_COL, SUBSET_COL, GENRE_TOP_COL, GENRES_COL)

#: Python-literal list columns, parsed with ``ast.literal_eval`` as mdeff/fma ``utils.load`` does.
LIST_COLUMNS = (
    ("track", "tags"),
    ("album", "tags"),
    ("artist", "tags"),
    ("track", "genres"),
    ("track", "genres_all"),
)

GENRES_COLUMNS = ("#tracks", "parent", "title", "top_level")

#: Clips with no audio at all in the release, all in fma_small (mdeff/fma wiki, known issues).
KNOWN_EMPTY = frozenset({99134, 108925, 133297})
#: Clips whose metadata duration is wrong: shorter than 30 s or empty (mdeff/fma issues #8, #41, #44).
KNOWN_WRONG_DURATION = frozenset(
    {
        1486,
        5574,
        65753,
        80391,
        98558,
        98559,
        98560,
        98565,
        98566,
        98567,
        98568,
        98569,
        98571,
        99134,
        105247,
        108924,
        108925,
        126981,
        127336,
        133297,
        143992,
    }
)


def _known_fault(track_id: int) -> str:
    """A note for a track on the published known-fault lists, or ``""``."""
    if track_id in KNOWN_EMPTY:
        return "known fault: empty clip in the FMA release (mdeff/fma wiki, known issues)"
    if track_id in KNOWN_WRONG_DURATION:
        return "known fault: wrong metadata duration, clip shorter than 30 s (mdeff/fma issues #8, #41, #44)"
    return ""


def track_key(track_id: int) -> str:
    """The mcbench id of a track: the int ``track_id`` zero-padded to six digits."""
    return f"{int(track_id):06d}"


def audio_path(audio_dir: Path, track_id: int) -> Path:
    """``<audio_dir>/<first 3 digits>/<tid:06d>.mp3`` , e.g. ``000/000002.mp3``."""
    tid = int(track_id)
    if not 0 <= tid <= 999_999:
        raise DatasetError(f"track_id {track_id!r} does not fit the six-digit FMA file names")
    name = track_key(tid)
    return Path(audio_dir) / name[:3] / f"{name}.mp3"


# --------------------------------------------------------------------------- metadata


def _check_tracks_header(path: Path) -> None:
    """Reject a ``tracks.csv`` whose header is not the three-line two-level layout.

    Without this, ``read_csv(header=[0, 1])`` silently takes a data row as the second header
    line of a one-line-header file.
    """
    layout = (
        "the three header lines of FMA's tracks.csv: level-0 names (',album,album,…'), "
        "level-1 names (',comments,date_created,…'), then 'track_id' and empty fields"
    )
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing; expected {layout}")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(itertools.islice(csv.reader(f), 3))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc}); expected {layout}") from exc
    if len(rows) < 3:
        raise DatasetError(f"{path}: only {len(rows)} line(s); expected {layout}")
    level0, level1, names = rows
    width_ok = len(level0) > 1 and len(level0) == len(level1) == len(names)
    if not (
        width_ok
        and level0[0] == ""
        and level1[0] == ""
        and names[0] == "track_id"
        and not any(names[1:])
        and all(level0[1:])
        and all(level1[1:])
    ):
        raise DatasetError(
            f"{path}: header is not {layout}; first line read: {','.join(level0)[:120]!r}"
        )


def _literal_list(value: Any, path: Path, track_id: Any, column: tuple[str, str]) -> list:
    """Parse one Python-literal list cell (``[21]``, ``[76, 103]``, ``[]``); an empty cell is ``[]``."""
    if value is None or (isinstance(value, float) and value != value):  # NaN: empty cell
        return []
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise DatasetError(
            f"{path}: track {track_id}, column {column}: {value!r} is not a Python list literal ({exc})"
        ) from exc
    if not isinstance(parsed, list):
        raise DatasetError(f"{path}: track {track_id}, column {column}: {value!r} is not a list")
    return parsed


def read_tracks(path: str | Path) -> pd.DataFrame:
    """Read ``fma_metadata/tracks.csv`` with its two-level columns.

    ``pandas.read_csv(path, index_col=0, header=[0, 1])`` is the FMA authors' reader (mdeff/fma
    ``utils.py``); the list columns are parsed with ``ast.literal_eval`` as they do. Raises
    :class:`DatasetError` naming the file when the header is not the three-line layout, a
    required column is missing, ``track_id`` is not a unique integer, or a list cell is malformed.
    Other columns (dates, free text) are left as read.
    """
    import pandas as pd

    path = Path(path)
    _check_tracks_header(path)
    try:
        tracks = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot parse as FMA tracks.csv ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in tracks.columns]
    if missing:
        raise DatasetError(f"{path}: required column(s) {missing} are missing")
    if not pd.api.types.is_integer_dtype(tracks.index.dtype):
        raise DatasetError(f"{path}: track_id (first column) must hold integers")
    duplicated = tracks.index[tracks.index.duplicated()].unique().tolist()
    if duplicated:
        raise DatasetError(f"{path}: duplicated track_id(s) {duplicated[:10]}")
    for column in LIST_COLUMNS:
        if column in tracks.columns:
            tracks[column] = [
                _literal_list(v, path, tid, column)
                for tid, v in zip(tracks.index, tracks[column], strict=True)
            ]
    return tracks


def read_genres(path: str | Path) -> pd.DataFrame:
    """Read ``fma_metadata/genres.csv`` indexed by ``genre_id``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing (FMA genres.csv, from fma_metadata.zip)")
    try:
        genres = pd.read_csv(path, index_col=0)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot parse as FMA genres.csv ({exc})") from exc
    missing = [c for c in GENRES_COLUMNS if c not in genres.columns]
    if genres.index.name != "genre_id" or missing:
        raise DatasetError(
            f"{path}: expected the header 'genre_id,#tracks,parent,title,top_level'"
            + (f"; missing {missing}" if missing else f"; first column is {genres.index.name!r}")
        )
    if not pd.api.types.is_integer_dtype(genres["parent"].dtype):
        raise DatasetError(f"{path}: column 'parent' must hold integer genre ids")
    return genres


def root_genres(genres: pd.DataFrame) -> dict[str, int]:
    """Root genres (``parent == 0``) as ``{title: genre_id}``, in ASCII title order."""
    roots = genres[genres["parent"] == 0]
    pairs = sorted(
        (str(title), int(gid)) for gid, title in zip(roots.index, roots["title"], strict=True)
    )
    return dict(pairs)


def select_subset(tracks: pd.DataFrame, subset: str = "medium") -> pd.DataFrame:
    """The tracks of an FMA subset, honouring the nesting trap.

    The column stores the smallest subset holding a track, so medium is ``subset <= 'medium'``
    on the ordered categorical small < medium < large, as mdeff/fma does: small = small,
    medium = small ∪ medium, large = all. Filtering ``== 'medium'`` would lose fma_small.
    """
    import pandas as pd

    if subset not in SUBSETS:
        raise DatasetError(f"unknown FMA subset {subset!r}; choose one of {list(SUBSETS)}")
    column = tracks[SUBSET_COL]
    unknown = sorted(set(column.dropna().astype(str)) - set(SUBSETS))
    if unknown:
        raise DatasetError(
            f"tracks.csv: unknown ('set', 'subset') value(s) {unknown}; expected {list(SUBSETS)}"
        )
    ordered = column.astype(pd.CategoricalDtype(list(SUBSETS), ordered=True))
    return tracks.loc[ordered <= subset]


def _genre_top(value: Any) -> str:
    """A ``genre_top`` cell as a title, ``""`` when empty (read as NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def classes_for(tracks_subset: pd.DataFrame, genres: pd.DataFrame) -> list[str]:
    """The class list: distinct non-empty ``genre_top`` titles, sorted in ASCII order.

    Every title must be a root genre of ``genres.csv`` (exact spelling). Python's ``sorted`` of
    distinct strings is a total order by code point, so no sort stability is involved.
    """
    titles = sorted({t for t in map(_genre_top, tracks_subset[GENRE_TOP_COL]) if t})
    roots = root_genres(genres)
    unknown = [t for t in titles if t not in roots]
    if unknown:
        raise DatasetError(
            f"genre_top value(s) {unknown} are not root genres of genres.csv "
            f"(roots: {sorted(roots)}); check the spelling"
        )
    return titles


# --------------------------------------------------------------------------- layout


def _metadata_root(root: str | Path, dataset: str) -> Path:
    """The resolved data root, or a :class:`DatasetError` that points at the README."""
    root = Path(root).expanduser()
    readme = dataset_readme(NAME)
    if (root / "tracks.csv").is_file() and not (root / METADATA_DIR).exists():
        raise DatasetError(
            f"{dataset}: {root} is the fma_metadata folder itself; pass its parent folder as "
            f"--root (it must hold {TRACKS_CSV} and the audio folder). See {readme}."
        )
    root = require_root(root, dataset, [TRACKS_CSV], readme)
    if not (root / GENRES_CSV).is_file():
        raise DatasetError(
            f"{dataset}: {root / GENRES_CSV} is missing (it ships in fma_metadata.zip). See {readme}."
        )
    return root


def find_audio_dir(root: Path, subset: str = "medium", audio_dir: str | None = None) -> Path | None:
    """The audio folder: ``audio_dir`` (relative to the root) or the first archive folder
    holding the subset (``fma_medium`` then ``fma_large`` for medium); ``None`` if absent."""
    if audio_dir is not None:
        return resolve_inside(root, str(audio_dir))
    for name in AUDIO_FOLDERS[subset]:
        candidate = resolve_inside(root, name)
        if candidate.is_dir():
            return candidate
    return None


def load_fma_partition(
    root: str | Path,
    *,
    subset: str = "medium",
    audio_dir: str | None = None,
    check_files: bool = True,
    dataset: str = NAME,
) -> Partition:
    """The official FMA split of ``subset``.

    1. Read ``tracks.csv`` and select the subset.
    2. The split of each track is ``('set', 'split')``; nothing is re-split. Tracks keep their
       ``tracks.csv`` row order inside each split.
    3. Labels are indices into :func:`classes_for`. A track of the subset with an empty
       ``genre_top`` is a data error: it is dropped and reported (step ``genre_top``).
    4. Audio paths are resolved; with ``check_files`` a missing or empty file is dropped
       and reported (step ``audio``). Undecodable files are found by ``check`` and the feature
       store. Short clips are kept (they are zero-padded; ``min_seconds`` is 0).
    """
    if subset not in SUBSETS:
        raise DatasetError(f"{dataset}: unknown subset {subset!r}; choose one of {list(SUBSETS)}")
    root = _metadata_root(root, dataset)
    tracks_csv = root / TRACKS_CSV
    all_tracks = read_tracks(tracks_csv)
    genres = read_genres(root / GENRES_CSV)
    chosen = select_subset(all_tracks, subset)
    labels = classes_for(chosen, genres)
    index_of = {title: i for i, title in enumerate(labels)}

    bad_splits = sorted({str(v) for v in chosen[SPLIT_COL]} - set(SPLIT_VALUES))
    if bad_splits:
        # An empty cell reads as NaN and shows here as 'nan'.
        raise DatasetError(
            f"{tracks_csv}: ('set', 'split') must be one of {list(SPLIT_VALUES)} for every "
            f"{subset} track; found {bad_splits}"
        )

    found_dir = find_audio_dir(root, subset, audio_dir)
    if found_dir is None:
        if check_files:
            raise DatasetError(
                f"{dataset}: no audio folder under {root}: expected one of "
                f"{list(AUDIO_FOLDERS[subset])} (or pass audio_dir). See {dataset_readme(NAME)}."
            )
        found_dir = root / AUDIO_FOLDERS[subset][0]

    splits: dict[str, list[Track]] = {name: [] for name in SPLIT_VALUES.values()}
    dropped: list[Dropped] = []
    step_counts: Counter[str] = Counter()
    for tid, split_value, genre_top, genre_list in zip(
        chosen.index, chosen[SPLIT_COL], chosen[GENRE_TOP_COL], chosen[GENRES_COL], strict=True
    ):
        tid = int(tid)
        key = track_key(tid)
        path = audio_path(found_dir, tid)
        title = _genre_top(genre_top)
        fault = _known_fault(tid)
        if not title:
            reason = (
                f"empty genre_top in subset {subset} (genres {list(genre_list)}): a data error, "
                "every medium track has one (mdeff/fma creation.ipynb)"
            )
            dropped.append(Dropped(key, str(path), reason, "genre_top", NO_LABEL))
            step_counts["genre_top"] += 1
            continue
        if check_files:
            problem = file_fault(path)
            if problem is not None:
                kind, reason = problem
                dropped.append(
                    Dropped(key, str(path), f"{reason}{f' ({fault})' if fault else ''}", "audio", kind)
                )
                step_counts["audio"] += 1
                continue
        splits[SPLIT_VALUES[split_value]].append(Track(key, path, (index_of[title],)))

    split_objects = {name: Split(name, kept) for name, kept in splits.items()}
    class_counts = {
        name: {labels[i]: n for i, n in sorted(Counter(t.labels[0] for t in kept).items())}
        for name, kept in splits.items()
    }
    notes: dict[str, Any] = {
        "tracks_csv": str(tracks_csv),
        "audio_dir": str(found_dir),
        "subset": subset,
        "subset_rule": f"('set', 'subset') <= {subset!r} on small < medium < large",
        "counts": {
            "tracks_csv": int(len(all_tracks)),
            "outside_subset": int(len(all_tracks) - len(chosen)),
            "in_subset": int(len(chosen)),
            "dropped_genre_top": step_counts["genre_top"],
            "dropped_audio": step_counts["audio"],
            "kept": sum(len(s) for s in split_objects.values()),
        },
        "split_sizes": {name: len(s) for name, s in split_objects.items()},
        "class_counts": class_counts,
        "files_checked": bool(check_files),
    }
    if subset == "medium" and tuple(labels) != MEDIUM_CLASSES:
        notes["classes_warning"] = (
            f"{len(labels)} classes found; the full FMA medium subset has the 16 root genres "
            "of genres.csv (expected only with partial metadata)"
        )
    return Partition(
        dataset=dataset,
        protocol=PROTOCOL,
        fold=None,
        labels=labels,
        splits=split_objects,
        dropped=dropped,
        notes=notes,
        min_seconds=0.0,
    )


#: At most this many short clips are named one by one in a health report's notes.
MAX_LISTED_SHORT = 50


def check_fma(
    root: str | Path,
    *,
    subset: str = "medium",
    audio_dir: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    dataset: str = NAME,
) -> HealthReport:
    """Health report of an FMA root without decoding audio.

    Lists the layout, how many subset tracks ``tracks.csv`` lists and how many audio files are
    present, every problem (empty ``genre_top``, missing, empty or unreadable clips, with the
    published known-fault notes) and the sample rates and durations read from the headers. Short
    clips are noted, not reported as problems: they are zero-padded.
    """
    from mcbench.audio import AudioError, info

    metadata_root = _metadata_root(root, dataset)  # a wrong --root is an error, not a report
    try:
        partition = load_fma_partition(
            root, subset=subset, audio_dir=audio_dir, check_files=True, dataset=dataset
        )
    except DatasetError as exc:
        return HealthReport(dataset=dataset, root=metadata_root, layout=f"{METADATA_DIR}/ (unusable)",
                            n_listed=0, n_found=0, problems=[stop(dataset, metadata_root, str(exc))])
    found_dir = Path(partition.notes["audio_dir"])
    items = [(t.id, t.path) for split in partition.splits.values() for t in split.tracks]
    # Headers only; flag everything shorter than the front end's input, then sort out below
    # which flags are real problems (unreadable, no frames) and which are short clips to pad.
    flagged, stats = probe_audio(
        items, expected_sr=None, min_seconds=CLIP_SECONDS, workers=workers, progress=progress
    )
    problems = list(partition.dropped)
    short: list[str] = []
    for problem in flagged:
        fault = _known_fault(int(problem.id))
        suffix = f" ({fault})" if fault else ""
        if problem.kind != TOO_SHORT:
            problems.append(Dropped(problem.id, problem.path, f"{problem.reason}{suffix}",
                                    problem.step, problem.kind))
            continue
        try:
            header = info(problem.path)
        except AudioError:  # replaced since the probe: report it as it is now
            header = None
        if header is not None and header.frames > 0:
            short.append(
                f"{problem.id}: {header.seconds:.3f} s, kept and zero-padded to {CLIP_SECONDS:g} s{suffix}"
            )
        else:  # decoding yields nothing: the clip is skipped
            problems.append(Dropped(problem.id, problem.path, f"no audio frames{suffix}",
                                    problem.step, NOT_AUDIO))

    counts = partition.notes["counts"]
    n_listed = counts["in_subset"]
    audio_missing = sum(1 for d in partition.dropped if d.step == "audio")
    # Tracks dropped for genre_top were not file-checked: count their files here.
    n_found = counts["kept"] + sum(
        1 for d in partition.dropped if d.step == "genre_top" and file_problem(Path(d.path)) is None
    )
    notes = [
        f"subset {subset}: {n_listed} of {counts['tracks_csv']} tracks in tracks.csv "
        f"(('set', 'subset') <= {subset!r})",
        f"audio folder: {found_dir}",
        f"split sizes: {partition.notes['split_sizes']}",
        f"{len(partition.labels)} classes: {', '.join(partition.labels)}",
        f"{audio_missing} clip(s) missing or empty, {len(problems) - len(partition.dropped)} unreadable",
        "sample rates other than 44100 Hz are resampled like every clip",
    ]
    if "classes_warning" in partition.notes:
        notes.append(partition.notes["classes_warning"])
    notes.extend(f"short clip {line}" for line in short[:MAX_LISTED_SHORT])
    if len(short) > MAX_LISTED_SHORT:
        notes.append(f"… and {len(short) - MAX_LISTED_SHORT} more short clips (stats n_short)")
    listed_known = sorted(
        track_key(int(t))
        for t in _subset_ids(partition)
        if int(t) in KNOWN_EMPTY | KNOWN_WRONG_DURATION
    )
    if listed_known:
        notes.append(
            f"known faulty clips (mdeff/fma issues #8, #41, #44) present in the subset: {', '.join(listed_known)}"
        )
    stats = dict(stats)
    stats["n_short"] = len(short)
    layout = f"{METADATA_DIR}/ + {found_dir.name}/ (subset {subset})"
    return HealthReport(
        dataset=dataset,
        root=Path(partition.notes["tracks_csv"]).parents[1],
        layout=layout,
        n_listed=n_listed,
        n_found=n_found,
        problems=problems,
        stats=stats,
        notes=notes,
    )


def _subset_ids(partition: Partition) -> list[str]:
    """Every id of the partition's subset: kept tracks and dropped ones."""
    return [t.id for s in partition.splits.values() for t in s.tracks] + [
        d.id for d in partition.dropped
    ]


#: The parameters of :func:`tracks` (``--dataset-param KEY=VALUE``), typed.
PARAMS = {
    "subset": Option(str, "medium", "the FMA subset", choices=SUBSETS),
    # Where the audio lies is not what it is: the clips' content is in the run's identity.
    "audio_dir": Option(str, None, "audio folder relative to the root (default: the archive's "
                        "folder name)", affects_result=False),
    "check_files": Option(bool, True, "drop clips whose audio file is missing or empty"),
}


def tracks(
    root: str | Path, protocol: str = PROTOCOL, fold: int | None = None, **params: Any
) -> Partition:
    """``DatasetSpec.tracks``: the ``official`` protocol (one fixed split) of
    :func:`load_fma_partition`; ``params`` are those of :data:`PARAMS`, typed by the harness."""
    if protocol != PROTOCOL:
        raise DatasetError(f"{NAME}: unknown protocol {protocol!r}; FMA has only {PROTOCOL!r}")
    if fold not in (None, 0):
        raise DatasetError(f"{NAME}: protocol {PROTOCOL!r} has a single fold (0), got {fold!r}")
    return load_fma_partition(root, **resolve_options(PARAMS, params, owner=f"dataset {NAME!r}"))


def _check(root: Path) -> HealthReport:
    return check_fma(root)


def expected_split(protocol: str = PROTOCOL, **params) -> ExpectedSplit:
    """FMA-medium's official split (Defferrard et al. 2017, tracks.csv ``('set', 'split')``):
    19,922 training, 2,505 validation and 2,573 test clips, before unreadable clips are dropped."""
    return ExpectedSplit(train=19_922, valid=2_505, test=2_573)


SPEC = DatasetSpec(
    name=NAME,
    summary="Free Music Archive, medium subset: 25,000 30-s clips, 16 unbalanced root genres, official split",
    task=MULTICLASS,
    tracks=tracks,
    check=_check,
    protocols={PROTOCOL: 1},
    default_protocol=PROTOCOL,
    sample_rate=SAMPLE_RATE,
    clip_seconds=CLIP_SECONDS,
    readme=README,
    params=PARAMS,
    expected_split=expected_split,
)


@hookimpl
def mcbench_datasets() -> list[DatasetSpec]:
    return [SPEC]


__all__ = [
    "MEDIUM_CLASSES",
    "SPEC",
    "audio_path",
    "check_fma",
    "classes_for",
    "find_audio_dir",
    "load_fma_partition",
    "read_genres",
    "read_tracks",
    "root_genres",
    "select_subset",
    "track_key",
    "tracks",
]
