"""``mcbench.compute`` (MACs per clip) and ``mcbench bench`` (throughput, memory, reports)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from plugin_files import write
from torch import nn

from mcbench import bench, compute
from mcbench.cli import main
from mcbench.plugins import Registry

REGISTRY = Registry()


# --------------------------------------------------------------------------- MACs


def test_count_macs_matches_a_hand_count_of_conv_and_linear():
    # Conv 2->4, 3x3, 'same' padding on (2, 8, 6): every one of the 4*8*6 outputs is a sum of
    # 3*3*2 products -> 192 * 18 = 3456 MACs. Linear 192 -> 5: 960. Total 4416.
    module = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(192, 5))
    assert compute.count_macs(module, (2, 8, 6)) == 3456 + 960
    # per clip, whatever the batch
    assert compute.count_macs(module, (2, 8, 6), batch=3) == 4416
    # a stride-2 conv without padding: (8-3)//2+1 = 3 by (6-3)//2+1 = 2 outputs per channel
    strided = nn.Conv2d(2, 4, 3, stride=2)
    assert compute.count_macs(strided, (2, 8, 6)) == 4 * 3 * 2 * 3 * 3 * 2


def test_count_macs_restores_the_training_flag():
    module = nn.Sequential(nn.Linear(3, 2))
    module.train()
    assert compute.count_macs(module, (3,)) == 6
    assert module.training


def test_fcn_wang2019_macs_equal_the_sum_over_its_layers():
    # FCN-4 wang2019 on the paper's 96 x 1360 log-mel (shapes in the module docstring of
    # plugins/models/impl/fcn.py), out-size x k*k x c_in x c_out per conv:
    conv1 = 96 * 1360 * 9 * 1 * 128       # 'same' conv on the input
    conv2 = 48 * 340 * 9 * 128 * 384      # after pool (2,4)
    conv3 = 24 * 85 * 9 * 384 * 768       # after pool (4,5)/(2,4) 'same'
    conv4 = 4 * 8 * 9 * 768 * 2048        # stride-3 'same' conv on 12 x 22
    head = 2048 * 50
    expected = conv1 + conv2 + conv3 + conv4 + head
    assert expected == 13_237_522_432
    assert compute.macs_per_clip(REGISTRY.model("fcn"), "wang2019") == expected
    # original: same parameters, no stride-3 conv and floor pools: 33 % fewer MACs
    original = compute.macs_per_clip("fcn", "original")
    assert original == 96 * 1360 * 9 * 128 + 48 * 340 * 9 * 128 * 384 + 12 * 68 * 9 * 384 * 768 \
        + 4 * 8 * 9 * 768 * 2048 + 2048 * 50
    assert 1.3 < expected / original < 1.35


def test_macs_are_cached_and_none_for_a_non_torch_model():
    spec = REGISTRY.model("fcn")
    compute.macs_per_clip(spec, "wang2019")
    assert ("fcn", "wang2019", 50, "multilabel", (1, 96, 1360)) in compute._CACHE
    assert compute.macs_per_clip(REGISTRY.model("mfcc_svm"), "default", 10, "multiclass") is None
    assert compute.train_macs_per_clip(None) is None
    assert compute.train_macs_per_clip(10) == 30


def test_macs_of_a_small_input_shape():
    # the recurrent models are counted too, through the matrix products of their cells
    macs = compute.macs_per_clip("crnn_tf", "wang2019", input_shape=(1, 96, 160))
    full = compute.macs_per_clip("crnn_tf", "wang2019")
    assert macs is not None and full is not None
    assert 0 < macs < full


# --------------------------------------------------------------------------- bench

#: A model cheap at the paper's input size: an 8x8 average pool first, then a 3x3 conv
#: 1 -> 4 on 12 x 170 and a linear layer. Its Keras build (same layers) exists for the keras rows.
TINY_PLUGIN = '''
from mcbench import hookimpl
from mcbench.specs import ModelSpec


def build(input_shape, n_outputs, *, task, variant, **params):
    from torch import nn
    _, f, t = input_shape
    return nn.Sequential(nn.AvgPool2d(8), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * (f // 8) * (t // 8), n_outputs))


def keras_build(input_shape, n_outputs, *, task, variant, **params):
    from mcbench.keras_learner import load_keras
    keras = load_keras()
    _, f, t = input_shape
    inp = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Permute((2, 3, 1))(inp)
    x = keras.layers.AveragePooling2D(8)(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    out = keras.layers.Dense(n_outputs)(keras.layers.Flatten()(x))
    return keras.Model(inp, out)


@hookimpl
def mcbench_models():
    return [ModelSpec(name="tiny_bench", summary="tiny test model",
                      builds={"torch": build, "keras": keras_build},
                      variants={"a": "the only one", "b": "the same layers"})]
'''

# conv: 4 * 12 * 170 outputs * 9 products; linear: 4 * 12 * 170 * 50
TINY_MACS = 4 * 12 * 170 * 9 + 4 * 12 * 170 * 50


@pytest.fixture()
def tiny_dir(tmp_path):
    write(tmp_path / "plugins", "tiny_bench", TINY_PLUGIN)
    return tmp_path / "plugins"


def _run(args, tmp_path, tiny_dir):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    for old in (work / "results" / "bench").glob("*.json"):
        old.unlink()
    here = os.getcwd()
    os.chdir(work)  # the JSON goes to results/bench/ under the current folder
    try:
        result = CliRunner().invoke(main, ["--plugins-dir", str(tiny_dir), "bench", *args],
                                    catch_exceptions=False)
    finally:
        os.chdir(here)
    docs = [json.loads(p.read_text()) for p in sorted((work / "results" / "bench").glob("*.json"))]
    return result, docs


def test_bench_cli_writes_json_with_the_required_fields(tmp_path, tiny_dir):
    result, docs = _run(["--models", "tiny_bench", "--variant", "tiny_bench=all", "--batch-sizes",
                         "2,3", "--repeats", "2", "--warmup", "1", "--no-store", "--in-process", "--format", "json"],
                        tmp_path, tiny_dir)
    assert result.exit_code == 0, result.output
    (doc,) = docs
    rows = doc["rows"]
    assert [(r["variant"], r["batch_size"]) for r in rows] == [("a", 2), ("a", 3), ("b", 2), ("b", 3)]
    for r in rows:
        for field in ("model", "variant", "backend", "device", "precision", "batch_size",
                      "train_clips_per_s", "eval_clips_per_s", "peak_memory_mb", "macs_per_clip",
                      "train_matmul_fraction", "train_spread", "eval_spread"):
            assert field in r, field
        assert r["model"] == "tiny_bench" and r["backend"] == "torch" and r["device"] == "cpu"
        assert r["train_clips_per_s"] > 0 and r["eval_clips_per_s"] > 0
        assert r["train_spread"]["n"] == 2
        assert r["train_spread"]["min"] <= r["train_clips_per_s"] <= r["train_spread"]["max"]
        assert r["macs_per_clip"] == TINY_MACS
        assert r["peak_memory_mb"] > 0 and r["cuda_max_allocated_mb"] is None
        assert 0 < r["train_matmul_fraction"]
    # the printed JSON is the rows of the saved document
    assert json.loads(result.stdout[result.stdout.index("["):]) == rows
    assert doc["machine"]["torch"]["build"] in ("CPU", f"CUDA {torch.version.cuda}")
    wait = doc["machine"]["openmp_wait"]  # mcbench.training has set one of them, or the caller
    assert set(wait) == {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} and any(wait.values())
    assert doc["machine"]["git_commit"] is None or len(doc["machine"]["git_commit"]) == 40
    assert doc["matmul"][0]["macs_per_s"] > 0
    assert "[1/4]" in result.stderr and "tiny_bench/a torch cpu fp32 b2" in result.stderr


def test_bench_cli_csv_and_table_and_errors(tmp_path, tiny_dir):
    out = tmp_path / "rows.csv"
    result, _ = _run(["--models", "tiny_bench", "--batch-sizes", "2", "--repeats", "1",
                      "--warmup", "0", "--no-store", "--isolate", "--format", "csv", "-o", str(out)],
                     tmp_path, tiny_dir)
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    header = lines[0].split(",")
    assert {"model", "train_clips_per_s", "train_iqr", "gmacs_per_clip"} <= set(header)
    values = dict(zip(header, lines[1].split(",")))
    assert values["model"] == "tiny_bench" and values["batch_size"] == "2"
    assert float(values["gmacs_per_clip"]) == round(TINY_MACS / 1e9, 3)

    result, _ = _run(["--models", "tiny_bench", "--batch-sizes", "2", "--repeats", "1",
                      "--warmup", "0", "--no-store", "--in-process"], tmp_path, tiny_dir)
    assert result.exit_code == 0
    assert "train_clips_per_s" in result.stdout and "tiny_bench" in result.stdout

    for args, message in ((["--variant", "tiny_bench=zzz"], "has no variant 'zzz'"),
                          (["--precision", "fp16"], "--precision takes"),
                          (["--batch-sizes", "x"], "--batch-sizes expects"),
                          (["--device", "tpu"], "--device takes"),
                          (["--compare", str(tmp_path / "missing.json")], "does not exist")):
        result, _ = _run(["--models", "tiny_bench", "--no-store", "--in-process", *args], tmp_path, tiny_dir)
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)


def test_bench_all_expands_through_the_registry_and_skips_non_torch_models():
    names = [m.name for m in REGISTRY.specs("model")]
    cases, skipped = bench.plan_cases(REGISTRY, names, {}, ["torch"], ["cpu"], ["fp32"], [8])
    assert sorted({c.model for c in cases}) == sorted(
        m.name for m in REGISTRY.specs("model") if "torch" in m.backends)
    assert any(s.startswith("mfcc_svm:") for s in skipped)
    # the Keras build of fcn runs wang2019 only, and float32 only
    cases, skipped = bench.plan_cases(REGISTRY, ["fcn"], {"fcn": ["all"]}, ["torch", "keras"],
                                      ["cpu"], ["fp32", "bf16"], [8])
    assert {(c.variant, c.backend, c.precision) for c in cases} == {
        ("original", "torch", "fp32"), ("original", "torch", "bf16"),
        ("wang2019", "torch", "fp32"), ("wang2019", "torch", "bf16"), ("wang2019", "keras", "fp32")}
    assert "fcn/original: no keras build of this variant" in skipped
    # without --variant, two backends are compared on a variant both build
    cases, _ = bench.plan_cases(REGISTRY, ["fcn"], {}, ["torch", "keras"], ["cpu"], ["fp32"], [8])
    assert [(c.variant, c.backend) for c in cases] == [("wang2019", "torch"), ("wang2019", "keras")]
    cases, _ = bench.plan_cases(REGISTRY, ["fcn"], {}, ["torch"], ["cpu"], ["fp32"], [8])
    assert [c.variant for c in cases] == ["original"]
    # the backends of one combination are timed one after the other
    cases, _ = bench.plan_cases(REGISTRY, ["crnn_tf"], {}, ["torch", "keras"], ["cpu"], ["fp32"],
                                [8, 32])
    assert [(c.batch_size, c.backend) for c in cases] == [
        (8, "torch"), (8, "keras"), (32, "torch"), (32, "keras")]


def _row(model, backend, batch, train, evaluate, memory=100.0, precision="fp32"):
    return {"model": model, "variant": "v", "backend": backend, "device": "cpu",
            "precision": precision, "batch_size": batch, "channels_last": True, "compiled": False,
            "train_clips_per_s": train, "eval_clips_per_s": evaluate, "peak_memory_mb": memory}


def test_compare_gives_new_over_old_of_matching_rows(tmp_path, tiny_dir):
    old = [_row("m", "torch", 8, 4.0, 10.0, 200.0), _row("m", "torch", 32, 5.0, 12.0),
           _row("gone", "torch", 8, 1.0, 1.0)]
    new = [_row("m", "torch", 8, 6.0, 5.0, 100.0), _row("m", "torch", 32, 5.0, 18.0),
           _row("m", "keras", 8, 3.0, 3.0)]
    ratios = bench.compare(new, old)
    assert [(r["batch_size"], r["train_ratio"], r["eval_ratio"], r["memory_ratio"]) for r in ratios] \
        == [(8, 1.5, 0.5, 0.5), (32, 1.0, 1.5, 1.0)]
    # torch over keras within one document
    assert bench.backend_ratios(new) == [{
        "model": "m", "variant": "v", "device": "cpu", "precision": "fp32", "batch_size": 8,
        "train_torch_over_keras": 2.0, "eval_torch_over_keras": 1.667}]
    # --compare on the CLI against a known file
    known = tmp_path / "old.json"
    result, docs = _run(["--models", "tiny_bench", "--batch-sizes", "2", "--repeats", "1",
                         "--warmup", "0", "--no-store", "--in-process", "--format", "json"], tmp_path, tiny_dir)
    (doc,) = docs
    halved = [{**r, "train_clips_per_s": r["train_clips_per_s"] / 2,
               "eval_clips_per_s": r["eval_clips_per_s"] * 4} for r in doc["rows"]]
    known.write_text(json.dumps({"rows": halved}))
    assert [(r["train_ratio"], r["eval_ratio"]) for r in bench.compare(doc["rows"], halved)] == [(2.0, 0.25)]
    result, _ = _run(["--models", "tiny_bench", "--batch-sizes", "2", "--repeats", "1",
                      "--warmup", "0", "--no-store", "--in-process", "--compare", str(known)], tmp_path, tiny_dir)
    assert result.exit_code == 0 and "ratio new/old against" in result.stdout
    assert "train_ratio" in result.stdout
    (bad := tmp_path / "bad.json").write_text("{}")
    with pytest.raises(bench.BenchError, match="no \"rows\" list"):
        bench.load_document(bad)


def test_project_hours_of_table1_from_a_known_document(tmp_path):
    rows = [_row("a", "torch", 32, 100.0, 1.0), _row("a", "torch", 8, 200.0, 1.0),
            _row("b", "torch", 32, 50.0, 1.0), _row("b", "torch", 32, 10.0, 1.0, precision="bf16"),
            {**_row("svm", "sklearn", 32, None, None)}]
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"rows": rows}))
    projection = bench.project_hours(bench.load_document(path)["rows"])
    # 15,244 clips x 50 epochs = 762,200 clips: at 100 clips/s 2.1172 h, at 50 4.2344 h
    per = {(p["model"], p["precision"]): p for p in projection["per_model"]}
    assert per[("a", "fp32")]["batch_size"] == 32 and per[("a", "fp32")]["hours"] == 2.1172
    assert per[("b", "fp32")]["hours"] == 4.2344
    assert per[("b", "bf16")]["hours"] == round(762_200 / 10 / 3600, 4)
    assert projection["totals"] == {"cpu/torch/fp32": round(762_200 / 100 / 3600 + 762_200 / 50 / 3600, 4),
                                    "cpu/torch/bf16": round(762_200 / 10 / 3600, 4)}
    assert ("svm", "fp32") not in per
    # no batch-32 row: the fastest of the others
    assert bench.project_hours([_row("c", "torch", 8, 20.0, 1.0), _row("c", "torch", 16, 40.0, 1.0)],
                               clips=100, epochs=2)["per_model"][0]["hours"] == round(200 / 40 / 3600, 4)


def test_spread_and_feature_store_reads():
    s = bench.spread([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s == {"median": 3.0, "min": 1.0, "max": 100.0, "iqr": 2.0, "n": 5}
    # 0.1 s at 12 kHz: 1200 samples, 1 + 1200 // 256 = 5 frames of 96 bands
    store = bench.bench_feature_store(n_clips=24, batch_size=8, seconds=0.1, repeats=2)
    assert store["n_clips"] == 18 and store["shape"] == [1, 96, 5]
    assert store["clip_bytes"] == 96 * 5 * 4
    assert store["memory_mapped"] is True
    assert store["random_clips_per_s"] > 0 and store["contiguous_clips_per_s"] > 0
    assert store["random_spread"]["n"] == 2


def test_a_split_of_consecutive_rows_stays_memory_mapped(tmp_path):
    from mcbench.features import FeatureStore, FrontEnd, PartIndex, feature_digest
    from mcbench.specs import Split, Track

    fe = FrontEnd(seconds=0.1)
    store = FeatureStore(tmp_path / "cache", "d", tmp_path, fe)
    tracks = [Track(f"t{i}", tmp_path / f"t{i}.wav", (0,)) for i in range(10)]
    store._allocate(store.dir / "p.npy", 10)
    arr = store._array("p", "r+")
    for i in range(10):
        arr[i] = i
    arr.flush()
    PartIndex(ids=[t.id for t in tracks], paths=[str(t.path) for t in tracks], status=["ok"] * 10,
              source_seconds=[0.1] * 10, frontend=fe.as_dict(), stamps=[""] * 10,
              digests=[feature_digest(arr[i]) for i in range(10)]).save(store.dir / "p.index.json")
    split, _ = store.load_split(Split("train", tracks[3:8]), ["a"], "multilabel")
    assert isinstance(split.x, np.memmap) and split.x.shape == (5, 1, 96, 5)
    assert [float(v[0, 0, 0]) for v in split.x] == [3.0, 4.0, 5.0, 6.0, 7.0]
    # rows that are not consecutive are copied, in split order
    other, _ = store.load_split(Split("test", [tracks[9], tracks[1]]), ["a"], "multilabel")
    assert not isinstance(other.x, np.memmap)
    assert [float(v[0, 0, 0]) for v in other.x] == [9.0, 1.0]


def test_keras_row_when_tensorflow_is_importable(tmp_path, tiny_dir):
    pytest.importorskip("tensorflow")
    from mcbench.plugins import Registry as Reg

    spec = Reg(plugin_dirs=[tiny_dir]).model("tiny_bench")
    shape = (1, 16, 32)
    rows = [bench.bench_case(spec, bench.Case("tiny_bench", "a", backend, batch_size=4),
                             repeats=2, warmup=1, input_shape=shape)
            for backend in ("torch", "keras")]
    assert [r["backend"] for r in rows] == ["torch", "keras"]
    # same layers, same parameters: (9 + 1) * 4 conv + (4*2*4*50 + 50) linear
    assert rows[0]["n_params"] == rows[1]["n_params"] == 40 + 1600 + 50
    assert rows[1]["train_clips_per_s"] > 0 and rows[1]["eval_clips_per_s"] > 0
    assert rows[1]["macs_per_clip"] == rows[0]["macs_per_clip"] == 4 * 2 * 4 * 9 + 4 * 2 * 4 * 50
    with pytest.raises(bench.BenchError, match="float32 only"):
        bench.bench_case(spec, bench.Case("tiny_bench", "a", "keras", precision="bf16"),
                         input_shape=shape)


def test_version_names_the_torch_build_without_importing_tensorflow():
    from plugin_files import modules_loaded_by_cli

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("mcbench ")
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
    assert lines[1] == f"torch {torch.__version__} ({build} build)"
    assert lines[2].startswith("CUDA available: " + ("yes" if torch.cuda.is_available() else "no"))
    assert modules_loaded_by_cli(["--version"], ("tensorflow", "keras")) == []


def test_bench_help_imports_neither_torch_nor_tensorflow():
    from plugin_files import modules_loaded_by_cli

    assert modules_loaded_by_cli(["bench", "--help"], ("torch", "tensorflow", "keras")) == []


def test_a_failing_combination_is_listed_and_the_others_still_run(tiny_dir):
    from mcbench.plugins import Registry as Reg

    # a CUDA device this machine does not have
    missing = f"cuda:{torch.cuda.device_count() + 7}" if torch.cuda.is_available() else "cuda"
    cases = [bench.Case("tiny_bench", "a", batch_size=2),
             bench.Case("tiny_bench", "a", device=missing, batch_size=2),
             bench.Case("tiny_bench", "b", batch_size=2)]
    doc = bench.run_bench(Reg(plugin_dirs=[tiny_dir]), cases, repeats=1, warmup=0, store=False)
    assert [r["variant"] for r in doc["rows"]] == ["a", "b"]
    (failed,) = doc["skipped"]
    assert failed.startswith(f"tiny_bench/a torch {missing} fp32 b2: failed: ")


def test_table_shows_layout_and_compilation_only_when_they_vary():
    plain = _row("m", "torch", 8, 1.0, 2.0)
    assert "compiled" not in bench.format_rows([plain]).splitlines()[0]
    text = bench.format_rows([plain, {**plain, "compiled": True}])
    header, _, first, second = text.splitlines()
    assert "compiled" in header and "channels_last" not in header
    assert "False" in first and "True" in second


def test_the_dense_rate_times_real_products_and_takes_the_faster_kernel():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(64, 48, generator=gen), torch.randn(48, 80, generator=gen)
    kernels = bench.dense_kernels(a, b)
    assert "torch.matmul" in kernels
    if torch.backends.mkldnn.is_available():
        assert "onednn" in kernels
    for name, product in kernels.items():
        out = product()
        out = out.to_dense() if out.is_mkldnn else out
        assert torch.allclose(out, a @ b, rtol=1e-5, atol=1e-5), name
    rate = bench.matmul_rate("cpu", n=256, repeats=1)
    assert set(rate["kernels"]) == set(kernels)
    assert rate["macs_per_s"] == max(rate["kernels"].values())
    assert rate["kernels"][rate["kernel"]] == rate["macs_per_s"]
