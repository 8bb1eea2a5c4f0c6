"""Run identity and ids (mcbench.identity)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from record_factory import make_identity

from mcbench import identity


def test_run_id_is_canonical_sha256_of_the_identity():
    ident = {"model": {"name": "fcn", "variant": "default"}, "seed": 3, "training": {"lr": 0.001, "b": 1}}
    canonical = ('{"model":{"name":"fcn","variant":"default"},"seed":3,'
                 '"training":{"b":1,"lr":0.001}}')
    assert identity.run_id(ident) == "fcn-default-" + hashlib.sha256(canonical.encode()).hexdigest()[:10]


def test_run_id_stable_across_key_order_and_sensitive_to_every_part():
    a = make_identity(seed=1)
    reordered = json.loads(json.dumps(dict(reversed(list(a.items())))))
    assert identity.run_id(reordered) == identity.run_id(a)
    assert re.fullmatch(r"crnn_tf-paper-[0-9a-f]{10}", identity.run_id(a))
    for other in (make_identity(seed=2), make_identity(seed=1, split="B"),
                  make_identity(seed=1, training={"max_epochs": 2}),
                  make_identity(seed=1, options={"cell": "gru"}),
                  make_identity(seed=1, backend="keras"), make_identity(seed=1, fold=0)):
        assert identity.run_id(other) != identity.run_id(a)
    # Values that serialise identically hash identically (tuple vs list, numpy vs Python).
    b = make_identity(seed=1, options={"shape": (96, 1366), "sr": np.int64(12000)})
    c = make_identity(seed=1, options={"shape": [96, 1366], "sr": 12000})
    assert identity.run_id(b) == identity.run_id(c)
    # ... but a boolean is not the string that looks like it
    assert identity.run_id(make_identity(options={"x": False})) != identity.run_id(
        make_identity(options={"x": "False"}))


def test_run_id_refuses_values_without_a_stable_text():
    with pytest.raises(TypeError, match="object"):
        identity.run_id(make_identity(options={"x": object()}))


def test_to_jsonable_makes_strict_json():
    value = {"a": float("nan"), "b": np.float32(0.5), "c": np.arange(3), "d": Path("x/y"), 1: True}
    assert identity.to_jsonable(value) == {"a": None, "b": 0.5, "c": [0, 1, 2], "d": "x/y", "1": True}


def test_grouping_key_drops_only_seed_fold_and_per_fold_data():
    a, b = make_identity(seed=0, fold=0, split="A"), make_identity(seed=4, fold=2, split="B")
    assert identity.grouping_key(a) == identity.grouping_key(b)
    assert identity.grouping_key(a) != identity.grouping_key(make_identity(training={"max_epochs": 1}))


def test_short_names():
    assert [identity.short_name(k) for k in (
        "training.max_epochs", "model.options.cell", "dataset.params.n_clips", "model.backend",
        "seed")] == ["epochs", "cell", "data.n_clips", "backend", "seed"]
