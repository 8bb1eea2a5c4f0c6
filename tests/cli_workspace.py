"""The CLI on a throwaway workspace (data and results folders under one directory), for tests
that drive several commands on the same runs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mcbench.cli import main


def cli(ws: Path, *args: str):
    """``mcbench COMMAND ...`` with the workspace's results folder (and data folder for the
    commands that read data)."""
    data = ["--data-dir", str(ws / "data")] if args[0] in ("run", "embed") else []
    return CliRunner().invoke(main, [args[0], *data, "--results-dir", str(ws / "results"),
                                     *args[1:]])


def stored_records(ws: Path, dataset: str) -> list[dict]:
    """The run records of ``dataset`` in the workspace, as JSON objects, in file order."""
    return [json.loads(p.read_text())
            for p in sorted((ws / "results" / "runs" / dataset).glob("*.json"))]
