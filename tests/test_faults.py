"""Fault injection: every dataset fault built in its real on-disk layout, through the commands.

For each fault the test asserts what ``mcbench data check`` and ``mcbench data prepare`` report —
the fault's kind, the clip it names and the decision (the clip is skipped, or the dataset cannot
be used), the same in both — and that every healthy clip is kept.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from fixtures_fma import DEFAULT_TRACKS, FixtureTrack, build_fma_fixture
from fixtures_gtzan import APPLEDOUBLE, build_gtzan, write_lists
from fixtures_mtat import write_annotations, write_mp3
from mcbench_plugins.datasets import synthetic

from mcbench.cli import main

TAGS = ["guitar", "rock"]
#: (folder, clip id) of the miniature MTAT copy: train 0–b, valid c, test d–f.
MTAT_CLIPS = [("0", "2"), ("1", "6"), ("2", "10"), ("c", "11"), ("d", "12"), ("e", "15")]
SPLIT_OF = {"0": "train", "1": "train", "2": "train", "c": "valid", "d": "test", "e": "test"}


# --------------------------------------------------------------------------- helpers


def mtat_copy(tmp: Path, name: str = "mtat") -> tuple[Path, dict[str, Path]]:
    """A miniature MTAT root in the real layout: ``annotations_final.csv`` (tab-separated, every
    field quoted, CRLF) and 29.2-s 16 kHz mono MP3s named ``<artist>-<album>-<n>-<title>-<s>-<e>``."""
    root = tmp / name
    for folder in "0123456789abcdef":
        (root / folder).mkdir(parents=True)
    rows, files, encoded = [], {}, None
    for k, (folder, clip_id) in enumerate(MTAT_CLIPS):
        rel = f"{folder}/american_bach_soloists-cantatas-0{k}-aria_{k}-30-59.mp3"
        path = root / rel
        if encoded is None:
            encoded = write_mp3(path, 29.2).read_bytes()
        else:
            path.write_bytes(encoded)
        rows.append((clip_id, [TAGS[k % 2]], rel))
        files[clip_id] = path
    write_annotations(root / "annotations_final.csv", TAGS, rows)
    return root, files


def check(dataset: str, root: Path, data_dir: Path) -> tuple[int, str, dict]:
    result = CliRunner().invoke(main, ["data", "check", dataset, "--root", str(root),
                                       "--data-dir", str(data_dir)])
    report = data_dir / ".cache" / "features" / dataset / "check-report.json"
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    content = json.loads(report.read_text()) if report.is_file() else {}
    if content:
        assert f"report: {report.absolute()}" in result.output
    return result.exit_code, result.output, content


def prepare(dataset: str, root: Path, cache: Path, *options: str) -> tuple[int, str, dict]:
    result = CliRunner().invoke(main, ["data", "prepare", dataset, "--root", str(root),
                                       "--cache-dir", str(cache), "--workers", "1", *options])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    reports = sorted(cache.glob(f"{dataset}/prepare-report-*.json"))
    return result.exit_code, result.output, json.loads(reports[0].read_text()) if reports else {}


def kinds(faults: list[dict]) -> dict[str, str]:
    """id → kind of every fault in a report."""
    return {f["id"]: f["kind"] for f in faults}


def kept(report: dict) -> int:
    return sum(n for sizes in report["split_sizes"].values() for n in sizes.values())


def status(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("status:"))


# --------------------------------------------------------------------------- MTAT


def test_appledouble_files_of_a_mac_copy_lose_no_clip(tmp_path):
    """Before: libsndfile read ``._<name>.mp3`` as the resource fork and refused every clip
    ("bad resource fork"), and check counted the stubs as unlisted clips."""
    root, files = mtat_copy(tmp_path)
    for path in files.values():
        (path.parent / f"._{path.name}").write_bytes(APPLEDOUBLE)
    code, out, report = check("mtat", root, tmp_path / "data")
    assert code == 0, out
    assert report["problems"] == [] and status(out).startswith("status: OK, no problems")
    assert "6 macOS AppleDouble file(s)" in out and "not listed" not in out
    code, out, report = prepare("mtat", root, tmp_path / "cache")
    assert code == 0, out
    assert report["skipped"] == [] and kept(report) == len(MTAT_CLIPS)


def test_truncated_mp3_is_found_by_check_and_skipped_by_prepare(tmp_path):
    """Before: a 1,500-byte MP3 whose Xing header still says 29.2 s passed check."""
    root, files = mtat_copy(tmp_path)
    cut = files["6"]
    cut.write_bytes(cut.read_bytes()[:1500])
    code, out, report = check("mtat", root, tmp_path / "data")
    assert code == 1
    assert kinds(report["problems"]) == {"6": "truncated"}
    assert report["by_kind"] == {"truncated": {"count": 1, "effect": "skip"}}
    assert "1,500 of the" in out and "its Xing header announces" in out and str(cut) in out
    assert status(out).startswith("status: 1 problem(s); these clips will be skipped: 1 truncated")
    code, out, report = prepare("mtat", root, tmp_path / "cache")
    assert code == 0, out
    assert kinds(report["skipped"]) == {"6": "truncated"}
    assert "these clips were skipped: 1 truncated" in status(out)
    assert kept(report) == len(MTAT_CLIPS) - 1


def test_paths_escaping_the_root_skip_their_clips_in_check_and_prepare(tmp_path):
    """Before: check said "affected clips will be skipped", prepare aborted the whole dataset."""
    root, files = mtat_copy(tmp_path)
    outside = tmp_path / "elsewhere.mp3"
    shutil.copyfile(files["2"], outside)
    (root / "1" / "linked-0-29.mp3").symlink_to(outside)
    rows = [(cid, [TAGS[k % 2]], str(files[cid].relative_to(root)))
            for k, (_, cid) in enumerate(MTAT_CLIPS)]
    rows += [("100", ["guitar"], "0/../../elsewhere.mp3"), ("101", ["rock"], str(outside)),
             ("102", ["guitar"], "1/linked-0-29.mp3")]
    write_annotations(root / "annotations_final.csv", TAGS, rows)
    escaped = {"100": "outside the data root", "101": "outside the data root",
               "102": "outside the data root"}
    code, out, report = check("mtat", root, tmp_path / "data")
    assert code == 1 and kinds(report["problems"]) == escaped
    assert "escapes the data root" in out and "is absolute" in out
    code, out, report = prepare("mtat", root, tmp_path / "cache")
    assert code == 0, out
    assert kinds(report["skipped"]) == escaped
    assert "these clips were skipped: 3 outside the data root" in status(out)
    assert kept(report) == len(MTAT_CLIPS)


def test_another_sample_rate_is_a_note_and_the_clip_is_used(tmp_path):
    """Before: listed among the problems "that will be skipped", yet resampled and used."""
    root, files = mtat_copy(tmp_path)
    write_mp3(files["11"], 29.2, sr=22_050)
    code, out, report = check("mtat", root, tmp_path / "data")
    assert code == 0, out
    assert report["problems"] == []
    assert "note: 1 clip(s) are not at 16000 Hz (22050 Hz; e.g. 11): they are resampled" in out
    code, out, report = prepare("mtat", root, tmp_path / "cache")
    assert code == 0 and report["skipped"] == [] and kept(report) == len(MTAT_CLIPS)


def test_random_bytes_named_mp3_are_not_readable_as_audio(tmp_path):
    """Before: libsndfile's "File does not exist or is not a regular file (possibly a pipe?)"."""
    root, files = mtat_copy(tmp_path)
    noise = files["12"]
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    code, out, report = check("mtat", root, tmp_path / "data")
    assert code == 1 and kinds(report["problems"]) == {"12": "not readable as audio"}
    assert f"- 12 ({noise}) [probe]: not readable as audio (libsndfile: " in out
    assert "possibly a pipe" not in out and "does not exist" not in out
    code, out, report = prepare("mtat", root, tmp_path / "cache")
    assert code == 0 and kinds(report["skipped"]) == {"12": "not readable as audio"}
    assert "possibly a pipe" not in out and str(noise) in out
    assert kept(report) == len(MTAT_CLIPS) - 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("commas", r"annotations_final\.csv is not tab-separated: its first line has no tab but 3 "
                   r"commas\. MTAT's annotations_final\.csv is tab-separated despite its name"),
        ("header_only", r"annotations_final\.csv lists no clips: it holds only the header line"),
        ("latin1", r"annotations_final\.csv, line 1: not UTF-8 text \(byte 0xe9\)"),
    ],
)
def test_an_unusable_annotation_file_stops_the_dataset_in_both_commands(tmp_path, fault, message):
    """Before: "line 1: '\\t' expected after '\\"'"; "0 problem(s)" with exit 1; a traceback."""
    import re

    root, files = mtat_copy(tmp_path)
    rows = [(cid, [TAGS[k % 2]], str(files[cid].relative_to(root)))
            for k, (_, cid) in enumerate(MTAT_CLIPS)]
    path = root / "annotations_final.csv"
    if fault == "commas":
        text = path.read_text().replace("\t", ",")
        path.write_text(text)
    elif fault == "header_only":
        write_annotations(path, TAGS, [])
    else:
        write_annotations(path, ["guitar", "rock", "pi\u00e9no"], [(c, t, p) for c, t, p in rows])
        path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    code, out, report = check("mtat", root, tmp_path / "data")
    assert code == 1 and "Traceback" not in out
    assert re.search(message, out), out
    assert report["by_kind"] == {"unusable dataset file": {"count": 1, "effect": "stop"}}
    assert status(out).startswith("status: the dataset cannot be used (1 unusable dataset file)")
    code, out, _ = prepare("mtat", root, tmp_path / "cache")
    assert code == 2 and re.search(message, out) and str(path) in out


