"""Transfer learning (mcbench.transfer): the four strategies of Table III of Wang et al. (IJCNN
2019, Sec. V-G) from ``synthetic`` (tagging) to ``synthetic_genres`` (genres, 5 folds), end to
end through the CLI on a few 2-s clips, one epoch each.

What is asserted is the real effect on the weights: after ``freeze_all`` every tensor but the
head's is bit-identical to the source's (batch-norm running statistics included) and the
embeddings equal the source's; after ``freeze_cnn`` the CNN is identical and the recurrent part
is not; ``finetune`` starts from the source's values; ``scratch`` never reads a source. Sources
that do not fit are refused before any feature of the target is computed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_workspace import cli, stored_records
from torch import nn

from mcbench.specs import OptionError
from mcbench.transfer import STRATEGIES, check_groups, parse_choice

SOURCE_DATA = ["--dataset-param", "n_clips=30", "--dataset-param", "seconds=2.0"]
TARGET_DATA = ["--dataset-param", "n_per_genre=5", "--dataset-param", "seconds=2.0",
               "--protocol", "cv5"]
COMMON = ["--device", "cpu", "--no-progress", "--epochs", "1", "--batch-size", "6"]




def _weights(ws: Path, run_id: str) -> dict[str, torch.Tensor]:
    return torch.load(ws / "results" / "work" / run_id / "best.pt", weights_only=True)["model"]


def _target(ws: Path, *extra: str, models: str = "crnn_tf"):
    return cli(ws, "run", "--models", models, "--dataset", "synthetic_genres", *COMMON,
                *TARGET_DATA, "--folds", "0", *extra)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A source CRNN-TF on synthetic and one target run per strategy on fold 0."""
    ws = tmp_path_factory.mktemp("transfer")
    result = cli(ws, "run", "--models", "crnn_tf", "--dataset", "synthetic", *COMMON, *SOURCE_DATA)
    assert result.exit_code == 0, result.output
    (source,) = stored_records(ws, "synthetic")
    targets = {}
    for strategy in STRATEGIES:
        extra = ["--transfer", strategy] + ([] if strategy == "scratch" else ["--init-from", "synthetic"])
        result = _target(ws, *extra)
        assert result.exit_code == 0, result.output
    for rec in stored_records(ws, "synthetic_genres"):
        transfer = rec["identity"]["transfer"]
        targets[transfer["strategy"] if transfer else "scratch"] = rec
    assert set(targets) == set(STRATEGIES)
    return ws, source, targets


def _is_head(key: str) -> bool:
    return key.startswith("network.head.")


def test_freeze_all_keeps_every_tensor_but_the_head_bit_identical(ws):
    ws, source, targets = ws
    src, tgt = _weights(ws, source["run_id"]), _weights(ws, targets["freeze_all"]["run_id"])
    body = [k for k in tgt if not _is_head(k)]
    assert any("running_mean" in k for k in body) and any("rnn." in k for k in body)
    for k in body:
        assert torch.equal(src[k], tgt[k]), k
    # The head is new: one output per genre of the target, not per tag of the source.
    n_genres = len(targets["freeze_all"]["identity"]["dataset"]["labels"])
    n_tags = len(source["identity"]["dataset"]["labels"])
    assert n_genres != n_tags
    assert tgt["network.head.1.weight"].shape == (n_genres, 256)
    assert src["network.head.1.weight"].shape == (n_tags, 256)


def test_freeze_all_embeddings_equal_the_sources(ws):
    ws, source, targets = ws
    out = {}
    for name, run_id in (("source", source["run_id"]), ("target", targets["freeze_all"]["run_id"])):
        path = ws / f"{name}.npz"
        result = cli(ws, "embed", run_id, "--dataset", "synthetic_genres", "--split", "test",
                      *TARGET_DATA, "--fold", "0", "--no-progress", "-o", str(path))
        assert result.exit_code == 0, result.output
        with np.load(path, allow_pickle=False) as npz:
            out[name] = (npz["embeddings"], list(npz["clip_ids"]))
    assert out["source"][1] == out["target"][1] and len(out["source"][1]) > 0
    assert out["source"][0].shape[1] == 256
    assert np.abs(out["source"][0] - out["target"][0]).max() == 0.0


