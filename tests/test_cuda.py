"""Training on CUDA agrees with the CPU (fp32 closely, bf16 autocast loosely).

Every test here is marked ``cuda`` and skips when torch sees no CUDA device (a CPU build of torch,
no GPU): run them with ``python -m pytest -m cuda`` on a GPU machine (``scripts/gpu-check.sh``
does). The model is FCN-4 (wang2019) on a short log-mel (96 × 160), through the torch trainer's
own step (:func:`mcbench.bench.torch_steps`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mcbench import bench
from mcbench.plugins import Registry
from mcbench.training import TorchLearner

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason=f"torch {torch.__version__} sees no CUDA device "
                              f"(build: {'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU'})"),
]

SHAPE = (1, 96, 160)
BATCH = 8


def _loss_before_and_after_one_step(device: str, precision: str) -> tuple[float, float]:
    """Loss of a fixed batch, one Adam step (evaluation mode: no dropout, batch norm on its
    running statistics, so both devices compute the same function), and the loss again."""
    torch.manual_seed(0)
    spec = Registry().model("fcn")
    model = spec.create(SHAPE, 50, task="multilabel", variant="wang2019", backend="torch")
    learner = TorchLearner(model, "multilabel")
    learner.device, learner.precision = torch.device(device), precision
    learner._place(learner.device)
    learner.module.eval()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((BATCH, *SHAPE), dtype=np.float32)).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy((rng.random((BATCH, 50)) > 0.9).astype(np.float32)).to(device)
    optimizer = torch.optim.Adam(learner.module.parameters(), lr=1e-3, eps=1e-7)

    def loss_of() -> torch.Tensor:
        with learner._autocast():
            logits = learner.module(x)
        return learner._loss(logits, y)

    loss = loss_of()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss_of()
    return float(loss.detach()), float(after)


def test_fp32_train_step_on_cuda_matches_the_cpu():
    cpu = _loss_before_and_after_one_step("cpu", "fp32")
    cuda = _loss_before_and_after_one_step("cuda", "fp32")
    # TF32 is off by default for matmuls; cuDNN convolutions may use it: 1e-3 relative
    assert cuda == pytest.approx(cpu, rel=1e-3)
    assert cpu[1] < cpu[0]  # the step lowered the loss


def test_bf16_train_step_on_cuda_is_close_to_fp32_on_the_cpu():
    cpu = _loss_before_and_after_one_step("cpu", "fp32")
    cuda = _loss_before_and_after_one_step("cuda", "bf16")
    # bfloat16 keeps 8 bits of mantissa: a few per cent
    assert cuda == pytest.approx(cpu, rel=5e-2)


def test_bench_on_cuda_reports_gpu_memory():
    spec = Registry().model("fcn")
    case = bench.Case("fcn", "wang2019", "torch", "cuda", "bf16", batch_size=4)
    row = bench.bench_case(spec, case, repeats=2, warmup=1, input_shape=SHAPE,
                           matmul=bench.matmul_rate("cuda", "bf16", n=4096))
    assert row["train_clips_per_s"] > 0 and row["eval_clips_per_s"] > 0
    assert row["cuda_max_allocated_mb"] > 0 and row["peak_memory_mb"] == row["cuda_max_allocated_mb"]
    assert 0 < row["train_matmul_fraction"] < 2