# --------------------------------------------------------------------------- GTZAN


@pytest.fixture()
def gtzan_copy(tmp_path):
    """Two 30-s clips per genre in genres/<genre>/*.wav, with the filtered-protocol lists."""
    fx = build_gtzan(tmp_path, "wav", numbers=(0, 1))
    ids = sorted(fx.files)
    write_lists(fx.root, {"train": ids[:12], "valid": ids[12:16], "test": ids[16:]})
    return fx


def test_near_empty_and_short_gtzan_clips_are_skipped(tmp_path, gtzan_copy):
    """Before: a 100-byte file (0.001 s) and a 0.5-s clip were padded to 29 s and trained on."""
    fx = gtzan_copy
    cut = fx.files["blues.00001"]
    cut.write_bytes(cut.read_bytes()[:100])
    sf.write(str(fx.files["rock.00001"]), np.zeros(11_025, dtype=np.float32), 22_050,
             subtype="PCM_16")
    code, out, report = check("gtzan", fx.root, tmp_path / "data")
    assert code == 1
    faults = kinds(report["problems"])
    assert (faults["blues.00001"], faults["rock.00001"]) == ("truncated", "too short")
    # the two rare kinds are shown next to the 980 missing ids, not hidden behind them
    assert "100 of the 1,323,044 bytes its WAV header announces" in out
    assert "too short: 0.500 s < 28.5 s" in out
    assert "less than 28.5 s of audio are skipped" in out
    code, out, report = prepare("gtzan", fx.root, tmp_path / "cache", "--protocol", "filtered")
    assert code == 0, out
    assert kinds(report["skipped"]) == {"blues.00001": "truncated", "rock.00001": "too short"}
    assert kept(report) == 18


