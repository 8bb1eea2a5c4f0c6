"""Where the runs of a grid execute: one after the other here, or fanned out as Ray tasks.

``mcbench run --executor ray`` (and ``mcbench reproduce --executor ray``) hands each run of the
grid to Ray (https://docs.ray.io) as one task. What stays the same as a local run:

* the features of each dataset, fold and front end are prepared once, in this process, before
  its runs are handed out; a task opens them again from the feature store (which must be on a
  filesystem every node sees) instead of receiving them;
* every task goes through :func:`mcbench.runner.execute`: the run's lock, its atomic record
  writes, skipping a finished run and resuming an interrupted one from its last checkpoint;
* a failing run is recorded as failed and the others go on; a task whose process died (killed
  for memory, a lost node) is recorded as failed here, and the next invocation resumes it.

A task asks Ray for one GPU when the runs train on CUDA, else for ``cpus_per_run`` CPUs (and
trains with that many torch threads). Without ``address`` a local Ray instance is started on
first use (and stopped by :meth:`RayExecutor.close`); with one (``auto``, ``ray://host:10001``)
the executor joins that cluster and leaves it running. Ray is imported only here and only when a
run is handed out: ``mcbench --help`` and ``mcbench plugins`` never import it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .specs import OptionError

EXECUTORS = ("local", "ray")
RAY_INSTALL = 'pip install -c constraints.txt -e ".[ray]"'


def check_ray_installed() -> None:
    """:class:`OptionError` saying how to install Ray when it is missing (looked up without
    importing it)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise OptionError(f"--executor ray needs Ray, which is not installed; install it with "
                          f"{RAY_INSTALL} (from the mcbench checkout)")


def make_executor(name: str, address: str | None = None, cpus_per_run: float = 1.0,
                  num_cpus: int | None = None, echo: Callable[[str], None] = print):
    """The executor ``--executor NAME`` asks for: ``None`` for ``local`` (the runner's own loop),
    a :class:`RayExecutor` for ``ray`` (after checking Ray is installed)."""
    if name not in EXECUTORS:
        raise OptionError(f"--executor {name!r}: use {' or '.join(EXECUTORS)}")
    if name == "local":
        if address is not None:
            raise OptionError("--ray-address needs --executor ray")
        return None
    check_ray_installed()
    if cpus_per_run <= 0:
        raise OptionError(f"--ray-cpus-per-run must be positive, got {cpus_per_run}")
    return RayExecutor(address=address, cpus_per_run=cpus_per_run, num_cpus=num_cpus, echo=echo)


@dataclass(frozen=True)
class _Job:
    """What a Ray task needs to run one run again in another process."""

    plan: Any  # mcbench.runner.RunPlan
    source: Any  # mcbench.runner.DataSource
    run_id: str
    results_dir: Path
    device: str
    restart: bool
    threads: int
    plugin_dirs: tuple[str, ...]
    disabled: tuple[str, ...]


_REGISTRIES: dict[tuple, Any] = {}


def _registry(plugin_dirs: tuple[str, ...], disabled: tuple[str, ...]):
    """The driver's plugins, loaded once per worker process (Ray reuses its workers)."""
    from .plugins import DISABLE_ENV, PLUGINS_DIR_ENV, Registry

    key = (plugin_dirs, disabled)
    if key not in _REGISTRIES:
        # the driver's folders are given explicitly: the inherited variable would load them twice
        os.environ[PLUGINS_DIR_ENV] = ""
        os.environ[DISABLE_ENV] = ",".join(disabled)
        _REGISTRIES[key] = Registry(plugin_dirs=[Path(d) for d in plugin_dirs])
    return _REGISTRIES[key]


def run_job(job: _Job) -> tuple[Any, list[str]]:
    """One run inside a Ray task: open its data, check it is the run the driver planned, and
    :func:`~mcbench.runner.execute` it. Returns the outcome and the messages it printed."""
    import socket

    import torch

    from .runner import Run, RunContext, RunOutcome, execute

    messages: list[str] = []
    torch.set_num_threads(max(1, job.threads))
    registry = _registry(job.plugin_dirs, job.disabled)
    run = Run.make(job.plan, job.source.open(registry))
    if run.run_id != job.run_id:
        error = (f"on {socket.gethostname()} the data of this run differ from the data where the "
                 f"grid was planned (run id {run.run_id}, planned {job.run_id}): every node must "
                 "see the same dataset root and feature cache (a shared filesystem)")
        return RunOutcome(job.run_id, job.plan.model, "failed", None, error), messages
    ctx = RunContext(job.results_dir, job.device, workers=1, progress=False, restart=job.restart,
                     echo=messages.append)
    return execute(registry, run, ctx), messages


def _plugin_dirs(registry) -> tuple[str, ...]:
    """The folders the driver's folder plugins were loaded from, as absolute paths."""
    folders = [str(Path(p.origin).resolve().parent) for p in registry.plugins
               if p.module.startswith("mcbench_local_plugins.")]
    return tuple(dict.fromkeys(folders))


