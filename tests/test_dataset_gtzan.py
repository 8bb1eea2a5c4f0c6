"""The GTZAN plugin: layouts, the cv10 and filtered protocols, health checks."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fixtures_gtzan import build_gtzan, write_lists
from mcbench_plugins.datasets import gtzan
from mcbench_plugins.datasets.gtzan import (
    GENRES,
    canonical_ids,
    check_gtzan,
    cv_folds,
    discover_files,
    load_gtzan_partition,
    read_split_list,
)

from mcbench.specs import DatasetError, OptionError

IDS = canonical_ids()
LABELS = [GENRES.index(i.split(".")[0]) for i in IDS]


@pytest.fixture(scope="module")
def wav_root(tmp_path_factory):
    return build_gtzan(tmp_path_factory.mktemp("g"), "wav", numbers=(0, 1, 2), extra=("jazz.00054",))


@pytest.fixture(scope="module")
def kaggle_root(tmp_path_factory):
    return build_gtzan(tmp_path_factory.mktemp("g"), "kaggle", numbers=(0, 1, 2), broken_jazz=True)


# --------------------------------------------------------------------------- layouts


def test_canonical_ids():
    assert len(IDS) == 1000 and IDS[0] == "blues.00000" and IDS[-1] == "rock.00099"
    assert IDS == sorted(IDS)
    assert list(GENRES) == sorted(GENRES)  # canonical order is alphabetical: sorted ids = genre order
    assert canonical_ids(("jazz",), 3) == ["jazz.00000", "jazz.00001", "jazz.00002"]


@pytest.mark.parametrize(
    ("layout", "name"),
    [
        ("wav", "genres/<genre>/*.wav"),
        ("au", "genres/<genre>/*.au"),
        ("kaggle", "Data/genres_original/<genre>/*.wav"),
        ("flat", "<genre>/<genre>.000NN.*"),
    ],
)
def test_each_layout_is_discovered(tmp_path, layout, name):
    fx = build_gtzan(tmp_path, layout, numbers=(0, 7), full_length=())
    found_layout, files = discover_files(fx.root)
    assert found_layout == name
    assert files == fx.files and len(files) == 20
    assert "blues.00000" in files and not files["blues.00000"].name.startswith("._")
    assert all(p.parent.name == i.split(".")[0] for i, p in files.items())


def test_layout_detection_order_and_strays(tmp_path):
    fx = build_gtzan(tmp_path, "au", numbers=(3,), full_length=())
    # A .wav release beside the .au one wins (layout 1 before 2).
    wav = fx.root / "genres" / "rock" / "rock.00003.wav"
    wav.write_bytes((fx.root / "genres" / "rock" / "rock.00003.au").read_bytes())
    layout, files = discover_files(fx.root)
    assert layout == "genres/<genre>/*.wav" and files == {"rock.00003": wav}
    # Misnamed or misplaced files are not clips.
    (fx.root / "genres" / "rock" / "pop.00001.wav").write_bytes(b"x")
    (fx.root / "genres" / "rock" / "rock.1.wav").write_bytes(b"x")
    (fx.root / "genres" / "rock" / "notes.txt").write_text("x")
    assert discover_files(fx.root)[1] == {"rock.00003": wav}
    assert discover_files(tmp_path / "empty") == ("", {})


# --------------------------------------------------------------------------- cv10 folds


def test_cv_folds_are_stratified_and_complete():
    folds = cv_folds(IDS, LABELS, seed=0)
    assert set(folds) == set(IDS) and set(folds.values()) == set(range(10))
    per_fold_genre = Counter((f, i.split(".")[0]) for i, f in folds.items())
    assert set(per_fold_genre.values()) == {10} and len(per_fold_genre) == 100


def test_cv_folds_depend_only_on_seed_and_ids():
    folds = cv_folds(IDS, LABELS, seed=0)
    order = sorted(range(1000), key=lambda i: (i * 7919) % 1000)  # a permutation of the input
    assert cv_folds([IDS[i] for i in order], [LABELS[i] for i in order], seed=0) == folds
    assert cv_folds(IDS, LABELS, seed=0) == folds
    other = cv_folds(IDS, LABELS, seed=1)
    assert other != folds and sum(other[i] == folds[i] for i in IDS) < 300
    # The reference: scikit-learn's StratifiedKFold over the sorted ids.
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=10, shuffle=True, random_state=0)
    for k, (_, test) in enumerate(skf.split(np.zeros(1000), LABELS)):
        assert sorted(IDS[i] for i in test) == sorted(i for i in IDS if folds[i] == k)


def test_cv10_partition(wav_root):
    part = load_gtzan_partition(wav_root.root, fold=3, seed=0)
    folds = cv_folds(IDS, LABELS, seed=0)
    assert part.dataset == "gtzan" and part.protocol == "cv10" and part.fold == 3
    assert part.labels == list(GENRES) and part.min_seconds == 28.5
    assert part.notes["seed"] == 0 and part.notes["folds"] == folds
    assert (part.notes["test_fold"], part.notes["valid_fold"]) == (3, 4)
    present = set(wav_root.files)
    for name, wanted in (("test", {3}), ("valid", {4}), ("train", set(range(10)) - {3, 4})):
        split = part.splits[name]
        assert split.ids == sorted(i for i in IDS if folds[i] in wanted and i in present)
        for track in split.tracks:
            assert track.labels == (GENRES.index(track.id.split(".")[0]),)
            assert track.path == wav_root.files[track.id].resolve()
    assert sum(len(s) for s in part.splits.values()) == len(present) == 31
    # Canonical ids without a file are dropped and reported, with their split.
    assert len(part.dropped) == 969 and {d.step for d in part.dropped} == {"missing_audio"}
    listed = part.notes["listed_per_split"]
    assert listed == {"train": 800, "valid": 100, "test": 100}
    # Trial 9 wraps around: validation is fold 0.
    last = load_gtzan_partition(wav_root.root, fold=9, seed=0)
    assert last.notes["valid_fold"] == 0
    assert last.splits["valid"].ids == sorted(i for i in present if folds[i] == 0)


def test_broken_file_keeps_every_fold(wav_root, kaggle_root):
    """The Kaggle copy's non-RIFF jazz.00054.wav is skipped and reported; folds do not move."""
    for fold in range(10):
        wav = load_gtzan_partition(wav_root.root, fold=fold, seed=5)
        kaggle = load_gtzan_partition(kaggle_root.root, fold=fold, seed=5)
        assert wav.notes["folds"] == kaggle.notes["folds"]
        for name in ("train", "valid", "test"):
            assert [i for i in wav.splits[name].ids if i != "jazz.00054"] == kaggle.splits[name].ids
    assert kaggle.notes["layout"] == "Data/genres_original/<genre>/*.wav"
    broken = [d for d in kaggle.dropped if d.id == "jazz.00054"]
    assert len(broken) == 1 and broken[0].step == "unreadable_audio"
    assert broken[0].reason.startswith("not readable as audio")
    assert broken[0].path.endswith("Data/genres_original/jazz/jazz.00054.wav")
    split = next(s for s, ids in kaggle.notes["dropped_per_split"].items() if "jazz.00054" in ids)
    fold = kaggle.notes["folds"]["jazz.00054"]
    assert split == ("test" if fold == 9 else "valid" if fold == 0 else "train")
    # The .wav copy has a good jazz.00054 in the same split.
    assert "jazz.00054" in load_gtzan_partition(wav_root.root, fold=9, seed=5).splits[split].ids


