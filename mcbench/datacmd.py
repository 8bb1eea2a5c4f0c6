"""``mcbench data check`` and ``mcbench data prepare``, for every dataset plugin alike.

Nothing here knows a particular dataset: ``check`` calls the plugin's ``check(root)`` and prints
the :class:`~mcbench.specs.HealthReport`; ``prepare`` computes and caches the features of every
split of every fold through the feature store, then writes a report of every skipped clip.

Every fault is a :class:`~mcbench.specs.Dropped` with a ``kind`` ("missing", "truncated", …) and
an ``effect`` decided once by the dataset plugin, the same in both commands: ``skip`` leaves the
clip out (reported) and uses every other one; ``stop`` means the dataset cannot be used until
the fault is fixed. Both commands print faults through :func:`render_faults`: grouped by kind,
each kind with its count, its effect and up to :data:`EXAMPLES_PER_KIND` examples (so a rare
kind is never hidden behind a common one), and the full list in a JSON report whose path is
printed. The last line, ``status:``, says per kind whether its clips will be skipped or the
dataset cannot be used.

Exit status of ``check``: 0 when there is no problem (notes alone are fine), 1 when there are
problems, 2 for a usage error (unknown dataset, a root that is missing or not a data root of the
dataset). ``prepare``: 0 when every split has clips, 1 when a split is left without a usable clip,
2 when the command line or the dataset's files stop it (the message names the file).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from . import audio
from .plugins import Registry
from .specs import DatasetError, Dropped, HealthReport

#: Examples printed per fault kind; the report file has all of them.
EXAMPLES_PER_KIND = 5
#: The kind of the fault added when nothing usable is left.
NO_CLIPS = "no usable clip"
CHECK_REPORT = "check-report.json"


# --------------------------------------------------------------------------- faults


def kind_of(fault: Dropped) -> str:
    """A fault's kind: its own, else read from what the feature store recorded."""
    if fault.kind:
        return fault.kind
    if fault.step == "length":
        return audio.TOO_SHORT
    if fault.step == "decode":
        return audio.kind_of(fault.reason, fault.path)
    # a plugin that sets no kind: the reason up to its first detail
    reason = fault.reason
    if fault.path and reason.startswith(fault.path):
        reason = reason[len(fault.path):].lstrip(": ")
    return reason.split(":")[0].split(" (")[0].strip() or "other"


def _grouped(faults: Iterable[Dropped]) -> list[tuple[str, bool, list[Dropped]]]:
    """``(kind, fatal, faults)`` groups: the faults that stop the dataset first, then by count."""
    groups: dict[tuple[str, bool], list[Dropped]] = {}
    for fault in faults:
        groups.setdefault((kind_of(fault), fault.fatal), []).append(fault)
    ordered = sorted(groups.items(), key=lambda kv: (not kv[0][1], -len(kv[1]), kv[0][0]))
    return [(kind, fatal, items) for (kind, fatal), items in ordered]


def _example(fault: Dropped) -> str:
    reason = fault.reason
    if fault.path and reason.startswith(f"{fault.path}: "):
        reason = reason[len(fault.path) + 2:]
    if fault.fatal:  # the reason names the file
        return f"    - {reason}"
    where = f" ({fault.path})" if fault.path and fault.path not in reason else ""
    step = f" [{fault.step}]" if fault.step else ""
    return f"    - {fault.id}{where}{step}: {reason}"


def render_faults(faults: Sequence[Dropped], title: str) -> list[str]:
    """``title: N`` and one block per kind: count, effect, up to EXAMPLES_PER_KIND examples."""
    if not faults:
        return [f"{title}: none"]
    groups = _grouped(faults)
    lines = [f"{title}: {len(faults)} in {len(groups)} kind(s)"]
    for kind, fatal, items in groups:
        effect = "the dataset cannot be used" if fatal else "clip(s) skipped"
        lines.append(f"  {kind}: {len(items)} ({effect})")
        lines += [_example(f) for f in items[:EXAMPLES_PER_KIND]]
        if len(items) > EXAMPLES_PER_KIND:
            lines.append(f"    … and {len(items) - EXAMPLES_PER_KIND} more (see the report file)")
    return lines


