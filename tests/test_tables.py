"""Comparison tables (mcbench.tables) rendered from run records, with hand-checked cells.

The fixture table (dataset ``synthetic``, protocol ``fixed``):

=================  =================  =================  =================  ====
model              ROC-AUC (↑)        Recall@3 (↑)       Log loss (↓)       runs
=================  =================  =================  =================  ====
crnn_tf (paper)    .90 .91 .93        .50 .52 .54        .30 .32 .28        3
                   → 0.9133 ± 0.0153  → 0.5200 ± 0.0200  → 0.3000 ± 0.0200
fcn                0.9200 (best, tie) 0.5500 (best)      0.2500 (best)      1
crnn               0.9200 (best, tie) 0.4000             0.3500             1
=================  =================  =================  =================  ====

std of (.90, .91, .93) with ddof=1 is sqrt(7/30000) = 0.015275; of (.50, .52, .54) and of
(.30, .32, .28) it is 0.02. PR-AUC is stored but not a headline metric.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from record_factory import make_record, write_record

from mcbench.aggregate import aggregate
from mcbench.records import validate
from mcbench.storage import RecordWarning
from mcbench.tables import NoRunsError, render_table, table_for


def fixture_records():
    crnn_tf = [
        make_record(
            "crnn_tf",
            "paper",
            seed,
            {"roc_auc": auc, "recall_at_3": rec, "log_loss": loss, "pr_auc": 0.5 + seed / 10},
        )
        for seed, auc, rec, loss in [
            (0, 0.90, 0.50, 0.30),
            (1, 0.91, 0.52, 0.32),
            (2, 0.93, 0.54, 0.28),
        ]
    ]
    fcn = make_record(
        "fcn", "default", 0, {"roc_auc": 0.92, "recall_at_3": 0.55, "log_loss": 0.25, "pr_auc": 0.4}
    )
    crnn = make_record(
        "crnn",
        "default",
        0,
        {"roc_auc": 0.92, "recall_at_3": 0.40, "log_loss": 0.35, "pr_auc": 0.3},
    )
    return crnn_tf + [fcn, crnn]


def agg(objs):
    return aggregate([validate(o) for o in objs])


@pytest.fixture
def rows():
    return agg(fixture_records())


def cells(text: str, sep: str = "|") -> dict[str, list[str]]:
    """Model label -> stripped cells of a markdown or LaTeX table's body rows."""
    out = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").rstrip("\\").split(sep)]
        if len(parts) > 2 and parts[0].replace("\\_", "_") in {"crnn_tf (paper)", "fcn", "crnn"}:
            out[parts[0].replace("\\_", "_")] = parts[1:]
    return out


def test_markdown_cells_bold_best_and_order(rows):
    text = render_table(rows, fmt="markdown")
    lines = text.splitlines()
    assert lines[0] == "### synthetic (protocol: fixed)"
    header = [h.strip() for h in lines[2].strip("|").split("|")]
    assert header == ["Model", "ROC-AUC", "Recall@3", "Log loss", "runs"]
    got = cells(text)
    assert got["crnn_tf (paper)"] == ["0.9133 ± 0.0153", "0.5200 ± 0.0200", "0.3000 ± 0.0200", "3"]
    assert got["fcn"] == ["**0.9200**", "**0.5500**", "**0.2500**", "1"]
    assert got["crnn"] == ["**0.9200**", "0.4000", "0.3500", "1"]
    assert "PR-AUC" not in text


def test_metric_selection_keeps_requested_order(rows):
    text = render_table(rows, fmt="markdown", metrics=["pr_auc", "roc_auc"])
    header = [h.strip() for h in text.splitlines()[2].strip("|").split("|")]
    assert header == ["Model", "PR-AUC", "ROC-AUC", "runs"]
    # PR-AUC of crnn_tf: 0.5, 0.6, 0.7 -> 0.6000 ± 0.1000, the best of 0.6 / 0.4 / 0.3.
    assert cells(text)["crnn_tf (paper)"][0] == "**0.6000 ± 0.1000**"
    with pytest.raises(ValueError, match="ndcg.*available: log_loss, pr_auc"):
        render_table(rows, metrics=["ndcg"])


def test_latex_booktabs_with_textbf(rows):
    text = render_table(rows, fmt="latex")
    assert text.startswith("\\begin{table}")
    assert "\\caption{synthetic (protocol: fixed): mean $\\pm$ std over runs}" in text
    assert "\\begin{tabular}{lrrrr}" in text
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert text.count(rule) == 1
    assert "\\hline" not in text
    got = cells(text, sep="&")
    assert got["crnn_tf (paper)"] == [
        "0.9133 $\\pm$ 0.0153",
        "0.5200 $\\pm$ 0.0200",
        "0.3000 $\\pm$ 0.0200",
        "3",
    ]
    assert got["fcn"] == ["\\textbf{0.9200}", "\\textbf{0.5500}", "\\textbf{0.2500}", "1"]
    assert got["crnn"] == ["\\textbf{0.9200}", "0.4000", "0.3500", "1"]
    assert "crnn\\_tf (paper)" in text


def test_csv_has_mean_and_std_columns_and_no_marks(rows):
    text = render_table(rows, fmt="csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == [
        "Dataset",
        "Protocol",
        "Model",
        "ROC-AUC",
        "ROC-AUC std",
        "Recall@3",
        "Recall@3 std",
        "Log loss",
        "Log loss std",
        "runs",
    ]
    by_model = {r["Model"]: r for r in table}
    assert by_model["crnn_tf (paper)"] == {
        "Dataset": "synthetic",
        "Protocol": "fixed",
        "Model": "crnn_tf (paper)",
        "ROC-AUC": "0.9133",
        "ROC-AUC std": "0.0153",
        "Recall@3": "0.5200",
        "Recall@3 std": "0.0200",
        "Log loss": "0.3000",
        "Log loss std": "0.0200",
        "runs": "3",
    }
    assert by_model["fcn"]["Log loss"] == "0.2500" and by_model["fcn"]["Log loss std"] == ""
    assert "*" not in text and "textbf" not in text