def test_freeze_cnn_keeps_the_cnn_and_trains_the_rnn(ws):
    ws, source, targets = ws
    src, tgt = _weights(ws, source["run_id"]), _weights(ws, targets["freeze_cnn"]["run_id"])
    cnn = [k for k in tgt if k.startswith("network.cnn.")]
    rnn = [k for k in tgt if k.startswith("network.rnn.")]
    assert cnn and rnn
    assert all(torch.equal(src[k], tgt[k]) for k in cnn)  # running statistics included
    assert not any(torch.equal(src[k], tgt[k]) for k in rnn if tgt[k].is_floating_point())


def test_finetune_trains_everything_from_the_sources_values(ws):
    ws, source, targets = ws
    src, tgt = _weights(ws, source["run_id"]), _weights(ws, targets["finetune"]["run_id"])
    scratch = _weights(ws, targets["scratch"]["run_id"])
    weights = [k for k in tgt if not _is_head(k) and tgt[k].dim() >= 2]  # conv, recurrent
    assert any("cnn." in k for k in weights) and any("rnn." in k for k in weights)
    for k in weights:
        assert not torch.equal(src[k], tgt[k]), k  # trained
        # one epoch moves a weight far less from the source's value than a new initialisation is
        assert (tgt[k] - src[k]).abs().mean() < (scratch[k] - src[k]).abs().mean(), k


def test_finetune_loads_the_source_before_training(ws):
    """Directly: after apply(), every non-head tensor is the source's and nothing is frozen."""
    from mcbench.features import FrontEnd
    from mcbench.plugins import Registry
    from mcbench.training import as_learner
    from mcbench.transfer import apply, find_source

    ws, source, _ = ws
    ident = source["identity"]
    spec = Registry().model("crnn_tf")
    learner = as_learner(spec.create(FrontEnd(**ident["dataset"]["frontend"]).shape, 10,
                                     task="multiclass", variant="paper"), "multiclass")
    model = {k: ident["model"][k] for k in ("name", "variant", "backend", "options")}
    found = find_source(parse_choice("synthetic", "finetune", None), model, ws / "results",
                        ["synthetic", "synthetic_genres"], "synthetic_genres")
    section = apply(learner, found)
    src = _weights(ws, source["run_id"])
    state = learner.module.state_dict()
    assert all(torch.equal(src[k], v) for k, v in state.items() if not _is_head(k))
    assert all(p.requires_grad for p in learner.module.parameters())
    assert section["n_trainable"] == learner.n_params and section["frozen"] == []


def test_frozen_parameters_get_no_gradient_and_no_weight_decay(ws):
    from mcbench.features import FrontEnd
    from mcbench.plugins import Registry
    from mcbench.training import as_learner, parameter_groups, protocol_config
    from mcbench.transfer import apply, find_source

    ws, source, _ = ws
    ident = source["identity"]
    learner = as_learner(Registry().model("crnn_tf").create(
        FrontEnd(**ident["dataset"]["frontend"]).shape, 10, task="multiclass", variant="paper"),
        "multiclass")
    model = {k: ident["model"][k] for k in ("name", "variant", "backend", "options")}
    found = find_source(parse_choice("synthetic", "freeze_cnn", None), model, ws / "results",
                        ["synthetic", "synthetic_genres"], "synthetic_genres")
    section = apply(learner, found)
    cnn = {id(p) for p in learner.network.cnn.parameters()}
    in_optimizer = {id(p) for g in parameter_groups(learner.module, protocol_config("paper"))
                    for p in g["params"]}
    assert cnn and not cnn & in_optimizer
    assert {id(p) for p in learner.network.rnn.parameters()} <= in_optimizer
    assert section["n_frozen_norm_layers"] == 4 == len(learner.frozen_modules)
    assert section["n_trainable"] == learner.n_params - sum(p.numel() for p in learner.network.cnn.parameters())


