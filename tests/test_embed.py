"""``mcbench embed`` and the embedding contract of :mod:`mcbench.embed`.

One tiny ``synthetic_genres`` set (30 clips of 2 s) and one epoch per model: every built-in
model gives embeddings of the expected width, equal to the input of its head recomputed here by
hand from the checkpoint, with the clip ids and labels of the run's test scores; a dataset whose
input does not fit the model is refused before any feature is computed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from mcbench.cli import main
from mcbench.embed import EmbeddingError, embeddings, head_module

DATA = ["--dataset-param", "n_per_genre=5", "--dataset-param", "seconds=2.0"]
#: model -> (variant, embedding width on 2-s clips).
#: mfcc_svm first: librosa's first MFCC call is many times slower after torch has trained.
MODELS = {
    "mfcc_svm": ("default", 80),  # 20 MFCCs + deltas, mean and std
    "crnn_tf": ("paper", 256),  # eq. (1): 8 scans x 32 units
    "crnn": ("original", 32),  # the second GRU's 32 units
    "fcn": ("wang2019", 2048),  # flattened (2048, 1, 1) map
    "timbre_cnn": ("original", None),
    "end_to_end": ("original", None),
}


def _invoke(args: list[str]):
    result = CliRunner().invoke(main, args)
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ws = tmp_path_factory.mktemp("embed")
    args = ["run", "--models", ",".join(MODELS), "--dataset", "synthetic_genres",
            "--data-dir", str(ws / "data"), "--results-dir", str(ws / "results"),
            "--device", "cpu", "--no-progress", "--epochs", "1", "--batch-size", "6", *DATA]
    for model, (variant, _) in MODELS.items():
        args += ["--variant", f"{model}={variant}"]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    runs = {}
    for path in (ws / "results" / "runs" / "synthetic_genres").glob("*.json"):
        rec = json.loads(path.read_text())
        runs[rec["identity"]["model"]["name"]] = rec
    assert set(runs) == set(MODELS)
    return ws, runs


def _embed(ws: Path, run_id: str, *extra: str):
    return _invoke(["embed", run_id, "--data-dir", str(ws / "data"), "--results-dir",
                    str(ws / "results"), "--no-progress", *extra])


def _rebuilt(ws: Path, rec: dict):
    """The run's network with its selected weights, and its standardisation, loaded by hand."""
    from mcbench.plugins import Registry

    ident = rec["identity"]
    fe = ident["dataset"]["frontend"]
    spec = Registry().model(ident["model"]["name"])
    from mcbench.features import FrontEnd

    net = spec.create(FrontEnd(**fe).shape, len(ident["dataset"]["labels"]),
                      task=ident["dataset"]["task"], variant=ident["model"]["variant"],
                      **ident["model"]["options"])
    state = torch.load(ws / "results" / "work" / rec["run_id"] / "best.pt", weights_only=True)["model"]
    net.load_state_dict({k[len("network."):]: v for k, v in state.items() if k.startswith("network.")})
    net.eval()
    return net, float(state["mean"]), float(state["std"])


