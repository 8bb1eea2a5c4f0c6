"""Table rows from run records: which runs are averaged together, mean ± std, labels, filters.

The rule: a row holds runs whose identity (:mod:`mcbench.identity`) is equal except for the seed
and, for a k-fold protocol, the fold — never runs that differ in anything else. Within one fold
a row holds one version of the data only: runs on different data (another copy of the split, a
replaced file) become separate rows. Rows of one model and variant that differ in something
else are labelled with that difference, e.g. ``end_to_end (original) [epochs=1]``.

Statistics: mean and sample standard deviation (ddof 1) over the row's runs; a metric that is
undefined in some runs (stored as ``null``) is averaged over the runs that have it and its count
is kept (``Stat.n``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .identity import canonical_json, digest, flatten, grouping_key, short_name, split_data
from .records import RunRecord


@dataclass(frozen=True)
class Stat:
    """One metric of one row: mean ± sample std (ddof=1) over the runs that have a value.

    ``std`` is ``None`` when ``n < 2`` and ``mean`` is ``None`` when ``n == 0``. ``values`` are
    the runs' values (row run order); ``per_fold`` maps each fold (``None`` for a fixed split)
    to its values over seeds.
    """

    mean: float | None
    std: float | None
    n: int
    name: str
    order: float
    higher_is_better: bool
    headline: bool
    values: tuple[float, ...] = ()
    per_fold: Mapping[int | None, tuple[float, ...]] = field(default_factory=dict)


@dataclass
class Row:
    """One table row: runs of one configuration, repeated over seeds (and folds)."""

    model: str
    variant: str
    label: str
    dataset: str
    protocol: str
    n_runs: int
    seeds: list[int]
    metrics: dict[str, Stat]
    #: The identity shared by every run of the row (without seed, fold and per-fold data).
    identity: dict[str, Any] = field(default_factory=dict)
    folds: list[int | None] = field(default_factory=list)
    #: Short digest of the row's data, set only when rows differ by their data alone.
    data: str | None = None
    run_ids: list[str] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list, repr=False)


class Aggregate(list):
    """A ``list[Row]`` that also carries notes for the reader (``.warnings``)."""

    def __init__(self, rows: Iterable[Row] = (), notes: Iterable[str] = ()):
        super().__init__(rows)
        self.warnings: list[str] = list(notes)


def base_label(model: str, variant: str, transfer: Mapping[str, Any] | None = None) -> str:
    """``model (variant)``, with the transfer strategy in the words of the paper's Table III
    when the run started from another run: ``crnn_tf (paper; fine-tune from mtat)``."""
    bits = [] if variant == "default" else [variant]
    if transfer:
        from .transfer import strategy_label

        how = strategy_label(transfer.get("strategy", ""), transfer.get("frozen") or [])
        bits.append(f"{how} from {transfer.get('source_dataset')}")
    return f"{model} ({'; '.join(bits)})" if bits else model


def _metric_stats(records: Sequence[RunRecord], where: str, notes: list[str]) -> dict[str, Stat]:
    keys = sorted({k for r in records for k in r.test})
    stats = {}
    for key in keys:
        entries = [(r, r.test[key]) for r in records if key in r.test]
        # The newest record's description wins if a plugin changed its name or order meanwhile.
        latest = max(entries, key=lambda e: e[0].created)[1]
        described = {(e.name, e.order, e.higher_is_better, e.headline) for _, e in entries}
        if len(described) > 1:
            notes.append(f"{where}: metric {key!r} is described differently across runs; "
                         "using the newest description")
        values: list[float] = []
        per_fold: dict[int | None, list[float]] = {}
        for record, entry in entries:
            if entry.value is None:
                continue
            values.append(float(entry.value))
            per_fold.setdefault(record.fold, []).append(float(entry.value))
        arr = np.asarray(values, dtype=float)
        stats[key] = Stat(
            mean=float(arr.mean()) if len(arr) else None,
            std=float(arr.std(ddof=1)) if len(arr) > 1 else None,
            n=len(arr), name=latest.name, order=latest.order,
            higher_is_better=latest.higher_is_better, headline=latest.headline,
            values=tuple(values), per_fold={f: tuple(v) for f, v in per_fold.items()},
        )
    return stats


def _split_by_data(records: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """Partition one group so that no fold of a row mixes two versions of its data.

    Runs with the same (fold, data) stay together; those clusters fill rows in order of their
    first creation time, each row taking at most one data version per fold.
    """
    clusters: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        clusters.setdefault((canonical_json(r.fold), canonical_json(split_data(r.identity_dict()))),
                            []).append(r)
    ordered = sorted(clusters.items(), key=lambda kv: (min(r.created for r in kv[1]), kv[0]))
    rows: list[dict[str, list[RunRecord]]] = []
    for (fold, _data), members in ordered:
        for row in rows:
            if fold not in row:
                row[fold] = members
                break
        else:
            rows.append({fold: members})
    return [[r for members in row.values() for r in members] for row in rows]


def _fold_order(fold: int | None) -> tuple[bool, int]:
    return (fold is not None, fold or 0)


def aggregate(records: Iterable[RunRecord]) -> Aggregate:
    """Rows of mean ± std over seeds (and folds), one per configuration (module docstring).

    Only ``complete`` records are used.
    """
    notes: list[str] = []
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.status == "complete":
            groups.setdefault(canonical_json(grouping_key(record.identity_dict())), []).append(record)
    rows: list[Row] = []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda r: (r.created, r.run_id))
        first = group[0]
        parts = _split_by_data(group)
        if len(parts) > 1:
            notes.append(f"{first.dataset}/{first.protocol}: {base_label(first.model, first.variant)}: "
                         f"runs on {len(parts)} different versions of the data (split clip ids or "
                         "their computed features differ); shown as separate rows labelled by data")
        for part in parts:
            data = None
            if len(parts) > 1:
                data = digest(sorted([canonical_json(r.fold),
                                      canonical_json(split_data(r.identity_dict()))] for r in part), 8)
            where = f"{first.dataset}/{first.protocol}: {base_label(first.model, first.variant)}"
            rows.append(Row(
                model=first.model, variant=first.variant,
                label=base_label(first.model, first.variant, first.identity_dict().get("transfer")),
                dataset=first.dataset, protocol=first.protocol, n_runs=len(part),
                seeds=sorted({r.seed for r in part}), metrics=_metric_stats(part, where, notes),
                identity=grouping_key(first.identity_dict()),
                folds=sorted({r.fold for r in part}, key=_fold_order), data=data,
                run_ids=[r.run_id for r in part], records=list(part),
            ))
    label_differences(rows)
    rows.sort(key=lambda r: (r.dataset, r.protocol, r.model, r.variant, r.label))
    return Aggregate(rows, notes)


def differing_keys(identities: Sequence[Mapping[str, Any]]) -> list[str]:
    """Flattened identity keys whose values are not the same in all of ``identities``."""
    flats = [flatten(dict(i)) for i in identities]
    keys = sorted(set().union(*flats)) if flats else []
    return [k for k in keys if len({canonical_json(f.get(k, "<absent>")) for f in flats}) > 1]


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "default" if value == "<absent>" else str(value)


def label_differences(rows: list[Row]) -> None:
    """Append ``[key=value, …]`` to the labels of rows of one model and variant (and transfer
    strategy, which the label names already) that differ in their configuration (or
    ``[data <hash>]`` when only their data differs)."""
    same: dict[tuple, list[Row]] = {}
    for row in rows:
        same.setdefault((row.dataset, row.protocol, row.label), []).append(row)
    for members in same.values():
        if len(members) < 2:
            continue
        keys = differing_keys([m.identity for m in members])
        for row in members:
            flat = flatten(row.identity)
            bits = [f"{short_name(k)}={_show(flat.get(k, '<absent>'))}" for k in keys]
            if row.data:
                bits.append(f"data {row.data}")
            if bits:
                row.label = f"{row.label} [{', '.join(bits)}]"


# --------------------------------------------------------------------------- filters


class FilterError(ValueError):
    """A ``--where`` filter names no field of the records, or several."""


def _matches(value: Any, text: str) -> bool:
    if value is None:
        return text.strip().lower() in ("none", "null")
    if isinstance(value, bool):
        return text.strip().lower() in (("true", "1", "yes") if value else ("false", "0", "no"))
    if isinstance(value, (int, float)):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    if isinstance(value, list):
        return [str(v) for v in value] == [t.strip() for t in text.split(",")]
    return str(value) == text


def resolve_field(key: str, available: Iterable[str]) -> str:
    """The full flattened identity key that ``key`` (a full key or a short name) means."""
    available = sorted(set(available))
    if key in available:
        return key
    hits = [k for k in available if short_name(k) == key]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise FilterError(f"--where {key}: ambiguous, it could be {', '.join(hits)}")
    shown = sorted({short_name(k) for k in available})
    raise FilterError(f"--where {key}: no such field in these runs; fields: {', '.join(shown)} "
                      "(or their full names, e.g. training.max_epochs)")


def select(records: Iterable[RunRecord], models: Sequence[str] | None = None,
           where: Sequence[tuple[str, str]] = ()) -> list[RunRecord]:
    """The records of ``models`` (all when ``None``) whose identity fields equal ``where``."""
    records = [r for r in records if models is None or r.model in models]
    if not where or not records:
        return records
    flats = [flatten(r.identity_dict()) for r in records]
    available = set().union(*flats)
    resolved = [(resolve_field(k, available), v) for k, v in where]
    return [r for r, flat in zip(records, flats)
            if all(k in flat and _matches(flat[k], v) for k, v in resolved)]
