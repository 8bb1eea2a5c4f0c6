"""The synthetic datasets: generator, on-disk layouts, determinism, and reading them back through
the real MTAT and GTZAN readers."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mcbench_plugins.datasets import synthetic as syn
from mcbench_plugins.datasets import synthetic_audio as sa
from mcbench_plugins.datasets.mtat import read_annotations, split_of, top_tags

from mcbench.plugins import Registry
from mcbench.runner import load_partition
from mcbench.specs import MULTICLASS, MULTILABEL, DatasetError

TAG_PARAMS = {"n_clips": 14, "seconds": 3.0, "seed": 3}
GENRE_PARAMS = {"n_per_genre": 5, "seconds": 2.0, "seed": 3}


def _generate(root: Path, materialize, params, workers=1) -> Path:
    materialize(root, **params, workers=workers, progress=False)
    return root


@pytest.fixture(scope="module")
def tag_root(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("syn") / "synthetic", syn.materialize, TAG_PARAMS)


@pytest.fixture(scope="module")
def tag_root_parallel(tmp_path_factory):
    """The same parameters generated again, by two worker processes."""
    return _generate(tmp_path_factory.mktemp("syn_par") / "synthetic", syn.materialize, TAG_PARAMS,
                     workers=2)


@pytest.fixture(scope="module")
def genre_root(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("syn_g") / "synthetic_genres", syn.materialize_genres,
                     GENRE_PARAMS)


def _logmel(y: np.ndarray, sr: int) -> np.ndarray:
    """The paper's front end (Sec. IV) in dB: 12 kHz, n_fft 512, hop 256, 96 mel bands."""
    import librosa

    y = librosa.resample(y, orig_sr=sr, target_sr=12_000)
    mel = librosa.feature.melspectrogram(y=y, sr=12_000, n_fft=512, hop_length=256, n_mels=96)
    return librosa.power_to_db(mel)


# --------------------------------------------------------------------------- registration


def test_both_specs_come_from_the_entry_point():
    registry = Registry()
    tagging, genres = registry.dataset("synthetic"), registry.dataset("synthetic_genres")
    assert (tagging.task, genres.task) == (MULTILABEL, MULTICLASS)
    assert (tagging.sample_rate, genres.sample_rate) == (16_000, 22_050)
    assert tagging.protocols == {"fixed": 1} and tagging.default_protocol == "fixed"
    assert genres.protocols == {"fixed": 1, "cv5": 5} and genres.default_protocol == "fixed"
    assert tagging.materialize is syn.materialize and genres.materialize is syn.materialize_genres
    assert list(tagging.labels) == list(sa.TAGS) and list(genres.labels) == list(sa.GENRES)
    assert tagging.clip_seconds == genres.clip_seconds == 29.0
    # demo settings: cheap-per-epoch models train longer, FCN-4 (10 GMAC per clip) one epoch
    assert tagging.train_defaults == {"max_epochs": 2, "batch_size": 4}
    assert tagging.model_train_defaults["fcn"]["max_epochs"] == 1
    assert tagging.model_train_defaults["end_to_end"]["max_epochs"] > tagging.train_defaults["max_epochs"]
    assert genres.model_train_defaults["fcn"]["max_epochs"] < genres.train_defaults["max_epochs"]
    readme = Path(__file__).resolve().parents[1] / tagging.readme
    assert readme.is_file() and tagging.readme == genres.readme