class RayExecutor:
    """Runs each run as a Ray task (module docstring)."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_run: float = 1.0,
                 num_cpus: int | None = None, echo: Callable[[str], None] = print,
                 poll: float = 1.0):
        self.address = address
        self.cpus_per_run = cpus_per_run
        self.num_cpus = num_cpus
        self.echo = echo
        self.poll = poll
        self._started = False  # whether this executor started Ray (and so stops it)
        self._remote = None

    # -- the Ray session
    def _ray(self):
        check_ray_installed()
        import ray

        if not ray.is_initialized():
            kw: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False,
                                  "configure_logging": False}
            if self.address is None:
                ray.init(num_cpus=self.num_cpus, **kw)
                self._started = True
            else:
                try:
                    ray.init(address=self.address, **{k: v for k, v in kw.items()
                                                      if k != "include_dashboard"})
                except ConnectionError as exc:
                    raise OptionError(f"--ray-address {self.address}: no Ray cluster answered "
                                      f"({exc}); start one with `ray start --head` or check "
                                      "the address") from exc
        if self._remote is None:
            self._remote = ray.remote(max_retries=0)(run_job)
        return ray

    def close(self) -> None:
        """Stop the local Ray instance this executor started (a cluster is left running)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        self._remote = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- resources
    def _resources(self, ray, device: str) -> tuple[dict[str, float], str]:
        """Ray resources of one task and the device it trains on."""
        if device.startswith("cuda") or (
                device == "auto" and ray.cluster_resources().get("GPU", 0) >= 1):
            # Ray sets CUDA_VISIBLE_DEVICES per task: its one GPU is cuda:0 inside the task
            return {"num_gpus": 1, "num_cpus": self.cpus_per_run}, "cuda"
        return {"num_gpus": 0, "num_cpus": self.cpus_per_run}, "cpu"

    # -- the grid
    def run_all(self, registry, runs: Iterable[tuple[Any, Any]], ctx) -> list[Any]:
        """Hand every (run, data source) to Ray as it comes (a fold's features are ready before
        its runs come), then wait for all, showing one progress line; outcomes in input order."""
        from .runner import RunOutcome, record_failure, stored_complete
        from .storage import RunLock

        ray = None
        results_dir = Path(ctx.results_dir).resolve()
        dirs, disabled = _plugin_dirs(registry), tuple(sorted(registry.disabled))
        outcomes: list[Any] = []
        pending: dict[Any, tuple[int, Any]] = {}
        try:
            for run, source in runs:
                done = stored_complete(run, ctx)
                if done is not None:
                    outcomes.append(RunOutcome(run.run_id, run.plan.model, "skipped", done))
                    continue
                if ray is None:
                    ray = self._ray()
                    resources, device = self._resources(ray, ctx.device)
                job = _Job(run.plan, source, run.run_id, results_dir, device, ctx.restart,
                           int(max(1, self.cpus_per_run)), dirs, disabled)
                outcomes.append(None)
                pending[self._remote.options(**resources).remote(job)] = (len(outcomes) - 1, run)
            skipped = sum(o is not None for o in outcomes)
            if skipped:
                ctx.echo(f"✓ {skipped} run(s) already complete; skipping them")
            if not pending:
                return outcomes
            line = _Progress(ctx.echo, len(pending))
            locks = {ref: RunLock(results_dir, run.run_id).owner_path
                     for ref, (_, run) in pending.items()}
            failed = 0
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=self.poll)
                for ref in ready:
                    index, run = pending.pop(ref)
                    try:
                        outcome, messages = ray.get(ref)
                    except Exception as exc:  # the task's process died (RayTaskError, lost node)
                        error = f"the Ray task of this run died: {type(exc).__name__}: {exc}"
                        outcome, messages = record_failure(run, ctx, error[:2000]), []
                    outcomes[index] = outcome
                    if outcome.status == "failed":
                        failed += 1
                        line.note(next((m for m in messages if m.startswith("✗")),
                                       f"✗ {run.plan.label} failed: {outcome.error}"))
                    for m in messages:
                        if m.startswith("warning"):
                            line.note(f"{m} ({run.plan.label})")
                running = sum(1 for ref in pending if locks[ref].exists())
                line.show(line.total - len(pending) - failed, running, failed)
            line.end()
            return outcomes
        except KeyboardInterrupt:
            if ray is not None:
                for ref in pending:
                    ray.cancel(ref, force=True)
            raise


class _Progress:
    """One line: runs done, running, waiting for a slot, failed (rewritten in place on a
    terminal, a new line when the counts change otherwise)."""

    def __init__(self, echo: Callable[[str], None], total: int):
        self.echo, self.total = echo, total
        self.tty = echo is print and sys.stdout.isatty() or _is_click_echo(echo) and sys.stdout.isatty()
        self.last = ""
        self.t0 = time.monotonic()

    def text(self, done: int, running: int, failed: int) -> str:
        waiting = self.total - done - running - failed
        return (f"ray: {done}/{self.total} done, {running} running, {waiting} waiting, "
                f"{failed} failed ({time.monotonic() - self.t0:.0f} s)")

    def show(self, done: int, running: int, failed: int) -> None:
        text = self.text(done, running, failed)
        if self.tty:
            sys.stdout.write("\r" + text)
            sys.stdout.flush()
        elif text.rsplit(" (", 1)[0] != self.last.rsplit(" (", 1)[0]:
            self.echo(text)
        self.last = text

    def note(self, message: str) -> None:
        if self.tty:
            sys.stdout.write("\r" + " " * len(self.last) + "\r")
        self.echo(message)
        if self.tty and self.last:
            sys.stdout.write(self.last)

    def end(self) -> None:
        if self.tty:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _is_click_echo(echo) -> bool:
    return getattr(echo, "__module__", "").startswith("click")
