"""Transfer learning and embeddings for Keras runs (``--backend keras``): the strategies of Table
III of Wang et al. (IJCNN 2019, Sec. V-G) from a Keras CRNN-TF (wang2019) on ``synthetic`` to
``synthetic_genres`` through the CLI on a few 2-s clips, one epoch each, and ``mcbench embed`` of
Keras runs against torch runs.

What is asserted is the real effect on the stored weights: after ``freeze_all`` every layer but
the head's is identical to the source's (batch-norm moving statistics included) and the
embeddings equal the source's; after ``freeze_cnn`` the CNN is identical and the recurrent part
is not; ``finetune`` starts from the source's values and trains everything. A torch source for
a Keras target is refused, naming both backends. The Keras learner's embeddings equal the torch
learner's after a weight copy for each of the five models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras_checks  # noqa: E402
from cli_workspace import cli, stored_records  # noqa: E402

keras_checks.cpu_only()

from mcbench.features import FrontEnd  # noqa: E402
from mcbench.plugins import Registry  # noqa: E402
from mcbench.training import as_learner  # noqa: E402

SOURCE_DATA = ["--dataset-param", "n_clips=30", "--dataset-param", "seconds=2.0"]
TARGET_DATA = ["--dataset-param", "n_per_genre=5", "--dataset-param", "seconds=2.0",
               "--protocol", "cv5"]
COMMON = ["--device", "cpu", "--no-progress", "--epochs", "1", "--batch-size", "6",
          "--variant", "crnn_tf=wang2019"]
KERAS = ["--backend", "keras"]
STRATEGIES = ("freeze_all", "freeze_cnn", "finetune")




def _target(ws: Path, *extra: str):
    return cli(ws, "run", "--models", "crnn_tf", "--dataset", "synthetic_genres", *COMMON,
                *TARGET_DATA, "--folds", "0", *extra)


def _learner(record: dict, ws: Path):
    """The Keras learner of a finished run with its selected weights loaded."""
    ident = record["identity"]
    spec = Registry().model("crnn_tf")
    learner = as_learner(spec.create(FrontEnd(**ident["dataset"]["frontend"]).shape,
                                     len(ident["dataset"]["labels"]), task=ident["dataset"]["task"],
                                     variant="wang2019", backend="keras"), ident["dataset"]["task"])
    learner.load_selected(ws / "results" / "work" / record["run_id"])
    return learner


def _layers(learner) -> dict[str, list[np.ndarray]]:
    """Layer name → weights (trainable and moving statistics) of a network's layers with weights."""
    return {layer.name: layer.get_weights() for layer in learner.network.layers if layer.weights}


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A Keras and a torch source CRNN-TF on synthetic, and one Keras target per strategy."""
    ws = tmp_path_factory.mktemp("keras_transfer")
    for backend in ("keras", "torch"):
        result = cli(ws, "run", "--models", "crnn_tf", "--dataset", "synthetic", *COMMON,
                      *SOURCE_DATA, "--backend", backend)
        assert result.exit_code == 0, result.output
    sources = {r["identity"]["model"]["backend"]: r for r in stored_records(ws, "synthetic")}
    for strategy in STRATEGIES:
        result = _target(ws, *KERAS, "--transfer", strategy, "--init-from", sources["keras"]["run_id"])
        assert result.exit_code == 0, result.output
    targets = {r["identity"]["transfer"]["strategy"]: r for r in stored_records(ws, "synthetic_genres")}
    assert set(targets) == set(STRATEGIES)
    return ws, sources, targets


def test_freeze_all_keeps_every_layer_but_the_head_and_the_head_is_new(ws):
    ws, sources, targets = ws
    src, tgt = _layers(_learner(sources["keras"], ws)), _layers(_learner(targets["freeze_all"], ws))
    body = [n for n in tgt if not n.startswith("head_")]
    assert any(n.startswith("cnn_") and n.endswith("_bn") for n in body)  # moving statistics
    assert any(n.startswith("rnn_") for n in body)
    for name in body:
        assert _same(src[name], tgt[name]), name
    n_genres = len(targets["freeze_all"]["identity"]["dataset"]["labels"])
    n_tags = len(sources["keras"]["identity"]["dataset"]["labels"])
    assert n_genres != n_tags
    assert tgt["head_output"][0].shape == (64, n_genres) and src["head_output"][0].shape == (64, n_tags)
    assert not _same(src["head_dense"], tgt["head_dense"])  # the head is trained (and new)


def test_freeze_cnn_keeps_the_cnn_and_trains_the_rnn(ws):
    ws, sources, targets = ws
    src, tgt = _layers(_learner(sources["keras"], ws)), _layers(_learner(targets["freeze_cnn"], ws))
    cnn = [n for n in tgt if n.startswith("cnn_")]
    rnn = [n for n in tgt if n.startswith("rnn_")]
    assert len(cnn) == 8 and len(rnn) == 8  # 4 conv + 4 batch norm; 8 scans
    assert all(_same(src[n], tgt[n]) for n in cnn)
    assert not any(np.array_equal(a, b) for n in rnn for a, b in zip(src[n], tgt[n]))


def test_finetune_trains_everything_from_the_sources_values(ws):
    ws, sources, targets = ws
    src, tgt = _layers(_learner(sources["keras"], ws)), _layers(_learner(targets["finetune"], ws))
    for name in (n for n in tgt if n.endswith("_conv") or n.startswith("rnn_")):
        kernel_src, kernel_tgt = src[name][0], tgt[name][0]
        assert not np.array_equal(kernel_src, kernel_tgt), name  # trained
        # one epoch from the source moves a kernel far less than its own spread
        assert np.abs(kernel_tgt - kernel_src).mean() < 0.2 * kernel_src.std(), name


def test_freeze_rnn_keeps_the_recurrent_blocks_and_trains_the_cnn(ws):
    ws, sources, _ = ws
    result = _target(ws, *KERAS, "--freeze", "rnn", "--init-from", sources["keras"]["run_id"])
    assert result.exit_code == 0, result.output
    (rec,) = [r for r in stored_records(ws, "synthetic_genres")
              if r["identity"]["transfer"]["strategy"] == "freeze"]
    assert rec["identity"]["transfer"]["frozen"] == ["rnn"]
    src, tgt = _layers(_learner(sources["keras"], ws)), _layers(_learner(rec, ws))
    assert all(_same(src[n], tgt[n]) for n in tgt if n.startswith("rnn_"))
    assert not any(_same(src[n], tgt[n]) for n in tgt if n.startswith("cnn_") and n.endswith("_conv"))


def test_records_name_the_keras_source_its_checkpoint_and_standardisation(ws):
    ws, sources, targets = ws
    source = _learner(sources["keras"], ws)
    for rec in targets.values():
        section = rec["transfer"]
        assert section["source_run"] == sources["keras"]["run_id"]
        assert section["source_checkpoint"] == "best.weights.h5"
        std = section["standardization"]
        assert std["from_source"] and std["mean"] == pytest.approx(float(source.standardizer.mean.numpy()))
        target = _learner(rec, ws)
        assert float(target.standardizer.mean.numpy()) == float(source.standardizer.mean.numpy())
        assert rec["identity"]["model"]["backend"] == "keras"
    assert targets["finetune"]["transfer"]["n_trainable"] == targets["finetune"]["n_params"]
    head = 256 * 64 + 64 + 64 * len(targets["freeze_all"]["identity"]["dataset"]["labels"]) + \
        len(targets["freeze_all"]["identity"]["dataset"]["labels"])
    assert targets["freeze_all"]["transfer"]["n_trainable"] == head
    assert targets["freeze_all"]["transfer"]["n_frozen_norm_layers"] == 4
    assert targets["freeze_cnn"]["transfer"]["n_frozen_norm_layers"] == 4


def test_the_table_labels_keras_transfer_rows_in_the_papers_words(ws):
    ws, _, _ = ws
    result = cli(ws, "table", "--dataset", "synthetic_genres", "--format", "plain")
    assert result.exit_code == 0, result.output
    for label in ("crnn_tf (wang2019; freeze from synthetic)",
                  "crnn_tf (wang2019; freeze CNN + fine-tune RNN from synthetic)",
                  "crnn_tf (wang2019; fine-tune from synthetic)"):
        assert label in result.output, result.output


def _embed(ws: Path, run_id: str, out: Path, *data: str) -> tuple[np.ndarray, list[str]]:
    result = cli(ws, "embed", run_id, *data, "--no-progress", "-o", str(out))
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as npz:
        return npz["embeddings"], list(npz["clip_ids"])


def test_freeze_all_embeddings_equal_the_keras_sources(ws):
    ws, sources, targets = ws
    data = ("--dataset", "synthetic_genres", "--split", "test", *TARGET_DATA, "--fold", "0")
    src, ids = _embed(ws, sources["keras"]["run_id"], ws / "src.npz", *data)
    tgt, ids_t = _embed(ws, targets["freeze_all"]["run_id"], ws / "tgt.npz", *data)
    assert ids == ids_t and len(ids) > 0 and src.shape == (len(ids), 256)
    assert np.abs(src - tgt).max() == 0.0


def test_keras_and_torch_runs_give_embeddings_of_the_same_shape(ws):
    ws, sources, _ = ws
    data = ("--dataset", "synthetic", "--split", "test", *SOURCE_DATA)
    k, ids_k = _embed(ws, sources["keras"]["run_id"], ws / "k.npz", *data)
    t, ids_t = _embed(ws, sources["torch"]["run_id"], ws / "t.npz", *data)
    assert ids_k == ids_t and k.shape == t.shape == (len(ids_k), 256)
    assert np.all(np.isfinite(k)) and k.std() > 0


def test_a_torch_source_for_a_keras_target_is_refused_naming_both_backends(ws):
    ws, sources, _ = ws
    result = _target(ws, *KERAS, "--init-from", sources["torch"]["run_id"])
    assert result.exit_code == 2, result.output
    assert "backend (torch in the source, keras here)" in result.output
    assert "--backend keras" in result.output  # the command that trains a Keras source


def test_a_keras_source_by_dataset_name_is_the_keras_run(ws):
    """``--init-from synthetic`` picks the finished run of the same backend (a torch one is there too)."""
    from mcbench.transfer import find_source, parse_choice

    ws, sources, _ = ws
    model = {k: sources["keras"]["identity"]["model"][k] for k in ("name", "variant", "backend", "options")}
    found = find_source(parse_choice("synthetic", "freeze_cnn", None), model, ws / "results",
                        ["synthetic", "synthetic_genres"], "synthetic_genres")
    assert found.run_id == sources["keras"]["run_id"] and found.checkpoint.name == "best.weights.h5"


def test_frozen_layers_get_no_gradient_and_frozen_batch_norm_runs_in_inference_mode(ws):
    from mcbench.keras_learner import keras_l2_groups
    from mcbench.transfer import apply, find_source, parse_choice

    ws, sources, _ = ws
    ident = sources["keras"]["identity"]
    shape = FrontEnd(**ident["dataset"]["frontend"]).shape
    spec = Registry().model("crnn_tf")

    def build(n):
        return spec.create(shape, n, task="multiclass", variant="wang2019", backend="keras")

    learner = as_learner(build(6), "multiclass")
    model = {k: ident["model"][k] for k in ("name", "variant", "backend", "options")}
    found = find_source(parse_choice("synthetic", "freeze_cnn", None), model, ws / "results",
                        ["synthetic", "synthetic_genres"], "synthetic_genres")
    apply(learner, found, rebuild=build)
    cnn = [layer for layer in learner.network.layers if layer.name.startswith("cnn_") and layer.weights]
    trainable = {id(v) for v in learner.model.trainable_variables}
    assert cnn and not any(id(v) in trainable for layer in cnn for v in layer.weights)
    assert not any(id(v) in trainable for v in keras_l2_groups(learner.model)["conv"])
    bn = learner.network.get_layer("cnn_block1_bn")
    before = [w.copy() for w in bn.get_weights()]
    x = np.random.default_rng(0).normal(size=(4, *shape)).astype(np.float32)
    learner.model(x, training=True)  # a frozen BN neither uses nor updates batch statistics
    assert _same(before, bn.get_weights())
    assert learner.keep_standardization


# --------------------------------------------------------------------------- embedding parity

@pytest.mark.parametrize("model", ["crnn_tf", "crnn", "fcn", "timbre_cnn", "end_to_end"])
def test_keras_embeddings_equal_the_torch_ports_after_a_weight_copy(model):
    """The Keras learner's embedding is the torch learner's (the input of the head module),
    same shape and, after copying the torch port's weights into the Keras build, same values
    (FCN-4, Timbre CNN and End-to-end flatten a map: channels-first order on both sides)."""
    from test_keras_models import BUILDERS, PARITY

    from mcbench.keras_learner import KerasLearner
    from mcbench.specs import FeatureSplit

    impl, torch_build, shape = PARITY[model]
    keras_model, torch_model = BUILDERS[model](shape, 7), torch_build(shape, 7)
    keras_checks.randomize_torch(torch_model, 1)
    impl.torch_to_keras(torch_model, keras_model)
    k, t = KerasLearner(keras_model, "multilabel"), as_learner(torch_model, "multilabel")
    k.standardizer.mean.assign(0.3)
    k.standardizer.std.assign(1.7)
    t.module.mean.fill_(0.3)
    t.module.std.fill_(1.7)
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    split = FeatureSplit("t", ["a", "b", "c"], x, np.zeros((3, 7), np.float32), "multilabel",
                         [str(i) for i in range(7)])
    ek, et = k.embed(split), t.embed(split)
    assert ek.shape == et.shape and ek.shape[0] == 3
    diff = float(np.abs(ek - et).max())
    print(f"{model}: embedding {ek.shape[1]}-d, max |Δ| = {diff:.2e} (max |e| {np.abs(et).max():.2f})")
    assert diff <= 1e-5 * max(1.0, float(np.abs(et).max()))


# --------------------------------------------------------------------------- the layer-name contract

def _tiny(names: dict[str, str] | None = None):
    """Conv → BN → pool → Dense-8 → Dense-3 on (1, 8, 6), layers named from ``names``."""
    from mcbench.keras_learner import load_keras

    keras = load_keras()
    n = {"conv": "cnn_conv", "bn": "cnn_bn", "hidden": "head_dense", "out": "head_output",
         **(names or {})}
    inputs = keras.Input(shape=(1, 8, 6))
    x = keras.layers.Permute((2, 3, 1))(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name=n["conv"])(x)
    x = keras.layers.BatchNormalization(name=n["bn"])(x)
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    x = keras.layers.Dense(8, activation="relu", name=n["hidden"])(x)
    return keras.Model(inputs, keras.layers.Dense(3, name=n["out"])(x))


def test_check_keras_groups_names_each_broken_contract():
    from mcbench.keras_learner import check_keras_groups, keras_transfer_groups

    assert check_keras_groups(_tiny()) == []
    assert [layer.name for layer in keras_transfer_groups(_tiny())["head"]] == ["head_dense", "head_output"]
    assert any("in no transfer group (conv_a)" in p for p in check_keras_groups(_tiny({"conv": "conv_a"})))
    assert any("logits come from layer 'logits', which is not in the head group" in p
               for p in check_keras_groups(_tiny({"out": "logits"})))
    assert any("no layer is named head_" in p
               for p in check_keras_groups(_tiny({"hidden": "cnn_dense", "out": "cnn_out"})))
    # no layer named by the convention: no groups, nothing to check
    plain = _tiny({"conv": "c", "bn": "b", "hidden": "d", "out": "o"})
    assert keras_transfer_groups(plain) is None and check_keras_groups(plain) == []


def test_a_keras_model_without_groups_embeds_the_input_of_its_logits_layer_and_cannot_transfer(tmp_path):
    from mcbench.keras_learner import KerasLearner
    from mcbench.specs import FeatureSplit
    from mcbench.transfer import TransferError, TransferSource, apply

    plain = KerasLearner(_tiny({"conv": "c", "bn": "b", "hidden": "d", "out": "o"}), "multilabel")
    x = np.random.default_rng(0).normal(size=(5, 1, 8, 6)).astype(np.float32)
    split = FeatureSplit("t", list("abcde"), x, np.zeros((5, 3), np.float32), "multilabel", list("xyz"))
    emb = plain.embed(split)
    hidden = plain.network.get_layer("d")
    import keras

    expected = keras.Model(plain.network.inputs[0], hidden.output)(x, training=False)
    np.testing.assert_allclose(emb, np.asarray(expected), atol=1e-6)  # the 8-d input of 'o'
    grouped = KerasLearner(_tiny(), "multilabel")
    assert grouped.embed(split).shape == (5, 4)  # the input of head_dense, the first head layer
    source = TransferSource("src", "synthetic", tmp_path / "r.json", "0" * 64,
                            tmp_path / "best.weights.h5", {}, "finetune", ())
    with pytest.raises(TransferError, match="declares no transfer groups; a transfer needs its "
                                            "layers with weights named cnn_"):
        apply(plain, source, rebuild=lambda n: None)
