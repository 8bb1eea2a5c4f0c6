"""Builders of miniature GTZAN roots in each of the four real layouts.

Clips are 22,050 Hz mono 16-bit PCM like GTZAN's, 30.0 s long or slightly shorter as GTZAN's are;
layout tests that never read the audio may ask for 1-s clips instead. Optional quirks: the
Kaggle copy's non-RIFF ``jazz.00054.wav``, a macOS ``._blues.00000.wav`` AppleDouble stub, the
Kaggle extras (``images_original/``, feature CSVs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22_050
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

#: layout → (folder of the genre folders, file suffix, soundfile format)
LAYOUTS = {
    "wav": ("genres", ".wav", "WAV"),
    "au": ("genres", ".au", "AU"),
    "kaggle": ("Data/genres_original", ".wav", "WAV"),
    "flat": (".", ".wav", "WAV"),
}

#: A 211-byte AppleDouble header, as found beside files in archives made on macOS.
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 187


@dataclass
class GtzanFixture:
    root: Path
    layout: str
    #: id → path of every file written (the broken one included).
    files: dict[str, Path]
    #: id → seconds of audio written (absent: not audio).
    seconds: dict[str, float]
    broken: str | None


def write_clip(path: Path, seconds: float, fmt: str, freq: float = 330.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * SR))) / SR
    y = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(str(path), y, SR, format=fmt, subtype="PCM_16")


def build_gtzan(
    tmp: Path,
    layout: str = "wav",
    *,
    numbers: Sequence[int] = (0, 1, 2),
    genres: Sequence[str] = GENRES,
    broken_jazz: bool = False,
    full_length: Sequence[int] | None = None,
    appledouble: bool = True,
    extra: Sequence[str] = (),
) -> GtzanFixture:
    """Write ``<genre>.000NN`` for every genre and NN in ``numbers`` in ``layout``.

    Clips numbered in ``full_length`` (default: all) last 30.0 s (blues, classical…) or 29.98 s
    (every other genre: slightly shorter, as some real clips are); the others last 1 s. ``extra`` names more
    ids to write (same length rule). ``broken_jazz`` adds ``jazz.00054.wav`` holding bytes that are not
    RIFF (the Kaggle copy's broken file).
    """
    folder, suffix, fmt = LAYOUTS[layout]
    root = Path(tmp) / f"gtzan_{layout}"
    base = root / folder
    files: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    wanted = [(g, genre, n) for g, genre in enumerate(genres) for n in numbers]
    wanted += [(genres.index(i.split(".")[0]), i.split(".")[0], int(i.split(".")[1])) for i in extra]
    for g, genre, n in wanted:
        track_id = f"{genre}.{n:05d}"
        full = full_length is None or n in full_length
        secs = (30.0 if g % 2 == 0 else 29.98) if full else 1.0
        path = base / genre / f"{track_id}{suffix}"
        write_clip(path, secs, fmt, freq=110.0 * (1 + g))
        files[track_id] = path
        seconds[track_id] = secs
    broken = None
    if broken_jazz:
        broken = "jazz.00054"
        path = base / "jazz" / f"jazz.00054{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        # What the Kaggle copy's jazz.00054.wav is: bytes that are no RIFF header.
        path.write_bytes(b"\x00" * 4096)
        files[broken] = path
    if appledouble:
        (base / genres[0]).mkdir(parents=True, exist_ok=True)
        (base / genres[0] / f"._{genres[0]}.00000{suffix}").write_bytes(APPLEDOUBLE)
    if layout == "kaggle":
        images = root / "Data" / "images_original" / genres[0]
        images.mkdir(parents=True, exist_ok=True)
        (images / f"{genres[0]}00000.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        (root / "Data" / "features_30_sec.csv").write_text("filename,length,label\nblues.00000.wav,661794,blues\n")
    return GtzanFixture(root, layout, files, seconds, broken)


def write_lists(folder: Path, membership: dict[str, Sequence[str]], suffix: str = ".wav") -> None:
    """``train_filtered.txt``… with lines ``<genre>/<genre>.000NN.wav``, sorted, LF ends."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, ids in membership.items():
        lines = sorted(f"{i.split('.')[0]}/{i}{suffix}" for i in ids)
        (folder / f"{split}_filtered.txt").write_text("".join(line + "\n" for line in lines))
