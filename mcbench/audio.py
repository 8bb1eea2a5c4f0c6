"""Audio decoding: decode, down-mix, resample to 12 kHz, crop or pad; and the checks that find a
bad file before it is used.

soundfile (libsndfile ≥ 1.1) decodes MP3, Ogg, WAV and AU; soxr resamples (librosa's default).
Clips longer than the target are centre-cropped and shorter ones zero-padded at the end, following
keunwoochoi/music-auto_tagging-keras ``audio_processor.py``, which the paper's front end uses.

Files are opened here and handed to soundfile as open binary files, never as paths: given a path,
libsndfile also looks for a macOS resource fork beside the file (``._<name>``, the AppleDouble
files that an archive made on a Mac carries) and then refuses a sound MP3 with "bad resource
fork". An open file has no name to look beside.

Every failure is an :class:`AudioError` whose message is ``"<path>: <kind> (<detail>)"``; the
kinds are :data:`KINDS`, and :func:`kind_of` reads the kind back from a stored message.

A truncated download (a file cut short) often still has a complete header that states the full
duration, so its header alone looks healthy. :func:`expected_size` reads what the header implies
about the file size — the data size a WAV or AU header declares, the stream size in an MP3's
Xing/Info or VBRI header — and a file below :data:`TRUNCATED_BELOW` of it is reported as
truncated, both by the header probe (``info``) and when decoding.

numpy and soundfile are imported inside the functions: dataset plugins import the fault kinds
from here at registration time, and listing plugins must stay cheap.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

#: The paper's front-end sample rate (Sec. IV): 12 kHz.
TARGET_SR = 12_000

#: A file holding less than this share of the bytes its header implies is truncated.
TRUNCATED_BELOW = 0.5

# Fault kinds of a single audio file (the first words of every AudioError message).
MISSING = "missing"
EMPTY = "empty"
CANNOT_READ = "cannot be read"
NOT_AUDIO = "not readable as audio"
TRUNCATED = "truncated"
TOO_SHORT = "too short"
KINDS = (MISSING, EMPTY, CANNOT_READ, NOT_AUDIO, TRUNCATED, TOO_SHORT)


class AudioError(Exception):
    """A file could not be used as audio; the message is ``"<path>: <kind> (<detail>)"``."""

    def __init__(self, path: str | Path, kind: str, detail: str = ""):
        self.path = str(path)
        self.kind = kind
        self.detail = detail
        super().__init__(f"{path}: {kind}" + (f" ({detail})" if detail else ""))


def kind_of(message: str, path: str = "") -> str:
    """The fault kind of a stored :class:`AudioError` message (``NOT_AUDIO`` if unrecognised).

    Anything else a decoder can raise, or a decoder process that died, means the file is not
    usable as audio.
    """
    text = message[len(path):].lstrip(": ") if path and message.startswith(path) else message
    for kind in KINDS:
        if text.startswith(kind):
            return kind
    return NOT_AUDIO


@dataclass(frozen=True)
class AudioInfo:
    """Header information, read without decoding the samples."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    #: Size of the file in bytes.
    file_bytes: int = 0
    #: Size the header implies (see :func:`expected_size`), or ``None`` when it says nothing.
    expected_bytes: int | None = None
    #: Which header field ``expected_bytes`` comes from, for messages.
    expected_from: str = ""

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    @property
    def size_ratio(self) -> float | None:
        """``file_bytes / expected_bytes``, or ``None`` when the header implies no size."""
        if not self.expected_bytes:
            return None
        return self.file_bytes / self.expected_bytes

    def truncation(self) -> str | None:
        """Why the file looks truncated (below :data:`TRUNCATED_BELOW` of the size its header
        implies), or ``None``."""
        ratio = self.size_ratio
        if ratio is None or ratio >= TRUNCATED_BELOW:
            return None
        return (
            f"{self.file_bytes:,} of the {self.expected_bytes:,} bytes {self.expected_from} "
            f"announces ({100 * ratio:.3g} %); re-download or re-extract it"
        )


# --------------------------------------------------------------------------- opening