def test_cv10_options(wav_root):
    with pytest.raises(DatasetError, match="folds 0…9, not 10"):
        load_gtzan_partition(wav_root.root, fold=10)
    with pytest.raises(DatasetError, match="unknown protocol"):
        load_gtzan_partition(wav_root.root, protocol="cv5")
    default = gtzan.tracks(wav_root.root)
    assert default.protocol == "cv10" and default.fold == 0 and default.notes["seed"] == 0
    seeded = gtzan.tracks(wav_root.root, "cv10", 0, seed="7")
    assert seeded.notes["seed"] == 7 and seeded.notes["folds"] == cv_folds(IDS, LABELS, seed=7)
    with pytest.raises(OptionError, match="unknown option 'sed' \\(did you mean 'seed'\\?\\)"):
        gtzan.tracks(wav_root.root, fold=0, sed=1)


# --------------------------------------------------------------------------- filtered


def test_filtered_protocol(kaggle_root, tmp_path):
    membership = {
        "train": ["blues.00000", "jazz.00001", "jazz.00054", "rock.00002"],
        "valid": ["classical.00000", "pop.00001"],
        "test": ["country.00002", "metal.00000", "reggae.00001"],
    }
    lists = tmp_path / "lists"
    write_lists(lists, membership)
    part = load_gtzan_partition(kaggle_root.root, protocol="filtered", lists_dir=lists)
    assert part.protocol == "filtered" and part.fold is None
    assert part.splits["train"].ids == ["blues.00000", "jazz.00001", "rock.00002"]
    assert part.splits["valid"].ids == membership["valid"]
    assert part.splits["test"].ids == membership["test"]
    assert [(d.id, d.step) for d in part.dropped] == [("jazz.00054", "unreadable_audio")]
    assert part.notes["dropped_per_split"] == {"train": ["jazz.00054"], "valid": [], "test": []}
    label = {t.id: t.labels for s in part.splits.values() for t in s.tracks}
    assert label["pop.00001"] == (GENRES.index("pop"),) and label["blues.00000"] == (0,)
    # Lists in the data root are found without an option; a missing list is an error with a hint.
    write_lists(kaggle_root.root, membership)
    try:
        assert gtzan.tracks(kaggle_root.root, "filtered").splits["test"].ids == membership["test"]
    finally:
        for name in ("train", "valid", "test"):
            (kaggle_root.root / f"{name}_filtered.txt").unlink()
    with pytest.raises(DatasetError, match=r"needs train_filtered\.txt.*coreyker/dnn-mgr"):
        load_gtzan_partition(kaggle_root.root, protocol="filtered")
    with pytest.raises(DatasetError, match="no fold 2"):
        load_gtzan_partition(kaggle_root.root, protocol="filtered", fold=2, lists_dir=lists)