def test_registration_module_imports_no_heavy_library():
    code = (
        "import sys, mcbench_plugins.datasets.synthetic as m; "
        "print(sorted(x for x in ('torch', 'librosa', 'pandas', 'sklearn') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- vocabulary


def test_vocabulary_covers_spectral_and_temporal_cues():
    assert len(sa.TAGS) >= 10 and len(sa.GENRES) >= 6
    tag_values = {v for values in sa.FACTORS.values() for v in values[1:]}
    assert tag_values == set(sa.TAGS)  # every non-default factor value is a tag, nothing else
    for tag, (factor, description, _) in sa.TAG_INFO.items():
        assert tag in sa.FACTORS[factor][1:] and description
    cues = {cue for _, _, cue in sa.TAG_INFO.values()}
    assert {"spectral", "temporal"} <= cues
    for pair in (("rising", "falling"), ("slow", "fast"), ("low", "high"), ("bright", "hollow")):
        with pytest.raises(ValueError, match="exclude each other"):
            sa.ClipParams.from_tags(pair)
    assert sa.ClipParams.from_tags(["fast", "drums"]).tags == ("drums", "fast")


def test_genre_recipes_differ_pairwise_in_two_fixed_factors():
    for (a, ra), (b, rb) in combinations(sa.GENRE_RECIPES.items(), 2):
        separating = [f for f in set(ra) & set(rb) if not set(ra[f]) & set(rb[f])]
        assert len(separating) >= 2, f"{a} and {b} differ only in {separating}"
    for genre, recipe in sa.GENRE_RECIPES.items():
        cues = {sa.TAG_INFO[v][2] for values in recipe.values() for v in values if v in sa.TAG_INFO}
        assert any("temporal" in c for c in cues) and any("spectral" in c for c in cues), genre


# --------------------------------------------------------------------------- generator


def test_clip_format_and_level():
    y = sa.generate_clip(0, ("fast", "drums", "chords"), seconds=2.0, sr=16_000)
    assert y.dtype == np.float32 and y.shape == (32_000,)
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 0.98 + 1e-6
    rms_db = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    assert -26.5 < rms_db < -15.5
    with pytest.raises(ValueError, match="12 kHz"):
        sa.generate_clip(0, (), 1.0, 8_000)


def test_same_seed_same_clip_other_seed_other_clip():
    a = sa.generate_clip(7, ("swing", "vibrato"), 2.0, 22_050)
    b = sa.generate_clip(np.random.default_rng(7), sa.ClipParams(feel="swing", vibrato="vibrato"),
                         2.0, 22_050)
    c = sa.generate_clip(8, ("swing", "vibrato"), 2.0, 22_050)
    assert np.array_equal(a, b)
    assert np.corrcoef(a, c)[0, 1] < 0.5


def test_rising_and_falling_share_the_average_spectrum_but_not_the_spectrogram():
    """The contour is purely temporal: the same notes in opposite orders."""
    base = sa.ClipParams(register="mid", timbre="bright")
    sr = 16_000
    rising = _logmel(sa.generate_clip(5, base.replace(contour="rising"), 8.0, sr), sr)
    falling = _logmel(sa.generate_clip(5, base.replace(contour="falling"), 8.0, sr), sr)
    other = _logmel(sa.generate_clip(6, base.replace(contour="rising"), 8.0, sr), sr)
    average_gap = np.abs(rising.mean(axis=1) - falling.mean(axis=1)).mean()
    frame_gap = np.abs(rising - falling).mean()
    other_seed_gap = np.abs(rising.mean(axis=1) - other.mean(axis=1)).mean()
    assert average_gap < 1.5  # dB, over 96 mel bands: about 0.7 measured
    assert frame_gap > 5.0  # dB per time-frequency cell: about 10 measured
    assert other_seed_gap > 4 * average_gap  # another clip's average differs much more


def test_register_and_timbre_move_the_spectrum():
    sr = 16_000
    centroid = {}
    for tags in (("low",), ("high",), ("low", "bright")):
        mel = np.mean(10 ** (_logmel(sa.generate_clip(2, tags, 4.0, sr), sr) / 10), axis=1)
        centroid[tags] = float(np.sum(np.arange(96) * mel) / np.sum(mel))
    assert centroid[("high",)] > centroid[("low",)] + 3
    assert centroid[("low", "bright")] > centroid[("low",)] + 3


def _band_periodicity(logmel: np.ndarray) -> float:
    """Largest autocorrelation, at lags of 0.1-1 s, of the onset strength in the hats' band."""
    flux = np.maximum(np.diff(logmel[80:92].mean(axis=0)), 0)[2:-2]  # about 3.2-5 kHz
    flux = flux - flux.mean()
    ac = np.correlate(flux, flux, "full")[len(flux) - 1:]
    return float(ac[5:47].max() / ac[0])


@pytest.mark.parametrize("seed", [0, 4])  # clips whose irregular "clicks" distractor is on
def test_drums_are_regular_hits_in_the_percussion_band(seed):
    assert np.random.default_rng(seed).random(36)[18] < 0.5  # the clicks are on (see generator)
    sr = 16_000
    with_drums = _band_periodicity(_logmel(sa.generate_clip(seed, ("drums",), 8.0, sr), sr))
    clicks_only = _band_periodicity(_logmel(sa.generate_clip(seed, (), 8.0, sr), sr))
    assert with_drums > 0.45 and clicks_only < 0.2  # measured: 0.68/0.09 and 0.56/0.09


# --------------------------------------------------------------------------- label plans


def test_tagging_plan_balances_tags_over_splits():
    plan = syn.tagging_plan(240, seed=0, split=(0.6, 0.2, 0.2))
    assert [c.id for c in plan] == [str(i) for i in range(1, 241)]
    per_split = {s: [c for c in plan if c.split == s] for s in ("train", "valid", "test")}
    assert {s: len(c) for s, c in per_split.items()} == {"train": 144, "valid": 48, "test": 48}
    for s, clips in per_split.items():
        counts = {t: sum(t in c.params.tags for c in clips) for t in sa.TAGS}
        assert min(counts.values()) >= 3, (s, counts)  # every tag in every split
    share = {t: np.mean([t in c.params.tags for c in plan]) for t in sa.TAGS}
    assert all(0.1 <= v <= 0.7 for v in share.values()), share
    folders = {c.relpath.split("/")[0] for c in plan}
    assert folders == set("0123456789abcdef")
    assert all(split_of(c.relpath) == c.split for c in plan)
    assert syn.tagging_plan(240, seed=0, split=(0.6, 0.2, 0.2)) == plan
    assert [c.params for c in syn.tagging_plan(240, seed=1, split=(0.6, 0.2, 0.2))] != [c.params for c in plan]
    default = syn.tagging_plan()
    assert [sum(c.split == s for c in default) for s in ("train", "valid", "test")] == [280, 40, 80]


def test_genre_plan_follows_the_recipes():
    plan = syn.genre_plan(40, seed=0)
    assert len(plan) == 40 * len(sa.GENRES)
    for genre in sa.GENRES:
        clips = [c for c in plan if c.style == genre]
        assert [c.id for c in clips] == [f"{genre}.{k:05d}" for k in range(40)]
        for clip in clips:
            for factor, allowed in sa.GENRE_RECIPES[genre].items():
                assert getattr(clip.params, factor) in allowed
        free = [f for f in sa.FACTORS if f not in sa.GENRE_RECIPES[genre]]
        assert all(len({getattr(c.params, f) for c in clips}) > 1 for f in free)


def test_split_counts():
    assert syn._split_counts(240, [0.6, 0.2, 0.2]) == [144, 48, 48]
    assert syn._split_counts(10, [0.5, 0.5, 0.0]) == [4, 5, 1]
    assert sum(syn._split_counts(7, [0.6, 0.2, 0.2])) == 7


# --------------------------------------------------------------------------- MTAT layout


def test_annotation_file_is_in_the_exact_mtat_format(tag_root):
    raw = (tag_root / "annotations_final.csv").read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n")
    lines = raw.split(b"\r\n")[:-1]
    expected_header = "\t".join(f'"{n}"' for n in ("clip_id", *sa.TAGS, "mp3_path"))
    assert lines[0] == expected_header.encode()
    fields = [line.split(b"\t") for line in lines]
    assert all(len(f) == len(sa.TAGS) + 2 for f in fields)
    assert all(x.startswith(b'"') and x.endswith(b'"') for f in fields for x in f)
    ids = [int(f[0].strip(b'"')) for f in fields[1:]]
    assert ids == sorted(ids) == list(range(1, TAG_PARAMS["n_clips"] + 1))
    # and the csv module (with MTAT's own parser) reads it back as the plan says
    annotations = read_annotations(tag_root / "annotations_final.csv")
    plan = syn.tagging_plan(**TAG_PARAMS)
    assert annotations.tag_names == list(sa.TAGS)
    assert annotations.paths == [c.relpath for c in plan]
    for row, clip in zip(annotations.matrix, plan, strict=True):
        assert [t for t, v in zip(sa.TAGS, row, strict=True) if v] == list(clip.params.tags)
    with open(tag_root / "annotations_final.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert rows[0][0] == "clip_id" and rows[0][-1] == "mp3_path"


def test_mtat_folders_hold_16k_mono_mp3s_of_the_asked_length(tag_root):
    assert all((tag_root / f).is_dir() for f in "0123456789abcdef")
    for clip in syn.tagging_plan(**TAG_PARAMS):
        info = sf.info(str(tag_root / clip.relpath))
        assert (info.samplerate, info.channels, info.format) == (16_000, 1, "MP3")
        assert info.frames == 3 * 16_000
    marker = json.loads((tag_root / syn.MARKER).read_text())
    assert marker["version"] == sa.GENERATOR_VERSION and marker["dataset"] == "synthetic"
    assert marker["params"] == {**TAG_PARAMS, "split": [0.7, 0.1, 0.2]}
    assert not list(tag_root.parent.glob(".*partial*"))


def test_same_seed_gives_identical_files_in_any_worker_count(tag_root, tag_root_parallel):
    for name in ("annotations_final.csv", syn.MARKER):
        assert (tag_root / name).read_bytes() == (tag_root_parallel / name).read_bytes()
    for clip in syn.tagging_plan(**TAG_PARAMS):
        a, _ = sf.read(str(tag_root / clip.relpath), dtype="float32")
        b, _ = sf.read(str(tag_root_parallel / clip.relpath), dtype="float32")
        assert np.array_equal(a, b)


def test_another_seed_gives_other_audio_and_labels(tmp_path, tag_root):
    other = _generate(tmp_path / "other", syn.materialize, {**TAG_PARAMS, "seed": 4})
    assert (other / "annotations_final.csv").read_bytes() != (tag_root / "annotations_final.csv").read_bytes()
    theirs = syn.tagging_plan(**{**TAG_PARAMS, "seed": 4})
    for mine, their in zip(syn.tagging_plan(**TAG_PARAMS), theirs, strict=True):
        a, _ = sf.read(str(tag_root / mine.relpath), dtype="float32")
        b, _ = sf.read(str(other / their.relpath), dtype="float32")
        assert mine.id == their.id and np.corrcoef(a, b)[0, 1] < 0.5


def test_materialize_is_idempotent(tag_root):
    watched = [tag_root / syn.MARKER, tag_root / "annotations_final.csv",
               next(tag_root.glob("c/*.mp3"))]
    before = [p.stat().st_mtime_ns for p in watched]
    syn.materialize(tag_root, **TAG_PARAMS, progress=False)
    syn.materialize(tag_root, progress=False)  # parameters left out are taken from the marker
    syn.materialize(tag_root, seconds=3, progress=False)
    assert [p.stat().st_mtime_ns for p in watched] == before


@pytest.mark.parametrize("change", [{"n_clips": 15}, {"seed": 0}, {"split": [0.5, 0.25, 0.25]}])
def test_materialize_refuses_other_parameters(tag_root, change):
    with pytest.raises(DatasetError, match=r"other parameters.*Delete"):
        syn.materialize(tag_root, **{**TAG_PARAMS, **change}, progress=False)


def test_materialize_refuses_the_other_flavour_and_foreign_data(tmp_path, tag_root):
    with pytest.raises(DatasetError, match="holds the 'synthetic' dataset"):
        syn.materialize_genres(tag_root, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "annotations_final.csv").write_text("x")
    with pytest.raises(DatasetError, match="no synthetic.json"):
        syn.materialize(foreign, n_clips=3, seconds=0.5, progress=False)


def test_materialize_into_a_root_holding_a_readme(tmp_path):
    root = tmp_path / "synthetic"
    root.mkdir()
    (root / "README.md").write_text("kept")
    syn.materialize(root, n_clips=3, seconds=0.5, workers=1, progress=False)
    assert (root / "README.md").read_text() == "kept"
    assert len(list(root.glob("?/*.mp3"))) == 3 and (root / syn.MARKER).is_file()
    assert not list(tmp_path.glob(".*partial*"))
    marker = json.loads((root / syn.MARKER).read_text())
    marker["version"] = sa.GENERATOR_VERSION + 1
    (root / syn.MARKER).write_text(json.dumps(marker))
    with pytest.raises(DatasetError, match="version"):
        syn.materialize(root, progress=False)


def test_options_are_checked(tmp_path):
    with pytest.raises(DatasetError, match="unknown option"):
        syn.materialize(tmp_path / "x", n_clip=3)
    with pytest.raises(DatasetError, match="n_per_genre"):
        syn.materialize_genres(tmp_path / "y", n_per_genre=3)
    with pytest.raises(DatasetError, match="n_clips"):
        syn.materialize(tmp_path / "z", n_clips=2)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- reading back


def test_tracks_come_from_the_mtat_reader(tag_root):
    partition = syn.SPEC.tracks(tag_root, "fixed", None)
    plan = {c.id: c for c in syn.tagging_plan(**TAG_PARAMS)}
    assert partition.dataset == "synthetic" and partition.min_seconds == 2.5
    assert partition.clip_seconds == 3.0
    assert partition.notes["generator"]["seed"] == TAG_PARAMS["seed"]
    counts = [sum(t in c.params.tags for c in plan.values()) for t in sa.TAGS]
    assert partition.labels == top_tags(list(sa.TAGS), counts, 50)
    for name in ("train", "valid", "test"):
        split = partition.splits[name]
        assert split.ids == [c.id for c in plan.values() if c.split == name]
        for track in split.tracks:
            assert [partition.labels[i] for i in track.labels] == [
                t for t in partition.labels if t in plan[track.id].params.tags]
            assert track.path == (tag_root / plan[track.id].relpath).resolve()
    assert partition.dropped == []
    with pytest.raises(DatasetError, match="protocol"):
        syn.SPEC.tracks(tag_root, "cv5", 0)


def test_check_reports_the_root_and_a_missing_clip(tmp_path, tag_root):
    report = syn.SPEC.check(tag_root)
    assert report.ok and report.n_found == report.n_listed == TAG_PARAMS["n_clips"]
    assert report.stats["sample_rates"] == {"16000": TAG_PARAMS["n_clips"]}
    assert any(f"version {sa.GENERATOR_VERSION}" in n for n in report.notes)
    broken = tmp_path / "broken"
    shutil.copytree(tag_root, broken)
    victim = next(broken.glob("d/*.mp3"))
    victim.unlink()
    report = syn.SPEC.check(broken)
    assert not report.ok and [p.reason for p in report.problems] == ["missing"]
    partition = syn.SPEC.tracks(broken, "fixed", None)
    assert [d.path for d in partition.dropped] == [str(victim)]


# --------------------------------------------------------------------------- GTZAN layout


def test_gtzan_layout_and_wav_format(genre_root):
    plan = syn.genre_plan(GENRE_PARAMS["n_per_genre"], GENRE_PARAMS["seed"])
    for clip in plan:
        info = sf.info(str(genre_root / "genres" / clip.style / f"{clip.id}.wav"))
        assert (info.samplerate, info.channels, info.format, info.subtype) == (22_050, 1, "WAV", "PCM_16")
        assert info.frames == 2 * 22_050
    assert sorted(p.name for p in (genre_root / "genres").iterdir()) == sorted(sa.GENRES)
    rows = (genre_root / syn.CLIP_TAGS).read_text().splitlines()
    assert rows[1:] == [f"{c.id}\t{c.style}\t{','.join(c.params.tags)}" for c in plan]


def test_genre_files_are_deterministic(tmp_path, genre_root):
    again = _generate(tmp_path / "again", syn.materialize_genres, GENRE_PARAMS, workers=2)
    for path in sorted((genre_root / "genres").rglob("*.wav")):
        assert path.read_bytes() == (again / path.relative_to(genre_root)).read_bytes()
    # the folds are computed when reading (the GTZAN reader's k-fold protocol), not written
    assert not (genre_root / "splits").exists() and not (again / "splits").exists()


def test_genre_protocols_come_from_the_gtzan_reader(genre_root):
    spec = syn.GENRES_SPEC
    fixed = spec.tracks(genre_root, "fixed", None)
    assert fixed.labels == list(sa.GENRES) and (fixed.protocol, fixed.fold) == ("fixed", None)
    assert fixed.clip_seconds == 2.0
    assert {n: len(s) for n, s in fixed.splits.items()} == {"train": 18, "valid": 6, "test": 6}
    for name in ("valid", "test"):  # stratified: one clip of every genre per fold
        assert sorted(t.labels[0] for t in fixed.splits[name].tracks) == list(range(6))
    for split in fixed.splits.values():
        for track in split.tracks:
            assert sa.GENRES[track.labels[0]] == track.id.split(".")[0]
            assert track.path.name == f"{track.id}.wav"
    folds = [spec.tracks(genre_root, "cv5", k) for k in range(5)]
    assert folds[0].fingerprint() == fixed.fingerprint()
    tests = [set(p.splits["test"].ids) for p in folds]
    assert set().union(*tests) == {c.id for c in syn.genre_plan(5, 3)} and sum(map(len, tests)) == 30
    for k, p in enumerate(folds):
        assert (p.protocol, p.fold) == ("cv5", k)
        assert set(p.splits["valid"].ids) == tests[(k + 1) % 5]
        assert set(p.splits["train"].ids).isdisjoint(tests[k] | tests[(k + 1) % 5])
    with pytest.raises(DatasetError, match="fold"):
        spec.tracks(genre_root, "fixed", 1)
    report = spec.check(genre_root)
    assert report.ok and report.n_found == report.n_listed == 30
    assert report.stats["sample_rates"] == {"22050": 30}


def test_the_harness_generates_on_first_use(tmp_path):
    registry = Registry()
    spec = registry.dataset("synthetic_genres")
    params = {"n_per_genre": 5, "seconds": 0.5, "workers": 1, "progress": False}
    partition = load_partition(spec, tmp_path / "sg", "cv5", 2, params)
    assert (partition.protocol, partition.fold) == ("cv5", 2)
    assert sum(len(s) for s in partition.splits.values()) == 30
