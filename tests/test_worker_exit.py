"""Decoder worker processes end when the mcbench process that started them is killed.

A SIGKILL (or an out-of-memory kill) gives the parent no chance to stop its pool; before, the
workers went on decoding a dataset nobody waited for. :func:`mcbench.features.exit_with_parent`
is every decoding pool's initializer; this kills a parent with busy workers and waits for them.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import mcbench

PARENT = textwrap.dedent("""
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    from pathlib import Path
    from mcbench.features import exit_with_parent

    def busy(path):
        Path(path).write_text(str(os.getpid()))
        time.sleep(600)  # a decoder still at work when its parent dies

    if __name__ == "__main__":
        folder = Path(sys.argv[1])
        pool = ProcessPoolExecutor(2, mp_context=get_context("spawn"), initializer=exit_with_parent,
                                   initargs=(os.getpid(),))
        for i in range(2):
            pool.submit(busy, str(folder / f"worker{i}"))
        while len(list(folder.glob("worker*"))) < 2:
            time.sleep(0.05)
        time.sleep(0.2)
        print(" ".join(p.read_text() for p in sorted(folder.glob("worker*"))), flush=True)
        time.sleep(600)
""")



def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie awaiting its reaper is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and getppid semantics are POSIX")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert workers and all(_alive(p) for p in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "decoder workers outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_every_process_pool_in_mcbench_exits_with_its_parent():
    """A new pool created without the initializer would bring the leak back."""
    roots = [Path(mcbench.__file__).parent, Path(mcbench.__file__).parent.parent / "plugins"]
    pools = []
    for root in roots:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "ProcessPoolExecutor":
                    kwargs = {k.arg: k.value for k in node.keywords}
                    pools.append((path.name, node.lineno,
                                  getattr(kwargs.get("initializer"), "id", None)))
    assert pools, "no process pool found: the test looks in the wrong place"
    assert all(init == "exit_with_parent" for _, _, init in pools), pools
