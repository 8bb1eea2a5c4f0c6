"""``mcbench report``: one page with every artifact reproduced so far.

``mcbench reproduce`` stores each artifact it renders under ``<results>/artifacts/`` as
``<name>[-demo].json``: its table (markdown), significance table, figure files, the run ids of
every row, whether it ran on the paper's data or the demo stand-ins, and when. The report
reads those files and the run records they name and writes a markdown page and its
self-contained HTML twin (figures embedded as data URIs), with the provenance of the runs —
hardware, packages, git commit, the data fingerprints of each dataset — and the compute each
artifact took (the sum of its runs' recorded wall-clock times).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ARTIFACTS = "artifacts"


def save_artifact(results_dir: Path, name: str, demo: bool, title: str, table: str,
                  significance: str, files: Sequence[Path], run_ids: Sequence[str]) -> Path:
    """Store one rendered artifact for the report (module docstring)."""
    from .storage import atomic_write_bytes

    path = Path(results_dir) / ARTIFACTS / f"{name}{'-demo' if demo else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"name": name, "title": title, "demo": demo, "table": table,
               "significance": significance, "figures": [str(f) for f in files],
               "run_ids": list(dict.fromkeys(run_ids)),
               "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_bytes(path, json.dumps(content, indent=2).encode("utf-8"))
    return path


def _load_artifacts(results_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((Path(results_dir) / ARTIFACTS).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "name" in data:
            out.append(data)
    return out


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min" if seconds >= 3600 else \
        f"{seconds // 60} min {seconds % 60:02d} s"


def build(results_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """The report's markdown and the artifacts it shows (oldest first)."""
    from .storage import load_records

    results_dir = Path(results_dir)
    artifacts = _load_artifacts(results_dir)
    records = {r.run_id: r for r in load_records(results_dir)}
    lines = ["# mcbench report", ""]
    if not artifacts:
        lines += ["No artifact reproduced yet: run e.g. `mcbench reproduce table3 --demo`."]
        return "\n".join(lines) + "\n", []
    lines += ["| artifact | data | runs | compute | reproduced |", "|---|---|---|---|---|"]
    for a in artifacts:
        runs = [records[i] for i in a["run_ids"] if i in records]
        a["compute_s"] = sum(float(r.timings.get("total_s", 0.0)) for r in runs)
        a["n_runs"] = len(runs)
        data = "DEMO: synthetic stand-ins" if a["demo"] else "the paper's data"
        lines.append(f"| {a['name']} | {data} | {len(runs)} | {_hms(a['compute_s'])} | {a['created']} |")
    lines.append("")
    for a in artifacts:
        lines += [f"## {a['name']}{' (DEMO: synthetic stand-ins, not the paper’s data)' if a['demo'] else ''}",
                  "", a["title"], "", a["table"].strip(), ""]
        if a.get("significance"):
            lines += ["Significance against the reference row:", "", a["significance"].strip(), ""]
        for fig in a["figures"]:
            if fig.endswith(".png"):
                lines += [f"![{Path(fig).stem}]({fig})", ""]
        runs = [records[i] for i in a["run_ids"] if i in records]
        lines += _provenance(runs)
    return "\n".join(lines) + "\n", artifacts


def _provenance(runs: Sequence) -> list[str]:
    if not runs:
        return ["Provenance: the runs of this artifact are no longer stored.", ""]
    hardware = sorted({json.dumps(r.hardware, sort_keys=True) for r in runs})
    commits = sorted({r.git_commit or "unknown" for r in runs})
    devices = sorted({r.device or "?" for r in runs})
    packages = runs[-1].packages
    data = {}
    for r in runs:
        splits = r.identity.dataset.splits or {}
        data.setdefault(r.dataset, set()).update(
            f"{name} {info.fingerprint[:10]}" for name, info in splits.items())
    out = ["<details><summary>Provenance</summary>", "",
           f"- devices: {', '.join(devices)}; git commit(s): {', '.join(commits)}",
           f"- hardware: {'; '.join(hardware)}",
           "- packages: " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v),
           ]
    for name, prints in sorted(data.items()):
        out.append(f"- data {name}: {len(prints)} split fingerprint(s), e.g. "
                   + ", ".join(sorted(prints)[:3]))
    out += ["", "</details>", ""]
    return out


def _html(markdown: str, artifacts: Sequence[dict[str, Any]]) -> str:
    """A self-contained HTML page: the markdown's text and tables, figures embedded."""
    body, table = [], []

    def flush():
        if table:
            rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table
                    if not set(line.replace("|", "").strip()) <= set("-: ")]
            head, rest = rows[0], rows[1:]
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                        + "</tr>" + "".join("<tr>" + "".join(
                            f"<td>{html.escape(c).replace('**', '')}</td>" for c in r) + "</tr>"
                            for r in rest) + "</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## ") or line.startswith("# ") or line.startswith("### "):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("![") and "](" in line:
            src = line[line.index("](") + 2:-1]
            try:
                data = base64.b64encode(Path(src).read_bytes()).decode("ascii")
                body.append(f'<img alt="{html.escape(Path(src).stem)}" '
                            f'src="data:image/png;base64,{data}" style="max-width:100%">')
            except OSError:
                body.append(f"<p>(figure {html.escape(src)} is missing)</p>")
        elif line.startswith(("<details", "</details")):
            body.append(line)
        elif line.strip():
            body.append(f"<p>{html.escape(line.lstrip('- '))}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:"
             "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>mcbench report</title>"
            f"<style>{style}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def write_report(results_dir: Path, output: Path | None = None) -> tuple[Path, Path, int]:
    """Write ``report.md`` and ``report.html`` (default: in ``results_dir``); returns their paths
    and the number of artifacts shown."""
    from .storage import atomic_write_bytes

    markdown, artifacts = build(results_dir)
    html_path = Path(output) if output else Path(results_dir) / "report.html"
    md_path = html_path.with_suffix(".md")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(md_path, markdown.encode("utf-8"))
    atomic_write_bytes(html_path, _html(markdown, artifacts).encode("utf-8"))
    return md_path, html_path, len(artifacts)
