"""Run records (mcbench.results): ids, atomic writes, scores, provenance, loading, aggregation.

Records are built by ``make_record`` following the version-1 schema (notes/record_schema.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcbench import results
from mcbench.results import RecordWarning

#: key -> (display name, order, higher_is_better, headline)
METRICS = {
    "roc_auc": ("ROC-AUC", 10, True, True),
    "recall_at_3": ("Recall@3", 23, True, True),
    "log_loss": ("Log loss", 95, False, True),
    "pr_auc": ("PR-AUC", 90, True, False),
}


def make_config(model="crnn_tf", variant="paper", seed=0, **over):
    config = {
        "model": model,
        "variant": variant,
        "model_params": {},
        "dataset": "synthetic",
        "protocol": "fixed",
        "fold": None,
        "dataset_params": {},
        "frontend": {"name": "logmel", "sample_rate": 12000, "n_fft": 512, "hop_length": 256},
        "training": {"protocol": "paper", "max_epochs": 8, "batch_size": 32, "lr": 0.001},
        "seed": seed,
        "select_metric": "roc_auc",
    }
    config.update(over)
    return config


def make_record(
    model="crnn_tf",
    variant="paper",
    seed=0,
    values=None,
    *,
    split="A",
    status="complete",
    minute=None,
    **config_over,
):
    """A schema-v1 record; ``split`` names the data version its fingerprints are hashed from."""
    config = make_config(model, variant, seed, **config_over)
    fold = config["fold"]
    fingerprint = {
        name: hashlib.sha256(f"{split}|{fold}|{name}".encode()).hexdigest()[:16]
        for name in ("train", "valid", "test")
    }
    values = {"roc_auc": 0.9} if values is None else values
    minute = seed if minute is None else minute
    record = {
        "schema_version": 1,
        "run_id": results.run_id(config),
        "status": status,
        "created": f"2026-11-24T23:{minute:02d}:00+00:00",
        "finished": f"2026-11-24T23:{minute:02d}:30+00:00",
        "config": config,
        "device": "cpu",
        "task": "multilabel",
        "labels": ["guitar", "piano"],
        "split": {
            "fingerprint": fingerprint,
            "sizes": {"train": 10, "valid": 4, "test": 4},
            "n_dropped": 0,
            "dropped": [],
            "notes": {},
        },
        "history": [{"epoch": 0, "loss": 0.6, "valid_metric": 0.7, "lr": 0.001, "seconds": 1.0}],
        "selected_epoch": 0,
        "n_params": 1000,
        "test": {
            key: {
                "name": METRICS[key][0],
                "value": value,
                "higher_is_better": METRICS[key][2],
                "headline": METRICS[key][3],
                "order": METRICS[key][1],
                "per_label": None,
                "extra": {},
            }
            for key, value in values.items()
        },
        "timings": {"total_s": 1.0},
        "peak_memory_mb": {"cpu_rss": 100.0, "cuda": None},
        "git_commit": None,
        "scores_path": f"{results.run_id(config)}.scores.npz",
    }
    if status != "complete":
        del record["finished"], record["test"]
    return record


def write_record(results_dir: Path, record: dict) -> Path:
    path = results.record_path(results_dir, record["config"]["dataset"], record["run_id"])
    return results.atomic_write_json(path, record)


# --------------------------------------------------------------------------- run ids


def test_run_id_is_canonical_sha256_of_config():
    config = {"model": "fcn", "variant": "default", "seed": 3, "training": {"lr": 0.001, "b": 1}}
    canonical = '{"model":"fcn","seed":3,"training":{"b":1,"lr":0.001},"variant":"default"}'
    expected = "fcn-default-" + hashlib.sha256(canonical.encode()).hexdigest()[:10]
    assert results.run_id(config) == expected


def test_run_id_stable_across_key_order_and_sensitive_to_content():
    a = make_config(seed=1)
    reordered = json.loads(json.dumps(dict(reversed(list(a.items())))))
    reordered["training"] = dict(reversed(list(a["training"].items())))
    assert list(reordered) != list(a)
    assert results.run_id(reordered) == results.run_id(a)
    assert re.fullmatch(r"crnn_tf-paper-[0-9a-f]{10}", results.run_id(a))
    assert results.run_id(make_config(seed=2)) != results.run_id(a)
    other = make_config(seed=1)
    other["training"]["lr"] = 0.01
    assert results.run_id(other) != results.run_id(a)
    # Values that serialise identically hash identically (tuple vs list, numpy vs Python).
    b = make_config(seed=1, frontend={"shape": (96, 1366), "sr": np.int64(12000)})
    c = make_config(seed=1, frontend={"shape": [96, 1366], "sr": 12000})
    assert results.run_id(b) == results.run_id(c)


def test_run_id_refuses_values_without_a_stable_text():
    with pytest.raises(TypeError, match="object"):
        results.run_id(make_config(model_params={"x": object()}))


def test_to_jsonable_makes_strict_json():
    value = {"a": float("nan"), "b": np.float32(0.5), "c": np.arange(3), "d": Path("x/y"), 1: True}
    assert results.to_jsonable(value) == {
        "a": None,
        "b": 0.5,
        "c": [0, 1, 2],
        "d": "x/y",
        "1": True,
    }


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_json_round_trips_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "runs" / "synthetic" / "r.json"
    results.atomic_write_json(path, {"a": 1, "v": float("inf")})
    results.atomic_write_json(path, {"a": 2, "name": "Recall@3 ±"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 2, "name": "Recall@3 ±"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_atomic_write_respects_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = results.atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_crash_during_temp_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    results.atomic_write_json(path, {"version": "old"})

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        results.atomic_write_json(path, {"version": "new"})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"version": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    # An object that cannot be stored fails before anything is written.
    with pytest.raises(TypeError):
        results.atomic_write_json(path, {"version": object()})
    assert json.loads(path.read_text()) == {"version": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# --------------------------------------------------------------------------- scores


def test_scores_round_trip_multilabel_and_multiclass(tmp_path):
    path = results.scores_path(tmp_path, "synthetic", "fcn-default-0123456789")
    y_true = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32)
    y_score = np.array([[0.9, 0.2, 0.7], [0.1, 0.8, 0.3]], dtype=np.float32)
    results.save_scores(path, ["clip/a", "clip/b"], y_true, y_score, ["guitar", "piano", "drums"])
    assert path.name == "fcn-default-0123456789.scores.npz" and path.is_file()
    got = results.load_scores(path)
    assert got["ids"].tolist() == ["clip/a", "clip/b"]
    assert got["labels"].tolist() == ["guitar", "piano", "drums"]
    np.testing.assert_array_equal(got["y_true"], y_true)
    np.testing.assert_array_equal(got["y_score"], y_score)
    assert got["y_score"].dtype == np.float32
    assert [p.name for p in path.parent.iterdir()] == [path.name]

    multiclass = tmp_path / "mc.scores.npz"
    results.save_scores(
        multiclass, ["a", "b", "c"], [2, 0, 1], np.eye(3)[[2, 0, 1]], ["x", "y", "z"]
    )
    got = results.load_scores(multiclass)
    assert got["y_true"].tolist() == [2, 0, 1]
    assert got["y_score"].argmax(axis=1).tolist() == [2, 0, 1]


def test_save_scores_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="3 ids"):
        results.save_scores(
            tmp_path / "s.npz", ["a", "b", "c"], [0, 1], np.zeros((2, 2)), ["x", "y"]
        )
    with pytest.raises(ValueError, match="2 columns for 3 labels"):
        results.save_scores(tmp_path / "s.npz", ["a"], [0], np.zeros((1, 2)), ["x", "y", "z"])
    assert not list(tmp_path.iterdir())


def test_record_and_scores_paths(tmp_path):
    assert results.record_path(tmp_path, "mtat", "crnn-default-abc") == (
        tmp_path / "runs" / "mtat" / "crnn-default-abc.json"
    )
    assert results.scores_path(tmp_path, "mtat", "crnn-default-abc") == (
        tmp_path / "runs" / "mtat" / "crnn-default-abc.scores.npz"
    )
    with pytest.raises(ValueError):
        results.record_path(tmp_path, "../etc", "x")


# --------------------------------------------------------------------------- provenance


def test_provenance_has_schema_keys_and_does_not_import_torch():
    code = (
        "import json, sys\n"
        "import mcbench.results as r\n"
        "p = r.provenance()\n"
        "print(json.dumps({'p': p, 'torch': 'torch' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    got = json.loads(out.stdout)
    assert got["torch"] is False
    prov = got["p"]
    assert set(prov) == {"hardware", "packages", "git_commit"}
    hw = prov["hardware"]
    assert {"platform", "python", "cpu", "cpu_count", "gpu", "cuda_driver"} <= set(hw)
    assert hw["python"] == ".".join(map(str, sys.version_info[:3]))
    assert hw["cpu_count"] == os.cpu_count() and isinstance(hw["cpu"], str) and hw["cpu"]
    assert hw["gpu"] is None  # torch was never imported, so nothing asked CUDA
    assert set(results.PROVENANCE_PACKAGES) == set(prov["packages"])
    assert prov["packages"]["numpy"] == np.__version__
    assert prov["packages"]["mcbench"] is not None
    commit = prov["git_commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
    if (Path(results.__file__).resolve().parents[1] / ".git").exists():
        assert commit is not None


def test_peak_rss_grows_with_allocation():
    code = (
        "import numpy as np, mcbench.results as r\n"
        "before = r.peak_rss_mb()\n"
        "a = np.ones(200 * 2**20 // 8)\n"
        "print(before, r.peak_rss_mb())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    before, after = map(float, out.stdout.split())
    assert before > 1.0
    assert 180.0 < after - before < 260.0


# --------------------------------------------------------------------------- validation


def test_valid_record_has_no_problems():
    assert results.validate_record(make_record()) == []
    assert results.validate_record(make_record(status="running")) == []
    assert (
        results.validate_record(json.loads(json.dumps(make_record(values={"roc_auc": None})))) == []
    )


def test_validate_record_names_each_problem():
    record = make_record()
    del record["labels"]
    record["config"]["seed"] = True  # a bool is not a seed
    record["test"]["roc_auc"]["higher_is_better"] = "yes"
    record["n_params"] = 1.5
    problems = results.validate_record(record)
    assert "labels must be a list of strings" in problems
    assert "config.seed must be an integer" in problems
    assert "test.roc_auc.higher_is_better must be true or false" in problems
    assert "n_params must be an integer or null" in problems
    assert any(p.startswith("run_id 'crnn_tf-paper-") for p in problems)  # config changed

    tampered = make_record()
    tampered["config"]["training"]["max_epochs"] = 50
    assert [p for p in results.validate_record(tampered) if "does not match its config" in p]

    assert results.validate_record([]) == ["a record must be a JSON object"]
    missing = results.validate_record({"schema_version": 1, "status": "complete"})
    for needle in ("created", "config must be an object", "run_id", "finished", "test metrics"):
        assert any(needle in p for p in missing), needle


# --------------------------------------------------------------------------- loading


def test_load_records_filters_status_and_skips_bad_files(tmp_path):
    good = [make_record(seed=s) for s in (0, 1)]
    for r in good:
        write_record(tmp_path, r)
    write_record(tmp_path, make_record(seed=2, status="failed"))
    write_record(tmp_path, make_record(seed=3, status="running"))
    write_record(tmp_path, make_record(model="fcn", variant="default", dataset="gtzan"))
    folder = tmp_path / "runs" / "synthetic"
    (folder / "corrupt.json").write_text('{"schema_version": 1, "status": "comp')
    old = make_record(seed=9)
    old["schema_version"] = 0
    (folder / "old.json").write_text(json.dumps(old))
    invalid = make_record(seed=8)
    invalid["config"]["seed"] = 7  # run id no longer matches
    (folder / "invalid.json").write_text(json.dumps(invalid))

    with pytest.warns(RecordWarning) as caught:
        loaded = results.load_records(tmp_path, "synthetic")
    messages = [str(w.message) for w in caught]
    assert any("unreadable" in m and "corrupt.json" in m for m in messages)
    assert any("schema version 0" in m and "old.json" in m for m in messages)
    assert any("invalid.json" in m and "does not match" in m for m in messages)
    assert [r["run_id"] for r in loaded] == [r["run_id"] for r in good]

    with pytest.warns(RecordWarning):
        every = results.load_records(tmp_path, status=None)
    assert sorted(r["config"]["seed"] for r in every if r["config"]["dataset"] == "synthetic") == [
        0,
        1,
        2,
        3,
    ]
    assert [r["config"]["dataset"] for r in every].count("gtzan") == 1
    assert results.load_records(tmp_path, "gtzan")[0]["config"]["model"] == "fcn"
    assert results.load_records(tmp_path, "mtat") == []
    assert results.load_records(tmp_path / "nowhere") == []


def test_record_stored_under_the_wrong_dataset_is_skipped(tmp_path):
    record = make_record()
    path = results.record_path(tmp_path, "gtzan", record["run_id"])
    results.atomic_write_json(path, record)
    with pytest.warns(RecordWarning, match="config.dataset is 'synthetic'"):
        assert results.load_records(tmp_path) == []


# --------------------------------------------------------------------------- aggregation


def test_aggregate_three_seeds_mean_and_sample_std():
    records = [
        make_record(seed=s, values={"roc_auc": v, "recall_at_3": w})
        for s, v, w in [(0, 0.90, 0.50), (1, 0.91, 0.52), (2, 0.93, 0.54)]
    ]
    rows = results.aggregate(records)
    assert len(rows) == 1 and rows.warnings == []
    row = rows[0]
    assert (row.model, row.variant, row.label, row.dataset, row.protocol) == (
        "crnn_tf",
        "paper",
        "crnn_tf (paper)",
        "synthetic",
        "fixed",
    )
    assert row.n_runs == 3 and row.seeds == [0, 1, 2] and row.folds == [None]
    auc = row.metrics["roc_auc"]
    # mean 2.74 / 3; squared deviations sum to 7/15000, so std (ddof=1) = sqrt(7/30000).
    assert auc.mean == pytest.approx(2.74 / 3, abs=1e-15)
    assert auc.std == pytest.approx(math.sqrt(7 / 30000), rel=1e-12)
    assert auc.std == pytest.approx(0.0152752523, abs=1e-10)
    assert auc.n == 3 and auc.values == (0.90, 0.91, 0.93)
    assert auc.per_fold == {None: (0.90, 0.91, 0.93)}
    assert (auc.name, auc.order, auc.higher_is_better, auc.headline) == ("ROC-AUC", 10, True, True)
    recall = row.metrics["recall_at_3"]
    assert recall.mean == pytest.approx(0.52) and recall.std == pytest.approx(0.02)


def test_single_run_has_no_std_and_missing_values_are_counted():
    rows = results.aggregate([make_record(model="fcn", variant="default", values={"roc_auc": 0.8})])
    assert rows[0].label == "fcn"
    assert rows[0].metrics["roc_auc"].mean == 0.8 and rows[0].metrics["roc_auc"].std is None

    records = [
        make_record(seed=0, values={"roc_auc": 0.8, "log_loss": None}),
        make_record(seed=1, values={"roc_auc": 0.9, "log_loss": 0.3}),
    ]
    stat = results.aggregate(records)[0].metrics["log_loss"]
    assert (stat.mean, stat.std, stat.n) == (0.3, None, 1)
    assert stat.higher_is_better is False


def test_different_fingerprints_are_not_mixed():
    records = [
        make_record(seed=0, values={"roc_auc": 0.90}, split="A"),
        make_record(seed=1, values={"roc_auc": 0.92}, split="A"),
        make_record(seed=2, values={"roc_auc": 0.50}, split="B"),
    ]
    rows = results.aggregate(records)
    assert len(rows) == 2
    by_n = {row.n_runs: row for row in rows}
    assert by_n[2].metrics["roc_auc"].mean == pytest.approx(0.91)
    assert by_n[1].metrics["roc_auc"].mean == pytest.approx(0.50)
    assert by_n[2].fingerprint != by_n[1].fingerprint
    for row in rows:
        assert re.fullmatch(r"crnn_tf \(paper\) \[split [0-9a-f]{8}\]", row.label)
        assert row.label.endswith(f"[split {row.fingerprint}]")
    assert len(rows.warnings) == 1
    assert "different splits" in rows.warnings[0] and "crnn_tf (paper)" in rows.warnings[0]


def test_kfold_folds_are_pooled_and_kept_per_fold():
    records = [
        make_record(
            seed=s, fold=f, protocol="10fold", values={"roc_auc": 0.80 + 0.01 * f + 0.001 * s}
        )
        for f in (0, 1, 2)
        for s in (0, 1)
    ]
    rows = results.aggregate(records)
    assert len(rows) == 1 and rows.warnings == []
    stat = rows[0].metrics["roc_auc"]
    assert rows[0].n_runs == 6 and rows[0].folds == [0, 1, 2] and rows[0].seeds == [0, 1]
    assert stat.mean == pytest.approx(0.8105)
    assert stat.per_fold[1] == pytest.approx((0.81, 0.811))
    assert stat.std == pytest.approx(np.std([0.80, 0.801, 0.81, 0.811, 0.82, 0.821], ddof=1))

    # A second data version of fold 0 gets its own row; the other folds are untouched.
    extra = make_record(seed=0, fold=0, protocol="10fold", split="B", minute=30)
    rows = results.aggregate(records + [extra])
    assert sorted(r.n_runs for r in rows) == [1, 6] and len(rows.warnings) == 1


def test_incomplete_and_failed_records_are_ignored():
    records = [
        make_record(seed=0, values={"roc_auc": 0.9}),
        make_record(seed=1, status="failed"),
        make_record(seed=2, status="running"),
    ]
    rows = results.aggregate(records)
    assert len(rows) == 1 and rows[0].n_runs == 1 and rows[0].seeds == [0]
    assert results.aggregate([make_record(status="failed")]) == []


def test_groups_by_params_and_training_protocol_with_distinct_labels():
    records = [
        make_record(seed=0, values={"roc_auc": 0.9}),
        make_record(seed=0, values={"roc_auc": 0.8}, model_params={"cell": "lstm"}),
        make_record(
            seed=0,
            values={"roc_auc": 0.7},
            training={"protocol": "wang2019", "max_epochs": 8, "batch_size": 32, "lr": 0.001},
        ),
        make_record(model="fcn", variant="default", values={"roc_auc": 0.6}),
    ]
    rows = results.aggregate(records)
    labels = {row.label: row.metrics["roc_auc"].mean for row in rows}
    assert labels == {
        "crnn_tf (paper) [cell=default, training=paper]": 0.9,
        "crnn_tf (paper) [cell=lstm, training=paper]": 0.8,
        "crnn_tf (paper) [cell=default, training=wang2019]": 0.7,
        "fcn": 0.6,
    }
    assert rows.warnings == []


def test_runs_differing_outside_the_group_key_are_flagged():
    records = [
        make_record(seed=0),
        make_record(seed=1, training={"protocol": "paper", "max_epochs": 50}),
    ]
    rows = results.aggregate(records)
    assert len(rows) == 1 and rows[0].n_runs == 2
    assert len(rows.warnings) == 1
    assert "training.max_epochs" in rows.warnings[0] and "training.lr" in rows.warnings[0]
    assert "seed" not in rows.warnings[0]


def test_aggregate_round_trips_through_stored_records(tmp_path):
    for s, v in [(0, 0.90), (1, 0.91), (2, 0.93)]:
        write_record(tmp_path, make_record(seed=s, values={"roc_auc": v, "log_loss": float("nan")}))
    rows = results.aggregate(results.load_records(tmp_path))
    assert rows[0].metrics["roc_auc"].std == pytest.approx(math.sqrt(7 / 30000), rel=1e-12)
    assert rows[0].metrics["log_loss"].n == 0 and rows[0].metrics["log_loss"].mean is None
