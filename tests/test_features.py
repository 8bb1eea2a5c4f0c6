"""Audio decoding, the log-mel front end (against librosa) and the feature store."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from mcbench import audio, features
from mcbench.features import FeatureStore, FrontEnd, LogMel, librosa_logmel, prepare_partition
from mcbench.specs import MULTICLASS, MULTILABEL, Partition, Split, Track


def tone(seconds: float, sr: int, freq: float = 440.0, stereo: bool = False) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.random.default_rng(int(freq)).normal(size=t.size)
    y = y.astype(np.float32)
    return np.stack([y, 0.5 * y], axis=1) if stereo else y


def test_paper_frontend_shapes():
    assert FrontEnd().shape == (1, 96, 1360)  # 1 + floor(348000 / 256)
    assert FrontEnd(seconds=29.12).n_frames == 1366  # Choi's 29.12 s convention
    assert FrontEnd("waveform").shape == (1, 348000)
    with pytest.raises(ValueError, match="unknown front end"):
        FrontEnd("cqt")


def test_frontend_key_depends_on_settings_only():
    assert FrontEnd().key() == FrontEnd().key()
    assert FrontEnd().key() != FrontEnd(hop_length=512).key()
    assert FrontEnd("waveform").key() == FrontEnd("waveform", n_mels=128).key()


def test_fix_length_centre_crops_and_pads_at_end():
    y = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(audio.fix_length(y, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(audio.fix_length(y[:3], 5), [0, 1, 2, 0, 0])


def test_resample_equals_librosa():
    import librosa

    y = tone(1.3, 22050, 1000.0)
    np.testing.assert_array_equal(audio.resample(y, 22050), librosa.resample(y, orig_sr=22050, target_sr=12000))


def test_load_clip_downmixes_resamples_and_pads(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(2.0, 22050, stereo=True), 22050)
    clip = audio.load_clip(path, seconds=3.0)
    assert clip.samples.shape == (36000,) and clip.samples.dtype == np.float32
    assert clip.source_seconds == pytest.approx(2.0) and clip.source_sr == 22050
    assert np.all(clip.samples[24100:] == 0)  # padded at the end


@pytest.mark.parametrize("content,reason", [(b"", "empty"), (b"RIFF....not audio at all", "cannot decode")])
def test_bad_files_raise_audio_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(audio.AudioError, match=reason) as err:
        audio.decode(path)
    assert str(path) in str(err.value)
    with pytest.raises(audio.AudioError, match="missing"):
        audio.decode(tmp_path / "nope.wav")


def test_torch_logmel_equals_librosa_within_1e3_db():
    fe = FrontEnd(seconds=5.0)
    y = audio.fix_length(tone(5.0, 12000, 330.0) + tone(5.0, 12000, 2500.0), fe.n_samples)
    ours = LogMel(fe)(y[None])[0]
    ref = librosa_logmel(y, fe)
    assert ours.shape == ref.shape == (96, fe.n_frames)
    assert np.max(np.abs(ours - ref)) < 1e-3


def test_torch_logmel_on_real_music(shared_dir):
    path = next((shared_dir / "audio" / "librosa_data").glob("Kevin_MacLeod_-_Vibe_Ace*.ogg"))
    fe = FrontEnd()
    clip = audio.load_clip(path, fe.seconds)
    ours = LogMel(fe)(clip.samples[None])[0]
    ref = librosa_logmel(clip.samples, fe)
    assert ours.shape == (96, 1360)
    assert np.max(np.abs(ours - ref)) < 1e-3


def make_clips(folder, n, seconds=1.0, sr=16000):
    tracks = []
    for i in range(n):
        p = folder / f"c{i}.wav"
        sf.write(p, tone(seconds, sr, 200.0 + 50 * i), sr)
        tracks.append(Track(f"c{i}", p, (i % 3,)))
    return tracks


def partition_of(tracks, min_seconds=0.0):
    splits = {"train": Split("train", tracks[:-4]), "valid": Split("valid", tracks[-4:-2]),
              "test": Split("test", tracks[-2:])}
    return Partition("toy", "fixed", None, ["a", "b", "c"], splits, min_seconds=min_seconds)


def test_store_computes_once_skips_bad_files_and_reuses(tmp_path):
    tracks = make_clips(tmp_path, 10)
    (tmp_path / "c3.wav").write_bytes(b"")  # corrupt one
    store = FeatureStore(tmp_path / "cache", "toy", tmp_path, FrontEnd(seconds=1.0))
    feats, dropped = prepare_partition(store, partition_of(tracks), MULTICLASS, workers=1, progress=False)
    assert [d.id for d in dropped] == ["c3"] and "empty" in dropped[0].reason
    assert feats["train"].x.shape == (5, 1, 96, 47) and "c3" not in feats["train"].ids
    np.testing.assert_array_equal(feats["train"].y, [0, 1, 2, 1, 2])
    # the stored row equals a direct computation
    direct = LogMel(FrontEnd(seconds=1.0))(audio.load_clip(tracks[0].path, 1.0).samples[None])[0]
    np.testing.assert_allclose(feats["train"].x[0, 0], direct, atol=1e-5)
    # a second pass decodes nothing
    calls = []
    original = features._decode_worker
    features._decode_worker = lambda job: calls.append(job) or original(job)
    try:
        prepare_partition(store, partition_of(tracks), MULTICLASS, workers=1, progress=False)
    finally:
        features._decode_worker = original
    assert calls == []


def test_store_multilabel_targets_and_min_seconds(tmp_path):
    tracks = make_clips(tmp_path, 8)
    short = tmp_path / "short.wav"
    sf.write(short, tone(0.5, 16000), 16000)
    tracks[0] = Track("short", short, (0, 2))
    store = FeatureStore(tmp_path / "cache", "toy", tmp_path, FrontEnd(seconds=1.0))
    feats, dropped = prepare_partition(store, partition_of(tracks, min_seconds=0.9), MULTILABEL,
                                       workers=1, progress=False)
    assert [d.id for d in dropped] == ["short"] and "decoded 0.500 s" in dropped[0].reason
    feats_all, _ = prepare_partition(store, partition_of(tracks), MULTILABEL, workers=1, progress=False)
    np.testing.assert_array_equal(feats_all["train"].y[0], [1, 0, 1])


def test_interrupted_prepare_resumes_where_it_stopped(tmp_path, monkeypatch):
    tracks = make_clips(tmp_path, 12)
    fe = FrontEnd(seconds=1.0)
    store = FeatureStore(tmp_path / "cache", "toy", tmp_path, fe)
    calls = []
    original = features._decode_worker

    def flaky(job):
        if len(calls) == 9:
            raise KeyboardInterrupt
        calls.append(job[0])
        return original(job)

    monkeypatch.setattr(features, "_decode_worker", flaky)
    with pytest.raises(KeyboardInterrupt):
        store.compute(tracks, "fixed", workers=1, progress=False)
    index = json.loads(next(store.dir.glob("*.index.json")).read_text())
    assert index["status"].count("ok") == 8  # the last full chunk of 8 was stored
    calls.clear()
    monkeypatch.setattr(features, "_decode_worker", lambda job: calls.append(job[0]) or original(job))
    store.compute(tracks, "fixed", workers=1, progress=False)
    assert calls == [t.id for t in tracks[8:]]
    assert len(list(store.dir.glob("*.npy"))) == 1  # resumed the same part
    feats, _ = prepare_partition(store, partition_of(tracks), MULTICLASS, workers=1, progress=False)
    assert len(feats["train"]) == 8


def test_parallel_decoding_matches_serial(tmp_path):
    tracks = make_clips(tmp_path, 6)
    fe = FrontEnd(seconds=1.0)
    serial = FeatureStore(tmp_path / "c1", "toy", tmp_path, fe)
    parallel = FeatureStore(tmp_path / "c2", "toy", tmp_path, fe)
    a, _ = prepare_partition(serial, partition_of(tracks), MULTICLASS, workers=1, progress=False)
    b, _ = prepare_partition(parallel, partition_of(tracks), MULTICLASS, workers=2, progress=False)
    np.testing.assert_array_equal(np.asarray(a["train"].x), np.asarray(b["train"].x))


def test_waveform_frontend_store(tmp_path):
    tracks = make_clips(tmp_path, 6)
    store = FeatureStore(tmp_path / "cache", "toy", tmp_path, FrontEnd("waveform", seconds=1.0))
    feats, _ = prepare_partition(store, partition_of(tracks), MULTICLASS, workers=1, progress=False)
    assert feats["test"].x.shape == (2, 1, 12000)
    np.testing.assert_allclose(feats["test"].x[0, 0], audio.load_clip(tracks[4].path, 1.0).samples)


def test_a_replaced_audio_file_is_decoded_again(tmp_path):
    tracks = make_clips(tmp_path, 6)
    fe = FrontEnd(seconds=1.0)
    store = FeatureStore(tmp_path / "cache", "toy", tmp_path, fe)
    before, _ = prepare_partition(store, partition_of(tracks), MULTICLASS, workers=1, progress=False)
    old = np.array(before["test"].x[1])
    sf.write(tracks[5].path, tone(1.0, 16000, 3000.0), 16000)  # same id, new content
    os.utime(tracks[5].path, ns=(1, 1))  # a different stamp even on coarse clocks
    after, _ = prepare_partition(store, partition_of(tracks), MULTICLASS, workers=1, progress=False)
    new = np.asarray(after["test"].x[1])
    assert not np.allclose(old, new)
    direct = LogMel(fe)(audio.load_clip(tracks[5].path, 1.0).samples[None])[0]
    np.testing.assert_allclose(new[0], direct, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(after["test"].x[0]), np.asarray(before["test"].x[0]))


def test_a_decoder_crash_loses_only_that_file(tmp_path):
    import crashing_decoder

    tracks = make_clips(tmp_path, 7)
    crash = tmp_path / "crash.wav"
    sf.write(crash, tone(1.0, 16000), 16000)
    tracks[2] = Track("crash", crash, (0,))
    store = FeatureStore(tmp_path / "cache", "toy", tmp_path, FrontEnd(seconds=1.0))
    store.compute(tracks, "fixed", workers=2, progress=False, decoder=crashing_decoder.decode)
    failures = store.failures([t.id for t in tracks])
    assert list(failures) == ["crash"] and "decoder crashed" in failures["crash"]
    feats, dropped = prepare_partition(store, partition_of(tracks), MULTICLASS, workers=1, progress=False)
    assert [d.id for d in dropped] == ["crash"]
    assert len(feats["train"]) + len(feats["valid"]) + len(feats["test"]) == 6