def test_a_rare_fault_is_named_beside_950_missing_files(tmp_path):
    """Before: the one unreadable file was counted, but the listing (sorted by id, cut after 50
    lines) never named it."""
    fx = build_gtzan(tmp_path, "wav", numbers=(0,))
    for track_id, path in list(fx.files.items()):  # 50 healthy 30-s clips, hard links of 10
        for n in range(1, 5):
            os.link(path, path.with_name(f"{track_id[:-1]}{n}.wav"))
    broken = fx.files["pop.00000"].with_name("pop.00003.wav")
    broken.unlink()
    broken.write_bytes(b"\x00" * 4096)
    code, out, report = check("gtzan", fx.root, tmp_path / "data")
    assert code == 1
    assert report["by_kind"]["missing"] == {"count": 950, "effect": "skip"}
    assert report["by_kind"]["not readable as audio"] == {"count": 1, "effect": "skip"}
    assert "  not readable as audio: 1 (clip(s) skipped)" in out
    assert "    - pop.00003 (" in out and "… and 945 more (see the report file)" in out
    assert len(report["problems"]) == 951
    assert status(out).startswith("status: 951 problem(s); these clips will be skipped: 950 "
                                  "missing, 1 not readable as audio")


def test_symlink_out_of_the_root_and_unknown_genre_folder(tmp_path, gtzan_copy):
    """Before: the link was followed and used (MTAT rejects it); the folder ignored silently."""
    fx = gtzan_copy
    outside = tmp_path / "elsewhere.wav"
    shutil.copyfile(fx.files["rock.00000"], outside)
    fx.files["rock.00001"].unlink()
    fx.files["rock.00001"].symlink_to(outside)
    (fx.root / "genres" / "electronica").mkdir()
    shutil.copyfile(fx.files["rock.00000"], fx.root / "genres" / "electronica" / "electronica.00000.wav")
    code, out, report = check("gtzan", fx.root, tmp_path / "data")
    assert kinds(report["problems"])["rock.00001"] == "outside the data root"
    assert "note: folder(s) electronica under genres/ are no GTZAN genre and are ignored" in out
    code, out, report = prepare("gtzan", fx.root, tmp_path / "cache", "--protocol", "filtered")
    assert code == 0, out
    assert kinds(report["skipped"]) == {"rock.00001": "outside the data root"}
    assert "note: folder(s) electronica" in out and kept(report) == 19