def test_filtered_lists_must_be_disjoint_and_well_formed(kaggle_root, tmp_path):
    write_lists(tmp_path, {"train": ["blues.00000"], "valid": ["blues.00000"], "test": []})
    with pytest.raises(DatasetError, match="blues.00000 is listed in both train_filtered.txt and valid_filtered.txt"):
        load_gtzan_partition(kaggle_root.root, protocol="filtered", lists_dir=tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("blues/blues.00001.wav\n\nrock/blues.00002.wav\n")
    with pytest.raises(DatasetError, match=r"bad\.txt, line 3: expected '<genre>/<genre>\.000NN\.wav'"):
        read_split_list(bad)
    bad.write_text("../../etc/passwd\n")
    with pytest.raises(DatasetError, match="line 1"):
        read_split_list(bad)
    bad.write_text("blues/blues.00001.wav\n\n")
    assert read_split_list(bad) == ["blues.00001"]


def test_real_filtered_lists(shared_dir):
    folder = shared_dir / "data" / "gtzan"
    split = {name: read_split_list(folder / f"{name}_filtered.txt") for name in ("train", "valid", "test")}
    assert {k: len(v) for k, v in split.items()} == {"train": 443, "valid": 197, "test": 290}
    every = [i for ids in split.values() for i in ids]
    assert len(set(every)) == 930 and set(every) <= set(IDS)
    assert "jazz.00054" in split["train"]
    for name in ("train", "valid", "test"):  # the stratified lists share the format
        assert len(read_split_list(folder / f"{name}_stratified.txt")) == {"train": 500}.get(name, 250)


def test_real_filtered_lists_on_a_kaggle_root(shared_dir, kaggle_root):
    part = load_gtzan_partition(kaggle_root.root, protocol="filtered", lists_dir=shared_dir / "data" / "gtzan")
    assert part.notes["listed_per_split"] == {"train": 443, "valid": 197, "test": 290}
    assert "jazz.00054" in part.notes["dropped_per_split"]["train"]
    kept = {i for s in part.splits.values() for i in s.ids}
    assert kept and kept <= set(kaggle_root.files) - {"jazz.00054"}


def test_mirdata_index_gives_the_canonical_ids(shared_dir):
    index = json.loads((shared_dir / "data/gtzan/gtzan_genre_index_1.0.mirdata.json").read_text())
    tracks = index["tracks"]
    assert sorted(tracks) == IDS
    for track_id, entry in tracks.items():
        genre = track_id.split(".")[0]
        assert entry["audio"][0] == f"gtzan_genre/genres/{genre}/{track_id}.wav"


# --------------------------------------------------------------------------- check


def test_check_reports_layout_problems_and_lengths(kaggle_root):
    report = check_gtzan(kaggle_root.root, progress=False)
    assert report.layout == "Data/genres_original/<genre>/*.wav"
    assert report.n_listed == 1000 and report.n_found == 31
    problems = {d.id: d for d in report.problems}
    assert problems["jazz.00054"].reason.startswith("not readable as audio")
    assert problems["rock.00099"].reason == (
        f"no audio file for rock.00099 in the layout found (Data/genres_original/<genre>/*.wav) "
        f"under {kaggle_root.root.resolve()}")
    assert {(p.kind, p.effect) for p in report.problems} == {
        ("missing", "skip"), ("not readable as audio", "skip")}
    assert len(problems) == 1000 - 30
    assert report.stats["sample_rates"] == {"22050": 30} and report.stats["channels"] == {"1": 30}
    assert report.stats["formats"] == {"WAV": 30}
    durations = report.stats["durations"]
    assert durations["min"] == pytest.approx(29.98) and durations["max"] == pytest.approx(30.0)
    assert any("less than 28.5 s of audio are skipped" in n for n in report.notes)
    assert any("no filtered-protocol lists" in n for n in report.notes)


def test_check_au_layout_and_sample_rate(tmp_path):
    fx = build_gtzan(tmp_path, "au", numbers=range(10), genres=("blues",))
    report = check_gtzan(fx.root, genres=("blues",), n_per_genre=10, progress=False)
    assert report.layout == "genres/<genre>/*.au" and report.ok
    assert report.n_found == 10 and report.stats["formats"] == {"AU": 10}
    assert report.stats["durations"]["max"] == pytest.approx(30.0)
    import numpy as np
    import soundfile as sf

    # Another sample rate is resampled like every clip: a note, not a problem.
    resampled = fx.files["blues.00005"]
    sf.write(str(resampled), np.zeros(16000 * 29), 16000, format="AU", subtype="PCM_16")
    report = check_gtzan(fx.root, genres=("blues",), n_per_genre=10, progress=False)
    assert report.ok and report.problems == []
    assert any(n.startswith("1 clip(s) are not at 22050 Hz (16000 Hz; e.g. blues.00005)")
               for n in report.notes)
    part = load_gtzan_partition(fx.root, genres=("blues",), n_per_genre=10)
    assert "blues.00005" in {i for s in part.splits.values() for i in s.ids}


def test_missing_root_points_at_the_readme(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_gtzan_partition(tmp_path / "absent")
    assert "`mcbench datasets gtzan`" in str(info.value) and "--root" in str(info.value)
    (tmp_path / "genres").mkdir()
    with pytest.raises(DatasetError, match="no GTZAN audio found"):
        load_gtzan_partition(tmp_path)


def test_registered_spec():
    from mcbench.plugins import Registry

    spec = Registry().dataset("gtzan")
    assert spec.task == "multiclass" and dict(spec.protocols) == {"cv10": 10, "filtered": 1}
    assert spec.default_protocol == "cv10" and spec.sample_rate == 22050 and spec.clip_seconds == 29.0
    assert tuple(spec.labels) == GENRES and spec.readme == "datasets/gtzan/README.md"
