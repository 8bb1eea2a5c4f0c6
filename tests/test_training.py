"""The torch trainer: protocol, L2 groups, selection on validation, determinism and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mcbench.specs import MULTICLASS, MULTILABEL, FeatureSplit
from mcbench.training import (
    TorchLearner,
    as_learner,
    parameter_groups,
    protocol_config,
)


def toy_split(name: str, n: int, task: str, seed: int) -> FeatureSplit:
    rng = np.random.default_rng(seed)
    y_idx = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, 1, 8, 12)).astype(np.float32)
    x[:, 0, y_idx * 2, :] += 2.0  # a learnable band per class
    if task == MULTILABEL:
        y = np.eye(3, dtype=np.float32)[y_idx]
    else:
        y = y_idx.astype(np.int64)
    return FeatureSplit(name, [f"{name}{i}" for i in range(n)], x, y, task, ["a", "b", "c"])


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.gru = nn.GRU(4 * 8, 6, batch_first=True)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))  # (B, 4, 8, 12)
        seq = h.permute(0, 3, 1, 2).flatten(2)  # (B, 12, 32)
        _, last = self.gru(seq)
        return self.out(self.drop(last[-1]))


def accuracy(y, s):
    y = np.asarray(y)
    return float(np.mean(s.argmax(1) == (y.argmax(1) if y.ndim == 2 else y)))


def config(tmp_path=None, **kw):
    base = dict(max_epochs=4, batch_size=8, seed=3, device="cpu", progress=False,
                select_metric=accuracy, workdir=tmp_path)
    base.update(kw)
    return protocol_config("paper", **base)


def test_protocols():
    paper = protocol_config("paper")
    assert (paper.lr, paper.lr_decay, paper.adam_eps, paper.batch_size, paper.max_epochs) == (1e-3, 0.9, 1e-7, 32, 50)
    assert paper.l2_conv == paper.l2_output == paper.l2_recurrent == 1e-6
    wang = protocol_config("wang2019")
    assert wang.lr_decay == 1.0 and wang.l2_conv == 0.0
    with pytest.raises(ValueError, match="unknown training protocol"):
        protocol_config("nope")
    with pytest.raises(ValueError, match="unknown training setting"):
        protocol_config("paper", epochs=3)


def test_l2_groups_follow_eq2():
    model = Toy()
    groups = {g["l2_group"]: g for g in parameter_groups(model, config(l2_conv=1e-6, l2_output=2e-6, l2_recurrent=3e-6))}
    ids = {k: {id(p) for p in g["params"]} for k, g in groups.items()}
    assert ids["conv"] == {id(model.conv.weight), id(model.conv.bias)}
    assert ids["output"] == {id(model.out.weight), id(model.out.bias)}
    assert ids["recurrent"] == {id(p) for p in model.gru.parameters()}
    assert ids["none"] == {id(model.bn.weight), id(model.bn.bias)}  # BN never penalised
    assert groups["conv"]["weight_decay"] == pytest.approx(2e-6)
    assert groups["output"]["weight_decay"] == pytest.approx(4e-6)
    assert groups["recurrent"]["weight_decay"] == pytest.approx(6e-6)
    assert groups["none"]["weight_decay"] == 0.0


def test_declared_l2_group_owns_its_sublayers():
    class Block(nn.Module):
        l2_group = "recurrent"

        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4, bias=False)

    model = nn.Sequential(Block(), nn.Linear(4, 2))
    groups = {g["l2_group"]: g for g in parameter_groups(model, config())}
    assert {id(p) for p in groups["recurrent"]["params"]} == {id(model[0].proj.weight)}


def test_adam_weight_decay_2lambda_equals_l2_term_in_loss():
    torch.manual_seed(0)
    lin = nn.Linear(5, 1)
    twin = nn.Linear(5, 1)
    twin.load_state_dict(lin.state_dict())
    x, y = torch.randn(16, 5), torch.randn(16, 1)
    lam = 0.01
    opt_a = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=2 * lam)
    opt_b = torch.optim.Adam(twin.parameters(), lr=1e-2)
    for _ in range(3):
        loss_a = ((lin(x) - y) ** 2).mean()
        opt_a.zero_grad(); loss_a.backward(); opt_a.step()  # noqa: E702
        loss_b = ((twin(x) - y) ** 2).mean() + lam * sum((p**2).sum() for p in twin.parameters())
        opt_b.zero_grad(); loss_b.backward(); opt_b.step()  # noqa: E702
    for a, b in zip(lin.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("task", [MULTICLASS, MULTILABEL])
def test_training_learns_decays_lr_and_selects_on_validation(task):
    torch.manual_seed(0)
    train, valid = toy_split("tr", 64, task, 0), toy_split("va", 24, task, 1)
    learner = TorchLearner(Toy(), task)
    history = learner.fit(train, valid, config(max_epochs=5, lr=1e-2))
    assert [round(h["lr"], 10) for h in history] == [round(1e-2 * 0.9**e, 10) for e in range(5)]
    assert history[-1]["loss"] < history[0]["loss"]
    best = max(range(5), key=lambda e: (history[e]["valid_metric"], -e))
    assert learner.selected_epoch == best
    # the learner now holds the selected epoch's weights
    assert accuracy(valid.y, learner.predict(valid)) == pytest.approx(history[best]["valid_metric"])
    probs = learner.predict(valid)
    assert probs.shape == (24, 3) and np.all((probs >= 0) & (probs <= 1))
    if task == MULTICLASS:
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_tie_keeps_earlier_epoch_and_patience_stops():
    train, valid = toy_split("tr", 16, MULTICLASS, 0), toy_split("va", 8, MULTICLASS, 1)
    learner = TorchLearner(Toy(), MULTICLASS)
    history = learner.fit(train, valid, config(max_epochs=10, patience=2, select_metric=lambda y, s: 0.5))
    assert learner.selected_epoch == 0
    assert len(history) == 3  # epoch 0 best, then two epochs without improvement


def test_deterministic_under_a_seed(tmp_path):
    train, valid = toy_split("tr", 32, MULTICLASS, 0), toy_split("va", 8, MULTICLASS, 1)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        learner = TorchLearner(Toy(), MULTICLASS)
        h = learner.fit(train, valid, config(max_epochs=3))
        runs.append(([e["loss"] for e in h], learner.predict(valid)))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_interrupted_training_resumes_from_last_epoch(tmp_path):
    train, valid = toy_split("tr", 40, MULTILABEL, 0), toy_split("va", 12, MULTILABEL, 1)

    torch.manual_seed(11)
    straight = TorchLearner(Toy(), MULTILABEL)
    h_straight = straight.fit(train, valid, config(tmp_path / "a", max_epochs=5))

    def stop_after_epoch_2(entry):
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    torch.manual_seed(11)
    first = TorchLearner(Toy(), MULTILABEL)
    with pytest.raises(KeyboardInterrupt):
        first.fit(train, valid, config(tmp_path / "b", max_epochs=5, epoch_callback=stop_after_epoch_2))
    # epoch 2 was interrupted before its checkpoint: the last completed epoch is 1
    epochs_run = []
    torch.manual_seed(999)  # a fresh process would initialise differently; the checkpoint wins
    second = TorchLearner(Toy(), MULTILABEL)
    h_resumed = second.fit(train, valid, config(tmp_path / "b", max_epochs=5,
                                                epoch_callback=lambda e: epochs_run.append(e["epoch"])))
    assert epochs_run == [2, 3, 4]
    assert [e["loss"] for e in h_resumed] == pytest.approx([e["loss"] for e in h_straight], abs=1e-6)
    np.testing.assert_allclose(second.predict(valid), straight.predict(valid), atol=1e-6)
    # a finished run started again does no more work
    epochs_run.clear()
    TorchLearner(Toy(), MULTILABEL).fit(train, valid, config(tmp_path / "b", max_epochs=5,
                                                             epoch_callback=lambda e: epochs_run.append(e)))
    assert epochs_run == []


def test_nan_loss_is_an_error():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.full((x.shape[0], 3), float("nan")) + self.w

    with pytest.raises(FloatingPointError, match="loss became nan"):
        TorchLearner(Bad(), MULTICLASS).fit(toy_split("tr", 8, MULTICLASS, 0),
                                            toy_split("va", 4, MULTICLASS, 1), config())


def test_as_learner_rejects_non_learners():
    with pytest.raises(TypeError, match="neither a torch.nn.Module nor a learner"):
        as_learner(object(), MULTICLASS)


def test_save_load_roundtrip(tmp_path):
    a = TorchLearner(Toy(), MULTICLASS)
    split = toy_split("va", 6, MULTICLASS, 1)
    a.save(tmp_path / "m.pt")
    b = TorchLearner(Toy(), MULTICLASS)
    b.load(tmp_path / "m.pt")
    np.testing.assert_array_equal(a.predict(split), b.predict(split))


def test_batchnorm_running_stats_are_bias_corrected_at_the_start():
    """After a few steps the running mean is the average of the batch means, not ~0."""
    model = nn.Sequential(nn.BatchNorm1d(2, momentum=0.01), nn.Linear(2, 3))
    x = np.full((16, 2), 5.0, dtype=np.float32) + np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    split = FeatureSplit("tr", [str(i) for i in range(16)], x, np.arange(16) % 3, MULTICLASS, ["a", "b", "c"])
    learner = TorchLearner(model, MULTICLASS)
    learner.fit(split, split, config(max_epochs=1, batch_size=4, standardize=False))
    torch.testing.assert_close(model[0].running_mean, torch.from_numpy(x.mean(0)), atol=1e-5, rtol=0)
    assert model[0].momentum == pytest.approx(0.25)  # 1/(step+1) at the 4th step; 0.01 from step 100


def test_inputs_are_standardised_with_training_statistics(tmp_path):
    train, valid = toy_split("tr", 24, MULTICLASS, 0), toy_split("va", 8, MULTICLASS, 1)
    train.x = train.x * 16.0 - 30.0  # decibel-like scale
    learner = TorchLearner(Toy(), MULTICLASS)
    learner.fit(train, valid, config(max_epochs=1))
    assert learner.module.mean.item() == pytest.approx(float(train.x.astype(np.float64).mean()), rel=1e-5)
    assert learner.module.std.item() == pytest.approx(float(train.x.astype(np.float64).std()), rel=1e-5)
    learner.save(tmp_path / "m.pt")
    fresh = TorchLearner(Toy(), MULTICLASS)
    fresh.load(tmp_path / "m.pt")
    assert fresh.module.mean.item() == learner.module.mean.item()
    np.testing.assert_array_equal(fresh.predict(valid), learner.predict(valid))
    off = TorchLearner(Toy(), MULTICLASS)
    off.fit(train, valid, config(max_epochs=1, standardize=False))
    assert (off.module.mean.item(), off.module.std.item()) == (0.0, 1.0)


@pytest.mark.parametrize("higher_is_better,selected", [(True, 2), (False, 1)])
def test_selection_follows_the_metrics_direction(higher_is_better, selected):
    """A loss-like selection metric keeps its smallest epoch, an AUC-like one its largest; an
    undefined value (NaN) never selects."""
    values = iter([float("nan"), 0.3, 0.6, 0.4])
    train, valid = toy_split("tr", 16, MULTICLASS, 0), toy_split("va", 8, MULTICLASS, 1)
    learner = TorchLearner(Toy(), MULTICLASS)
    history = learner.fit(train, valid, config(select_metric=lambda y, s: next(values),
                                               select_higher_is_better=higher_is_better))
    assert len(history) == 4 and learner.selected_epoch == selected


def test_improves():
    from mcbench.specs import improves

    assert improves(0.5, None) and not improves(float("nan"), None)
    assert improves(0.5, float("-inf"))  # a checkpoint written before the first finite value
    assert not improves(0.5, 0.5) and not improves(0.5, 0.5, higher_is_better=False)
    assert improves(0.4, 0.5, higher_is_better=False) and not improves(0.4, 0.5)
