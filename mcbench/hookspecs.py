"""The mcbench plugin contract.

A plugin is any module with functions decorated by ``mcbench.hookimpl`` implementing one or
more of the hooks below. Each hook returns a list of specs (cheap metadata plus a factory);
heavy imports such as torch belong inside the factory, so that listing plugins stays fast.

Register a plugin through an entry point in the ``mcbench`` group of your package::

    [project.entry-points.mcbench]
    my_model = "my_package.my_model"

or drop a single ``.py`` file into a local plugin folder (``--plugins-dir`` or the
``MCBENCH_PLUGINS_DIR`` environment variable). The built-in plugins use entry points too.
"""

from __future__ import annotations

import pluggy

from .specs import DatasetSpec, MetricSpec, ModelSpec

hookspec = pluggy.HookspecMarker("mcbench")


@hookspec
def mcbench_models() -> list[ModelSpec]:
    """Return the model plugins this module provides."""


@hookspec
def mcbench_datasets() -> list[DatasetSpec]:
    """Return the dataset plugins this module provides."""


@hookspec
def mcbench_metrics() -> list[MetricSpec]:
    """Return the metric plugins this module provides."""
