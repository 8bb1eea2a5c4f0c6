"""k-fold protocols: GTZAN's cv10 (the paper's Table III protocol) and synthetic_genres' cv5,
one code path (the GTZAN reader's stratified k-fold), every fold a run, ``--folds`` checked
before any work."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from mcbench.cli import main
from mcbench.plugins import Registry
from mcbench.runner import RunRequest, plan_runs
from mcbench.specs import DatasetError, OptionError

DATA = ["--dataset-param", "n_per_genre=5", "--dataset-param", "seconds=2.0"]


def _run(tmp_path, *extra):
    return CliRunner().invoke(main, [
        "run", "--models", "mfcc_svm", "--dataset", "synthetic_genres",
        "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "results"),
        "--device", "cpu", "--no-progress", *DATA, *extra])


def _records(tmp_path):
    folder = tmp_path / "results" / "runs" / "synthetic_genres"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_synthetic_genres_cv5_every_fold_a_run_and_one_row(tmp_path):
    result = _run(tmp_path, "--protocol", "cv5")
    assert result.exit_code == 0, result.output
    recs = _records(tmp_path)
    assert sorted(r["identity"]["dataset"]["fold"] for r in recs) == [0, 1, 2, 3, 4]
    assert {r["identity"]["dataset"]["protocol"] for r in recs} == {"cv5"}
    assert len({r["run_id"] for r in recs}) == 5
    tests: dict[int, set[str]] = {}
    for r in recs:
        notes = r["split"]["notes"]
        fold = r["identity"]["dataset"]["fold"]
        # the record holds the seed and every clip's fold (30 clips, 6 per fold)
        assert notes["seed"] == 0 and notes["n_folds"] == 5
        assert (notes["test_fold"], notes["valid_fold"]) == (fold, (fold + 1) % 5)
        assert len(notes["folds"]) == 30 and set(Counter(notes["folds"].values()).values()) == {6}
        assert r["split"]["sizes"] == {"train": 18, "valid": 6, "test": 6}
        assert r["identity"]["dataset"]["splits"]["test"]["n"] == 6
        tests[fold] = {i for i, f in notes["folds"].items() if f == fold}
    # the test folds partition the clips, and every record agrees on the assignment
    assert len(set().union(*tests.values())) == 30
    assert len({json.dumps(r["split"]["notes"]["folds"], sort_keys=True) for r in recs}) == 1
    # one table row over the five folds: mean ± std, five runs (the shape of Table III)
    table = CliRunner().invoke(main, ["table", "--dataset", "synthetic_genres", "--results-dir",
                                      str(tmp_path / "results"), "--format", "plain"])
    assert table.exit_code == 0, table.output
    rows = [line for line in table.output.splitlines() if "mfcc_svm" in line]
    assert len(rows) == 1 and "±" in rows[0] and rows[0].split()[-1] == "5", table.output

    # --folds picks folds; the fold-0 run of cv5 is the one already stored
    again = _run(tmp_path, "--protocol", "cv5", "--folds", "0,3")
    assert again.exit_code == 0 and again.output.count("already complete") == 2, again.output
    assert len(_records(tmp_path)) == 5


def test_fixed_is_fold_0_of_cv5(tmp_path):
    spec = Registry().dataset("synthetic_genres")
    root = tmp_path / "sg"
    params = {"n_per_genre": 5, "seconds": 0.5, "workers": 1, "progress": False}
    from mcbench.runner import load_partition

    fixed = load_partition(spec, root, "fixed", None, params)
    fold0 = load_partition(spec, root, "cv5", 0, params)
    assert (fixed.protocol, fixed.fold, fold0.protocol, fold0.fold) == ("fixed", None, "cv5", 0)
    assert fixed.fingerprint() == fold0.fingerprint()
    assert not (root / "splits").exists()  # folds are computed on reading, never written


@pytest.mark.parametrize("extra, message", [
    (["--protocol", "cv5", "--folds", "5"], "has folds 0..4; got [5]"),
    (["--protocol", "cv5", "--folds", "0,-1"], "has folds 0..4; got [-1]"),
    (["--folds", "1"], "single fixed split"),
    (["--protocol", "cv10"], "has protocols cv5, fixed"),
])
def test_bad_folds_fail_before_any_work(tmp_path, extra, message):
    result = _run(tmp_path, *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def test_gtzan_cv10_plans_every_fold_a_run_without_reading_data(tmp_path):
    registry = Registry()
    spec = registry.dataset("gtzan")
    assert spec.protocols["cv10"] == 10 and spec.default_protocol == "cv10"
    req = RunRequest(models=["crnn_tf", "mfcc_svm"], dataset="gtzan", root=tmp_path / "absent")
    plans, unsupported = plan_runs(registry, req)
    assert not unsupported
    assert sorted((p.model, p.fold) for p in plans) == sorted(
        (m, f) for m in ("crnn_tf", "mfcc_svm") for f in range(10))
    assert {p.protocol for p in plans} == {"cv10"}
    req.folds = [0, 1]
    plans, _ = plan_runs(registry, req)
    assert sorted({p.fold for p in plans}) == [0, 1] and len(plans) == 4
    req.folds = [10]
    with pytest.raises(OptionError, match=r"protocol 'cv10' of gtzan has folds 0..9; got \[10\]"):
        plan_runs(registry, req)


def test_gtzan_reader_k_fold_is_one_code_path(tmp_path):
    """The reader's k-fold protocol for any k: cv10 for GTZAN, another k for a dataset in the
    GTZAN layout; the folds are stratified and a bad fold is refused before the root is read."""
    from fixtures_gtzan import build_gtzan
    from mcbench_plugins.datasets.gtzan import cv_folds, genre_of, load_gtzan_partition

    genres = ("blues", "classical", "country")
    fx = build_gtzan(tmp_path, numbers=range(4), genres=genres, full_length=())
    kw = dict(genres=genres, n_per_genre=4, check_audio=False, min_seconds=0.0)
    parts = [load_gtzan_partition(fx.root, protocol="cv4", fold=k, seed=3,
                                  protocols={"cv4": 4}, **kw) for k in range(4)]
    ids = sorted(fx.files)
    folds = cv_folds(ids, [genres.index(genre_of(i)) for i in ids], 4, 3)
    for k, p in enumerate(parts):
        assert (p.protocol, p.fold, p.notes["n_folds"], p.notes["seed"]) == ("cv4", k, 4, 3)
        assert p.notes["folds"] == folds
        assert p.splits["test"].ids == sorted(i for i in ids if folds[i] == k)
        assert p.splits["valid"].ids == sorted(i for i in ids if folds[i] == (k + 1) % 4)
        assert sorted(genre_of(i) for i in p.splits["test"].ids) == list(genres)  # stratified
    with pytest.raises(DatasetError, match="cv4 has folds 0…3, not 4"):
        load_gtzan_partition(tmp_path / "nowhere", protocol="cv4", fold=4, protocols={"cv4": 4}, **kw)
    with pytest.raises(DatasetError, match="unknown protocol 'cv4'"):
        load_gtzan_partition(fx.root, protocol="cv4", fold=0, **kw)