def _counts(groups: list[tuple[str, bool, list[Dropped]]]) -> str:
    return ", ".join(f"{len(items)} {kind}" for kind, _, items in groups)


def status_line(faults: Sequence[Dropped], next_step: str, fix_step: str,
                skip_words: str = "will be skipped") -> str:
    """The closing line: per kind, whether its clips are skipped or the dataset cannot be used."""
    fatal = _grouped(f for f in faults if f.fatal)
    skipped = _grouped(f for f in faults if not f.fatal)
    if fatal:
        line = (f"status: the dataset cannot be used ({_counts(fatal)}): fix that, then {fix_step}")
        if skipped:
            line += f"; besides, clips that {skip_words}: {_counts(skipped)}"
        return line
    if skipped:
        n = sum(len(items) for _, _, items in skipped)
        return f"status: {n} problem(s); these clips {skip_words}: {_counts(skipped)}. {next_step}"
    return f"status: OK, no problems. {next_step}"


def _write_json(path: Path, content: dict, echo: Callable[[str], None]) -> Path | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2, default=str))
    except OSError as exc:
        echo(f"could not write the report {path} ({exc.strerror or exc})")
        return None
    return path


def _fault_record(fault: Dropped) -> dict:
    return {**asdict(fault), "kind": kind_of(fault)}


# --------------------------------------------------------------------------- check


def _add_no_clips(report: HealthReport) -> None:
    """A report with nothing usable left gets the fault that says so (it stops the dataset)."""
    if report.fatal:
        return
    if report.n_listed == 0 and not report.problems:
        reason = "no clip is listed or found under the root"
    else:
        skipped = {p.id for p in report.skipped}
        if report.n_listed == 0 or len(skipped) < report.n_listed:
            return
        reason = (f"none of the {report.n_listed} listed clips is usable (see the skipped clips "
                  "above)")
    report.problems.append(Dropped(report.dataset, str(report.root), reason, "dataset", NO_CLIPS,
                                   Dropped.STOP))


def render_report(report: HealthReport, report_path: Path | None = None) -> list[str]:
    lines = [
        f"dataset: {report.dataset}",
        f"root:    {report.root}",
        f"layout:  {report.layout}",
        f"files:   {report.n_found} found of {report.n_listed} listed",
    ]
    for key, value in report.stats.items():
        lines.append(f"{key}: {json.dumps(value, default=str)}")
    lines += [f"note: {n}" for n in report.notes]
    lines += render_faults(report.problems, "problems")
    if report_path is not None:
        lines.append(f"report: {report_path} (every problem, note and statistic)")
    return lines


def check_report_path(cache: Path, dataset: str) -> Path:
    """Where ``check`` writes its report: beside ``prepare``'s, ``<cache>/<dataset>/``."""
    return Path(cache).absolute() / dataset / CHECK_REPORT


def check_dataset(registry: Registry, name: str, root: Path | None, data_dir: Path | None,
                  echo: Callable[[str], None] = print, cache_dir: Path | None = None) -> bool:
    """Print the health report of dataset ``name``; True when it has no problem."""
    from .runner import cache_dir_for, dataset_root

    spec = registry.dataset(name)
    root = dataset_root(spec, root, data_dir)
    # a generated dataset's plugin explains a missing root itself (e.g. an interrupted generation)
    if not root.exists() and spec.materialize is None:
        raise DatasetError(
            f"{name}: data root {root} does not exist. "
            f"See `mcbench datasets {name}` for how to obtain the data, then pass --root."
        )
    report = spec.check(root)
    _add_no_clips(report)
    content = {
        "dataset": report.dataset, "root": str(report.root), "layout": report.layout,
        "n_listed": report.n_listed, "n_found": report.n_found, "stats": report.stats,
        "notes": report.notes,
        "by_kind": {kind: {"count": len(items), "effect": Dropped.STOP if fatal else Dropped.SKIP}
                    for kind, fatal, items in _grouped(report.problems)},
        "problems": [_fault_record(p) for p in report.problems],
    }
    path = _write_json(check_report_path(cache_dir_for(data_dir, cache_dir), name), content, echo)
    for line in render_report(report, path):
        echo(line)
    echo(status_line(report.problems, f"Next: mcbench data prepare {name} --root {root}",
                     f"run mcbench data check {name} --root {root} again"))
    return report.ok


