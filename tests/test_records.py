"""The run record schema (mcbench.records): validation naming fields, migration from v1, the
shipped JSON Schema."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest
from record_factory import make_record

from mcbench.records import RecordError, RunRecord, json_schema, migrate_v1, validate


def test_valid_records_of_every_status():
    for status in ("complete", "running", "failed"):
        assert isinstance(validate(make_record(status=status)), RunRecord)
    assert validate(json.loads(json.dumps(make_record(values={"roc_auc": None})))).test["roc_auc"].value is None


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["test"]["roc_auc"].update(value="0.91"), "test.roc_auc.value"),
    (lambda r: r["test"]["roc_auc"].update(higher_is_better="yes"), "test.roc_auc.higher_is_better"),
    (lambda r: r.update(n_params=1.5), "n_params"),
    (lambda r: r["identity"].update(seed=True), "identity.seed"),
    (lambda r: r.update(surprise=1), "surprise"),
    (lambda r: r.update(status="done"), "status"),
])
def test_invalid_fields_are_named(edit, field):
    record = make_record()
    edit(record)
    with pytest.raises(RecordError) as info:
        validate(record, source="r.json")
    assert str(info.value).startswith("r.json: ") and field in str(info.value)


def test_a_hand_edited_complete_record_is_invalid():
    with pytest.raises(RecordError) as info:
        validate({"schema_version": 2, "status": "complete"}, source="x.json")
    for needle in ("run_id", "created", "identity", "split"):
        assert needle in str(info.value)
    bare = make_record()
    for key in ("test", "finished", "scores_path"):
        del bare[key]
    with pytest.raises(RecordError, match="a complete record needs finished, scores_path, test"):
        validate(bare)


def test_an_identity_edited_after_the_fact_no_longer_matches_its_id():
    record = make_record()
    record["identity"]["training"]["max_epochs"] = 50
    with pytest.raises(RecordError, match="does not match its identity"):
        validate(record)


@pytest.mark.parametrize("obj", [[], "complete", 3, None])
def test_non_objects_are_refused_with_a_message(obj):
    with pytest.raises(RecordError, match="not a run record"):
        validate(obj, source="r.json")


def test_unknown_schema_version():
    record = make_record()
    record["schema_version"] = 7
    with pytest.raises(RecordError, match="schema version 7"):
        validate(record)


V1 = {
    "schema_version": 1, "run_id": "fcn-default-0123456789", "status": "complete",
    "created": "2026-11-20T10:00:00+00:00", "finished": "2026-11-20T10:05:00+00:00",
    "config": {"model": "fcn", "variant": "default", "model_params": {}, "dataset": "synthetic",
               "protocol": "fixed", "fold": None, "dataset_params": {},
               "frontend": {"name": "logmel", "seconds": 29.0},
               "training": {"protocol": "paper", "max_epochs": 1}, "seed": 0,
               "select_metric": "roc_auc"},
    "task": "multilabel", "labels": ["a", "b"],
    "split": {"fingerprint": {"train": "f1", "valid": "f2", "test": "f3"},
              "sizes": {"train": 10, "valid": 2, "test": 3}, "n_dropped": 0, "dropped": [], "notes": {}},
    "device": "cpu", "history": [{"epoch": 0, "loss": 0.7, "valid_metric": 0.6}], "selected_epoch": 0,
    "n_params": 12, "test": {"roc_auc": {"name": "ROC-AUC", "value": 0.8, "higher_is_better": True,
                                          "headline": True, "order": 10, "per_label": None, "extra": {}}},
    "timings": {"total_s": 3.0}, "peak_memory_mb": {"cpu_rss": 10.0, "cuda": None},
    "scores_path": "fcn-default-0123456789.scores.npz", "hardware": {}, "packages": {}, "git_commit": None,
}


def test_version_1_records_are_migrated_and_can_never_pass_for_a_new_run():
    record = validate(copy.deepcopy(V1))
    assert record.migrated_from == 1 and record.run_id == V1["run_id"]
    ident = record.identity
    assert ident.code_version == 0
    assert ident.dataset.splits["test"].fingerprint == "f3" and ident.dataset.splits["test"].content is None
    assert ident.dataset.splits["train"].n == 10 and ident.dataset.labels == ["a", "b"]
    assert ident.training == {"protocol": "paper", "max_epochs": 1, "select_metric": "roc_auc"}
    assert record.test["roc_auc"].value == 0.8
    assert migrate_v1(V1)["schema_version"] == 2


def test_the_shipped_json_schema_is_the_schema():
    shipped = json.loads((resources.files("mcbench") / "schema" / "run-record.schema.json").read_text())
    assert shipped == json_schema()
    assert shipped["properties"]["schema_version"]["const"] == 2
