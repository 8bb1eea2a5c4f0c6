"""Which runs a table row averages (mcbench.aggregate): equal configuration except seed and
fold, one data version per fold, labels that name the difference, and filters."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from record_factory import make_record, records, write_record

from mcbench.aggregate import FilterError, aggregate, select
from mcbench.storage import load_records
from mcbench.tables import table_for


def test_three_seeds_mean_and_sample_std():
    rows = aggregate(records(*[make_record(seed=s, values={"roc_auc": v, "recall_at_3": w})
                               for s, v, w in [(0, 0.90, 0.50), (1, 0.91, 0.52), (2, 0.93, 0.54)]]))
    assert len(rows) == 1 and rows.warnings == []
    row = rows[0]
    assert (row.label, row.n_runs, row.seeds, row.folds) == ("crnn_tf (paper)", 3, [0, 1, 2], [None])
    auc = row.metrics["roc_auc"]
    # mean 2.74 / 3; squared deviations sum to 7/15000, so std (ddof=1) = sqrt(7/30000).
    assert auc.mean == pytest.approx(2.74 / 3, abs=1e-15)
    assert auc.std == pytest.approx(math.sqrt(7 / 30000), rel=1e-12)
    assert auc.values == (0.90, 0.91, 0.93) and auc.per_fold == {None: (0.90, 0.91, 0.93)}
    assert row.metrics["recall_at_3"].std == pytest.approx(0.02)


def test_single_run_and_missing_values():
    rows = aggregate(records(make_record(model="fcn", variant="default", values={"roc_auc": 0.8})))
    assert rows[0].label == "fcn" and rows[0].metrics["roc_auc"].std is None
    stat = aggregate(records(make_record(seed=0, values={"roc_auc": 0.8, "log_loss": None}),
                             make_record(seed=1, values={"roc_auc": 0.9, "log_loss": 0.3})))[0].metrics["log_loss"]
    assert (stat.mean, stat.std, stat.n, stat.higher_is_better) == (0.3, None, 1, False)


def test_runs_with_different_epochs_are_never_averaged():
    """A 2-epoch and a 1-epoch run of one model used to give one row `0.5364 ± 0.0256`."""
    rows = aggregate(records(
        make_record(seed=0, values={"roc_auc": 0.55}, training={"max_epochs": 2}),
        make_record(seed=1, values={"roc_auc": 0.56}, training={"max_epochs": 2}),
        make_record(seed=0, values={"roc_auc": 0.50}, training={"max_epochs": 1}),
    ))
    labels = {r.label: (r.n_runs, r.metrics["roc_auc"].mean) for r in rows}
    assert labels == {"crnn_tf (paper) [epochs=2]": (2, pytest.approx(0.555)),
                      "crnn_tf (paper) [epochs=1]": (1, 0.50)}


def test_labels_name_every_difference():
    rows = aggregate(records(
        make_record(seed=0, values={"roc_auc": 0.9}),
        make_record(seed=0, values={"roc_auc": 0.8}, options={"cell": "lstm"}),
        make_record(seed=0, values={"roc_auc": 0.7}, training={"protocol": "wang2019"}),
        make_record(seed=0, values={"roc_auc": 0.65}, backend="keras"),
        make_record(model="fcn", variant="default", values={"roc_auc": 0.6}),
    ))
    assert {r.label: r.metrics["roc_auc"].mean for r in rows} == {
        "crnn_tf (paper) [backend=torch, cell=default, protocol=paper]": 0.9,
        "crnn_tf (paper) [backend=torch, cell=lstm, protocol=paper]": 0.8,
        "crnn_tf (paper) [backend=torch, cell=default, protocol=wang2019]": 0.7,
        "crnn_tf (paper) [backend=keras, cell=default, protocol=paper]": 0.65,
        "fcn": 0.6,
    }


def test_different_data_is_not_mixed():
    rows = aggregate(records(make_record(seed=0, values={"roc_auc": 0.90}, split="A"),
                             make_record(seed=1, values={"roc_auc": 0.92}, split="A"),
                             make_record(seed=2, values={"roc_auc": 0.50}, split="B")))
    by_n = {row.n_runs: row for row in rows}
    assert by_n[2].metrics["roc_auc"].mean == pytest.approx(0.91) and by_n[1].metrics["roc_auc"].mean == 0.5
    for row in rows:
        assert re.fullmatch(r"crnn_tf \(paper\) \[data [0-9a-f]{8}\]", row.label)
    assert len(rows.warnings) == 1 and "2 different versions of the data" in rows.warnings[0]


def test_kfold_folds_are_pooled_and_kept_per_fold():
    recs = [make_record(seed=s, fold=f, protocol="cv3", values={"roc_auc": 0.80 + 0.01 * f + 0.001 * s})
            for f in (0, 1, 2) for s in (0, 1)]
    rows = aggregate(records(*recs))
    assert len(rows) == 1 and rows[0].n_runs == 6 and rows[0].folds == [0, 1, 2]
    stat = rows[0].metrics["roc_auc"]
    assert stat.per_fold[1] == pytest.approx((0.81, 0.811))
    assert stat.std == pytest.approx(np.std([0.80, 0.801, 0.81, 0.811, 0.82, 0.821], ddof=1))
    extra = make_record(seed=0, fold=0, protocol="cv3", split="B", minute=30)
    assert sorted(r.n_runs for r in aggregate(records(*recs, extra))) == [1, 6]


def test_incomplete_and_failed_records_are_ignored():
    rows = aggregate(records(make_record(seed=0), make_record(seed=1, status="failed"),
                             make_record(seed=2, status="running")))
    assert len(rows) == 1 and rows[0].seeds == [0]


def test_select_by_model_and_where():
    recs = records(make_record(seed=0, training={"max_epochs": 2}), make_record(seed=1, training={"max_epochs": 1}),
                   make_record(model="fcn", variant="default", options={"deep": True}))
    assert [r.seed for r in select(recs, where=[("epochs", "1")])] == [1]
    assert [r.seed for r in select(recs, where=[("training.max_epochs", "2")])] == [0]
    assert [r.model for r in select(recs, where=[("deep", "true")])] == ["fcn"]
    assert [r.model for r in select(recs, models=["fcn"])] == ["fcn"]
    with pytest.raises(FilterError, match="no such field"):
        select(recs, where=[("epoch", "1")])


def test_table_for_filters_and_counts_runs(tmp_path):
    for s, e in [(0, 2), (1, 2), (0, 1)]:
        write_record(tmp_path, make_record(seed=s, training={"max_epochs": e}))
    text = table_for(tmp_path, "synthetic", fmt="plain", where=[("epochs", "2")])
    assert "crnn_tf (paper)" in text and "[epochs" not in text
    assert re.search(r"crnn_tf \(paper\) .* 2$", text, re.M)
    rows = aggregate(load_records(tmp_path))
    assert sorted(r.n_runs for r in rows) == [1, 2]
