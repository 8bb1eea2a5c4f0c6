"""Plugin discovery and the registry of models, datasets and metrics.

Plugins come from entry points in the ``mcbench`` group (the built-ins register this way too)
and from local plugin folders: every ``*.py`` file in ``--plugins-dir`` or in the folders of the
``MCBENCH_PLUGINS_DIR`` environment variable (``os.pathsep``-separated). A plugin that fails to
import, or whose hook raises (an ``Exception``, or ``SystemExit`` from an argparse script or a
``sys.exit()`` on the plugin path), or whose hook returns something other than a list of specs, is
recorded with its error and skipped; every other plugin still works. ``KeyboardInterrupt`` is never
caught. A plugin folder that does not exist is recorded too (:attr:`Registry.missing_dirs`): the
commands that do work refuse to start, the listing commands warn. ``MCBENCH_DISABLE_PLUGINS`` (comma-separated entry-point names or file stems) switches
plugins off. Two plugins providing the same name is an error naming both, raised when that name
is used and shown by ``mcbench plugins``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .specs import DatasetSpec, MetricSpec, ModelSpec, PluginError

ENTRY_POINT_GROUP = "mcbench"
PLUGINS_DIR_ENV = "MCBENCH_PLUGINS_DIR"
DISABLE_ENV = "MCBENCH_DISABLE_PLUGINS"

KINDS = {
    "model": ("mcbench_models", ModelSpec),
    "dataset": ("mcbench_datasets", DatasetSpec),
    "metric": ("mcbench_metrics", MetricSpec),
}


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin module."""

    name: str
    origin: str  # "entry point <dist>" or a file path
    module: str
    error: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


#: What a plugin may raise without taking the harness down: any error, and ``SystemExit`` (an
#: argparse ``parse_args()`` or a ``sys.exit()`` left in a script that became a plugin).
#: ``KeyboardInterrupt`` is not among them: Ctrl-C still stops the command.
PLUGIN_FAILURES = (Exception, SystemExit)


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _short_error(exc: BaseException, during: str = "import", source: str | None = None) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    # the plugin's own line where the error came out of it (not argparse's sys.exit call)
    mine = [f for f in frames if source and _same_file(f.filename, source)]
    frame = (mine or frames)[-1] if frames else None
    where = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
    if isinstance(exc, SystemExit) and during == "import":
        return (f"SystemExit({exc.code!r}) during import{where}: the module exits the program when "
                "imported (argparse's parse_args() or sys.exit() at module level?); keep script "
                "code under `if __name__ == \"__main__\":`")
    if isinstance(exc, SystemExit):
        return (f"SystemExit({exc.code!r}) in {during}{where}: the hook exits the program "
                "(argparse's parse_args() or sys.exit()?); a hook returns its specs, and reports a "
                "problem by raising an exception")
    return f"{type(exc).__name__}: {exc}{where}"


def _describe(value: Any) -> str:
    """``a dict (keys 'a', 'b')`` / ``a str ('text')`` — what a hook returned, for messages."""
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:3]) + (", …" if len(value) > 3 else "")
        return f"{article} {kind} (keys {keys})" if value else f"an empty {kind}"
    text = repr(value)
    return f"{article} {kind} ({text[:60]}{'…' if len(text) > 60 else ''})"


def hook_specs(result: Any, hook_name: str, spec_type: type, owner: str) -> list[Any]:
    """The specs a hook returned, as a list; else :class:`PluginError` saying what came back and
    what the hook must return. ``None`` is no specs; a single spec is taken as a list of one."""
    expected = (f"it must return a list of {spec_type.__name__} "
                f"(e.g. return [{spec_type.__name__}(...)])")
    if result is None:
        return []
    if isinstance(result, spec_type):
        return [result]
    if isinstance(result, dict):
        hint = ""
        if result and all(isinstance(v, spec_type) for v in result.values()):
            hint = "; to return the dict's specs, return list(the_dict.values())"
        raise PluginError(f"{owner}: {hook_name}() returned {_describe(result)}; {expected}{hint}")
    if isinstance(result, (str, bytes)) or not hasattr(result, "__iter__"):
        raise PluginError(f"{owner}: {hook_name}() returned {_describe(result)}; {expected}")
    specs = list(result)
    for i, spec in enumerate(specs):
        if not isinstance(spec, spec_type):
            other = next((h for h, t in KINDS.values() if isinstance(spec, t)), None)
            hint = f" ({type(spec).__name__} belongs in {other}())" if other else ""
            raise PluginError(f"{owner}: {hook_name}() returned a list whose item {i} is "
                              f"{_describe(spec)}, expected {spec_type.__name__}{hint}; {expected}")
    return specs


