"""Compute estimates of planned runs (mcbench.estimate): the clip counts each dataset declares
against its published split lists and its generator, the MAC arithmetic, and the time from a
throughput measured in a record or by ``mcbench bench``."""

from __future__ import annotations

import csv
import json

import pytest
from record_factory import make_record, records

from mcbench import estimate
from mcbench.compute import macs_per_clip
from mcbench.features import FrontEnd
from mcbench.plugins import Registry
from mcbench.runner import RunRequest, plan_runs

REGISTRY = Registry()


def _lines(path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def test_real_datasets_expect_their_published_split_sizes(shared_dir):
    lists = shared_dir / "data" / "mtat" / "jongpillee_split"
    mtat = REGISTRY.dataset("mtat").expected_split("fixed")
    assert (mtat.train, mtat.valid, mtat.test) == tuple(
        _lines(lists / f"{s}_list_pub.txt") for s in ("train", "valid", "test"))
    with open(shared_dir / "data" / "fma" / "split_counts_by_genre_top.csv") as f:
        medium = [r for r in csv.DictReader(f) if r["subset"] == "medium"]
    fma = REGISTRY.dataset("fma").expected_split("official")
    assert (fma.train, fma.valid, fma.test) == tuple(
        sum(int(r[c]) for r in medium) for c in ("training", "validation", "test"))
    gtzan = shared_dir / "data" / "gtzan"
    filtered = REGISTRY.dataset("gtzan").expected_split("filtered")
    assert (filtered.train, filtered.valid, filtered.test) == tuple(
        _lines(gtzan / f"{s}_filtered.txt") for s in ("train", "valid", "test"))
    cv = REGISTRY.dataset("gtzan").expected_split("cv10")
    assert (cv.train, cv.valid, cv.test) == (800, 100, 100)


@pytest.mark.parametrize("name,params,protocol", [
    ("synthetic", {"n_clips": 17, "seconds": 1.5, "split": (0.6, 0.2, 0.2)}, "fixed"),
    ("synthetic_genres", {"n_per_genre": 5, "seconds": 1.5}, "cv5"),
])
def test_generated_datasets_expect_what_they_generate(tmp_path, name, params, protocol):
    spec = REGISTRY.dataset(name)
    resolved = spec.resolve_params({**params, "progress": False, "workers": 1})
    expected = spec.expected_split(protocol, **resolved)
    spec.materialize(tmp_path, **resolved)
    partition = spec.tracks(tmp_path, protocol, 0 if protocol != "fixed" else None, **resolved)
    sizes = {k: len(v.tracks) for k, v in partition.splits.items()}
    assert (expected.train, expected.valid, expected.test) == (
        sizes["train"], sizes["valid"], sizes["test"])
    assert expected.clip_seconds == 1.5


def _plan(batch=4, epochs=3):
    req = RunRequest(models=["crnn_tf"], dataset="synthetic",
                     dataset_params={"n_clips": 50, "seconds": 10.0},
                     training={"max_epochs": epochs, "batch_size": batch})
    (plan,), _ = plan_runs(REGISTRY, req)
    return plan


def test_macs_of_a_run_are_the_clips_it_passes_through_the_model(tmp_path):
    plan = _plan()
    (cost,) = estimate.costs(REGISTRY, [plan], [], tmp_path, device="cpu")
    split = REGISTRY.dataset("synthetic").expected_split("fixed", n_clips=50, seconds=10.0)
    shape = FrontEnd(plan.frontend, seconds=10.0).shape
    assert shape[-1] < 1360  # the 10-s clips, not the default 29 s
    m = macs_per_clip(REGISTRY.model("crnn_tf"), plan.variant, 13, "multilabel", input_shape=shape)
    assert cost.macs == m * (3 * 3 * split.train + 3 * split.valid + split.test)
    assert cost.train_clips == split.train == 35
    assert cost.seconds is None and cost.measured_by is None


def test_time_comes_from_this_devices_records_then_from_bench(tmp_path):
    plan = _plan(batch=4, epochs=3)
    split = REGISTRY.dataset("synthetic").expected_split("fixed", n_clips=50, seconds=10.0)
    expected = 3 * split.train / 7.0 + (3 * split.valid + split.test) / 21.0
    rec = make_record("crnn_tf", plan.variant, training={"batch_size": 4})
    rec["history"] = [{"epoch": 0, "clips_per_s": 6.0}, {"epoch": 1, "clips_per_s": 7.0},
                      {"epoch": 2, "clips_per_s": 9.0}]
    (cost,) = estimate.costs(REGISTRY, [plan], records(rec), tmp_path, device="cpu")
    assert cost.measured_by == "records" and cost.seconds == pytest.approx(expected)
    # a CUDA estimate ignores CPU records; a bench row on CUDA answers it
    (cost,) = estimate.costs(REGISTRY, [plan], records(rec), tmp_path, device="cuda")
    assert cost.seconds is None
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "x.json").write_text(json.dumps({"rows": [
        {"model": "crnn_tf", "variant": plan.variant, "backend": "torch", "device": "cuda",
         "precision": "fp32", "batch_size": 32, "train_clips_per_s": 700.0},
        {"model": "crnn_tf", "variant": plan.variant, "backend": "torch", "device": "cuda",
         "precision": "bf16", "batch_size": 32, "train_clips_per_s": 1e6}]}))
    (cost,) = estimate.costs(REGISTRY, [plan], records(rec), tmp_path, device="cuda")
    assert cost.measured_by == "bench"
    assert cost.seconds == pytest.approx(expected * 7.0 / 700.0)
    text = estimate.summary([cost], "cuda", ["crnn_tf"])
    assert "time on this machine (cuda)" in text and "no measured" not in text


def test_units():
    assert estimate.macs_text(37_000_000_000_000_000) == "37 PMAC"
    assert estimate.macs_text(1_621_340_672) == "1.62 GMAC"
    assert estimate.hours_text(5400) == "1.5 h" and estimate.hours_text(90) == "1.5 min"
