"""Builders of miniature MagnaTagATune roots that keep every quirk of the real data.

The real ``annotations_final.csv`` is tab-separated, every field double-quoted, CRLF line ends,
a 190-field header (``clip_id``, the 188 tags in file order, ``mp3_path``) and rows sorted by
``clip_id``. The builders take the header, the ids, the paths and the c–f labels from the public
reference files in ``shared/data/mtat`` (passed in as ``shared``; nothing is copied into the
repository) and write short 16 kHz mono MP3s with soundfile.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
FOLDERS = "0123456789abcdef"


# --------------------------------------------------------------------------- reference data


def mtat_dir(shared: Path) -> Path:
    return Path(shared) / "data" / "mtat"


def read_index(shared: Path) -> list[tuple[str, str]]:
    """``(clip_id, mp3_path)`` for all 25,863 rows, in ``annotations_final.csv`` row order."""
    lines = (mtat_dir(shared) / "index_mtt.tsv").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines if line]  # type: ignore[misc]


def read_tags188(shared: Path) -> list[str]:
    return (mtat_dir(shared) / "tags188_column_order.txt").read_text(encoding="utf-8").splitlines()


def read_top50(shared: Path) -> list[str]:
    """The top-50 tags in the order of the ``*_gt_mtt.tsv`` label vectors ("metal" first)."""
    return (mtat_dir(shared) / "top50_tags.txt").read_text(encoding="utf-8").splitlines()


def read_gt(shared: Path) -> dict[str, list[float]]:
    """Real top-50 labels of every folder c–f clip: clip_id → 50 values (top50 order)."""
    gt: dict[str, list[float]] = {}
    for name in ("val_gt_mtt.tsv", "test_gt_mtt.tsv"):
        for line in (mtat_dir(shared) / name).read_text(encoding="utf-8").splitlines():
            if line:
                clip_id, vector = line.split("\t")
                gt[clip_id] = json.loads(vector)
    return gt


def real_tags(gt_vector: Sequence[float], top50: Sequence[str]) -> set[str]:
    """Tag names of a ``*_gt_mtt.tsv`` vector (columns are mapped by name, never by position)."""
    return {tag for tag, value in zip(top50, gt_vector, strict=True) if value}


# --------------------------------------------------------------------------- writers


def write_annotations(
    path: Path,
    tag_names: Sequence[str],
    rows: Iterable[tuple[str, Iterable[str], str]],
    line_end: str = "\r\n",
) -> None:
    """Write ``annotations_final.csv`` exactly as MTAT ships it.

    ``rows`` holds ``(clip_id, tags that apply, mp3_path)``; every field is double-quoted, the
    delimiter is a tab and lines end with ``line_end``.
    """
    column = {t: i for i, t in enumerate(tag_names)}
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator=line_end)
        writer.writerow(["clip_id", *tag_names, "mp3_path"])
        for clip_id, tags, mp3_path in rows:
            cells = ["0"] * len(tag_names)
            for tag in tags:
                cells[column[tag]] = "1"
            writer.writerow([clip_id, *cells, mp3_path])


def tone(seconds: float, sr: int = SR, freq: float = 440.0) -> np.ndarray:
    """A quiet harmonic tone, mono float32 (no noise: noise makes the MP3 encoder slow)."""
    t = np.arange(int(round(seconds * sr))) / sr
    y = 0.2 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 2 * freq * t)
    return y.astype(np.float32)


def write_mp3(path: Path, seconds: float, sr: int = SR, freq: float = 440.0) -> Path:
    """A mono MPEG-1/2 Layer III file like MTAT's (16 kHz, mono)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, sr, freq), sr, format="MP3", subtype="MPEG_LAYER_III")
    return path


# --------------------------------------------------------------------------- the fixture


@dataclass
class MtatFixture:
    """A miniature MTAT root and the role of each clip in it."""

    root: Path
    audio_dir: Path
    tag_names: list[str]
    top50: list[str]
    #: clip_id → mp3_path, in row order.
    rows: dict[str, str]
    #: clip_id → the set of tags written for it.
    tags: dict[str, set[str]]
    #: role → clip_id (see :func:`build_mtat`).
    role: dict[str, str]
    #: clip_id → seconds of audio written (absent: no audio written).
    seconds: dict[str, float] = field(default_factory=dict)

    def path(self, clip_id: str) -> Path:
        return self.audio_dir / self.rows[clip_id]


def _first(index: Sequence[tuple[str, str]], folder: str, accept=lambda cid: True, skip=()) -> str:
    for clip_id, mp3_path in index:
        if mp3_path.startswith(folder + "/") and clip_id not in skip and accept(clip_id):
            return clip_id
    raise LookupError(f"no clip in folder {folder}")


