"""Comparison tables from stored run records.

A table is a pure function of the records: everything it shows (metric display name, column
order, whether higher is better, whether the metric is a headline one) is read from the records,
never from the plugin registry, and nothing is retrained. Rendering uses ``tabulate``.

One table per (dataset, protocol): a ``Model`` column, one column per metric (``mean ± std``
over the runs, just the mean for a single run), and ``runs``. Choices:

* The best value of a column is compared at the shown precision (``digits``), so values that
  read the same are all marked; nothing is marked when fewer than two rows have a value.
* A metric that fewer runs produced than the row has (undefined, stored as ``null``) shows its
  own count, e.g. ``0.9100 (n=2)``.
* CSV is one machine-readable table with ``Dataset`` and ``Protocol`` columns and the mean and
  std in separate columns (no title, no marks); values are rounded to ``digits`` as elsewhere.
* LaTeX uses booktabs rules (``\\toprule``/``\\midrule``/``\\bottomrule``) in a ``table``
  environment with a ``\\caption``; labels are escaped here, so tabulate's ``latex_raw`` keeps
  ``\\textbf{}`` intact.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path

from tabulate import tabulate

from .aggregate import Row, Stat, aggregate, select
from .storage import RecordWarning, load_records

FORMATS = ("markdown", "latex", "csv", "plain")
_PM = {"markdown": "±", "plain": "±", "latex": r"$\pm$"}
_MISSING = {"markdown": "–", "plain": "–", "latex": "--"}
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


class NoRunsError(LookupError):
    """No complete run records were found; the message says which command creates them."""


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _columns(rows: Sequence[Row], metrics: Sequence[str] | None) -> list[tuple[str, Stat]]:
    """(key, a Stat describing the column) for the columns of one table, in display order."""
    described: dict[str, Stat] = {}
    for row in rows:
        for key, stat in row.metrics.items():
            described.setdefault(key, stat)
    if metrics is not None:
        return [(k, described[k]) for k in metrics if k in described]
    keys = [k for k, s in described.items() if s.headline] or list(described)
    keys.sort(key=lambda k: (described[k].order, described[k].name, k))
    return [(k, described[k]) for k in keys]


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _best_rows(rows: Sequence[Row], key: str, meta: Stat, digits: int) -> set[int]:
    shown = {
        i: float(_num(row.metrics[key].mean, digits))
        for i, row in enumerate(rows)
        if key in row.metrics and row.metrics[key].mean is not None
    }
    if len(shown) < 2:
        return set()
    best = max(shown.values()) if meta.higher_is_better else min(shown.values())
    return {i for i, v in shown.items() if v == best}


def _cell(row: Row, key: str, fmt: str, digits: int, best: bool) -> str:
    stat = row.metrics.get(key)
    if stat is None or stat.mean is None:
        return _MISSING[fmt]
    text = _num(stat.mean, digits)
    if stat.std is not None:
        text += f" {_PM[fmt]} {_num(stat.std, digits)}"
    if best:
        text = {"markdown": f"**{text}**", "latex": rf"\textbf{{{text}}}", "plain": f"{text}*"}[fmt]
    if stat.n != row.n_runs:
        text += f" (n={stat.n})"
    return text


def _title(dataset: str, protocol: str) -> str:
    return f"{dataset} (protocol: {protocol})"


def _render_one(
    rows: Sequence[Row], columns: list[tuple[str, Stat]], fmt: str, digits: int, bold_best: bool
) -> str:
    best = {
        key: (_best_rows(rows, key, meta, digits) if bold_best else set()) for key, meta in columns
    }
    label = latex_escape if fmt == "latex" else (lambda s: s)
    headers = ["Model"] + [label(meta.name) for _, meta in columns] + ["runs"]
    body = [
        [label(row.label)]
        + [_cell(row, key, fmt, digits, i in best[key]) for key, _ in columns]
        + [str(row.n_runs)]
        for i, row in enumerate(rows)
    ]
    align = ["left"] + ["right"] * (len(columns) + 1)
    title = _title(rows[0].dataset, rows[0].protocol)
    if fmt == "markdown":
        table = tabulate(body, headers, tablefmt="github", colalign=align, disable_numparse=True)
        return f"### {title}\n\n{table}"
    if fmt == "plain":
        table = tabulate(body, headers, tablefmt="simple", colalign=align, disable_numparse=True)
        return f"{title}\n\n{table}"
    # latex_raw does not escape, so \textbf and $\pm$ survive; its three \hline become booktabs rules.
    table = tabulate(body, headers, tablefmt="latex_raw", colalign=align, disable_numparse=True)
    for rule in (r"\toprule", r"\midrule"):
        table = table.replace("\\hline", rule, 1)
    table = table.replace("\\hline", r"\bottomrule", 1)
    caption = latex_escape(title) + r": mean $\pm$ std over runs"
    return "\n".join(
        [r"\begin{table}[ht]", r"\centering", rf"\caption{{{caption}}}", table, r"\end{table}"]
    )


def _render_csv(tables: list[tuple[list[Row], list[tuple[str, Stat]]]], digits: int) -> str:
    columns: dict[str, Stat] = {}
    for _, cols in tables:
        for key, meta in cols:
            columns.setdefault(key, meta)
    keys = sorted(columns, key=lambda k: (columns[k].order, columns[k].name, k))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["Dataset", "Protocol", "Model"]
    for key in keys:
        header += [columns[key].name, f"{columns[key].name} std"]
    writer.writerow(header + ["runs"])
    for rows, _ in tables:
        for row in rows:
            line = [row.dataset, row.protocol, row.label]
            for key in keys:
                stat = row.metrics.get(key)
                mean = "" if stat is None or stat.mean is None else _num(stat.mean, digits)
                std = "" if stat is None or stat.std is None else _num(stat.std, digits)
                line += [mean, std]
            writer.writerow(line + [row.n_runs])
    return out.getvalue()


def render_table(
    rows: Sequence[Row],
    *,
    fmt: str = "markdown",
    metrics: Sequence[str] | None = None,
    digits: int = 4,
    bold_best: bool = True,
) -> str:
    """Render aggregated rows (:func:`mcbench.aggregate.aggregate`) as text.

    ``fmt``: ``markdown`` (GitHub table, best **bold**), ``latex`` (booktabs, best
    ``\\textbf``), ``csv`` (mean and std columns, no marks) or ``plain`` (best marked ``*``).
    ``metrics``: metric keys in the order wanted; by default every headline metric present,
    ordered by the stored ``order`` then name. Rows of different (dataset, protocol) become
    separate tables (one CSV with ``Dataset``/``Protocol`` columns), and the best value of a
    column is chosen among the rows of its own table only.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not rows:
        raise ValueError("no rows to render")
    if metrics is not None:
        present = {k for row in rows for k in row.metrics}
        unknown = [k for k in metrics if k not in present]
        if unknown:
            raise ValueError(
                f"metric(s) {', '.join(unknown)} not in these runs; "
                f"available: {', '.join(sorted(present))}"
            )
    by_table: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        by_table.setdefault((row.dataset, row.protocol), []).append(row)
    tables = [(members, _columns(members, metrics)) for _, members in sorted(by_table.items())]
    if fmt == "csv":
        return _render_csv(tables, digits)
    return (
        "\n\n".join(_render_one(members, cols, fmt, digits, bold_best) for members, cols in tables)
        + "\n"
    )


