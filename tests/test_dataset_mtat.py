"""The MTAT plugin against faithful miniature roots and the real public metadata."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_mtat import (
    build_mtat,
    counts_of,
    read_gt,
    read_index,
    read_tags188,
    read_top50,
    tie_rows,
    write_annotations,
)
from mcbench_plugins.datasets import mtat
from mcbench_plugins.datasets.mtat import (
    KNOWN_BAD_IDS,
    check_mtat,
    load_mtat_partition,
    read_annotations,
    split_of,
    top_tags,
)

from mcbench.audio import AudioError, decode, load_clip
from mcbench.specs import DatasetError, OptionError


@pytest.fixture(scope="module")
def fixture(tmp_path_factory, shared_dir):
    return build_mtat(tmp_path_factory.mktemp("mtat"), shared_dir)


@pytest.fixture(scope="module")
def real_root(tmp_path_factory, shared_dir):
    """annotations_final.csv from ALL 25,863 rows of index_mtt.tsv, real c–f labels, no audio."""
    index = read_index(shared_dir)
    top50 = read_top50(shared_dir)
    gt = read_gt(shared_dir)
    root = tmp_path_factory.mktemp("mtat_real")
    rows = (
        (cid, [t for t, v in zip(top50, gt.get(cid, [0] * 50), strict=True) if v], path)
        for cid, path in index
    )
    write_annotations(root / "annotations_final.csv", read_tags188(shared_dir), rows)
    return root


# --------------------------------------------------------------------------- parsing


def test_fixture_file_is_byte_faithful(fixture):
    raw = (fixture.root / "annotations_final.csv").read_bytes()
    header, first = raw.split(b"\r\n")[:2]
    fields = header.split(b"\t")
    assert len(fields) == 190
    assert fields[:3] == [b'"clip_id"', b'"no voice"', b'"singer"']
    assert fields[-4:] == [b'"women"', b'"fiddle"', b'"english"', b'"mp3_path"']
    assert all(f.startswith(b'"') and f.endswith(b'"') for f in first.split(b"\t"))
    assert raw.count(b"\r\n") == len(fixture.rows) + 1 and raw.count(b"\n") == raw.count(b"\r\n")


def test_read_annotations_crlf_and_lf_agree(fixture, tmp_path, shared_dir):
    ann = read_annotations(fixture.root / "annotations_final.csv")
    assert ann.clip_ids == list(fixture.rows)
    assert ann.paths == list(fixture.rows.values())
    assert ann.tag_names == fixture.tag_names and len(ann.tag_names) == 188
    assert ann.matrix.dtype == np.uint8 and ann.matrix.shape == (len(fixture.rows), 188)
    for i, clip_id in enumerate(ann.clip_ids):
        on = {ann.tag_names[j] for j in np.flatnonzero(ann.matrix[i])}
        assert on == fixture.tags[clip_id]
    # Sorted by clip_id as an integer, kept as strings.
    assert [int(c) for c in ann.clip_ids] == sorted(int(c) for c in ann.clip_ids)
    lf = build_mtat(tmp_path, shared_dir, line_end="\n")
    ann_lf = read_annotations(lf.root / "annotations_final.csv")
    assert ann_lf.clip_ids == ann.clip_ids and ann_lf.paths == ann.paths
    np.testing.assert_array_equal(ann_lf.matrix, ann.matrix)


def test_read_annotations_agrees_with_pandas(fixture):
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(fixture.root / "annotations_final.csv", sep="\t")
    ann = read_annotations(fixture.root / "annotations_final.csv")
    assert list(frame.columns[1:-1]) == ann.tag_names
    assert [str(c) for c in frame["clip_id"]] == ann.clip_ids
    np.testing.assert_array_equal(frame[ann.tag_names].to_numpy(), ann.matrix)


def _write_raw(path, lines, end="\r\n"):
    path.write_text(end.join(lines) + end, encoding="utf-8", newline="")
    return path


def test_malformed_rows_name_file_and_line(tmp_path):
    header = '"clip_id"\t"guitar"\t"rock"\t"mp3_path"'
    ok = '"2"\t"1"\t"0"\t"f/a-b-01-c-30-59.mp3"'
    short = _write_raw(tmp_path / "short.csv", [header, ok, '"6"\t"1"\t"f/a-b-01-c-59-88.mp3"'])
    with pytest.raises(DatasetError, match=r"short\.csv, line 3: expected 4 tab-separated fields, found 3"):
        read_annotations(short)
    bad_cell = _write_raw(tmp_path / "cell.csv", [header, ok, '"6"\t"2"\t"0"\t"f/x.mp3"'])
    with pytest.raises(DatasetError, match=r"cell\.csv, line 3: .*found '2'"):
        read_annotations(bad_cell)
    dup = _write_raw(tmp_path / "dup.csv", [header, ok, ok])
    with pytest.raises(DatasetError, match=r"line 3: clip_id '2' already on line 2"):
        read_annotations(dup)
    comma = _write_raw(tmp_path / "comma.csv", ["clip_id,guitar,rock,mp3_path", "2,1,0,f/x.mp3"])
    with pytest.raises(DatasetError, match=r"comma\.csv is not tab-separated: its first line has "
                       r"no tab but 3 commas\. MTAT's annotations_final\.csv is tab-separated"):
        read_annotations(comma)
    # The real file re-saved with commas (every field still quoted): same answer, not the csv
    # module's "'\t' expected after '\"'".
    quoted = _write_raw(tmp_path / "quoted.csv", [header.replace("\t", ","), ok.replace("\t", ",")])
    with pytest.raises(DatasetError, match=r"quoted\.csv is not tab-separated") as info:
        read_annotations(quoted)
    assert "expected after" not in str(info.value)
    only_header = _write_raw(tmp_path / "header.csv", [header, ""])
    with pytest.raises(DatasetError, match=r"header\.csv lists no clips: it holds only the header"):
        read_annotations(only_header)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"{header}\r\n{ok}\r\n".encode() + '"6"\t"1"\t"0"\t"f/caf\u00e9.mp3"\r\n'.encode("latin-1"))
    with pytest.raises(DatasetError, match=r"latin1\.csv, line 3: not UTF-8 text \(byte 0xe9\)"):
        read_annotations(latin1)
    # A byte-order mark does not hide the header.
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + f"{header}\r\n{ok}\r\n".encode())
    assert read_annotations(bom).tag_names == ["guitar", "rock"]
    # A trailing blank line is not a row.
    ann = read_annotations(_write_raw(tmp_path / "blank.csv", [header, ok, ""]))
    assert ann.clip_ids == ["2"] and ann.matrix.tolist() == [[1, 0]]


# --------------------------------------------------------------------------- ranking


def test_top_tags_ranks_by_count_then_name():
    names = ["rock", "metal", "female voice", "guitar", "unused"]
    counts = [5, 3, 3, 9, 0]
    assert top_tags(names, counts, k=3) == ["guitar", "rock", "female voice"]
    assert top_tags(names, counts, k=4) == ["guitar", "rock", "female voice", "metal"]
    # Zero-count tags are never chosen, even when fewer than k tags are used.
    assert top_tags(names, np.array(counts), k=50) == ["guitar", "rock", "female voice", "metal"]
    # Input order does not matter.
    assert top_tags(names[::-1], counts[::-1], k=3) == ["guitar", "rock", "female voice"]


def test_top50_tie_at_the_boundary_puts_female_voice_first(tmp_path, shared_dir):
    """Tie variant: 'metal' and 'female voice' share the 50th count."""
    index = read_index(shared_dir)
    top50 = read_top50(shared_dir)
    # 48 real top-50 tags plus one from outside, with distinct counts, then the tied pair.
    ranked = [t for t in top50 if t not in ("metal", "female voice")] + ["duet"]
    assert len(ranked) == 49
    rows = tie_rows(index, ranked, ["metal", "female voice"])
    counts = counts_of(rows)
    assert counts["metal"] == counts["female voice"] < min(counts[t] for t in ranked)
    root = tmp_path / "tie"
    root.mkdir()
    write_annotations(root / "annotations_final.csv", read_tags188(shared_dir), rows)
    part = load_mtat_partition(root, check_files=False)
    assert len(part.labels) == 50
    assert part.labels[:49] == ranked and part.labels[49] == "female voice"
    assert "metal" not in part.labels
    ann = read_annotations(root / "annotations_final.csv")
    assert top_tags(ann.tag_names, ann.matrix.sum(axis=0), k=51)[49:] == ["female voice", "metal"]
    # The real data's tie sits inside the top 50, at positions 47/48: both kept, in name order.
    part = load_mtat_partition(root, top_k=51, check_files=False)
    assert part.labels[49:] == ["female voice", "metal"]


def test_real_top50_set_matches_both_public_lists(shared_dir):
    ours = read_top50(shared_dir)
    jongpillee = (shared_dir / "data/mtat/jongpillee_split/top50_tags.txt").read_text().split()
    sota = [str(t) for t in np.load(shared_dir / "data/mtat/sota_split/tags.npy")]
    assert sota == ours and len(ours) == 50
    # jongpillee spells tags in camelCase; only positions 47/48 differ, in the tie order.
    camel = ["".join(w if i == 0 else w.capitalize() for i, w in enumerate(t.split())) for t in ours]
    assert camel[:47] == jongpillee[:47] and camel[49] == jongpillee[49]
    assert (camel[47], camel[48]) == ("metal", "femaleVoice") == (jongpillee[48], jongpillee[47])


# --------------------------------------------------------------------------- split


def test_split_of_folders():
    assert split_of("0/a.mp3") == split_of("b/a.mp3") == "train"
    assert split_of("c/a.mp3") == "valid"
    assert [split_of(f"{f}/x.mp3") for f in "def"] == ["test"] * 3
    assert split_of("g/x.mp3") is None and split_of("mp3/c/x.mp3") is None


def test_split_sizes_of_the_real_index(shared_dir):
    index = read_index(shared_dir)
    per_folder = {}
    for _, path in index:
        per_folder[path[0]] = per_folder.get(path[0], 0) + 1
    assert per_folder == dict(zip("0123456789abcdef", [1108, 1543, 1562, 1238, 2421, 1604, 1788, 1163,
                                                       1144, 1773, 1417, 1948, 1825, 1677, 1547, 2105], strict=True))
    per_split = {}
    for _, path in index:
        per_split[split_of(path)] = per_split.get(split_of(path), 0) + 1
    assert per_split == {"train": 18709, "valid": 1825, "test": 5329}


def test_known_bad_clips_are_at_the_documented_rows(shared_dir):
    index = read_index(shared_dir)
    row = {cid: i for i, (cid, _) in enumerate(index)}
    assert [row[c] for c in KNOWN_BAD_IDS] == [16250, 24867, 25546]
    for clip_id in KNOWN_BAD_IDS:
        assert index[row[clip_id]][1] == mtat.KNOWN_BAD[clip_id][0]
        assert split_of(mtat.KNOWN_BAD[clip_id][0]) == "train"


def test_partition_of_the_faithful_fixture(fixture):
    r = fixture.role
    part = load_mtat_partition(fixture.root, tags=fixture.top50)
    assert part.dataset == "mtat" and part.protocol == "fixed" and part.fold is None
    assert part.labels == fixture.top50
    assert part.min_seconds == 28.5
    ids = {name: split.ids for name, split in part.splits.items()}
    in_row_order = lambda *roles: [c for c in fixture.rows if c in {r[x] for x in roles}]  # noqa: E731
    # Row order is kept; short and undecodable files are the feature store's business.
    assert ids["train"] == in_row_order("train_normal", "train_28_8", "train_short", "train_not_audio")
    assert ids["valid"] == [r["valid_normal"]]
    assert ids["test"] == in_row_order("test_d", "test_e", "test_f")
    assert ids["test"] == sorted(ids["test"], key=int) and len(ids["test"]) == 3
    by_step = {(d.id, d.step) for d in part.dropped}
    assert by_step == {
        (r["train_no_top50"], "no_top_tags"),
        (r["valid_no_tags"], "no_top_tags"),
        (r["bad_missing"], "known_bad"),
        (r["bad_empty"], "known_bad"),
        (r["bad_corrupt"], "known_bad"),
    }
    assert {(d.step, d.kind, d.effect) for d in part.dropped} == {
        ("no_top_tags", "no label", "skip"), ("known_bad", "known bad clip", "skip")}
    assert part.notes["dropped_per_step"] == {
        "split": 0, "no_top_tags": 2, "known_bad": 3, "path": 0, "missing_audio": 0}
    assert part.notes["rows_per_split"] == {"train": 8, "valid": 2, "test": 3}
    assert part.notes["kept_per_split"] == {"train": 4, "valid": 1, "test": 3}
    assert part.notes["dropped_per_split"] == {
        "train": {"no_top_tags": 1, "known_bad": 3, "path": 0, "missing_audio": 0},
        "valid": {"no_top_tags": 1, "known_bad": 0, "path": 0, "missing_audio": 0},
        "test": {"no_top_tags": 0, "known_bad": 0, "path": 0, "missing_audio": 0},
    }
    missing = next(d for d in part.dropped if d.id == r["bad_missing"])
    assert missing.path == str(fixture.path(r["bad_missing"]).resolve())
    assert missing.reason == "known bad clip: missing/empty in the mp3 archive"
    # Labels: multi-hot in top50 order, real for c–f.
    for split in part.splits.values():
        for track in split.tracks:
            assert {part.labels[i] for i in track.labels} == fixture.tags[track.id]
            assert track.path == fixture.path(track.id).resolve() and track.path.is_file()


def test_missing_and_empty_files_are_skipped_and_reported(fixture):
    part = load_mtat_partition(fixture.root, tags=fixture.top50, known_bad=())
    r = fixture.role
    audio = {d.id: d.reason for d in part.dropped if d.step == "missing_audio"}
    assert audio == {r["bad_missing"]: "audio file missing", r["bad_empty"]: "audio file empty (0 bytes)"}
    # The third bad clip has non-empty (corrupt) bytes: a stat cannot tell, the decoder will.
    assert r["bad_corrupt"] in part.splits["train"].ids
    assert part.notes["dropped_per_step"]["missing_audio"] == 2


def test_top_k_default_counts_every_row(fixture):
    part = load_mtat_partition(fixture.root, top_k=3)
    ann = read_annotations(fixture.root / "annotations_final.csv")
    counts = dict(zip(ann.tag_names, ann.matrix.sum(axis=0).tolist(), strict=True))
    expected = sorted((t for t in counts if counts[t]), key=lambda t: (-counts[t], t))[:3]
    assert part.labels == expected
    assert part.notes["labels_from"].startswith("top 3")
    kept = [t for s in part.splits.values() for t in s.tracks]
    assert kept and all(t.labels for t in kept)


def test_fixture_audio_decodes_as_mtat_does(fixture):
    r = fixture.role
    y, sr = decode(fixture.path(r["train_normal"]))
    assert sr == 16000 and y.shape == (467_200,)  # 29.2 s
    clip = load_clip(fixture.path(r["train_28_8"]), seconds=29.0)
    assert clip.samples.shape == (348_000,) and clip.source_seconds == pytest.approx(28.8)
    assert np.all(clip.samples[-2_000:] == 0)  # zero-padded at the end
    assert load_clip(fixture.path(r["train_short"]), 29.0).source_seconds < 28.5
    with pytest.raises(AudioError):
        decode(fixture.path(r["train_not_audio"]))


def test_check_reports_every_problem(fixture):
    r = fixture.role
    report = check_mtat(fixture.root, progress=False)
    assert report.dataset == "mtat" and "under the root" in report.layout
    assert report.n_listed == len(fixture.rows) == 13
    # The three known bad clips of the release are always left out: a note, never probed.
    assert report.n_found == 10
    reasons = {d.id: d.reason for d in report.problems}
    assert set(reasons) == {r["train_not_audio"], r["train_short"]}
    assert {(d.kind, d.effect) for d in report.problems} == {
        ("not readable as audio", "skip"), ("too short", "skip")}
    assert reasons[r["train_not_audio"]].startswith("not readable as audio")
    assert reasons[r["train_short"]] == "too short: 5.000 s < 28.5 s"
    known = next(n for n in report.notes if n.startswith("known bad clips"))
    assert "35644 (missing/empty in the mp3 archive)" in known and "57881 (corrupted mp3)" in known
    # ranked over the fixture's own rows, "duet" is among its top tags: one clip has none
    assert any(n.startswith("1 clip(s) have none of the top-") for n in report.notes)
    assert report.stats["sample_rates"] == {"16000": 9}
    assert report.stats["channels"] == {"1": 9}
    durations = report.stats["durations"]
    assert durations["n"] == 9 and durations["min"] == pytest.approx(5.0)
    assert durations["median"] == pytest.approx(29.2) and durations["max"] == pytest.approx(29.2)
    assert not report.ok
    assert any("35644" in n for n in report.notes)


def test_check_with_jongpillee_threshold_flags_28_8(fixture):
    report = check_mtat(fixture.root, min_seconds=29.1, progress=False)
    assert fixture.role["train_28_8"] in {d.id for d in report.problems}


def test_audio_under_mp3_folder(tmp_path, shared_dir):
    fx = build_mtat(tmp_path, shared_dir, under_mp3=True)
    assert not (fx.root / "0").exists()
    part = load_mtat_partition(fx.root, tags=fx.top50)
    assert part.notes["audio_dir"] == str((fx.root / "mp3").resolve())
    assert all(str(t.path).startswith(str(fx.root / "mp3")) for t in part.splits["test"].tracks)
    assert len(part.splits["test"]) == 3
    assert "<root>/mp3" in check_mtat(fx.root, progress=False).layout
    # The mp3 folder may be a link to another disk (the README suggests it).
    elsewhere = tmp_path / "other_disk"
    (fx.root / "mp3").rename(elsewhere)
    (fx.root / "mp3").symlink_to(elsewhere)
    linked = load_mtat_partition(fx.root, tags=fx.top50)
    assert linked.splits["test"].ids == part.splits["test"].ids
    assert all(t.path.is_relative_to(elsewhere.resolve()) for t in linked.splits["test"].tracks)


# --------------------------------------------------------------------------- plugin


def test_tracks_wrapper_types_its_parameters(fixture):
    part = mtat.tracks(fixture.root, "fixed", None, tags=fixture.top50, min_seconds="29.1")
    assert part.min_seconds == 29.1 and part.notes["min_seconds"] == 29.1
    assert mtat.tracks(fixture.root, tags=fixture.top50).min_seconds == 28.5
    part = mtat.tracks(fixture.root, tags="guitar, rock", known_bad="35644")
    assert part.labels == ["guitar", "rock"] and part.notes["known_bad"] == ["35644"]
    assert {d.id for d in part.dropped if d.step == "missing_audio"} == {"55753"}  # the empty file
    with pytest.raises(OptionError, match="unknown option 'min_len'"):
        mtat.tracks(fixture.root, min_len=3)
    with pytest.raises(DatasetError, match="unknown protocol"):
        mtat.tracks(fixture.root, "cv10")
    with pytest.raises(DatasetError, match="no fold 3"):
        mtat.tracks(fixture.root, "fixed", 3)


def test_registered_spec():
    from mcbench.plugins import Registry

    spec = Registry().dataset("mtat")
    assert spec.task == "multilabel" and spec.protocols == {"fixed": 1} and spec.default_protocol == "fixed"
    assert spec.sample_rate == 16000 and spec.clip_seconds == 29.0
    assert spec.readme == "datasets/mtat/README.md"


# --------------------------------------------------------------------------- bad roots


def test_path_escaping_the_root_is_rejected(tmp_path):
    root = tmp_path / "mtat"
    (root / "0").mkdir(parents=True)
    write_annotations(
        root / "annotations_final.csv",
        ["guitar", "rock"],
        [("2", ["guitar"], "0/a-b-01-c-0-29.mp3"), ("6", ["rock"], "../../etc/passwd")],
    )
    # Skipped and named, never opened; the same decision in the split (prepare) and in check.
    part = load_mtat_partition(root, check_files=False)
    (drop,) = [d for d in part.dropped if d.id == "6"]
    assert (drop.step, drop.kind, drop.effect) == ("path", "outside the data root", "skip")
    assert "'../../etc/passwd' escapes the data root" in drop.reason
    assert part.splits["train"].ids == ["2"]
    report = check_mtat(root, progress=False)
    assert [(d.id, d.step, d.kind) for d in report.problems if "escapes" in d.reason] == [
        ("6", "path", "outside the data root")]
    write_annotations(root / "annotations_final.csv", ["guitar"],
                      [("2", ["guitar"], "0/a-b-01-c-0-29.mp3"), ("3", ["guitar"], "/etc/passwd")])
    part = load_mtat_partition(root, check_files=False)
    assert [(d.id, d.kind) for d in part.dropped] == [("3", "outside the data root")]
    assert "is absolute" in part.dropped[0].reason


def test_missing_root_points_at_the_readme(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_mtat_partition(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert "See `mcbench datasets mtat`" in message and "--root" in message
    with pytest.raises(DatasetError, match="annotations_final.csv"):
        check_mtat(tmp_path)


def test_root_without_audio_folders(tmp_path):
    write_annotations(tmp_path / "annotations_final.csv", ["guitar"], [("2", ["guitar"], "0/a.mp3")])
    with pytest.raises(DatasetError, match=r"no audio folders 0…f"):
        load_mtat_partition(tmp_path)
    assert load_mtat_partition(tmp_path, check_files=False).splits["train"].ids == ["2"]


# --------------------------------------------------------------------------- real metadata


def test_real_split_equals_the_public_valid_and_test_lists(real_root, shared_dir):
    """All 25,863 real rows: valid/test equal minzwon's (row, path) lists and jongpillee's."""
    index = read_index(shared_dir)
    row = {cid: i for i, (cid, _) in enumerate(index)}
    part = load_mtat_partition(real_root, tags=read_top50(shared_dir), check_files=False)
    assert part.notes["rows"] == 25_863
    assert part.notes["rows_per_split"] == {"train": 18709, "valid": 1825, "test": 5329}
    for name in ("valid", "test"):
        tracks = part.splits[name].tracks
        ours = [f"{row[t.id]}\t{index[row[t.id]][1]}" for t in tracks]
        sota = [str(s) for s in np.load(shared_dir / f"data/mtat/sota_split/{name}.npy")]
        assert ours == sota
        listed = (shared_dir / f"data/mtat/jongpillee_split/{name}_list_pub.txt").read_text().split()
        # jongpillee's lists are sorted by path; same clips.
        assert sorted(index[row[t.id]][1] for t in tracks) == [p[: -len(".npy")] + ".mp3" for p in listed]
    assert (len(part.splits["valid"]), len(part.splits["test"])) == (1529, 4332)
    # Real labels arrive in top-50 order, mapped by name.
    gt = read_gt(shared_dir)
    first = part.splits["valid"].tracks[0]
    assert [float(i in first.labels) for i in range(50)] == gt[first.id]
