"""Plugin discovery and the registry of models, datasets and metrics.

Plugins come from entry points in the ``mcbench`` group (the built-ins register this way too)
and from local plugin folders: every ``*.py`` file in ``--plugins-dir`` or in the folders of the
``MCBENCH_PLUGINS_DIR`` environment variable (``os.pathsep``-separated). A plugin that fails to
import, or whose hook raises, is recorded with its error and skipped; every other plugin still
works. ``MCBENCH_DISABLE_PLUGINS`` (comma-separated entry-point names or file stems) switches
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


def _short_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Registry:
    """Every spec from every loaded plugin, looked up by kind and name."""

    def __init__(self, plugin_dirs: list[Path] | None = None, use_entry_points: bool = True):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.disabled = {s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()}
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
        dirs = [Path(p) for p in (explicit or [])]
        env = os.environ.get(PLUGINS_DIR_ENV, "")
        dirs += [Path(p) for p in env.split(os.pathsep) if p.strip()]
        return dirs

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.disabled:
                continue
            dist = getattr(ep.dist, "name", None) or "?"
            info = PluginInfo(name=ep.name, origin=f"entry point ({dist})", module=ep.value)
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
            except Exception as exc:  # a broken plugin must not break the others
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
            except Exception as exc:
                sys.modules.pop(mod_name, None)
                info.error = _short_error(exc)
            self.plugins.append(info)

    def _collect(self) -> None:
        by_name = {p.name: p for p in self.plugins}
        for kind, (hook_name, spec_type) in KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            # Call each implementation on its own, so one raising hook cannot hide the others.
            for impl in hook.get_hookimpls():
                info = by_name.get(impl.plugin_name)
                try:
                    specs = list(impl.function() or [])
                    for spec in specs:
                        if not isinstance(spec, spec_type):
                            raise PluginError(
                                f"{hook_name}() returned {type(spec).__name__}, expected {spec_type.__name__}"
                            )
                except Exception as exc:
                    if info is not None:
                        info.error = _short_error(exc)
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
