"""Command-line input: every bad value fails before any work (no data generated, no features),
naming the option and the accepted values."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mcbench.cli import main


def run_args(tmp_path, *extra):
    return ["run", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
            "--results-dir", str(tmp_path / "results"), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "0"], "--seeds"),
    (["--seeds", "-3"], "--seeds"),
    (["--models", ""], "--models is empty"),
    (["--models", " , "], "--models is empty"),
    (["--folds", "a,b"], "--folds expects comma-separated integers"),
    (["--folds", "11"], "single fixed split; synthetic has no k-fold protocol, so drop --folds"),
    (["--patience", "-1"], "--patience"),
    (["--workers", "0"], "--workers"),
    (["--dataset-param", "seed=x"], "option 'seed' got 'x'; it takes an integer"),
    (["--dataset-param", "sead=1"], "unknown option 'sead' (did you mean 'seed'?)"),
    (["--device", "gpu"], "--device 'gpu': use auto, cpu, cuda or cuda:N"),
    (["--param", "crnn_tf.cel=gru", "--models", "crnn_tf"], "unknown option 'cel' (did you mean 'cell'?)"),
    (["--param", "crnn_tf.keras_gru=maybe", "--models", "crnn_tf"], "it takes true or false"),
    (["--param", "fcn.width=3", "--models", "crnn_tf"], "--param names model 'fcn', which is not among"),
    (["--variant", "crnn_tf=paperr", "--models", "crnn_tf"], "unknown variant 'paperr'"),
    (["--epochs", "0"], "--epochs must be at least 1"),
])
def test_bad_run_input_fails_before_any_work(tmp_path, extra, message):
    result = CliRunner().invoke(main, run_args(tmp_path, *extra))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def test_device_cuda_without_cuda_fails_before_any_work(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = CliRunner().invoke(main, run_args(tmp_path, "--models", "crnn_tf", "--device", "cuda"))
    assert result.exit_code == 2 and "--device cuda: torch sees no CUDA device" in result.output
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("frontends, message", [
    ("", "--frontend"), (",", "--frontend"), ("mel", "unknown front end 'mel'"),
])
def test_data_prepare_frontend_is_checked_first(tmp_path, frontends, message):
    result = CliRunner().invoke(main, ["data", "prepare", "synthetic", "--data-dir", str(tmp_path),
                                       "--frontend", frontends])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not list(tmp_path.iterdir())


def test_data_prepare_workers_and_params(tmp_path):
    r = CliRunner().invoke(main, ["data", "prepare", "synthetic", "--data-dir", str(tmp_path),
                                  "--workers", "0"])
    assert r.exit_code == 2 and "--workers" in r.output
    r = CliRunner().invoke(main, ["data", "prepare", "synthetic", "--data-dir", str(tmp_path),
                                  "--dataset-param", "n_clips=many"])
    assert r.exit_code == 2 and "option 'n_clips' got 'many'" in r.output
    assert not list(tmp_path.iterdir())