def _open(path: Path) -> BinaryIO:
    """The file opened for reading, or an :class:`AudioError` saying why it cannot be."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AudioError(path, MISSING) from None
    except OSError as exc:  # permission denied on a folder, a link loop, a name too long…
        raise AudioError(path, CANNOT_READ, exc.strerror or str(exc)) from exc
    if not stat.S_ISREG(st.st_mode):  # a folder, or a pipe that open() would block on
        raise AudioError(path, CANNOT_READ, "not a regular file")
    if st.st_size == 0:
        raise AudioError(path, EMPTY, "0 bytes")
    try:
        return open(path, "rb")  # noqa: SIM115 - the callers close it
    except OSError as exc:
        raise AudioError(path, CANNOT_READ, exc.strerror or str(exc)) from exc


def _decoder_detail(exc: Exception) -> str:
    """libsndfile's own words without soundfile's "Error opening <file object>:" wrapper."""
    text = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
    text = text.strip()
    if text.startswith("Error : "):
        text = text[len("Error : "):]
    return "libsndfile: " + text.rstrip(".")


# --------------------------------------------------------------------------- expected sizes

_U32_UNKNOWN = 0xFFFFFFFF


def _wav_size(handle: BinaryIO) -> int | None:
    """Offset of the RIFF ``data`` chunk plus the data size it declares."""
    position = 12
    for _ in range(64):  # a WAV file has a handful of chunks before ``data``
        handle.seek(position)
        head = handle.read(8)
        if len(head) < 8:
            return None
        size = int.from_bytes(head[4:], "little")
        if head[:4] == b"data":
            return None if size in (0, _U32_UNKNOWN) else position + 8 + size
        position += 8 + size + (size & 1)  # chunks are padded to an even size
    return None


def _au_size(header: bytes) -> int | None:
    """Sun/NeXT ``.snd``: the data offset plus the data size of the header (if not 'unknown')."""
    if len(header) < 12:
        return None
    offset = int.from_bytes(header[4:8], "big")
    size = int.from_bytes(header[8:12], "big")
    return None if size == _U32_UNKNOWN else offset + size


def _id3v2_length(header: bytes) -> int:
    """Bytes taken by an ID3v2 tag at the start of the file (0 when there is none)."""
    if len(header) < 10 or header[:3] != b"ID3":
        return 0
    size = 0
    for byte in header[6:10]:  # a "synchsafe" integer: 7 bits per byte
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if header[5] & 0x10 else 0
    return 10 + size + footer


def _is_mpeg_frame_header(b: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a valid version, layer, bit rate and rate."""
    return (
        len(b) >= 4
        and b[0] == 0xFF
        and b[1] & 0xE0 == 0xE0
        and (b[1] >> 3) & 0b11 != 0b01  # reserved version
        and (b[1] >> 1) & 0b11 != 0b00  # reserved layer
        and (b[2] >> 4) != 0b1111  # bad bit-rate index
        and (b[2] >> 2) & 0b11 != 0b11  # reserved sample rate
    )


def _mp3_size(handle: BinaryIO) -> tuple[int, str] | None:
    """The stream size an MP3's first frame announces: LAME/Xing ``Xing``/``Info`` or
    Fraunhofer ``VBRI`` header, plus the ID3v2 tag before it."""
    handle.seek(0)
    start = _id3v2_length(handle.read(10))
    handle.seek(start)
    window = handle.read(8192)
    # the first frame header at or shortly after the tag (some files carry padding or junk)
    offset = next((i for i in range(max(0, len(window) - 3))
                   if window[i] == 0xFF and _is_mpeg_frame_header(window[i:i + 4])), None)
    if offset is None:
        return None
    frame = window[offset: offset + 200]
    # Xing/Info sits right after the side information (9-32 bytes), VBRI 32 bytes after the header.
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag, 4, 4 + 2 + 32 + 4)
        if at >= 0 and len(frame) >= at + 16:
            flags = int.from_bytes(frame[at + 4: at + 8], "big")
            if not flags & 0x2:  # no stream-size field
                return None
            field_at = at + 8 + (4 if flags & 0x1 else 0)
            size = int.from_bytes(frame[field_at: field_at + 4], "big")
            return (start + size, f"its {tag.decode()} header") if size else None
    if frame[36:40] == b"VBRI" and len(frame) >= 50:
        size = int.from_bytes(frame[46:50], "big")
        return (start + size, "its VBRI header") if size else None
    return None


