"""A miniature FMA data root, faithful to the real formats of the FMA release (mdeff/fma).

- ``fma_metadata/tracks.csv``: the three header lines and all 52 columns in the on-disk order of
  ``shared/data/fma/tracks_csv_columns.txt`` (read at test time), written by pandas ``to_csv``
  from a two-level column MultiIndex with the index named ``track_id``, exactly as the FMA authors
  wrote it; list columns as Python literals (``[21]``, ``[]``), ``YYYY-MM-DD HH:MM:SS`` dates, a
  free-text field with a comma, a quote and a line break.
- ``fma_metadata/genres.csv``: the real rows of ``shared/data/fma/genres_partial.csv``.
- Audio: the real clip of track 2 copied from ``shared/audio/fma/000/000002.mp3``, generated
  44.1 kHz stereo MP3s, a zero-byte ``099/099134.mp3``, a missing clip and a short clip.

Only tracks 2, 3 and 20 carry real values (from the real tracks.csv); the other rows are made up
in the real format, with the published known-fault ids (mdeff/fma issues #8, #41, #44) where a
fault is injected.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SR = 44_100


@dataclass(frozen=True)
class FixtureTrack:
    """One row of the fixture's tracks.csv and what its audio file is."""

    track_id: int
    subset: str
    split: str
    genre_top: str | None
    genres: list[int]
    genres_all: list[int]
    #: "real" (copy of shared track 2), "tone", "empty" (0 bytes) or None (no file written).
    audio: str | None = "tone"
    seconds: float = 3.0
    title: str = "Untitled"
    extra: dict = field(default_factory=dict)


#: The fixture's rows, in ascending track_id as in the real file.
DEFAULT_TRACKS = (
    # Real track 2: small, so it must count as medium.
    FixtureTrack(
        2,
        "small",
        "training",
        "Hip-Hop",
        [21],
        [21],
        audio="real",
        title="Food",
        extra={
            ("track", "bit_rate"): 256000,
            ("track", "duration"): 168,
            ("artist", "name"): "AWOL",
            ("artist", "bio"): 'AWOL, "A Way Of Life",\nis a hip-hop collective.',
        },
    ),
    # Real track 3: subset medium.
    FixtureTrack(3, "medium", "training", "Hip-Hop", [21], [21], title="Electric Ave"),
    # Real track 20: large, empty genre_top, genres [76, 103]; no file in fma_medium.
    FixtureTrack(20, "large", "training", None, [76, 103], [10, 17, 76, 103], audio=None),
    FixtureTrack(140, "small", "validation", "Folk", [17], [17], title='Song, with "quotes"'),
    FixtureTrack(5000, "medium", "validation", "Soul-RnB", [14], [14]),
    FixtureTrack(12345, "medium", "test", "Old-Time / Historic", [8], [8]),
    # Known wrong-duration id (mdeff/fma #8, #41, #44): a clip much shorter than 30 s, kept and padded.
    FixtureTrack(98565, "medium", "test", "Electronic", [15], [15], seconds=1.5),
    # Known empty clip (mdeff/fma wiki, known issues): a zero-byte file.
    FixtureTrack(99134, "small", "training", "Electronic", [15], [15], audio="empty"),
    # Known empty clip, here absent from the audio folder.
    FixtureTrack(108925, "small", "test", "Rock", [12], [12], audio=None),
    # A large-only track with a genre: excluded from medium.
    FixtureTrack(155000, "large", "test", "Rock", [12], [12], audio=None),
)

#: What the loader must produce from DEFAULT_TRACKS for subset medium.
MEDIUM_IDS = ["000002", "000003", "000140", "005000", "012345", "098565", "099134", "108925"]
MEDIUM_CLASSES = ["Electronic", "Folk", "Hip-Hop", "Old-Time / Historic", "Rock", "Soul-RnB"]


