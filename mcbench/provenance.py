"""Provenance of a run: hardware, package versions, the git commit, peak memory.

Every run record carries these so that a number can be traced to the machine and the code that
produced it. Nothing here fails a run: what cannot be found is ``None``. This module never
imports torch: :func:`provenance` asks torch about the GPU only when the caller imported it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions every record carries.
PROVENANCE_PACKAGES = (
    "mcbench",
    "torch",
    "tensorflow",
    "keras",
    "numpy",
    "scipy",
    "librosa",
    "soundfile",
    "scikit-learn",
    "pluggy",
    "tabulate",
)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    with contextlib.suppress(OSError, IndexError):
        text = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace")
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 ..."
        words = text.split("Kernel Module", 1)[1].split()
        return words[0]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return out.splitlines()[0].strip() if out else None
    return None


def _gpu_info() -> dict[str, Any]:
    """GPU name, driver and CUDA runtime, asked of torch only if the caller imported it."""
    info: dict[str, Any] = {"gpu": None, "cuda_driver": None, "cuda_runtime": None}
    torch = sys.modules.get("torch")
    if torch is None:
        return info
    try:
        if not torch.cuda.is_available():
            return info
        info["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
        info["cuda_runtime"] = getattr(torch.version, "cuda", None)
    except Exception:  # a broken CUDA setup must not fail a run's bookkeeping
        return info
    info["cuda_driver"] = _nvidia_driver()
    return info


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout holding this package, else of the cwd; else None."""
    for folder in (Path(__file__).resolve().parent, Path.cwd()):
        try:
            out = subprocess.run(
                ["git", "-C", str(folder), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out:
            return out
    return None


def provenance() -> dict[str, Any]:
    """``{"hardware": ..., "packages": ..., "git_commit": ...}`` for a run record; never fails.

    ``hardware`` holds ``platform``, ``python``, ``cpu``, ``cpu_count``, ``gpu``,
    ``cuda_driver`` (the NVIDIA kernel driver) and ``cuda_runtime`` (torch's CUDA version).
    """
    hardware = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        **_gpu_info(),
    }
    return {"hardware": hardware, "packages": _package_versions(), "git_commit": git_commit()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB; NaN where unavailable.

    Linux: ``VmHWM`` from ``/proc/self/status``, because ``getrusage``'s ``ru_maxrss`` survives
    ``exec`` and would report the parent's peak for a freshly started process.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> None:
    """Start a new peak-memory measurement for this process (Linux ≥ 4.0; elsewhere a no-op),
    so each run of a ``--models all`` invocation reports its own peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
