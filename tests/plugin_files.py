"""Shared helpers for tests that write throwaway plugins or run the CLI in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: A minimal valid model plugin; ``.format(name=...)`` names its model.
GOOD_MODEL = '''
from mcbench import hookimpl
from mcbench.specs import ModelSpec

@hookimpl
def mcbench_models():
    return [ModelSpec(name="{name}", summary="test model", build=lambda *a, **k: None)]
'''


def write(folder: Path, name: str, text: str) -> Path:
    """``<folder>/<name>.py`` holding ``text`` (dedented)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


def modules_loaded_by_cli(args: list[str], modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` are imported after ``mcbench ARGS`` runs in a fresh interpreter."""
    code = (
        "import sys\n"
        "from mcbench.cli import main\n"
        "try:\n"
        f"    main({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED=' + ','.join(m for m in {modules!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED="), out.stdout[-500:]
    return [m for m in last[len("LOADED="):].split(",") if m]