def column_pairs(shared_dir: Path) -> list[tuple[str, str]]:
    """The 52 (level-0, level-1) columns of tracks.csv in on-disk order."""
    lines = (shared_dir / "data/fma/tracks_csv_columns.txt").read_text().splitlines()
    pairs = [
        tuple(line.split(",", 1)) for line in lines if line.strip() and not line.startswith("#")
    ]
    assert len(pairs) == 52, len(pairs)
    return pairs


def _default_value(track: FixtureTrack, column: tuple[str, str]):
    """A value in the real format for any of the 52 columns (None: empty cell)."""
    group, name = column
    tid = track.track_id
    if column == ("set", "split"):
        return track.split
    if column == ("set", "subset"):
        return track.subset
    if column == ("track", "genre_top"):
        return track.genre_top
    if column == ("track", "genres"):
        return list(track.genres)
    if column == ("track", "genres_all"):
        return list(track.genres_all)
    if column == ("track", "title"):
        return track.title
    if name == "tags":
        return ["awol"] if tid == 2 else []
    if name in ("date_created", "date_released", "date_recorded"):
        return "2008-11-26 01:48:12" if group != "track" or name == "date_created" else None
    if name in ("id",):
        return 1 + tid // 10
    if name in ("favorites", "listens", "interest", "tracks", "comments"):
        return (tid * 7) % 1000
    if column == ("track", "bit_rate"):
        return 320000
    if column == ("track", "duration"):
        return 30
    if column == ("track", "number"):
        return 1
    if column == ("track", "license"):
        return "Attribution-NonCommercial-ShareAlike 3.0 International"
    if column == ("album", "type"):
        return "Album"
    if column == ("album", "title"):
        return "AWOL - A Way Of Life"
    if column == ("artist", "name"):
        return f"Artist {tid}"
    if name in ("latitude", "longitude"):
        return 40.058324
    if name in ("active_year_begin", "active_year_end"):
        return "2006-01-01 00:00:00" if name.endswith("begin") else None
    return None


def write_tracks_csv(path: Path, pairs: list[tuple[str, str]], tracks=DEFAULT_TRACKS) -> None:
    """Write tracks.csv as mdeff/fma does: ``to_csv`` of a two-level-column frame."""
    import pandas as pd

    rows = []
    for track in tracks:
        values = {c: _default_value(track, c) for c in pairs}
        values.update(track.extra)
        rows.append([values[c] for c in pairs])
    columns = pd.MultiIndex.from_tuples(pairs)
    index = pd.Index([t.track_id for t in tracks], name="track_id")
    frame = pd.DataFrame(rows, index=index, columns=columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path)


def write_tone_mp3(path: Path, seconds: float, seed: int) -> None:
    """A seeded 44.1 kHz stereo MP3: a decaying chord with slightly different channels."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    freqs = rng.uniform(110.0, 880.0, size=3)
    mono = sum(np.sin(2 * np.pi * f * t) for f in freqs) / 3
    envelope = np.exp(-((t % 0.5) * 4.0))
    left = 0.4 * mono * envelope
    right = 0.4 * np.roll(mono, 50) * envelope
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(
        path,
        np.stack([left, right], axis=1).astype(np.float32),
        SR,
        format="MP3",
        subtype="MPEG_LAYER_III",
    )


def build_fma_fixture(
    root: Path, shared_dir: Path, tracks=DEFAULT_TRACKS, audio_folder: str = "fma_medium"
) -> Path:
    """Write the miniature FMA root under ``root`` and return it."""
    write_tracks_csv(root / "fma_metadata/tracks.csv", column_pairs(shared_dir), tracks)
    shutil.copyfile(shared_dir / "data/fma/genres_partial.csv", root / "fma_metadata/genres.csv")
    audio = root / audio_folder
    for track in tracks:
        name = f"{track.track_id:06d}"
        path = audio / name[:3] / f"{name}.mp3"
        if track.audio is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if track.audio == "real":
            shutil.copyfile(shared_dir / "audio/fma/000/000002.mp3", path)
        elif track.audio == "empty":
            path.write_bytes(b"")
        else:
            write_tone_mp3(path, track.seconds, seed=track.track_id)
    return root