def _head_input_by_hand(model: str, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The representation each model feeds its head, from its own layers (not from hooks)."""
    if model == "crnn_tf":
        from mcbench_plugins.models.impl.crnn_tf import scan_sequence

        m = net.cnn(x)
        return torch.cat([net.rnn[s](scan_sequence(m, s, net.raster)) for s in net.scans], dim=-1)
    if model == "crnn":
        m = net.cnn(x)
        return net.rnn(m.permute(0, 3, 1, 2).flatten(2))
    if model == "timbre_cnn":
        return net.temporal(net.features(x)).flatten(1)
    return net.cnn(x).flatten(1)  # fcn, end_to_end


@pytest.mark.parametrize("model", [m for m in MODELS if m != "mfcc_svm"])
def test_embeddings_are_the_head_input_of_the_selected_checkpoint(trained, model):
    ws, runs = trained
    rec = runs[model]
    out = ws / f"{model}.npz"
    result = _embed(ws, rec["run_id"], "--dataset", "synthetic_genres", "--split", "test", "-o", str(out))
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as npz:
        emb, ids, labels = npz["embeddings"], list(npz["clip_ids"]), npz["labels"]
        names, run_id = list(npz["label_names"]), str(npz["run_id"])
    scores = np.load(ws / "results" / "runs" / "synthetic_genres" / rec["scores_path"])
    # the npz carries the clips and labels of the run's own test split, in its order
    assert ids == list(scores["ids"]) and len(ids) == rec["split"]["sizes"]["test"] > 0
    np.testing.assert_array_equal(labels, scores["y_true"])
    assert names == list(scores["labels"]) == rec["identity"]["dataset"]["labels"]
    assert run_id == rec["run_id"]
    width = MODELS[model][1]
    assert emb.shape[0] == len(ids) and emb.dtype == np.float32
    if width is not None:
        assert emb.shape[1] == width

    # recomputed independently: the features from the store, the weights and standardisation
    # from best.pt, the representation from the model's own layers
    from mcbench.features import FeatureStore, FrontEnd
    from mcbench.plugins import Registry
    from mcbench.runner import load_partition

    dspec = Registry().dataset("synthetic_genres")
    root = ws / "data" / "synthetic_genres"
    part = load_partition(dspec, root, "fixed", None, {"n_per_genre": 5, "seconds": 2.0})
    fe = FrontEnd(**rec["identity"]["dataset"]["frontend"])
    store = FeatureStore(ws / "data" / ".cache" / "features", "synthetic_genres", root, fe)
    feats, _ = store.load_split(part.splits["test"], part.labels, dspec.task, part.min_seconds)
    assert feats.ids == ids
    net, mean, std = _rebuilt(ws, rec)
    with torch.no_grad():
        x = (torch.from_numpy(np.asarray(feats.x, dtype=np.float32)) - mean) / std
        expected = _head_input_by_hand(model, net, x).numpy()
        probs = torch.softmax(net(x), dim=1).numpy()
    assert expected.shape == emb.shape
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(emb).max() > 0 and np.ptp(emb, axis=0).max() > 0  # not a constant
    # these weights are the ones the test scores came from
    np.testing.assert_allclose(probs, scores["y_score"], rtol=1e-4, atol=1e-5)


def test_mfcc_svm_embeddings_are_its_mfcc_statistics(trained):
    from mcbench_plugins.models.impl.mfcc_svm import mfcc_statistics

    ws, runs = trained
    rec = runs["mfcc_svm"]
    out = ws / "svm.npz"
    result = _embed(ws, rec["run_id"], "--dataset", "synthetic_genres", "--split", "train", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"{rec['split']['sizes']['train']} clips × 80 dims" in result.output
    with np.load(out, allow_pickle=False) as npz:
        emb = npz["embeddings"]
        ids = list(npz["clip_ids"])
    assert emb.shape == (rec["split"]["sizes"]["train"], 80)
    # clip by clip from the decoded audio's log-mel in the store
    from mcbench.features import FeatureStore, FrontEnd
    from mcbench.plugins import Registry
    from mcbench.runner import load_partition

    dspec = Registry().dataset("synthetic_genres")
    root = ws / "data" / "synthetic_genres"
    part = load_partition(dspec, root, "fixed", None, {"n_per_genre": 5, "seconds": 2.0})
    store = FeatureStore(ws / "data" / ".cache" / "features", "synthetic_genres", root,
                         FrontEnd(**rec["identity"]["dataset"]["frontend"]))
    feats, _ = store.load_split(part.splits["train"], part.labels, dspec.task, part.min_seconds)
    assert feats.ids == ids
    np.testing.assert_allclose(emb, mfcc_statistics(np.asarray(feats.x)), rtol=1e-5, atol=1e-4)


def test_embedding_another_dataset_with_the_same_input(trained):
    ws, runs = trained
    rec = runs["timbre_cnn"]
    own = ws / "own.npz"
    assert _embed(ws, rec["run_id"], "--dataset", "synthetic_genres", "-o", str(own)).exit_code == 0
    out = ws / "tags.npz"
    result = _embed(ws, rec["run_id"], "--dataset", "synthetic", "--split", "valid", "-o", str(out),
                    "--dataset-param", "n_clips=20", "--dataset-param", "seconds=2.0")
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as npz, np.load(own, allow_pickle=False) as mine:
        assert npz["embeddings"].shape[1] == mine["embeddings"].shape[1]
        assert str(npz["dataset"]) == "synthetic" and str(npz["split"]) == "valid"
        # multi-hot tags of the other dataset, one row per clip
        assert npz["labels"].shape == (len(npz["clip_ids"]), len(npz["label_names"]))


def test_a_dataset_whose_input_does_not_fit_is_refused_before_features(trained):
    ws, runs = trained
    cache = ws / "data" / ".cache" / "features"
    before = sorted(p.name for p in cache.iterdir())
    result = _embed(ws, runs["timbre_cnn"]["run_id"], "--dataset", "synthetic",
                    "--dataset-param", "n_clips=20", "--dataset-param", "seconds=3.0",
                    "--root", str(ws / "data" / "synthetic3"))
    assert result.exit_code == 2, result.output
    assert "does not fit the model" in result.output and "seconds differ" in result.output
    assert "(1, 96, 94)" in result.output  # the run's input shape is named
    assert sorted(p.name for p in cache.iterdir()) == before  # no feature computed


@pytest.mark.parametrize("extra, message", [
    (["--fold", "7", "--protocol", "cv5"], "has folds 0..4"),
    (["--fold", "1"], "single fixed split"),
    (["--protocol", "cv9"], "has protocols"),
    (["--device", "gpu"], "--device 'gpu'"),
])
def test_bad_embed_input_fails_before_any_work(trained, tmp_path, extra, message):
    ws, runs = trained
    result = _invoke(["embed", runs["fcn"]["run_id"], "--dataset", "synthetic_genres",
                      "--data-dir", str(tmp_path / "data"), "--results-dir", str(ws / "results"),
                      "-o", str(tmp_path / "x.npz"), *DATA, *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "x.npz").exists()


def test_unknown_run_is_named(tmp_path):
    result = _invoke(["embed", "nope-123", "--dataset", "synthetic", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no stored run 'nope-123'" in result.output


# --------------------------------------------------------------------------- the contract


class _Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(6, 4))

    def forward(self, x):
        return self.head(self.body(x))

    def parameter_groups(self):
        return {"cnn": list(self.body.parameters()), "rnn": [], "head": list(self.head.parameters())}


def test_head_module_is_the_smallest_module_holding_the_head_group():
    model = _Grouped()
    assert head_module(model) is model.head[2]  # the Linear, not the Sequential around it
    x = torch.randn(5, 1, 10)
    model.train()
    emb = embeddings(model, x)
    assert model.training  # mode restored
    assert emb.shape == (5, 6)
    torch.testing.assert_close(emb, model.body(x).flatten(1))


def test_embed_method_wins_and_is_used_as_declared():
    class Own(_Grouped):
        def embed(self, x):
            return self.body(x).mean(-1)

    model = Own()
    x = torch.randn(3, 1, 10)
    torch.testing.assert_close(embeddings(model, x), model.body(x).mean(-1))


def test_models_without_a_usable_head_are_refused():
    class NoGroups(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x)

    with pytest.raises(EmbeddingError, match="declares neither parameter_groups"):
        head_module(NoGroups())

    class Split(_Grouped):  # the head group spans two modules
        def parameter_groups(self):
            return {"cnn": list(self.body[0].parameters())[:1], "rnn": [],
                    "head": [self.body[0].bias, *self.head.parameters()]}

    with pytest.raises(EmbeddingError, match="no submodule has exactly the parameters"):
        head_module(Split())

    class NotLast(_Grouped):  # the declared head is not what produces the logits
        def forward(self, x):
            return self.head(self.body(x)) * 2.0

    with pytest.raises(EmbeddingError, match="is not the model's output"):
        embeddings(NotLast(), torch.randn(2, 1, 10))