def test_scratch_reads_no_source_and_is_the_plain_run(ws):
    ws, _, targets = ws
    result = _target(ws)  # the same run without --transfer
    assert result.exit_code == 0, result.output
    assert "already complete" in result.output and targets["scratch"]["run_id"] in result.output
    assert targets["scratch"]["identity"]["transfer"] is None and targets["scratch"]["transfer"] is None


def test_the_record_names_the_source_and_the_reused_standardisation(ws):
    ws, source, targets = ws
    src_path = ws / "results" / "runs" / "synthetic" / f"{source['run_id']}.json"
    src_state = _weights(ws, source["run_id"])
    for strategy in ("freeze_all", "freeze_cnn", "finetune"):
        rec = targets[strategy]
        assert rec["identity"]["transfer"] == {
            "strategy": strategy, "frozen": list(STRATEGIES[strategy].frozen),
            "source_run": source["run_id"], "source_dataset": "synthetic"}
        section = rec["transfer"]
        assert section["source_record_sha256"] == hashlib.sha256(src_path.read_bytes()).hexdigest()
        assert section["source_checkpoint"] == "best.pt"
        std = section["standardization"]
        assert std["from_source"] and std["mean"] == pytest.approx(float(src_state["mean"]))
        assert float(_weights(ws, rec["run_id"])["mean"]) == float(src_state["mean"])
    ids = {targets[s]["run_id"] for s in STRATEGIES}
    assert len(ids) == 4  # the strategy and the source are part of the identity


def test_the_table_has_one_row_per_strategy_in_the_papers_words(ws):
    ws, _, _ = ws
    result = cli(ws, "table", "--dataset", "synthetic_genres", "--format", "plain")
    assert result.exit_code == 0, result.output
    for label in ("crnn_tf (paper) ", "crnn_tf (paper; freeze from synthetic)",
                  "crnn_tf (paper; freeze CNN + fine-tune RNN from synthetic)",
                  "crnn_tf (paper; fine-tune from synthetic)"):
        assert label in result.output, result.output
    assert "[" not in result.output  # no leftover identity differences in the labels


def _features_of(ws: Path, dataset: str) -> list[Path]:
    return list((ws / "data" / ".cache" / "features").glob(f"{dataset}*/**/*.npy"))


def test_a_source_with_another_clip_length_is_refused_before_features(ws):
    ws, source, _ = ws
    before = _features_of(ws, "synthetic_genres")
    result = cli(ws, "run", "--models", "crnn_tf", "--dataset", "synthetic_genres", *COMMON,
                  "--dataset-param", "n_per_genre=5", "--dataset-param", "seconds=3.0",
                  "--root", str(ws / "data" / "genres-3s"), "--protocol", "cv5", "--folds", "0", "--init-from", source["run_id"])
    assert result.exit_code != 0
    assert source["run_id"] in result.output and "seconds" in result.output
    assert _features_of(ws, "synthetic_genres") == before


def test_a_source_of_another_variant_is_refused(ws):
    ws, source, _ = ws
    result = _target(ws, "--variant", "crnn_tf=wang2019", "--init-from", source["run_id"])
    assert result.exit_code != 0
    assert "variant" in result.output and "wang2019" in result.output and "paper" in result.output


def test_no_finished_source_names_the_command_that_makes_one(ws):
    ws, _, _ = ws
    result = _target(ws, "--param", "crnn_tf.units=16", "--init-from", "synthetic")
    assert result.exit_code != 0
    assert "no finished run of crnn_tf (paper; units=16" in result.output
    assert "mcbench run --models crnn_tf --dataset synthetic --variant crnn_tf=paper " \
           "--param crnn_tf.units=16 --root" in result.output


