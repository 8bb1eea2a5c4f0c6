"""What of ``scripts/gpu-check.sh`` can be checked without a GPU: its syntax, its step budget,
the commands it runs, how it stops on a machine without one, and the Table I projection it
prints (``python -m mcbench.bench project``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcbench import bench

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu-check.sh"
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def test_script_parses():
    out = subprocess.run([BASH, "-n", str(SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_steps_fit_the_eight_minute_budget_and_run_what_the_check_needs():
    text = SCRIPT.read_text()
    assert re.search(r"^BUDGET_S=\$\{BUDGET_S:-480\}$", text, re.M)
    limits = [int(n) for n in re.findall(r'^\s*step "[^"]+" (\d+) ', text, re.M)]
    assert len(limits) == 8
    # every step is also capped by what is left of the budget; the checks after the install
    # fit in it by themselves
    checks = [int(n) for n in re.findall(
        r'^\s*step "(?:torch build|CUDA tests|mcbench bench[^"]*|one short[^"]*|projected[^"]*)" (\d+) ',
        text, re.M)]
    assert len(checks) == 5 and sum(checks) <= 480
    assert "timeout --kill-after=10" in text
    assert "-m cuda tests/test_cuda.py" in text
    assert ("mcbench bench --models all --device cuda --precision fp32,bf16 \\\n"
            "    --batch-sizes 32") in text
    assert "--dataset synthetic" in text and "--device cuda" in text
    assert "python -m mcbench.bench project" in text
    assert "https://download.pytorch.org/whl/cu128" in text


def _fake_bin(tmp_path: Path, nvidia_smi: str | None) -> dict:
    """PATH with the basic tools and, if given, a fake ``nvidia-smi`` printing that line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("date", "dirname", "mkdir", "tee", "sed", "head", "tr", "timeout", "hostname",
                 "mktemp", "rm", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "python").symlink_to(sys.executable)
    mcbench = Path(sys.executable).with_name("mcbench")
    if mcbench.exists():
        (bin_dir / "mcbench").symlink_to(mcbench)
    if nvidia_smi is not None:
        smi = bin_dir / "nvidia-smi"
        smi.write_text(f"#!{BASH}\necho '{nvidia_smi}'\n")
        smi.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env.update(PATH=str(bin_dir), SKIP_INSTALL="1", OUT_DIR=str(tmp_path / "out"), BUDGET_S="60")
    return env


def test_without_a_gpu_it_stops_saying_why(tmp_path):
    out = subprocess.run([BASH, str(SCRIPT)], capture_output=True, text=True, timeout=60,
                         env=_fake_bin(tmp_path, None))
    assert out.returncode == 1
    assert "no NVIDIA GPU or driver here" in out.stdout


def test_with_a_cpu_build_of_torch_it_stops_before_the_checks(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here")
    out = subprocess.run([BASH, str(SCRIPT)], capture_output=True, text=True, timeout=120,
                         env=_fake_bin(tmp_path, "Fake GPU, 570.00, 1 MiB"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Fake GPU" in out.stdout
    assert "torch sees no CUDA device" in out.stdout and "set TORCH_INDEX" in out.stdout
    assert "CUDA tests" not in out.stdout
    assert list((tmp_path / "out").glob("gpu-check-*.log"))


def _row(model, variant, precision, train, batch=32):
    return {"model": model, "variant": variant, "backend": "torch", "device": "cuda",
            "precision": precision, "batch_size": batch, "channels_last": True, "compiled": False,
            "train_clips_per_s": train, "eval_clips_per_s": 4 * train, "peak_memory_mb": 1000.0}


def test_projection_of_table1_from_a_known_document(tmp_path):
    # five models at batch 32; 15,244 clips x 50 epochs = 762,200 clips per model
    rates = {"crnn": 2000.0, "crnn_tf": 1000.0, "end_to_end": 4000.0, "fcn": 500.0,
             "timbre_cnn": 8000.0}
    rows = [_row(m, "wang2019", "fp32", r) for m, r in rates.items()]
    rows += [_row(m, "wang2019", "bf16", 2 * r) for m, r in rates.items()]
    rows.append(_row("fcn", "wang2019", "fp32", 9999.0, batch=8))  # not batch 32: not used
    doc = {"machine": {"torch": {"gpu": "NVIDIA H200"}}, "rows": rows}
    projection = bench.project_hours(rows)
    fp32_hours = sum(762_200 / r / 3600 for r in rates.values())
    assert projection["totals"]["cuda/torch/fp32"] == round(fp32_hours, 4)
    assert projection["totals"]["cuda/torch/bf16"] == round(fp32_hours / 2, 4)
    fcn = [p for p in projection["per_model"] if p["model"] == "fcn" and p["precision"] == "fp32"]
    assert fcn[0]["batch_size"] == 32 and fcn[0]["hours"] == round(762_200 / 500 / 3600, 4)

    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, "-m", "mcbench.bench", "project", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "on NVIDIA H200" in out.stdout and "15,244 clips x 50 epochs" in out.stdout
    assert f"total cuda/torch/fp32: {fp32_hours:.2f} h ({fp32_hours * 60:.1f} min) for 5 model" \
        in out.stdout
    missing = subprocess.run([sys.executable, "-m", "mcbench.bench", "project",
                              str(tmp_path / "none.json")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
