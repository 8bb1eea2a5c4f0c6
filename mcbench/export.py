"""Run records as tables: one row per run, and one row per (run, metric, label).

``mcbench export`` writes both with pandas, as CSV or Parquet, so that one ``pd.read_csv`` (or
``pd.read_parquet``) call loads every run for analysis. Columns of the runs table: the run's
bookkeeping (``run_id``, ``status``, times, device, parameter count), every identity field
flattened with dots (``model.options.cell``, ``training.max_epochs``, ``dataset.params.n_clips``;
lists as comma-separated text), and ``test.<metric key>`` for each test metric.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .identity import flatten
from .records import RunRecord
from .storage import atomic_file, load_records


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value


def run_row(record: RunRecord) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": record.run_id, "status": record.status, "created": record.created,
        "finished": record.finished, "device": record.device, "n_params": record.n_params,
        "selected_epoch": record.selected_epoch, "epochs_run": len(record.history),
        "fit_s": record.timings.get("fit_s"), "peak_rss_mb": record.peak_memory_mb.get("cpu_rss"),
    }
    for key, value in flatten(record.identity_dict()).items():
        if key != "dataset.labels":
            row[key] = _cell(value)
    for key, metric in sorted(record.test.items(), key=lambda kv: kv[1].order):
        row[f"test.{key}"] = metric.value
    return row


def per_label_rows(record: RunRecord) -> list[dict[str, Any]]:
    rows = []
    for key, metric in record.test.items():
        for entry in metric.per_label or []:
            row = {"run_id": record.run_id, "dataset": record.dataset, "model": record.model,
                   "variant": record.variant, "seed": record.seed, "fold": record.fold,
                   "metric": key}
            row.update({k: _cell(v) for k, v in entry.items()})
            rows.append(row)
    return rows


def run_summary(record: RunRecord) -> dict[str, Any]:
    """The short row of ``mcbench runs list``."""
    headline = sorted((m for m in record.test.values() if m.headline), key=lambda m: m.order)
    first = headline[0] if headline else None
    return {
        "run id": record.run_id, "status": record.status, "dataset": record.dataset,
        "model": f"{record.model} ({record.variant})", "seed": record.seed,
        "fold": "" if record.fold is None else record.fold,
        "epochs": record.identity.training.get("max_epochs", ""),
        "metric": f"{first.name} {first.value:.4f}" if first and first.value is not None else "",
        "created": record.created,
    }


def frames(records: Sequence[RunRecord]):
    """``(runs, per_label)`` pandas DataFrames of ``records``."""
    import pandas as pd

    runs = pd.DataFrame([run_row(r) for r in records])
    per_label = pd.DataFrame([row for r in records for row in per_label_rows(r)])
    return runs, per_label


def _per_label_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.per_label{path.suffix}")


def export_tables(results_dir: str | os.PathLike, output: str | os.PathLike, fmt: str = "csv",
                  dataset: str | None = None, status: str | None = "complete") -> list[tuple[Path, int]]:
    """Write the runs table to ``output`` and the per-label table beside it; returns
    ``[(path, rows), …]``."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown export format {fmt!r}; use csv or parquet")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ImportError("Parquet export needs pyarrow: pip install pyarrow "
                              "(or use --format csv)") from exc
    records = load_records(results_dir, dataset=dataset, status=status)
    if not records:
        raise ValueError(f"no runs to export under {results_dir}"
                         + (f" for dataset {dataset}" if dataset else ""))
    output = Path(output)
    written = []
    for frame, path in zip(frames(records), (output, _per_label_path(output))):
        with atomic_file(path) as fh:
            if fmt == "csv":
                fh.write(frame.to_csv(index=False).encode("utf-8"))
            else:
                frame.to_parquet(fh, index=False)
        written.append((path, len(frame)))
    return written