# --------------------------------------------------------------------------- prepare


@dataclass
class Prepared:
    """What ``prepare`` did: its report file and whether every split kept a clip."""

    report_path: Path
    ok: bool


def prepare_dataset(registry: Registry, name: str, root: Path | None, data_dir: Path | None,
                    cache_dir: Path | None, frontends: list[str], protocol: str | None,
                    workers: int | None, params: dict,
                    echo: Callable[[str], None] = print, device: str = "cpu") -> Prepared:
    from .features import FeatureStore, FrontEnd, prepare_partition
    from .runner import cache_dir_for, check_device, dataset_root, folds_for, load_partition

    spec = registry.dataset(name)
    # Every input is checked before anything is decoded or written.
    spec.resolve_params(params)
    check_device(device)
    if device == "auto":
        from .training import resolve_device

        device = str(resolve_device(device))
    root = dataset_root(spec, root, data_dir)
    protocol = protocol or spec.default_protocol
    if protocol not in spec.protocols:
        raise ValueError(f"{name} has protocols {sorted(spec.protocols)}; got {protocol!r}")
    cache = cache_dir_for(data_dir, cache_dir)
    skipped: dict[str, Dropped] = {}
    sizes: dict[str, dict] = {}
    warnings: list[str] = []
    for fe_name in frontends:
        for fold in folds_for(spec, protocol, None):
            partition = load_partition(spec, root, protocol, fold, params)
            warnings += [w for w in partition.notes.get("warnings", []) if w not in warnings]
            fe = FrontEnd(fe_name, seconds=partition.clip_seconds or spec.clip_seconds)
            store = FeatureStore(cache, spec.name, root, fe)
            feats, dropped = prepare_partition(store, partition, spec.task, workers,
                                               device=device)
            for d in list(partition.dropped) + dropped:
                skipped.setdefault(d.id, d)
            key = f"{fe_name}" + (f"/fold{fold}" if fold is not None else "")
            sizes[key] = {s: len(f) for s, f in feats.items()}
    report_path = cache.absolute() / spec.name / f"prepare-report-{protocol}.json"
    empty = [f"{key} {split}" for key, s in sizes.items() for split, n in s.items() if n == 0]
    faults = list(skipped.values())
    if empty:
        faults.append(Dropped(name, str(root), f"no usable clip left in {', '.join(empty)} "
                              "(see the skipped clips above)", "dataset", NO_CLIPS, Dropped.STOP))
    report = {"dataset": name, "root": str(root), "protocol": protocol, "frontends": frontends,
              "split_sizes": sizes, "n_skipped": len(skipped), "notes": warnings,
              "skipped": [_fault_record(d) for d in skipped.values()],
              "fatal": [_fault_record(d) for d in faults if d.fatal]}
    written = _write_json(report_path, report, echo)
    for key, s in sizes.items():
        echo(f"{key}: " + ", ".join(f"{k} {v}" for k, v in s.items()))
    for warning in warnings:
        echo(f"note: {warning}")
    for line in render_faults(faults, "skipped clips" if not empty else "faults"):
        echo(line)
    if written is not None:
        echo(f"report: {written} (every skipped clip and why)")
    run_hint = f"mcbench run --models all --dataset {name}" + (
        f" --root {root}" if root != dataset_root(spec, None, data_dir) else "")
    echo(status_line(faults, f"Features cached under {cache / spec.name}. Next: {run_hint}",
                     f"run mcbench data check {name} --root {root}", skip_words="were skipped"))
    return Prepared(report_path, not empty)
