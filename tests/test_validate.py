"""`mcbench plugins validate`: passes for every built-in model, fails clearly for broken ones."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mcbench.cli import main
from mcbench.plugins import Registry
from mcbench.specs import MULTICLASS, MULTILABEL, ModelSpec
from mcbench.validate import validate_model

REGISTRY = Registry()


@pytest.mark.parametrize("name", [m.name for m in REGISTRY.specs("model")])
def test_every_builtin_model_honours_the_contract(name):
    spec = REGISTRY.model(name)
    lines: list[str] = []
    # One task per model keeps this fast; the torch models build the same network for both.
    task = MULTILABEL if MULTILABEL in spec.tasks else MULTICLASS
    ok = validate_model(spec, task=task, echo=lines.append)
    assert ok, "\n".join(lines)
    assert sum("[PASS]" in line for line in lines) >= 6


def _broken_spec(forward_body: str, name: str = "broken") -> ModelSpec:
    def build(input_shape, n_outputs, *, task, variant, **params):
        import torch
        from torch import nn

        class Broken(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(8, n_outputs)

            def forward(self, x):
                feats = torch.nn.functional.adaptive_avg_pool2d(x, (1, 8)).flatten(1)
                return eval(forward_body, {"torch": torch, "self": self, "feats": feats})  # noqa: S307

        return Broken()

    return ModelSpec(name=name, summary="deliberately broken", build=build, tasks=(MULTICLASS,))


def test_wrong_output_width_fails_with_a_message():
    lines: list[str] = []
    ok = validate_model(_broken_spec("self.lin(feats)[:, :2]"), echo=lines.append)
    assert not ok
    text = "\n".join(lines)
    assert "[FAIL] forward returns logits (B, K): got torch.Size([4, 2])" in text
    assert "check(s) failed" in text


def test_nan_outputs_fail():
    lines: list[str] = []
    ok = validate_model(_broken_spec("self.lin(feats) * float('nan')"), echo=lines.append)
    assert not ok and any("[FAIL] outputs are finite" in line for line in lines)


def test_model_that_cannot_learn_fails():
    # Detached output: gradients never reach the weights, so the loss cannot fall.
    lines: list[str] = []
    ok = validate_model(_broken_spec("self.lin(feats).detach() + 0 * self.lin.bias.sum()"),
                        echo=lines.append)
    assert not ok and any("[FAIL] a few training steps lower the loss" in line for line in lines)


def test_model_whose_build_raises_fails():
    def build(*args, **kwargs):
        raise RuntimeError("no such layer")

    lines: list[str] = []
    spec = ModelSpec(name="nobuild", summary="x", build=build)
    assert not validate_model(spec, echo=lines.append)
    assert any("[FAIL] build" in line and "no such layer" in line for line in lines)


def test_cli_validate_exit_codes(tmp_path):
    (tmp_path / "bad_width.py").write_text(
        "from mcbench import hookimpl\n"
        "from mcbench.specs import ModelSpec\n"
        "def build(input_shape, n_outputs, *, task, variant, **p):\n"
        "    from torch import nn\n"
        "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(n_outputs + 1))\n"
        "@hookimpl\n"
        "def mcbench_models():\n"
        "    return [ModelSpec(name='bad_width', summary='wrong width', build=build)]\n"
    )
    result = CliRunner().invoke(main, ["--plugins-dir", str(tmp_path), "plugins", "validate", "bad_width",
                                       "--task", "multiclass"])
    assert result.exit_code == 1
    assert "[FAIL] forward returns logits (B, K)" in result.output
    unknown = CliRunner().invoke(main, ["plugins", "validate", "no_such_model"])
    assert unknown.exit_code == 2 and "unknown model" in unknown.output