# --------------------------------------------------------------------------- FMA


def test_truncated_fma_clip_is_skipped_not_padded(tmp_path, shared_dir):
    """FMA keeps short clips (zero-padded), so without the size check a truncated download that
    still decodes a second of audio would be trained on as a 29-s clip."""
    tracks = [FixtureTrack(3, "medium", "training", "Hip-Hop", [21], [21], seconds=29.0)
              if t.track_id == 3 else t for t in DEFAULT_TRACKS]
    root = build_fma_fixture(tmp_path / "fma", shared_dir, tracks=tracks)
    clip = root / "fma_medium/000/000003.mp3"
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 5])
    code, out, report = check("fma", root, tmp_path / "data")
    assert code == 1
    assert kinds(report["problems"]) == {"000003": "truncated", "099134": "empty",
                                        "108925": "missing"}
    code, out, report = prepare("fma", root, tmp_path / "cache")
    assert code == 0, out
    assert kinds(report["skipped"]) == {"000003": "truncated", "099134": "empty",
                                        "108925": "missing"}
    assert kept(report) == 5  # 2, 140, 5000, 12345 and the short 98565


# --------------------------------------------------------------------------- synthetic


def test_a_killed_generation_leaves_nothing_behind_for_long(tmp_path):
    """Before: a kill during generation left ``.synthetic.partial-*`` beside the root forever."""
    root = tmp_path / "synthetic"
    status_code, out, _ = check("synthetic", root, tmp_path / "data")
    assert status_code == 2 and "does not exist: the data is generated on first use" in out
    code = ("import sys; from mcbench_plugins.datasets.synthetic import materialize; "
            "materialize(sys.argv[1], n_clips=200, workers=1, progress=False)")
    child = subprocess.Popen([sys.executable, "-c", code, str(root)])
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".synthetic.partial-*/0/*.mp3")):
            assert child.poll() is None and time.monotonic() < deadline, "generation did not start"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (left,) = tmp_path.glob(".synthetic.partial-*")
    assert f"-{child.pid}-" in left.name
    assert synthetic.stale_partials(root) == [left]
    code, out, _ = check("synthetic", root, tmp_path / "data")
    assert code == 2 and f"a generation was interrupted and left {left.name} beside it" in out
    # a generation that is still running is not touched
    live = tmp_path / f".synthetic.partial-{synthetic._HOST}-{os.getpid()}-0123abcd"
    live.mkdir()
    synthetic.materialize(root, n_clips=3, seconds=1.0, workers=1, progress=False)
    assert not left.exists() and live.is_dir() and (root / synthetic.MARKER).is_file()
    live.rmdir()
    left.mkdir()  # as a kill after this generation would leave it
    notes = synthetic.check(root).notes
    assert any(n.startswith(f"{left.name} beside the root was left by an interrupted") for n in notes)
