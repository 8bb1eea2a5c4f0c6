"""Shared dataset utilities: path containment, root checks, cheap and header-only file checks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fixtures_gtzan import APPLEDOUBLE
from mcbench_plugins.datasets.common import (
    dataset_readme,
    file_fault,
    file_problem,
    probe_audio,
    require_root,
    resolve_inside,
    sample_rate_note,
)

from mcbench import audio
from mcbench.specs import DatasetError, Dropped


def _sine(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


# --------------------------------------------------------------------------- resolve_inside


def test_resolve_inside_accepts_paths_under_the_root(tmp_path):
    (tmp_path / "c").mkdir()
    assert resolve_inside(tmp_path, "c/a.mp3") == (tmp_path / "c" / "a.mp3").resolve()
    assert resolve_inside(tmp_path, "c/../d/b.mp3") == (tmp_path / "d" / "b.mp3").resolve()
    assert resolve_inside(tmp_path, "./c") == (tmp_path / "c").resolve()
    # A link that stays inside the root is fine.
    (tmp_path / "link").symlink_to(tmp_path / "c")
    assert resolve_inside(tmp_path, "link/a.mp3") == (tmp_path / "c" / "a.mp3").resolve()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "../x.mp3", "c/../../x.mp3", "/etc/passwd", "", "a\x00b"])
def test_resolve_inside_rejects_escapes(tmp_path, bad):
    root = tmp_path / "root"
    (root / "c").mkdir(parents=True)
    with pytest.raises(DatasetError):
        resolve_inside(root, bad)


def test_resolve_inside_rejects_symlink_escape_and_sibling_prefix(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "c").symlink_to(outside)
    with pytest.raises(DatasetError, match="escapes the data root"):
        resolve_inside(root, "c/a.mp3")
    # "/x/root2" starts with "/x/root" as a string but is not inside it.
    (tmp_path / "root2").mkdir()
    with pytest.raises(DatasetError, match="escapes"):
        resolve_inside(root, "../root2/a.mp3")
    # The root itself may be a link.
    link_root = tmp_path / "link_root"
    link_root.symlink_to(root)
    assert resolve_inside(link_root, "a.mp3") == root.resolve() / "a.mp3"


# --------------------------------------------------------------------------- require_root


def test_require_root_messages(tmp_path):
    readme = dataset_readme("mtat")
    with pytest.raises(DatasetError) as info:
        require_root(tmp_path / "absent", "mtat", ["annotations_final.csv"], readme)
    message = str(info.value)
    assert f"data root {tmp_path / 'absent'} does not exist" in message
    assert "See `mcbench datasets mtat` for how to obtain" in message and "--root PATH" in message

    with pytest.raises(DatasetError) as info:
        require_root(tmp_path, "gtzan", ["genres", "Data/genres_original"], dataset_readme("gtzan"))
    message = str(info.value)
    assert "does not look like a gtzan data root" in message
    assert "one of 'genres', 'Data/genres_original'" in message and "--root" in message

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(DatasetError, match="is not a folder"):
        require_root(tmp_path / "a_file", "mtat", ["x"], readme)

    (tmp_path / "Data" / "genres_original").mkdir(parents=True)
    assert require_root(tmp_path, "gtzan", ["genres", "Data/genres_original"], "r") == tmp_path.resolve()


def test_dataset_readme_names_the_command_that_prints_it():
    # A path into the source tree means nothing after `pip install`; the command prints the
    # installed README (tests/test_self_contained.py checks that it does).
    assert dataset_readme("mtat") == "`mcbench datasets mtat`"
    assert dataset_readme("not_a_dataset") == "`mcbench datasets not_a_dataset`"


# --------------------------------------------------------------------------- file checks


def test_file_problem(tmp_path):
    good = tmp_path / "a.mp3"
    good.write_bytes(b"\x01")
    empty = tmp_path / "e.mp3"
    empty.write_bytes(b"")
    assert file_problem(good) is None
    assert file_problem(empty) == "empty (0 bytes)"
    assert file_problem(tmp_path / "none.mp3") == "missing"
    assert file_problem(tmp_path) == "not a regular file"
    dangling = tmp_path / "dangling.mp3"
    dangling.symlink_to(tmp_path / "gone.mp3")
    assert file_problem(dangling) == "missing"
    assert file_fault(empty) == ("empty", "empty (0 bytes)")
    assert file_fault(tmp_path) == ("cannot be read", "not a regular file")


@pytest.fixture(scope="module")
def audio_items(tmp_path_factory):
    d = tmp_path_factory.mktemp("probe")
    sf.write(d / "ok.wav", _sine(3.0, 16000), 16000, subtype="PCM_16")
    sf.write(d / "ok.mp3", _sine(2.5, 16000), 16000, format="MP3", subtype="MPEG_LAYER_III")
    sf.write(d / "stereo.wav", _sine(4.0, 16000, channels=2), 16000, subtype="PCM_16")
    sf.write(d / "short.wav", _sine(0.5, 16000), 16000, subtype="PCM_16")
    sf.write(d / "rate.wav", _sine(2.0, 22050), 22050, subtype="PCM_16")
    (d / "empty.mp3").write_bytes(b"")
    (d / "text.mp3").write_text("<html>not audio</html>")
    names = ["ok.wav", "missing.mp3", "ok.mp3", "stereo.wav", "short.wav", "rate.wav", "empty.mp3", "text.mp3"]
    return [(name.split(".")[0] + "_" + name.split(".")[1], d / name) for name in names]


def test_probe_audio_reports_every_problem_in_order(audio_items):
    problems, stats = probe_audio(audio_items, expected_sr=16000, min_seconds=1.0, progress=False)
    assert all(isinstance(p, Dropped) and p.step == "probe" and not p.fatal for p in problems)
    assert [(p.id, p.kind, p.reason) for p in problems] == [
        ("missing_mp3", "missing", "missing"),
        ("short_wav", "too short", "too short: 0.500 s < 1 s"),
        ("empty_mp3", "empty", "empty (0 bytes)"),
        ("text_mp3", "not readable as audio", problems[-1].reason),
    ]
    assert problems[-1].reason == "not readable as audio (libsndfile: Format not recognised)"
    # Another sample rate is no problem (every clip is resampled): a counted note.
    assert stats["other_sample_rate"] == {"expected": 16000, "n": 1, "examples": ["rate_wav"]}
    assert sample_rate_note(stats).startswith("1 clip(s) are not at 16000 Hz (22050 Hz; e.g. rate_wav)")
    assert problems[0].path.endswith("missing.mp3")
    assert stats["sample_rates"] == {"16000": 4, "22050": 1}
    assert stats["channels"] == {"1": 4, "2": 1}
    assert stats["formats"] == {"WAV": 4, "MP3": 1}
    assert stats["n_probed"] == 8 and stats["n_readable"] == 5
    durations = stats["durations"]
    assert durations["n"] == 5 and durations["min"] == 0.5 and durations["max"] == 4.0
    assert durations["median"] == 2.5
    assert durations["p1"] == pytest.approx(np.percentile([0.5, 2.0, 2.5, 3.0, 4.0], 1), abs=1e-3)


def test_probe_audio_is_the_same_with_one_worker(audio_items):
    many = probe_audio(audio_items, expected_sr=None, min_seconds=0.0, progress=False)
    one = probe_audio(audio_items, expected_sr=None, min_seconds=0.0, workers=1, progress=False, step="x")
    assert [(p.id, p.reason) for p in many[0]] == [(p.id, p.reason) for p in one[0]]
    assert many[1] == one[1]
    assert {p.id for p in many[0]} == {"missing_mp3", "empty_mp3", "text_mp3"}
    assert {p.step for p in one[0]} == {"x"}


def test_probe_audio_of_nothing():
    problems, stats = probe_audio([], expected_sr=16000, min_seconds=1.0, progress=False)
    assert problems == [] and stats["durations"] == {"n": 0} and stats["sample_rates"] == {}


def test_probe_reads_headers_of_a_real_clip(shared_dir):
    """The real FMA clip: 44.1 kHz stereo MP3 decoding to 1,321,967 samples with soundfile."""
    clip = shared_dir / "audio" / "fma" / "000" / "000002.mp3"
    problems, stats = probe_audio([("2", clip)], expected_sr=44100, min_seconds=29.0, progress=False)
    assert problems == []
    assert stats["sample_rates"] == {"44100": 1} and stats["channels"] == {"2": 1}
    assert stats["durations"]["max"] == round(1_321_967 / 44100, 3)
    assert os.path.getsize(clip) > 0


# --------------------------------------------------------------------------- audio files


def _mp3(path: Path, seconds: float, sr: int = 16000, **kw) -> Path:
    sf.write(str(path), _sine(seconds, sr), sr, format="MP3", subtype="MPEG_LAYER_III", **kw)
    return path


def test_appledouble_stub_beside_an_mp3_does_not_hide_it(tmp_path):
    """libsndfile, given a path, reads ``._<name>`` as the file's resource fork and refuses the MP3
    ("bad resource fork"); mcbench hands it an open file instead."""
    clip = _mp3(tmp_path / "a-b-01-c-0-29.mp3", 2.0)
    (tmp_path / "._a-b-01-c-0-29.mp3").write_bytes(APPLEDOUBLE)
    assert APPLEDOUBLE[:4] == b"\x00\x05\x16\x07"  # the AppleDouble magic number
    with pytest.raises(sf.LibsndfileError, match="resource fork"):
        sf.info(str(clip))  # the failure mcbench avoids
    assert audio.info(clip).frames == 32000
    y, sr = audio.decode(clip)
    assert sr == 16000 and y.shape == (32000,)
    problems, stats = probe_audio([("1", clip)], expected_sr=16000, min_seconds=1.0, progress=False)
    assert problems == [] and stats["n_readable"] == 1


def test_expected_size_of_mp3_wav_and_au(tmp_path, shared_dir):
    vbr = _mp3(tmp_path / "vbr.mp3", 29.2)
    with open(vbr, "rb") as handle:
        assert audio.expected_size(handle) == (vbr.stat().st_size, "its Xing header")
    real = shared_dir / "audio" / "fma" / "000" / "000002.mp3"  # ID3v2.4 tag + ffmpeg Info header
    with open(real, "rb") as handle:
        assert audio.expected_size(handle) == (960_738, "its Info header")
    wav = tmp_path / "a.wav"
    sf.write(str(wav), _sine(2.0, 22050), 22050, subtype="PCM_16")
    with open(wav, "rb") as handle:  # 44-byte header + 44,100 frames × 2 bytes
        assert audio.expected_size(handle) == (44 + 88_200, "its WAV header")
    au = tmp_path / "a.au"
    sf.write(str(au), _sine(2.0, 22050), 22050, format="AU", subtype="PCM_16")
    with open(au, "rb") as handle:
        size, source = audio.expected_size(handle)
    assert size == au.stat().st_size and source == "its AU header"
    ogg = tmp_path / "a.ogg"
    sf.write(str(ogg), _sine(2.0, 22050), 22050, format="OGG", subtype="VORBIS")
    with open(ogg, "rb") as handle:
        assert audio.expected_size(handle) is None


@pytest.mark.parametrize("kind", ["mp3", "wav", "au"])
def test_truncated_files_are_found_from_the_header_alone(tmp_path, kind):
    path = tmp_path / f"cut.{kind}"
    if kind == "mp3":
        _mp3(path, 29.2)
    else:
        sf.write(str(path), _sine(3.0, 22050), 22050, format=kind.upper(), subtype="PCM_16")
    whole = path.read_bytes()
    assert audio.info(path).truncation() is None
    path.write_bytes(whole[: len(whole) // 3])
    header = audio.info(path)
    if kind == "mp3":
        assert header.seconds == pytest.approx(29.2)  # the header still states the full length
    assert header.size_ratio == pytest.approx(1 / 3, abs=0.01)
    assert header.truncation().startswith(f"{len(whole) // 3:,} of the {len(whole):,} bytes its ")
    (problem,), _ = probe_audio([("x", path)], expected_sr=None, min_seconds=0.0, progress=False)
    assert problem.kind == "truncated" and problem.reason.startswith("truncated (")
    with pytest.raises(audio.AudioError) as err:
        audio.decode(path)
    assert err.value.kind == "truncated" and str(err.value).startswith(f"{path}: truncated (")
    assert audio.kind_of(str(err.value), str(path)) == "truncated"
    path.write_bytes(whole[: int(len(whole) * 0.6)])  # above the threshold: used, decodes short
    assert audio.info(path).truncation() is None


def test_mp3_without_a_xing_header_shows_truncation_as_length(tmp_path):
    """A CBR MP3 with no Xing/Info header: libsndfile estimates its length from the file size,
    so a cut file is a short one (the length rule catches it)."""
    path = _mp3(tmp_path / "cbr.mp3", 29.2, bitrate_mode="CONSTANT")
    data = path.read_bytes()
    assert b"Xing" in data[:200] or b"Info" in data[:200]
    # drop the first frame, which holds the tag: the stream starts at the next frame header
    second = next(i for i in range(4, len(data)) if audio._is_mpeg_frame_header(data[i:i + 4]))
    path.write_bytes(data[second:])
    with open(path, "rb") as handle:
        assert audio.expected_size(handle) is None
    whole = audio.info(path).seconds
    path.write_bytes(data[second: second + 1500])
    assert audio.info(path).truncation() is None  # nothing to compare the size with …
    assert audio.info(path).seconds < 0.2 * whole  # … but the estimated length shrinks with it


def test_audio_error_messages_name_the_file_and_the_kind(tmp_path):
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    for call in (audio.info, audio.decode):
        with pytest.raises(audio.AudioError) as err:
            call(noise)
        assert str(err.value).startswith(f"{noise}: not readable as audio (")
        assert "does not exist" not in str(err.value) and "pipe" not in str(err.value)
    assert audio.kind_of(f"{noise}: missing", str(noise)) == "missing"
    assert audio.kind_of("ValueError: boom") == "not readable as audio"
