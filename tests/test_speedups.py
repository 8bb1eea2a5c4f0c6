"""Process settings the torch trainer makes for CPU speed (their speed is measured by
``mcbench bench``, not asserted here): glibc keeps freed memory for reuse, and OpenMP threads
spin briefly on an idle machine and sleep at once on a busy one, unless the environment says
otherwise."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest
import torch

from mcbench.openmp import openmp_wait_settings
from mcbench.training import keep_freed_memory


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo2():
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    fn.restype = _Mallinfo2
    return fn()


def test_large_tensors_come_from_the_heap_and_stay_there_when_freed():
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc malloc settings (Linux)")
    _mallinfo2()
    assert keep_freed_memory()
    size = 96 << 20  # far above glibc's default mmap threshold (at most 32 MB)
    mapped_before = _mallinfo2().hblkhd
    t = torch.empty(size // 4, dtype=torch.float32).fill_(1.0)
    assert _mallinfo2().hblkhd == mapped_before  # not a fresh mmap
    del t
    assert _mallinfo2().fordblks >= size  # kept by malloc for the next step, not returned


def test_freed_blocks_larger_than_a_gibibyte_stay_too():
    # FCN-4's first conv output at batch 32 is 2.1 GB; a finite trim threshold handed it back
    # to the system every step and its pages faulted in again (a third of the step).
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc malloc settings (Linux)")
    _mallinfo2()
    assert keep_freed_memory()
    size = 5 << 28  # 1.25 GiB, never touched: its pages are not resident
    t = torch.empty(size // 4, dtype=torch.float32)
    del t
    assert _mallinfo2().fordblks >= size


def _wait_settings(env: dict[str, str]) -> tuple[str | None, str | None]:
    code = ("import os, mcbench.training; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=300)
    policy, spin = out.stdout.split()
    return (None if policy == "None" else policy), (None if spin == "None" else spin)


def test_openmp_threads_spin_briefly_on_an_idle_machine_and_sleep_on_a_busy_one():
    assert openmp_wait_settings({}, load=0.3, cpus=2) == {"GOMP_SPINCOUNT": "300000"}
    assert openmp_wait_settings({}, load=1.0, cpus=2) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert openmp_wait_settings({}, load=7.9, cpus=16) == {"GOMP_SPINCOUNT": "300000"}
    assert openmp_wait_settings({"OMP_WAIT_POLICY": "ACTIVE"}, load=9.0, cpus=2) == {}
    assert openmp_wait_settings({"GOMP_SPINCOUNT": "0"}, load=0.0, cpus=2) == {}


def test_the_process_sets_one_wait_setting_unless_the_environment_has_one():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    policy, spin = _wait_settings(env)
    assert (policy, spin) in (("PASSIVE", None), (None, "300000"))
    assert _wait_settings({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == ("ACTIVE", None)
    assert _wait_settings({**env, "GOMP_SPINCOUNT": "1000"}) == (None, "1000")


def test_the_cpu_learner_flushes_subnormal_floats_to_zero():
    from mcbench.training import TorchLearner

    try:
        TorchLearner(torch.nn.Linear(2, 1), "multilabel")._place(torch.device("cpu"))
        assert torch.tensor([1e-39], dtype=torch.float32).item() == 0.0
        assert torch.tensor([1e-30], dtype=torch.float32).item() > 0.0
    finally:
        torch.set_flush_denormal(False)
    assert torch.tensor([1e-39], dtype=torch.float32).item() > 0.0
