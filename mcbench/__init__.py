"""mcbench: a plugin-based benchmarking suite for music classification."""

import pluggy

__version__ = "0.1.0"

#: Decorate hook implementations with this (see ``mcbench.hookspecs``).
hookimpl = pluggy.HookimplMarker("mcbench")

__all__ = ["hookimpl", "__version__"]
