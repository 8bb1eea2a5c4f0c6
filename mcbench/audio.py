"""Audio decoding: decode, down-mix, resample to 12 kHz, crop or pad (datasets.md §1).

soundfile (libsndfile ≥ 1.1) decodes MP3, Ogg, WAV and AU; soxr resamples (librosa's default). Clips longer
than the target are centre-cropped and shorter ones zero-padded at the end, following
keunwoochoi/music-auto_tagging-keras ``audio_processor.py``, which the paper's front end uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The paper's front-end sample rate (Sec. IV): 12 kHz.
TARGET_SR = 12_000


class AudioError(Exception):
    """A file could not be used as audio; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    """Header information, read without decoding the samples."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file is missing")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    return path


def info(path: str | Path) -> AudioInfo:
    """Read the header of an audio file; raise :class:`AudioError` if it is not audio."""
    import soundfile as sf

    path = _existing_file(path)
    try:
        i = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: not readable as audio ({exc})") from exc
    return AudioInfo(path, int(i.samplerate), int(i.channels), int(i.frames), str(i.format))


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a whole file to mono float32 at its native rate.

    Raises :class:`AudioError` for a missing, empty or undecodable file, or one with no samples.
    """
    import soundfile as sf

    path = _existing_file(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: cannot decode ({type(exc).__name__}: {exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path}: decodes to no samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: decoded samples contain NaN or infinity")
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


def resample(y: np.ndarray, orig_sr: int, target_sr: int = TARGET_SR) -> np.ndarray:
    """Resample exactly as ``librosa.resample`` does by default (soxr, quality "HQ").

    soxr is called directly because importing librosa costs seconds in every decoding worker;
    a test checks the result equals librosa's.
    """
    if orig_sr == target_sr:
        return y.astype(np.float32, copy=False)
    import soxr

    out = soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32)
    # librosa then trims or zero-pads the end to ⌈n·ratio⌉ samples.
    n_out = int(np.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))  # librosa's rounding
    return out[:n_out] if out.shape[-1] >= n_out else np.pad(out, (0, n_out - out.shape[-1]))


def fix_length(y: np.ndarray, n_samples: int) -> np.ndarray:
    """Centre-crop to ``n_samples`` or zero-pad at the end (datasets.md §1)."""
    n = y.shape[-1]
    if n > n_samples:
        start = (n - n_samples) // 2
        return y[start : start + n_samples]
    if n < n_samples:
        return np.pad(y, (0, n_samples - n))
    return y


@dataclass(frozen=True)
class LoadedClip:
    samples: np.ndarray  # mono float32 at the target rate, exactly n_samples long
    source_seconds: float  # decoded duration before cropping/padding
    source_sr: int


def load_clip(path: str | Path, seconds: float, sr: int = TARGET_SR) -> LoadedClip:
    """Decode, down-mix, resample to ``sr`` and crop/pad to ``seconds``."""
    y, native_sr = decode(path)
    source_seconds = y.shape[0] / native_sr
    y = resample(y, native_sr, sr)
    return LoadedClip(fix_length(y, int(round(seconds * sr))), source_seconds, native_sr)