def build_mtat(
    tmp: Path, shared: Path, *, line_end: str = "\r\n", under_mp3: bool = False
) -> MtatFixture:
    """A faithful miniature MTAT root under ``tmp``.

    Real ids, paths and row order from ``index_mtt.tsv``; real labels for the folder c–f rows
    from the ``*_gt_mtt.tsv`` files (train folders have no public labels, so their tags are
    chosen here). Roles:

    - ``train_normal`` (folder 0), ``valid_normal`` (c), ``test_d``/``test_e``/``test_f``:
      about 29.2 s of 16 kHz mono MP3 (real MTAT clips decode to about 29.1 s);
    - ``train_28_8``: 28.8 s (kept, zero-padded by the front end);
    - ``train_short``: 5 s (the feature store drops it: shorter than 28.5 s);
    - ``train_not_audio``: a text file with an .mp3 name (fails to decode);
    - ``train_no_top50``: only the non-top-50 tag "duet" (dropped);
    - ``valid_no_tags``: a real folder-c clip whose real top-50 labels are all zero (dropped);
    - ``bad_missing``: known bad clip 35644, no file; ``bad_empty``: known bad clip 55753, a
      zero-byte file; ``bad_corrupt``: known bad clip 57881, garbage bytes.

    Every folder 0–f exists. With ``under_mp3`` the folders go under ``<root>/mp3/``.
    """
    index = read_index(shared)
    tag_names = read_tags188(shared)
    top50 = read_top50(shared)
    gt = read_gt(shared)
    root = Path(tmp) / "mtat"
    audio_dir = root / "mp3" if under_mp3 else root
    for folder in FOLDERS:
        (audio_dir / folder).mkdir(parents=True, exist_ok=True)

    has_tags = lambda cid: any(gt[cid])  # noqa: E731
    role: dict[str, str] = {}
    role["train_normal"] = _first(index, "0")
    role["train_28_8"] = _first(index, "1")
    role["train_short"] = _first(index, "2")
    role["train_not_audio"] = _first(index, "3")
    role["train_no_top50"] = _first(index, "4")
    role["bad_missing"] = "35644"
    role["bad_empty"] = "55753"
    role["bad_corrupt"] = "57881"
    role["valid_normal"] = _first(index, "c", has_tags)
    role["valid_no_tags"] = _first(index, "c", lambda cid: not any(gt[cid]))
    role["test_d"] = _first(index, "d", has_tags)
    role["test_e"] = _first(index, "e", has_tags)
    role["test_f"] = _first(index, "f", has_tags)
    wanted = set(role.values())
    rows = {cid: p for cid, p in index if cid in wanted}  # keeps the real (clip_id) row order

    train_tags = [{"guitar", "classical"}, {"guitar", "slow"}, {"techno"}, {"rock", "drums"}]
    tags: dict[str, set[str]] = {}
    k = 0
    for clip_id in rows:
        if clip_id in gt:
            tags[clip_id] = real_tags(gt[clip_id], top50)
        elif clip_id == role["train_no_top50"]:
            tags[clip_id] = {"duet"}
        else:
            tags[clip_id] = train_tags[k % len(train_tags)]
            k += 1
    write_annotations(
        root / "annotations_final.csv",
        tag_names,
        ((cid, sorted(tags[cid]), p) for cid, p in rows.items()),
        line_end=line_end,
    )

    seconds = {
        role["train_normal"]: 29.2,
        role["train_28_8"]: 28.8,
        role["train_short"]: 5.0,
        role["train_no_top50"]: 29.2,
        role["valid_normal"]: 29.2,
        role["valid_no_tags"]: 29.2,
        role["test_d"]: 29.2,
        role["test_e"]: 29.2,
        role["test_f"]: 29.2,
    }
    encoded: dict[float, bytes] = {}  # encode each length once, copy the bytes
    for clip_id, secs in seconds.items():
        target = audio_dir / rows[clip_id]
        if secs not in encoded:
            encoded[secs] = write_mp3(target, secs).read_bytes()
        else:
            target.write_bytes(encoded[secs])
    (audio_dir / rows[role["train_not_audio"]]).write_text("<html>404 Not Found</html>\n")
    (audio_dir / rows[role["bad_empty"]]).write_bytes(b"")
    (audio_dir / rows[role["bad_corrupt"]]).write_bytes(bytes(range(256)) * 8)
    return MtatFixture(root, audio_dir, tag_names, top50, rows, tags, role, seconds)


def tie_rows(
    index: Sequence[tuple[str, str]], ranked: Sequence[str], tied: Sequence[str], n_rows: int = 60
) -> list[tuple[str, list[str], str]]:
    """Rows where the tags of ``ranked`` have strictly decreasing counts (n_rows, n_rows − 1, …)
    and the two tags of ``tied`` share the next-lower count, so the top-``len(ranked) + 1``
    boundary falls between them."""
    assert len(tied) == 2 and n_rows > len(ranked) + 2
    tie_count = n_rows - len(ranked)
    rows = []
    for r, (clip_id, mp3_path) in enumerate(index[:n_rows]):
        on = [tag for j, tag in enumerate(ranked) if r < n_rows - j]
        if r < tie_count:
            on += list(tied)
        rows.append((clip_id, on, mp3_path))
    return rows


def counts_of(rows: Iterable[tuple[str, Iterable[str], str]]) -> Mapping[str, int]:
    counts: dict[str, int] = {}
    for _, tags, _ in rows:
        for tag in tags:
            counts[tag] = counts.get(tag, 0) + 1
    return counts
