"""The ``fma`` dataset plugin on a faithful miniature root.

The fixture is built from the real column list, the real genres rows and the real clip of track 2
under ``shared/`` (through the ``shared_dir`` fixture); nothing is copied into the repository.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fixtures_fma import (
    DEFAULT_TRACKS,
    MEDIUM_CLASSES,
    MEDIUM_IDS,
    FixtureTrack,
    build_fma_fixture,
    column_pairs,
)
from mcbench_plugins.datasets import fma

from mcbench.audio import decode, load_clip
from mcbench.specs import DatasetError, OptionError

#: The 16 medium classes with their genre ids (genres.csv), in label order.
SPEC_TABLE = [
    ("Blues", 3),
    ("Classical", 5),
    ("Country", 9),
    ("Easy Listening", 13),
    ("Electronic", 15),
    ("Experimental", 38),
    ("Folk", 17),
    ("Hip-Hop", 21),
    ("Instrumental", 1235),
    ("International", 2),
    ("Jazz", 4),
    ("Old-Time / Historic", 8),
    ("Pop", 10),
    ("Rock", 12),
    ("Soul-RnB", 14),
    ("Spoken", 20),
]


@pytest.fixture(scope="module")
def fma_root(tmp_path_factory, shared_dir) -> Path:
    """The default fixture, built once and only read by the tests that use it."""
    return build_fma_fixture(tmp_path_factory.mktemp("fma"), shared_dir)


@pytest.fixture(scope="module")
def medium(fma_root):
    return fma.load_fma_partition(fma_root)


# --------------------------------------------------------------------------- tracks.csv


def test_fixture_tracks_csv_has_the_three_header_lines(fma_root, shared_dir):
    pairs = column_pairs(shared_dir)
    lines = (fma_root / "fma_metadata/tracks.csv").read_text().split("\n")
    assert lines[0] == "," + ",".join(p[0] for p in pairs)
    assert lines[1] == "," + ",".join(p[1] for p in pairs)
    assert lines[2] == "track_id" + "," * 52
    assert lines[0].startswith(",album,album,") and ",set,set,track," in lines[0]
    assert lines[3].startswith("2,")


def test_read_tracks_reads_the_two_level_layout(fma_root, shared_dir):
    tracks = fma.read_tracks(fma_root / "fma_metadata/tracks.csv")
    assert tracks.shape == (len(DEFAULT_TRACKS), 52)
    assert list(tracks.columns) == column_pairs(shared_dir)
    assert tracks.index.name == "track_id"
    assert list(tracks.index) == [t.track_id for t in DEFAULT_TRACKS]
    row = tracks.loc[2]
    assert row[("set", "subset")] == "small" and row[("set", "split")] == "training"
    assert row[("track", "genre_top")] == "Hip-Hop"
    assert row[("track", "genres")] == [21] and row[("track", "tags")] == ["awol"]
    assert row[("track", "title")] == "Food" and row[("track", "bit_rate")] == 256000
    # The free-text field with a comma, quotes and a line break survives as one cell.
    assert row[("artist", "bio")] == 'AWOL, "A Way Of Life",\nis a hip-hop collective.'
    assert tracks.loc[140, ("track", "title")] == 'Song, with "quotes"'
    assert tracks.loc[2, ("album", "date_created")] == "2008-11-26 01:48:12"
    # Track 20: empty genre_top, a two-element list written as "[76, 103]".
    assert tracks.loc[20, ("track", "genres")] == [76, 103]
    assert tracks.loc[20, ("track", "genre_top")] != tracks.loc[20, ("track", "genre_top")]  # NaN
    assert tracks.loc[3, ("album", "tags")] == []


def test_one_header_line_is_rejected_naming_the_file(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_text(
        "track_id,split,subset,genre_top,genres\n2,training,small,Hip-Hop,[21]\n"
        "3,training,medium,Hip-Hop,[21]\n5,test,small,Hip-Hop,[21]\n"
    )
    with pytest.raises(DatasetError, match="three header lines") as info:
        fma.read_tracks(path)
    assert str(path) in str(info.value)


def test_missing_required_column_and_bad_literal_are_rejected(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_text(",set,track\n,split,genre_top\ntrack_id,,\n2,training,Hip-Hop\n")
    with pytest.raises(DatasetError, match=r"\('set', 'subset'\)") as info:
        fma.read_tracks(path)
    assert str(path) in str(info.value)
    path.write_text(
        ",set,set,track,track\n,split,subset,genre_top,genres\ntrack_id,,,,\n"
        "2,training,small,Hip-Hop,__import__('os')\n"
    )
    with pytest.raises(DatasetError, match="track 2.*not a Python list literal"):
        fma.read_tracks(path)


# --------------------------------------------------------------------------- subsets and classes


def test_subset_nesting_trap(fma_root):
    tracks = fma.read_tracks(fma_root / "fma_metadata/tracks.csv")
    ids = {s: sorted(fma.select_subset(tracks, s).index) for s in fma.SUBSETS}
    assert ids["small"] == [2, 140, 99134, 108925]
    assert ids["medium"] == [2, 3, 140, 5000, 12345, 98565, 99134, 108925]
    assert ids["large"] == sorted(t.track_id for t in DEFAULT_TRACKS)
    # The naive filter loses every fma_small track, track 2 among them.
    naive = sorted(tracks.index[tracks[("set", "subset")] == "medium"])
    assert 2 not in naive and set(naive) < set(ids["medium"])
    with pytest.raises(DatasetError, match="unknown FMA subset"):
        fma.select_subset(tracks, "full")
    broken = tracks.copy()
    broken.loc[3, ("set", "subset")] = "Medium"
    with pytest.raises(DatasetError, match="'Medium'"):
        fma.select_subset(broken, "medium")


def test_classes_of_medium_are_the_16_roots_in_ascii_order(tmp_path, shared_dir):
    import pandas as pd

    genres = fma.read_genres(shared_dir / "data/fma/genres_partial.csv")
    roots = fma.root_genres(genres)
    assert list(roots.items()) == SPEC_TABLE
    counts = pd.read_csv(shared_dir / "data/fma/split_counts_by_genre_top.csv")
    table = pd.DataFrame(
        {("track", "genre_top"): counts.loc[counts.subset == "medium", "genre_top"]}
    )
    classes = fma.classes_for(table, genres)
    assert classes == [title for title, _ in SPEC_TABLE] == list(fma.MEDIUM_CLASSES)
    assert classes.index("Old-Time / Historic") == 11 and classes.index("Soul-RnB") == 14
    small = pd.DataFrame(
        {("track", "genre_top"): counts.loc[counts.subset == "small", "genre_top"]}
    )
    assert fma.classes_for(small, genres) == [
        "Electronic",
        "Experimental",
        "Folk",
        "Hip-Hop",
        "Instrumental",
        "International",
        "Pop",
        "Rock",
    ]
    # A non-root genre or a misspelt root is rejected.
    for wrong in ("Avant-Garde", "Old-Time/Historic", "Hip Hop"):
        bad = pd.DataFrame({("track", "genre_top"): ["Rock", wrong]})
        with pytest.raises(DatasetError, match="not root genres"):
            fma.classes_for(bad, genres)


def _write_count_table(path: Path, shared_dir: Path) -> dict:
    """A metadata-only tracks.csv with the real per-genre split counts of medium and small.

    Each genre gets its small-subset tracks (stored as ``small``) and the rest of its medium
    tracks (stored as ``medium``), plus some ``large`` tracks, in a shuffled row order.
    """
    import pandas as pd

    counts = pd.read_csv(shared_dir / "data/fma/split_counts_by_genre_top.csv")
    small = counts[counts.subset == "small"].set_index("genre_top")
    roots = dict(SPEC_TABLE)
    rows = []
    for rec in counts[counts.subset == "medium"].itertuples():
        for split in ("training", "validation", "test"):
            n_small = int(small.loc[rec.genre_top, split]) if rec.genre_top in small.index else 0
            n_medium = int(getattr(rec, split))
            gid = f"[{roots[rec.genre_top]}]"
            rows += [("small", split, rec.genre_top, gid)] * n_small
            rows += [("medium", split, rec.genre_top, gid)] * (n_medium - n_small)
            rows += [("large", split, rec.genre_top, gid)] * 3
    order = np.random.default_rng(0).permutation(len(rows))
    columns = pd.MultiIndex.from_tuples(
        [fma.SUBSET_COL, fma.SPLIT_COL, fma.GENRE_TOP_COL, fma.GENRES_COL]
    )
    frame = pd.DataFrame(
        [rows[i] for i in order],
        columns=columns,
        index=pd.Index(np.arange(1, len(rows) + 1), name="track_id"),
    )
    path.parent.mkdir(parents=True)
    frame.to_csv(path)
    return {"medium": counts[counts.subset == "medium"], "small": counts[counts.subset == "small"]}


def test_official_split_reproduces_the_real_per_genre_counts(tmp_path, shared_dir):
    import shutil

    expected = _write_count_table(tmp_path / "fma_metadata/tracks.csv", shared_dir)
    shutil.copyfile(
        shared_dir / "data/fma/genres_partial.csv", tmp_path / "fma_metadata/genres.csv"
    )
    part = fma.load_fma_partition(tmp_path, check_files=False)
    assert part.labels == list(fma.MEDIUM_CLASSES) and "classes_warning" not in part.notes
    # 25,000 = 19,922 / 2,505 / 2,573 (mdeff/fma analysis.ipynb), small tracks included.
    assert part.notes["split_sizes"] == {"train": 19922, "valid": 2505, "test": 2573}
    assert part.notes["counts"]["outside_subset"] == 16 * 3 * 3
    for rec in expected["medium"].itertuples():
        for split, name in (("training", "train"), ("validation", "valid"), ("test", "test")):
            assert part.notes["class_counts"][name][rec.genre_top] == getattr(rec, split)
    small = fma.load_fma_partition(tmp_path, subset="small", check_files=False)
    assert small.notes["split_sizes"] == {"train": 6400, "valid": 800, "test": 800}
    assert set(small.notes["class_counts"]["valid"].values()) == {100}
    assert small.labels == sorted(expected["small"].genre_top)


# --------------------------------------------------------------------------- the partition


def test_partition_labels_splits_and_ids(medium, fma_root):
    assert medium.dataset == "fma" and medium.protocol == "official" and medium.fold is None
    assert medium.labels == MEDIUM_CLASSES
    got = {
        name: [(t.id, medium.labels[t.labels[0]]) for t in s.tracks]
        for name, s in medium.splits.items()
    }
    assert got == {
        "train": [("000002", "Hip-Hop"), ("000003", "Hip-Hop")],
        "valid": [("000140", "Folk"), ("005000", "Soul-RnB")],
        "test": [("012345", "Old-Time / Historic"), ("098565", "Electronic")],
    }
    assert [t.labels for t in medium.splits["test"].tracks] == [(3,), (0,)]
    track2 = medium.splits["train"].tracks[0]
    assert track2.path == (fma_root / "fma_medium/000/000002.mp3").resolve()
    assert medium.min_seconds == 0.0  # short clips are padded, never dropped
    # Rock's only medium track lacks audio, yet Rock keeps its label index (metadata order).
    assert medium.labels.index("Rock") == 4
    assert medium.notes["counts"] == {
        "tracks_csv": 10,
        "outside_subset": 2,
        "in_subset": 8,
        "dropped_genre_top": 0,
        "dropped_audio": 2,
        "kept": 6,
    }
    assert medium.notes["classes_warning"].startswith("6 classes found")


def test_drops_are_reported_with_reasons(medium, fma_root):
    audio = (fma_root / "fma_medium").resolve()
    dropped = {d.id: d for d in medium.dropped}
    assert sorted(dropped) == ["099134", "108925"]
    assert dropped["099134"].path == str(audio / "099/099134.mp3")
    assert dropped["099134"].reason.startswith("empty (0 bytes)")
    assert dropped["108925"].reason.startswith("missing")
    assert all(
        d.step == "audio" and "known fault: empty clip" in d.reason for d in dropped.values()
    )
    kept = {i for s in medium.splits.values() for i in s.ids}
    assert kept.isdisjoint(dropped) and kept | set(dropped) == set(MEDIUM_IDS)


def test_empty_genre_top_inside_the_subset_is_a_reported_data_error(tmp_path, shared_dir):
    rows = DEFAULT_TRACKS + (
        FixtureTrack(200000, "medium", "validation", None, [], [], audio=None),
    )
    root = build_fma_fixture(tmp_path, shared_dir, tracks=rows)
    part = fma.load_fma_partition(root)
    bad = [d for d in part.dropped if d.step == "genre_top"]
    assert [(d.id, d.path) for d in bad] == [
        ("200000", str((root / "fma_medium/200/200000.mp3").resolve()))
    ]
    assert "empty genre_top in subset medium (genres [])" in bad[0].reason
    assert part.notes["counts"]["dropped_genre_top"] == 1
    # Track 20 (large, empty genre_top) is outside medium: not reported.
    assert "000020" not in {d.id for d in part.dropped}
    assert "000020" in {
        d.id for d in fma.load_fma_partition(root, subset="large", check_files=False).dropped
    }


def test_small_subset_excludes_medium_tracks(fma_root):
    part = fma.tracks(fma_root, subset="small")
    ids = {i for s in part.splits.values() for i in s.ids}
    assert ids == {"000002", "000140"}
    assert part.labels == ["Electronic", "Folk", "Hip-Hop", "Rock"]


def test_real_clip_through_the_real_layout(medium):
    path = medium.splits["train"].tracks[0].path
    header = sf.info(str(path))
    assert (header.frames, header.channels, header.samplerate) == (1_321_967, 2, 44_100)
    mono, sr = decode(path)
    assert sr == 44_100 and mono.shape == (1_321_967,)
    clip = load_clip(path, fma.CLIP_SECONDS)
    assert clip.samples.shape == (348_000,) and clip.source_sr == 44_100
    assert np.all(np.isfinite(clip.samples)) and float(np.abs(clip.samples).max()) > 0.05


def test_short_generated_clip_is_kept_and_padded(medium):
    short = next(t for t in medium.splits["test"].tracks if t.id == "098565")
    header = sf.info(str(short.path))
    assert header.samplerate == 44_100 and header.channels == 2
    assert 1.4 < header.duration < 1.7
    clip = load_clip(short.path, fma.CLIP_SECONDS)
    assert clip.samples.shape == (348_000,)
    assert not np.any(clip.samples[int(1.8 * 12_000) :])  # zero-padded at the end


# --------------------------------------------------------------------------- roots and parameters


def test_audio_path_pattern():
    assert fma.audio_path(Path("a"), 2) == Path("a/000/000002.mp3")
    assert fma.audio_path(Path("a"), 133297) == Path("a/133/133297.mp3")
    with pytest.raises(DatasetError):
        fma.audio_path(Path("a"), 1_000_000)


def test_missing_root_points_at_the_readme(tmp_path):
    with pytest.raises(DatasetError, match=r"See `mcbench datasets fma`"):
        fma.load_fma_partition(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"fma_metadata/tracks\.csv.*`mcbench datasets fma`"):
        fma.load_fma_partition(tmp_path)
    (tmp_path / "tracks.csv").write_text("x")
    with pytest.raises(DatasetError, match="parent folder"):
        fma.load_fma_partition(tmp_path)


def test_missing_audio_folder_and_escaping_audio_dir(tmp_path, shared_dir):
    root = build_fma_fixture(
        tmp_path / "root", shared_dir, tracks=DEFAULT_TRACKS[:2], audio_folder="fma_large"
    )
    part = fma.load_fma_partition(root)  # fma_large is found when fma_medium is absent
    assert part.notes["audio_dir"] == str((root / "fma_large").resolve())
    assert part.splits["train"].ids == ["000002", "000003"] and not part.dropped
    assert fma.tracks(root, audio_dir="fma_large").splits["train"].ids == ["000002", "000003"]
    (tmp_path / "outside").mkdir()
    for escaping in ("../outside", str(tmp_path / "outside")):
        with pytest.raises(DatasetError, match="escapes the data root|absolute"):
            fma.tracks(root, audio_dir=escaping)
    (root / "fma_large").rename(root / "clips")
    with pytest.raises(DatasetError, match=r"no audio folder.*\['fma_medium', 'fma_large'\]"):
        fma.load_fma_partition(root)
    assert fma.tracks(root, audio_dir="clips").splits["train"].ids == ["000002", "000003"]
    # Without the file check the paths point into the first expected folder.
    unchecked = fma.tracks(root, check_files=False)
    assert unchecked.splits["train"].tracks[0].path == root.resolve() / "fma_medium/000/000002.mp3"


def test_tracks_wrapper_validates_protocol_fold_and_params(fma_root):
    with pytest.raises(DatasetError, match="unknown protocol"):
        fma.tracks(fma_root, protocol="cv10")
    with pytest.raises(DatasetError, match="single fold"):
        fma.tracks(fma_root, fold=1)
    with pytest.raises(OptionError, match="unknown option 'seed'"):
        fma.tracks(fma_root, seed=3)
    part = fma.tracks(fma_root, fold=0)
    assert part.fingerprint() == fma.load_fma_partition(fma_root).fingerprint()


# --------------------------------------------------------------------------- check and registry


def test_check_lists_problems_rates_and_durations(fma_root):
    (fma_root / "fma_medium/005/005000.mp3").rename(fma_root / "moved.mp3")
    try:
        report = fma.check_fma(fma_root, progress=False)
    finally:
        (fma_root / "moved.mp3").rename(fma_root / "fma_medium/005/005000.mp3")
    assert (
        report.dataset == "fma" and report.layout == "fma_metadata/ + fma_medium/ (subset medium)"
    )
    assert (report.n_listed, report.n_found) == (8, 5)
    assert not report.ok
    problems = {d.id: d.reason for d in report.problems}
    assert sorted(problems) == ["005000", "099134", "108925"]
    assert problems["099134"].startswith("empty (0 bytes)") and problems["005000"] == "missing"
    assert report.stats["sample_rates"] == {"44100": 5} and report.stats["channels"] == {"2": 5}
    assert report.stats["durations"]["max"] == pytest.approx(1_321_967 / 44_100, abs=1e-3)
    assert 1.4 < report.stats["durations"]["min"] < 1.7
    short = [n for n in report.notes if n.startswith("short clip")]
    assert len(short) == 4  # the three 3-s tones and the 1.5-s clip; track 2 is 29.98 s
    assert any(n.startswith("short clip 098565") and "wrong metadata duration" in n for n in short)


def test_check_reports_an_undecodable_clip(tmp_path, shared_dir):
    root = build_fma_fixture(tmp_path, shared_dir, tracks=DEFAULT_TRACKS[:2])
    (root / "fma_medium/000/000003.mp3").write_bytes(b"not an mp3 " * 100)
    report = fma.check_fma(root, progress=False)
    assert [(d.id, d.step) for d in report.problems] == [("000003", "probe")]
    assert "not readable as audio" in report.problems[0].reason
    assert report.n_found == 2 and report.stats["sample_rates"] == {"44100": 1}


def test_plugin_is_registered_and_cheap_to_import():
    from mcbench.plugins import Registry

    spec = Registry().dataset("fma")
    assert spec is fma.SPEC
    assert (spec.task, dict(spec.protocols), spec.default_protocol) == (
        "multiclass",
        {"official": 1},
        "official",
    )
    assert (spec.sample_rate, spec.clip_seconds, spec.readme) == (
        44_100,
        29.0,
        "datasets/fma/README.md",
    )
    code = (
        "import sys, mcbench_plugins.datasets.fma; "
        "print(sorted({'pandas', 'torch', 'librosa', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unknown_split_value_is_rejected(tmp_path, shared_dir):
    rows = (
        DEFAULT_TRACKS[0],
        FixtureTrack(3, "medium", "train", "Hip-Hop", [21], [21], audio=None),
    )
    root = build_fma_fixture(tmp_path, shared_dir, tracks=rows)
    with pytest.raises(DatasetError, match=r"tracks\.csv: \('set', 'split'\).*\['train'\]"):
        fma.load_fma_partition(root)