def test_plain_marks_best_with_star(rows):
    text = render_table(rows, fmt="plain")
    assert text.splitlines()[0] == "synthetic (protocol: fixed)"
    got = {}
    for line in text.splitlines():
        for label in ("crnn_tf (paper)", "fcn", "crnn"):
            if line.startswith(label + " "):
                got[label] = line[len(label) :].split()
    assert got["fcn"] == ["0.9200*", "0.5500*", "0.2500*", "1"]
    assert got["crnn"] == ["0.9200*", "0.4000", "0.3500", "1"]
    assert got["crnn_tf (paper)"] == ["0.9133", "±", "0.0153", "0.5200", "±", "0.0200"] + [
        "0.3000",
        "±",
        "0.0200",
        "3",
    ]


def test_bold_off_and_digits(rows):
    text = render_table(rows, fmt="markdown", bold_best=False, digits=2)
    assert "**" not in text
    assert cells(text)["crnn_tf (paper)"] == ["0.91 ± 0.02", "0.52 ± 0.02", "0.30 ± 0.02", "3"]


def test_lower_is_better_tie_and_best_per_table_only():
    records = fixture_records() + [
        make_record("fcn", "default", 0, {"roc_auc": 0.80, "log_loss": 0.40}, dataset="gtzan"),
        make_record("crnn", "default", 0, {"roc_auc": 0.70, "log_loss": 0.40}, dataset="gtzan"),
    ]
    text = render_table(agg(records), fmt="markdown")
    gtzan, synthetic = text.split("### synthetic (protocol: fixed)")
    assert gtzan.startswith("### gtzan (protocol: fixed)")
    # In gtzan 0.80 is the best ROC-AUC although synthetic has higher values; log loss ties.
    assert cells(gtzan)["fcn"] == ["**0.8000**", "**0.4000**", "1"]
    assert cells(gtzan)["crnn"] == ["0.7000", "**0.4000**", "1"]
    assert cells(synthetic)["fcn"] == ["**0.9200**", "**0.5500**", "**0.2500**", "1"]
    # One CSV holds both tables, told apart by the dataset column.
    table = list(csv.DictReader(io.StringIO(render_table(agg(records), fmt="csv"))))
    assert [(r["Dataset"], r["Model"]) for r in table][:2] == [("gtzan", "crnn"), ("gtzan", "fcn")]
    assert table[0]["Recall@3"] == ""


def test_single_row_and_partial_metric_counts():
    records = [
        make_record("fcn", "default", 0, {"roc_auc": 0.80, "log_loss": None}),
        make_record("fcn", "default", 1, {"roc_auc": 0.90, "log_loss": 0.40}),
    ]
    text = render_table(agg(records), fmt="plain")
    # One row: nothing to compare, so nothing is marked; log loss exists for one run of two.
    assert "*" not in text
    assert "0.4000 (n=1)" in text and "0.8500 ± 0.0707" in text


def test_render_table_rejects_unknown_format(rows):
    with pytest.raises(ValueError, match="markdown, latex, csv, plain"):
        render_table(rows, fmt="html")


def test_table_for_reads_stored_records(tmp_path):
    for record in fixture_records():
        write_record(tmp_path, record)
    text = table_for(tmp_path, "synthetic")
    assert text == render_table(agg(fixture_records()), fmt="markdown")
    assert "Note:" not in text
    # Another split of the same data appears as its own row, with a note under the table.
    other = make_record("fcn", "default", 5, {"roc_auc": 0.5}, split="B")
    write_record(tmp_path, other)
    text = table_for(tmp_path, fmt="plain")
    assert text.count("fcn [data ") == 2
    assert "Note: synthetic/fixed: fcn: runs on 2 different versions of the data" in text
    with pytest.warns(RecordWarning, match="different versions of the data"):
        csv_text = table_for(tmp_path, fmt="csv")
    assert "Note" not in csv_text
    # A corrupt file is skipped with a warning, the table still renders.
    (tmp_path / "runs" / "synthetic" / "broken.json").write_text("{")
    with pytest.warns(RecordWarning, match="unreadable"):
        assert "crnn_tf (paper)" in table_for(tmp_path, "synthetic")


def test_table_for_without_runs_says_what_to_do(tmp_path):
    with pytest.raises(NoRunsError) as err:
        table_for(tmp_path, "gtzan")
    assert str(err.value) == (
        f"no complete runs for dataset gtzan under {tmp_path}; run `mcbench run --dataset gtzan` first"
    )
    with pytest.raises(NoRunsError, match="mcbench run --dataset NAME"):
        table_for(tmp_path)


def test_tables_never_import_torch(tmp_path):
    for record in fixture_records():
        write_record(tmp_path, record)
    code = (
        "import json, sys\n"
        "from mcbench.tables import table_for\n"
        f"text = table_for({str(tmp_path)!r}, fmt='latex')\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'ok': 'textbf' in text}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout) == {"torch": False, "ok": True}


def test_numbers_keep_their_digits_in_all_numeric_columns():
    # Without bold or ± every cell looks numeric; tabulate must not reformat 0.9000 as 0.9.
    records = [
        make_record("fcn", "default", 0, {"roc_auc": 0.9}),
        make_record("crnn", "default", 0, {"roc_auc": 0.85}),
    ]
    for fmt in ("markdown", "plain"):
        text = render_table(agg(records), fmt=fmt, bold_best=False)
        assert "0.9000" in text and "0.8500" in text, fmt