def test_several_candidate_sources_are_listed(ws, tmp_path):
    ws, source, _ = ws
    other = tmp_path / "ws"
    result = cli(other, "run", "--models", "crnn_tf", "--dataset", "synthetic", *COMMON,
                  *SOURCE_DATA, "--seeds", "2")
    assert result.exit_code == 0, result.output
    result = _target(other, "--init-from", "synthetic", "--transfer", "finetune")
    assert result.exit_code != 0
    assert "2 finished runs" in result.output and "seed 0" in result.output and "seed 1" in result.output
    assert "pass one of these run ids" in result.output


@pytest.mark.parametrize("args, message", [
    (["--transfer", "freeze_cnn"], "needs --init-from"),
    (["--freeze", "head", "--init-from", "synthetic"], "head is always trained"),
    (["--freeze", "cnn", "--transfer", "finetune", "--init-from", "synthetic"], "give one of them"),
    (["--transfer", "scratch", "--init-from", "synthetic"], "reads no source"),
])
def test_inconsistent_transfer_options_fail_before_work(ws, args, message):
    ws, _, _ = ws
    result = _target(ws, *args)
    assert result.exit_code != 0 and message in result.output


def test_a_model_that_cannot_transfer_is_refused_before_work(ws):
    ws, _, _ = ws
    before = _features_of(ws, "synthetic_genres")
    result = _target(ws, "--init-from", "synthetic", models="crnn_tf,mfcc_svm")
    assert result.exit_code != 0 and "mfcc_svm" in result.output
    assert _features_of(ws, "synthetic_genres") == before


def test_freeze_groups_equal_to_a_strategy_are_that_strategy():
    assert parse_choice("mtat", None, "cnn").strategy == "freeze_cnn"
    assert parse_choice("mtat", None, "rnn,cnn").strategy == "freeze_all"
    assert parse_choice("mtat", None, None).strategy == "finetune"
    assert parse_choice(None, None, None) is None
    with pytest.raises(OptionError, match="choose from"):
        parse_choice("mtat", "freeze_everything", None)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = nn.Conv1d(1, 2, 3)
        self.head = nn.Linear(2, 3)

    def forward(self, x):
        return self.head(self.cnn(x).mean(-1))


def test_check_groups_names_each_broken_contract():
    class NoHead(_Net):
        def parameter_groups(self):
            return {"cnn": list(self.cnn.parameters()), "head": []}

    class Missing(_Net):
        def parameter_groups(self):
            return {"cnn": [self.cnn.weight], "head": list(self.head.parameters())}

    class Twice(_Net):
        def parameter_groups(self):
            return {"cnn": list(self.parameters()), "head": list(self.head.parameters())}

    class Unknown(_Net):
        def parameter_groups(self):
            return {"conv": list(self.cnn.parameters()), "head": list(self.head.parameters())}

    class Good(_Net):
        def parameter_groups(self):
            return {"cnn": list(self.cnn.parameters()), "rnn": [], "head": list(self.head.parameters())}

    assert any("'head' group is missing or empty" in p for p in check_groups(NoHead()))
    assert any("in no group, e.g. cnn.bias" in p for p in check_groups(Missing()))
    assert any("in both 'cnn' and 'head'" in p for p in check_groups(Twice()))
    assert any("unknown group(s) ['conv']" in p for p in check_groups(Unknown()))
    assert check_groups(Good()) == [] and check_groups(_Net()) == []


@pytest.mark.parametrize("model", ["crnn_tf", "crnn", "fcn", "timbre_cnn", "end_to_end"])
def test_every_builtin_torch_model_declares_valid_groups(model):
    from mcbench.features import FrontEnd
    from mcbench.plugins import Registry

    spec = Registry().model(model)
    variant = spec.default_variant
    net = spec.create(FrontEnd(spec.frontend(variant), seconds=29.0).shape, 10, task="multiclass",
                      variant=variant)
    assert check_groups(net) == []
    groups = net.parameter_groups()
    assert set(groups) == {"cnn", "rnn", "head"}
    assert bool(groups["rnn"]) == (model in ("crnn_tf", "crnn"))
