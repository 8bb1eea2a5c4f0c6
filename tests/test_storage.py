"""State on disk (mcbench.storage): atomic writes, scores, layout, loading records, locks, a
full disk, a read-only folder; provenance (mcbench.provenance)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from record_factory import make_record, write_record

from mcbench import provenance, storage
from mcbench.storage import RecordWarning

# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_json_round_trips_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "runs" / "synthetic" / "r.json"
    storage.atomic_write_json(path, {"a": 1, "v": float("inf")})
    storage.atomic_write_json(path, {"a": 2, "name": "Recall@3 ±"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 2, "name": "Recall@3 ±"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_temporary_names_are_unique():
    names = {storage.temporary_name(Path("/x/last.pt")) for _ in range(200)}
    assert len(names) == 200 and all(n.name.startswith(".last.pt.") for n in names)


def test_atomic_write_respects_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = storage.atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_crash_during_temp_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    storage.atomic_write_json(path, {"version": "old"})

    def failing_fsync(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(storage.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        storage.atomic_write_json(path, {"version": "new"})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"version": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    with pytest.raises(TypeError):
        storage.atomic_write_json(path, {"version": object()})
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


FULL_DISK = textwrap.dedent('''
    import resource, sys
    from mcbench import storage
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # as if the disk held 4 KiB more
    try:
        storage.atomic_write_bytes(sys.argv[1] + "/big.bin", b"x" * 100_000)
    except storage.DiskFullError as exc:
        print("FULL", exc)
''')


def test_a_full_disk_is_reported_naming_the_folder_and_leaves_nothing(tmp_path):
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.startswith("FULL no space left to write in " + str(tmp_path)), out.stderr
    assert "0.1 MB is needed" in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_free_space_is_checked_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "free_bytes", lambda folder: 1000.0)
    with pytest.raises(storage.DiskFullError, match=r"about 0\.0 MB is needed, 0\.0 MB is free"):
        storage.atomic_write_bytes(tmp_path / "f.bin", b"x" * 5000)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_reported(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(storage.ReadOnlyError, match="is not writable"):
            storage.check_writable(folder / "runs", "the results folder")
    finally:
        folder.chmod(0o700)


def test_read_only_check_does_not_depend_on_permissions(tmp_path, monkeypatch):
    """As root, permissions do not stop writes; a failing open stands in for a read-only mount."""
    import builtins

    real_open = builtins.open

    def read_only(path, mode="r", *a, **k):
        if "w" in mode and str(tmp_path) in str(path):
            raise PermissionError(13, "Read-only file system")
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", read_only)
    with pytest.raises(storage.ReadOnlyError, match="the results folder .* is not writable"):
        storage.check_writable(tmp_path / "runs", "the results folder")


# --------------------------------------------------------------------------- scores and layout


def test_scores_round_trip_multilabel_and_multiclass(tmp_path):
    path = storage.scores_path(tmp_path, "synthetic", "fcn-default-0123456789")
    y_true = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32)
    y_score = np.array([[0.9, 0.2, 0.7], [0.1, 0.8, 0.3]], dtype=np.float32)
    storage.save_scores(path, ["clip/a", "clip/b"], y_true, y_score, ["guitar", "piano", "drums"])
    got = storage.load_scores(path)
    assert got["ids"].tolist() == ["clip/a", "clip/b"]
    np.testing.assert_array_equal(got["y_score"], y_score)
    storage.save_scores(tmp_path / "mc.npz", ["a", "b", "c"], [2, 0, 1], np.eye(3)[[2, 0, 1]], ["x", "y", "z"])
    assert storage.load_scores(tmp_path / "mc.npz")["y_true"].tolist() == [2, 0, 1]


def test_save_scores_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="3 ids"):
        storage.save_scores(tmp_path / "s.npz", ["a", "b", "c"], [0, 1], np.zeros((2, 2)), ["x", "y"])
    with pytest.raises(ValueError, match="2 columns for 3 labels"):
        storage.save_scores(tmp_path / "s.npz", ["a"], [0], np.zeros((1, 2)), ["x", "y", "z"])
    assert not list(tmp_path.iterdir())


def test_a_truncated_scores_file_names_itself(tmp_path):
    path = tmp_path / "s.npz"
    storage.save_scores(path, ["a"], [0], np.zeros((1, 2)), ["x", "y"])
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(storage.StateError, match=f"{path}: unreadable scores file"):
        storage.load_scores(path)


def test_layout(tmp_path):
    assert storage.record_path(tmp_path, "mtat", "crnn-default-abc") == tmp_path / "runs" / "mtat" / "crnn-default-abc.json"
    assert storage.scores_path(tmp_path, "mtat", "crnn-default-abc").name == "crnn-default-abc.scores.npz"
    assert storage.work_dir(tmp_path, "r") == tmp_path / "work" / "r"
    with pytest.raises(ValueError):
        storage.record_path(tmp_path, "../etc", "x")


# --------------------------------------------------------------------------- loading records


def test_load_records_filters_status_and_skips_bad_files(tmp_path):
    good = [make_record(seed=s) for s in (0, 1)]
    for r in good:
        write_record(tmp_path, r)
    write_record(tmp_path, make_record(seed=2, status="failed"))
    write_record(tmp_path, make_record(seed=3, status="running"))
    write_record(tmp_path, make_record(model="fcn", variant="default", dataset="gtzan"))
    folder = tmp_path / "runs" / "synthetic"
    (folder / "corrupt.json").write_text('{"schema_version": 2, "status": "comp')
    (folder / "list.json").write_text("[]")
    edited = make_record(seed=8)
    edited["identity"]["seed"] = 7
    (folder / f"{edited['run_id']}.json").write_text(json.dumps(edited))
    with pytest.warns(RecordWarning) as caught:
        loaded = storage.load_records(tmp_path, "synthetic")
    messages = [str(w.message) for w in caught]
    assert any("corrupt.json: unreadable" in m for m in messages)
    assert any("list.json: not a run record" in m for m in messages)
    assert any("does not match its identity" in m for m in messages)
    assert [r.run_id for r in loaded] == [r["run_id"] for r in good]
    with pytest.warns(RecordWarning):
        every = storage.load_records(tmp_path, status=None)
    assert sorted(r.seed for r in every if r.dataset == "synthetic") == [0, 1, 2, 3]
    assert storage.load_records(tmp_path, "gtzan")[0].model == "fcn"
    assert storage.load_records(tmp_path / "nowhere") == []


def test_record_stored_under_another_name_or_dataset_is_skipped(tmp_path):
    record = make_record()
    storage.atomic_write_json(storage.record_path(tmp_path, "gtzan", record["run_id"]), record)
    storage.atomic_write_json(tmp_path / "runs" / "synthetic" / "copy.json", record)
    with pytest.warns(RecordWarning) as caught:
        assert storage.load_records(tmp_path) == []
    text = " ".join(str(w.message) for w in caught)
    assert "its dataset is 'synthetic'" in text and "not the run its name says" in text


def test_write_record_validates_before_writing(tmp_path):
    from mcbench.records import RecordError

    bad = make_record()
    bad["test"]["roc_auc"]["value"] = "0.9"
    path = storage.record_path(tmp_path, "synthetic", bad["run_id"])
    with pytest.raises(RecordError, match="test.roc_auc.value"):
        storage.write_record(path, bad)
    assert not path.exists()


# --------------------------------------------------------------------------- locks


LOCKER = textwrap.dedent('''
    import sys, time
    from mcbench.storage import RunLock
    lock = RunLock(sys.argv[1], "run-x")
    lock.acquire(on_wait=lambda who: print("WAIT", who, flush=True))
    print("GOT", flush=True)
    time.sleep(float(sys.argv[2]))
    lock.release()
''')


def test_a_second_process_waits_and_says_who_holds_the_lock(tmp_path):
    first = subprocess.Popen([sys.executable, "-c", LOCKER, str(tmp_path), "3"],
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "GOT"
    second = subprocess.run([sys.executable, "-c", LOCKER, str(tmp_path), "0"],
                            capture_output=True, text=True, timeout=60)
    first.wait(timeout=60)
    lines = second.stdout.splitlines()
    assert re.fullmatch(rf"WAIT process {first.pid} on \S+ \(since [0-9T:-]+\)", lines[0]), lines
    assert lines[1] == "GOT"


# --------------------------------------------------------------------------- provenance


def test_provenance_has_its_keys_and_does_not_import_torch():
    code = ("import json, sys\nimport mcbench.provenance as p\n"
            "print(json.dumps({'p': p.provenance(), 'torch': 'torch' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    got = json.loads(out.stdout)
    assert got["torch"] is False
    prov = got["p"]
    assert set(prov) == {"hardware", "packages", "git_commit"}
    hw = prov["hardware"]
    assert {"platform", "python", "cpu", "cpu_count", "gpu", "cuda_driver"} <= set(hw)
    assert hw["cpu_count"] == os.cpu_count() and hw["gpu"] is None
    assert set(provenance.PROVENANCE_PACKAGES) == set(prov["packages"])
    assert prov["packages"]["numpy"] == np.__version__
    commit = prov["git_commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)


def test_peak_rss_grows_with_allocation_and_can_be_reset():
    code = ("import numpy as np, mcbench.provenance as p\nbefore = p.peak_rss_mb()\n"
            "a = np.ones(200 * 2**20 // 8)\nafter = p.peak_rss_mb()\ndel a\n"
            "p.reset_peak_rss()\nprint(before, after, p.peak_rss_mb())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    before, after, reset = map(float, out.stdout.split())
    assert 180.0 < after - before < 260.0
    assert reset < after - 150.0