def plugin_dir_sources(explicit: list[Path] | None) -> list[tuple[Path, str]]:
    """Every local plugin folder with where it was given: ``--plugins-dir`` or the environment."""
    dirs = [(Path(p), "--plugins-dir") for p in (explicit or [])]
    env = os.environ.get(PLUGINS_DIR_ENV, "")
    dirs += [(Path(p), f"${PLUGINS_DIR_ENV}") for p in env.split(os.pathsep) if p.strip()]
    return dirs


def missing_plugin_dirs(explicit: list[Path] | None) -> list[str]:
    """One message per plugin folder that is not a folder, naming the option or variable."""
    out = []
    for folder, source in plugin_dir_sources(explicit):
        if not folder.is_dir():
            what = ("is not a folder (give the folder that holds the plugin's .py files)"
                    if folder.exists() else "does not exist (fix the path or leave it out)")
            out.append(f"{source} {folder}: the plugin folder {what}; no plugin was loaded from it")
    return out


class Registry:
    """Every spec from every loaded plugin, looked up by kind and name."""

    def __init__(self, plugin_dirs: list[Path] | None = None, use_entry_points: bool = True):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.disabled = {s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()}
        #: One message per plugin folder that does not exist (see :func:`missing_plugin_dirs`).
        self.missing_dirs = missing_plugin_dirs(plugin_dirs)
        self._specs: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        self._providers: dict[str, dict[str, list[str]]] = {k: {} for k in KINDS}
        if use_entry_points:
            self._load_entry_points()
        for folder in self._plugin_dirs(plugin_dirs):
            self._load_folder(folder)
        self._collect()

    # ------------------------------------------------------------------ discovery
    @staticmethod
    def _plugin_dirs(explicit: list[Path] | None) -> list[Path]:
        return [folder for folder, _ in plugin_dir_sources(explicit)]

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.disabled:
                continue
            dist = getattr(ep.dist, "name", None) or "?"
            info = PluginInfo(name=ep.name, origin=f"entry point ({dist})", module=ep.value)
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
            except PLUGIN_FAILURES as exc:  # a broken plugin must not break the others
                info.error = _short_error(exc)
            self.plugins.append(info)

    def _load_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            self.plugins.append(
                PluginInfo(name=str(folder), origin=str(folder), module="",
                           error=f"plugin folder {folder} does not exist")
            )
            return
        for path in sorted(folder.glob("*.py")):
            if path.stem.startswith("_") or path.stem in self.disabled:
                continue
            mod_name = f"mcbench_local_plugins.{path.stem}"
            info = PluginInfo(name=path.stem, origin=str(path), module=mod_name)
            try:
                spec = importlib.util.spec_from_file_location(mod_name, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                spec.loader.exec_module(module)
                if self.pm.is_registered(module) or self.pm.has_plugin(path.stem):
                    raise PluginError(f"a plugin named {path.stem!r} is already registered")
                self.pm.register(module, name=path.stem)
            except PLUGIN_FAILURES as exc:
                sys.modules.pop(mod_name, None)
                info.error = _short_error(exc, source=str(path))
            self.plugins.append(info)

    def _collect(self) -> None:
        by_name = {p.name: p for p in self.plugins}
        for kind, (hook_name, spec_type) in KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            # Call each implementation on its own, so one raising hook cannot hide the others.
            for impl in hook.get_hookimpls():
                info = by_name.get(impl.plugin_name)
                module = info.module if info is not None else getattr(impl.plugin, "__name__", "?")
                owner = f"plugin {impl.plugin_name!r} (module {module})"
                source = getattr(getattr(impl.function, "__code__", None), "co_filename", None)
                try:
                    returned = impl.function()
                except PLUGIN_FAILURES as exc:
                    if info is not None:
                        info.error = _short_error(exc, during=f"{hook_name}()", source=source)
                    continue
                try:
                    specs = hook_specs(returned, hook_name, spec_type, owner)
                except PLUGIN_FAILURES as exc:  # a generator the hook returned may raise too
                    if info is not None:
                        info.error = str(exc) if isinstance(exc, PluginError) else _short_error(
                            exc, during=f"{hook_name}()", source=source)
                    continue
                for spec in specs:
                    # Metrics are identified by key: display names repeat across tasks ("ROC-AUC").
                    ident = spec.key if kind == "metric" else spec.name
                    self._providers[kind].setdefault(ident, []).append(impl.plugin_name)
                    self._specs[kind].setdefault(ident, spec)
                    if info is not None:
                        info.provides.setdefault(kind, []).append(ident)

    # ------------------------------------------------------------------ lookup
    def conflicts(self, kind: str) -> dict[str, list[str]]:
        return {n: p for n, p in self._providers[kind].items() if len(p) > 1}

    def names(self, kind: str) -> list[str]:
        return sorted(self._specs[kind])

    def specs(self, kind: str) -> list[Any]:
        conflicts = self.conflicts(kind)
        return [self._specs[kind][n] for n in self.names(kind) if n not in conflicts]

    def get(self, kind: str, name: str) -> Any:
        providers = self._providers[kind].get(name, [])
        if len(providers) > 1:
            raise PluginError(
                f"{kind} {name!r} is provided by more than one plugin: {' and '.join(providers)}. "
                f"Disable one with {DISABLE_ENV}=<plugin name>."
            )
        if name not in self._specs[kind]:
            raise PluginError(self.unknown_message(kind, name))
        return self._specs[kind][name]

    def unknown_message(self, kind: str, name: str) -> str:
        known = self.names(kind)
        msg = f"unknown {kind} {name!r}. Available {kind}s: {', '.join(known) or '(none)'}."
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            msg += f" Did you mean {close[0]!r}?"
        broken = [p for p in self.plugins if not p.ok]
        if broken:
            msg += " Some plugins failed to load; run `mcbench plugins` to see why."
        return msg

    def model(self, name: str) -> ModelSpec:
        return self.get("model", name)

    def dataset(self, name: str) -> DatasetSpec:
        return self.get("dataset", name)

    def metric(self, name: str) -> MetricSpec:
        return self.get("metric", name)

    def metrics_for(self, task: str) -> list[MetricSpec]:
        found = [m for m in self.specs("metric") if task in m.tasks]
        return sorted(found, key=lambda m: (m.order, m.name))

    def selection_metric(self, task: str, key: str | None = None) -> MetricSpec:
        """The metric that selects checkpoints on validation (a plugin declares ``selects=True``)."""
        candidates = self.metrics_for(task)
        if key:
            for m in candidates:
                if key in (m.key, m.name):
                    return m
            raise PluginError(
                f"no metric {key!r} for task {task}; choose from {[m.key for m in candidates]}"
            )
        for m in candidates:
            if m.selects:
                return m
        raise PluginError(
            f"no metric plugin declares itself the selection metric for task {task!r} "
            "(MetricSpec.selects=True); pass --select-metric"
        )


def resolve_model_names(registry: Registry, requested: str) -> list[str]:
    """Expand ``all`` or a comma-separated list, validating each name."""
    if requested.strip() == "all":
        return [m.name for m in registry.specs("model")]
    names = [n.strip() for n in requested.split(",") if n.strip()]
    for n in names:
        registry.model(n)  # raises with suggestions
    return names


def import_string(target: str) -> Any:
    """Import ``"package.module:attribute"``."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module