def table_for(
    results_dir: str | os.PathLike,
    dataset: str | None = None,
    fmt: str = "markdown",
    metrics: Sequence[str] | None = None,
    *,
    models: Sequence[str] | None = None,
    where: Sequence[tuple[str, str]] = (),
    run_ids: Collection[str] | None = None,
    digits: int = 4,
    bold_best: bool = True,
) -> str:
    """Load the complete records under ``results_dir``, aggregate them and render the tables.

    Aggregation warnings (split fingerprints kept apart, runs differing in configuration) follow
    the tables as ``Note:`` lines (``% Note:`` in LaTeX); for CSV they are issued as
    :class:`~mcbench.storage.RecordWarning` so the CSV stays clean. Raises :class:`NoRunsError`
    when there is nothing to show.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
    records = load_records(results_dir, dataset=dataset)
    if run_ids is not None:
        wanted = set(run_ids)
        records = [r for r in records if r.run_id in wanted]
    chosen = select(records, models=models, where=where)
    rows = aggregate(chosen)
    if not rows:
        folder = Path(results_dir)
        if records:
            raise NoRunsError(f"none of the {len(records)} complete run(s) under {folder} match "
                              "the filters (--models, --where)")
        if dataset:
            raise NoRunsError(
                f"no complete runs for dataset {dataset} under {folder}; "
                f"run `mcbench run --dataset {dataset}` first"
            )
        raise NoRunsError(f"no complete runs under {folder}; run `mcbench run --dataset NAME` first")
    text = render_table(rows, fmt=fmt, metrics=metrics, digits=digits, bold_best=bold_best)
    if fmt == "csv":
        for note in rows.warnings:
            warnings.warn(note, RecordWarning, stacklevel=2)
        return text
    prefix = "% Note: " if fmt == "latex" else "Note: "
    notes = "".join(f"{prefix}{note}\n" for note in rows.warnings)
    return text + ("\n" + notes if notes else "")
