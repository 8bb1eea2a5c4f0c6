"""``mcbench data check`` and ``mcbench data prepare``, for every dataset plugin alike.

Nothing here knows a particular dataset: ``check`` calls the plugin's ``check(root)`` and prints
the :class:`~mcbench.specs.HealthReport`; ``prepare`` computes and caches the features of every
split of every fold through the feature store, then writes a report of every skipped file and why.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from .plugins import Registry
from .specs import DatasetError, HealthReport


def _reason_kind(path: str, reason: str) -> str:
    """'<path>: cannot decode (…)' → 'cannot decode', for the summary counts."""
    if path and reason.startswith(path):
        reason = reason[len(path):].lstrip(": ")
    return reason.split(":")[0].split(" (")[0].strip()


def render_report(report: HealthReport, limit: int = 50) -> list[str]:
    lines = [
        f"dataset: {report.dataset}",
        f"root:    {report.root}",
        f"layout:  {report.layout}",
        f"files:   {report.n_found} found of {report.n_listed} listed",
    ]
    for key, value in report.stats.items():
        lines.append(f"{key}: {json.dumps(value, default=str)}")
    lines += [f"note: {n}" for n in report.notes]
    if report.problems:
        reasons = Counter(_reason_kind(p.path, p.reason) for p in report.problems)
        lines.append(f"problems: {len(report.problems)}")
        for reason, n in reasons.most_common():
            lines.append(f"  {n:>6} × {reason}")
        for p in report.problems[:limit]:
            lines.append(f"  - {p.id}: {p.path}: {p.reason}")
        if len(report.problems) > limit:
            lines.append(f"  … and {len(report.problems) - limit} more")
    else:
        lines.append("problems: none")
    return lines


def check_dataset(registry: Registry, name: str, root: Path | None, data_dir: Path | None,
                  echo: Callable[[str], None] = print) -> bool:
    from .runner import dataset_root

    spec = registry.dataset(name)
    root = dataset_root(spec, root, data_dir)
    if not root.exists():
        raise DatasetError(
            f"{name}: data root {root} does not exist. "
            f"See {spec.readme or 'the dataset README'} for how to obtain the data, then pass --root."
        )
    report = spec.check(root)
    for line in render_report(report):
        echo(line)
    echo("status: OK" if report.ok else
         f"status: {len(report.problems)} problem(s); affected clips will be skipped and reported. "
         f"Next: mcbench data prepare {name} --root {root}")
    return report.ok


def prepare_dataset(registry: Registry, name: str, root: Path | None, data_dir: Path | None,
                    cache_dir: Path | None, frontends: list[str], protocol: str | None,
                    workers: int | None, params: dict, echo: Callable[[str], None] = print) -> Path:
    from .features import FeatureStore, FrontEnd, prepare_partition
    from .runner import cache_dir_for, dataset_root, folds_for, load_partition

    spec = registry.dataset(name)
    root = dataset_root(spec, root, data_dir)
    protocol = protocol or spec.default_protocol
    if protocol not in spec.protocols:
        raise ValueError(f"{name} has protocols {sorted(spec.protocols)}; got {protocol!r}")
    cache = cache_dir_for(data_dir, cache_dir)
    skipped: dict[str, dict] = {}
    sizes: dict[str, dict] = {}
    for fe_name in frontends:
        for fold in folds_for(spec, protocol, None):
            partition = load_partition(spec, root, protocol, fold, params)
            fe = FrontEnd(fe_name, seconds=partition.clip_seconds or spec.clip_seconds)
            store = FeatureStore(cache, spec.name, root, fe)
            feats, dropped = prepare_partition(store, partition, spec.task, workers)
            for d in list(partition.dropped) + dropped:
                skipped.setdefault(d.id, {"id": d.id, "path": d.path, "reason": d.reason, "step": d.step})
            key = f"{fe_name}" + (f"/fold{fold}" if fold is not None else "")
            sizes[key] = {s: len(f) for s, f in feats.items()}
        report_path = store.dir.parent / f"prepare-report-{protocol}.json"
    report = {"dataset": name, "root": str(root), "protocol": protocol, "frontends": frontends,
              "split_sizes": sizes, "n_skipped": len(skipped), "skipped": list(skipped.values())}
    report_path.write_text(json.dumps(report, indent=2))
    for key, s in sizes.items():
        echo(f"{key}: " + ", ".join(f"{k} {v}" for k, v in s.items()))
    echo(f"skipped {len(skipped)} clip(s)" + (":" if skipped else "."))
    for d in list(skipped.values())[:50]:
        echo(f"  - {d['id']} [{d['step']}]: {d['reason']}")
    if len(skipped) > 50:
        echo(f"  … and {len(skipped) - 50} more")
    echo(f"report: {report_path}")
    echo(f"features cached under {store.dir.parent}. Next: mcbench run --models all --dataset {name}"
         + (f" --root {root}" if root != dataset_root(spec, None, data_dir) else ""))
    return report_path
