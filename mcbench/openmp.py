"""How torch's OpenMP threads wait between parallel regions (read by libgomp once, when torch
loads it, so :mod:`mcbench.training` applies this before it imports torch)."""

from __future__ import annotations

import os
from collections.abc import Mapping

#: The variables libgomp reads for how a thread waits (an earlier value in the environment wins).
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def openmp_wait_settings(environ: Mapping[str, str], load: float | None = None,
                         cpus: int | None = None) -> dict[str, str]:
    """Environment settings for how torch's OpenMP threads wait between two parallel regions.

    A waiting thread either spins (it resumes at once) or sleeps (it leaves its core to other
    processes). Measured on a 2-core machine, CRNN-TF (``wang2019``, batch 8) trained 23.3
    clips/s with libgomp's default (spin for 300,000 rounds, then sleep) against 21.1 with
    ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once) when the machine was otherwise idle, but 9.9
    against 12.1 beside one busy process. So a machine whose 1-minute load average is below
    half its cores gets the default, written out as ``GOMP_SPINCOUNT=300000`` so that the
    processes it starts (decoding workers, ``mcbench bench``'s measuring children) make the
    same choice; a busier one gets ``PASSIVE``. An ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``
    already in the environment wins. ``load`` and ``cpus`` default to this machine's. Returns
    the variables to set (none when one is set).
    """
    if any(name in environ for name in WAIT_VARIABLES):
        return {}
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cpus = cpus or os.cpu_count() or 1
    if load < cpus / 2:
        return {"GOMP_SPINCOUNT": "300000"}
    return {"OMP_WAIT_POLICY": "PASSIVE"}
