"""Shared pytest fixtures.

``shared_dir`` points at the real public metadata and clips in ``../shared`` (beside the
checkout). Tests that need it are skipped, with the reason, when it is absent; nothing from it is
ever copied into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path | None:
    candidates = [os.environ.get("MCBENCH_SHARED_DIR", ""), REPO.parent / "shared", REPO / "shared"]
    for c in candidates:
        if c and (Path(c) / "data").is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    found = _find_shared()
    if found is None:
        pytest.skip(
            "reference data ../shared is absent (set MCBENCH_SHARED_DIR to its path to run this test)"
        )
    return found


@pytest.fixture(autouse=True)
def _isolated_plugin_env(monkeypatch):
    """Tests must not pick up a developer's own plugin folders or disabled-plugin settings."""
    monkeypatch.delenv("MCBENCH_PLUGINS_DIR", raising=False)
    monkeypatch.delenv("MCBENCH_DISABLE_PLUGINS", raising=False)
