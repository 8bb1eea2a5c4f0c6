"""`mcbench data check` / `data prepare` on a faithful MTAT fixture with faults. The commands go through the dataset contract only; nothing here is MTAT-specific
in the CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner
from fixtures_mtat import build_mtat

from mcbench.cli import main


def test_check_and_prepare_report_every_fault(tmp_path, shared_dir):
    fx = build_mtat(tmp_path, shared_dir)
    runner = CliRunner()
    data_dir = tmp_path / "data"
    check = runner.invoke(main, ["data", "check", "mtat", "--root", str(fx.root),
                                 "--data-dir", str(data_dir)])
    assert check.exit_code == 1, check.output  # faults present
    out = check.output
    for role in ("bad_missing", "bad_empty", "train_not_audio", "train_short"):
        assert fx.role[role] in out, (role, out)
    # grouped by kind, each with its decision; the full list in the report file
    assert "  not readable as audio: 1 (clip(s) skipped)" in out
    assert "  too short: 1 (clip(s) skipped)" in out
    report_file = data_dir / ".cache" / "features" / "mtat" / "check-report.json"
    assert f"report: {report_file.absolute()}" in out
    checked = json.loads(report_file.read_text())
    assert {p["id"]: p["kind"] for p in checked["problems"]} == {
        fx.role["train_not_audio"]: "not readable as audio", fx.role["train_short"]: "too short"}
    assert out.strip().splitlines()[-1].startswith(
        "status: 2 problem(s); these clips will be skipped: 1 not readable as audio, 1 too short.")

    cache = tmp_path / "cache"
    # the real top-50 list (the fixture alone has too few tagged clips to rank 50 tags)
    args = ["data", "prepare", "mtat", "--root", str(fx.root), "--cache-dir", str(cache), "--workers", "2",
            "--dataset-param", "tags=" + ",".join(fx.top50)]
    prep = runner.invoke(main, args)
    assert prep.exit_code == 0, prep.output
    report = json.loads(next(cache.glob("mtat/prepare-report-*.json")).read_text())
    skipped = {d["id"]: d for d in report["skipped"]}
    assert set(skipped) >= {fx.role[r] for r in ("bad_missing", "bad_empty", "bad_corrupt",
                                                  "train_not_audio", "train_short", "train_no_top50",
                                                  "valid_no_tags")}
    assert fx.role["train_28_8"] not in skipped and fx.role["train_normal"] not in skipped
    assert "decoded 5.0" in skipped[fx.role["train_short"]]["reason"]
    assert skipped[fx.role["train_short"]]["kind"] == "too short"
    assert skipped[fx.role["train_not_audio"]]["kind"] == "not readable as audio"
    assert skipped[fx.role["bad_corrupt"]]["kind"] == "known bad clip"
    assert report["split_sizes"]["logmel"] == {"train": 2, "valid": 1, "test": 3}
    # a second prepare reuses the cache and reports the same
    again = runner.invoke(main, args)
    assert again.exit_code == 0
    assert json.loads(next(cache.glob("mtat/prepare-report-*.json")).read_text()) == report


def test_prepare_computes_the_logmel_on_the_chosen_device(tmp_path, monkeypatch):
    """``data prepare --device``: the log-mel runs where asked; a CUDA device torch does not
    see is refused before anything is generated or decoded."""
    import torch

    import mcbench.features as features

    args = ["data", "prepare", "synthetic", "--data-dir", str(tmp_path / "data"),
            "--cache-dir", str(tmp_path / "cache"), "--workers", "1",
            "--dataset-param", "n_clips=6", "--dataset-param", "seconds=1.0"]
    if not torch.cuda.is_available():
        refused = CliRunner().invoke(main, [*args, "--device", "cuda"])
        assert refused.exit_code != 0 and "torch sees no CUDA device" in refused.output
        assert not (tmp_path / "data").exists() and not (tmp_path / "cache").exists()
    devices = []
    original = features.LogMel.__init__

    def spy(self, fe, device="cpu"):
        devices.append(device)
        original(self, fe, device)

    monkeypatch.setattr(features.LogMel, "__init__", spy)
    result = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert devices and set(devices) == {"cpu"}