def expected_size(handle: BinaryIO) -> tuple[int, str] | None:
    """``(bytes, which header says so)``: the size the file's own header implies, or ``None``.

    - WAV (RIFF): the offset of the ``data`` chunk plus the data size it declares (for PCM,
      frames × channels × bytes per sample). libsndfile shortens the frame count of a truncated
      WAV to what is present, so only the declared size shows the loss.
    - AU: the header's data offset plus data size (unless it is 0xFFFFFFFF, "unknown").
    - MP3: the ID3v2 tag plus the stream size of the Xing/Info (LAME, ffmpeg) or VBRI header in
      the first frame. libsndfile takes an MP3's duration from that header too, so a truncated
      download still "lasts" the full 30 s. Without such a header the duration is estimated
      from the file size, so a truncated file shows as a short one.
    - Other formats (FLAC, Ogg): ``None``; they are checked when decoded.
    """
    handle.seek(0)
    header = handle.read(12)
    if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
        size = _wav_size(handle)
        return (size, "its WAV header") if size else None
    if header[:4] == b".snd":
        size = _au_size(header)
        return (size, "its AU header") if size else None
    if header[:3] == b"ID3" or (len(header) >= 4 and _is_mpeg_frame_header(header)):
        return _mp3_size(handle)
    return None


# --------------------------------------------------------------------------- reading


def info(path: str | Path) -> AudioInfo:
    """Read the header of an audio file; raise :class:`AudioError` if it is not usable audio.

    A file that is not truncated is returned even when its length or rate is unusual: the
    dataset decides what is too short.
    """
    import soundfile as sf

    path = Path(path)
    with _open(path) as handle:
        file_bytes = os.fstat(handle.fileno()).st_size
        expected = expected_size(handle)
        handle.seek(0)
        try:
            i = sf.info(handle)
        except Exception as exc:
            raise AudioError(path, NOT_AUDIO, _decoder_detail(exc)) from exc
    return AudioInfo(path, int(i.samplerate), int(i.channels), int(i.frames), str(i.format),
                     file_bytes, *(expected or (None, "")))


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a whole file to mono float32 at its native rate.

    Raises :class:`AudioError` for a missing, empty, unreadable, truncated or undecodable file,
    or one with no samples.
    """
    import numpy as np
    import soundfile as sf

    path = Path(path)
    with _open(path) as handle:
        file_bytes = os.fstat(handle.fileno()).st_size
        expected = expected_size(handle)
        handle.seek(0)
        try:
            with sf.SoundFile(handle) as f:
                header = AudioInfo(path, int(f.samplerate), int(f.channels), int(f.frames),
                                   str(f.format), file_bytes, *(expected or (None, "")))
                truncated = header.truncation()
                if truncated:  # refuse it before decoding a fraction of it
                    raise AudioError(path, TRUNCATED, truncated)
                data = f.read(dtype="float32", always_2d=True)
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError(path, NOT_AUDIO, "cannot decode it; " + _decoder_detail(exc)) from exc
    sr = header.sample_rate
    if data.shape[0] == 0:
        raise AudioError(path, NOT_AUDIO, "no audio samples in it")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(path, NOT_AUDIO, "decoded samples contain NaN or infinity")
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


def resample(y: np.ndarray, orig_sr: int, target_sr: int = TARGET_SR) -> np.ndarray:
    """Resample exactly as ``librosa.resample`` does by default (soxr, quality "HQ").

    soxr is called directly because importing librosa costs seconds in every decoding worker;
    a test checks the result equals librosa's.
    """
    import numpy as np

    if orig_sr == target_sr:
        return y.astype(np.float32, copy=False)
    import soxr

    out = soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32)
    # librosa then trims or zero-pads the end to ⌈n·ratio⌉ samples.
    n_out = int(np.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))  # librosa's rounding
    return out[:n_out] if out.shape[-1] >= n_out else np.pad(out, (0, n_out - out.shape[-1]))


def fix_length(y: np.ndarray, n_samples: int) -> np.ndarray:
    """Centre-crop to ``n_samples`` or zero-pad at the end (keunwoochoi/music-auto_tagging-keras
    ``audio_processor.py``)."""
    import numpy as np

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
