"""Version-2 run records for tests, with valid run ids (a hash of their identity)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mcbench import storage
from mcbench.identity import RESULT_VERSION, run_id
from mcbench.records import RunRecord, validate

#: key -> (display name, order, higher_is_better, headline); name order ≠ `order` on purpose.
METRICS = {
    "roc_auc": ("ROC-AUC", 10, True, True),
    "recall_at_3": ("Recall@3", 23, True, True),
    "log_loss": ("Log loss", 95, False, True),
    "pr_auc": ("PR-AUC", 90, True, False),
}


def make_identity(model="crnn_tf", variant="paper", seed=0, *, dataset="synthetic",
                  protocol="fixed", fold=None, split="A", options=None, training=None,
                  params=None, backend="torch") -> dict[str, Any]:
    """``split`` names the data version its fingerprints and content digests are hashed from."""
    splits = {
        name: {"fingerprint": hashlib.sha256(f"{split}|{fold}|{name}".encode()).hexdigest()[:16],
               "n": {"train": 10, "valid": 4, "test": 4}[name],
               "content": hashlib.sha256(f"content {split}|{fold}|{name}".encode()).hexdigest()[:16]}
        for name in ("train", "valid", "test")
    }
    return {
        "code_version": RESULT_VERSION,
        "model": {"name": model, "variant": variant, "backend": backend,
                  "options": dict(options or {})},
        "dataset": {"name": dataset, "task": "multilabel", "protocol": protocol, "fold": fold,
                    "params": dict(params or {}), "labels": ["guitar", "piano"],
                    "frontend": {"name": "logmel", "sample_rate": 12000, "seconds": 29.0},
                    "splits": splits},
        "training": {"protocol": "paper", "max_epochs": 8, "batch_size": 32, "lr": 0.001,
                     "select_metric": "roc_auc", **(training or {})},
        "seed": seed,
        "transfer": None,
    }


def make_record(model="crnn_tf", variant="paper", seed=0, values=None, *, status="complete",
                minute=None, **identity_kw) -> dict[str, Any]:
    """A version-2 record (a JSON object) with the given test metric values."""
    identity = make_identity(model, variant, seed, **identity_kw)
    rid = run_id(identity)
    values = {"roc_auc": 0.9} if values is None else values
    minute = seed if minute is None else minute
    record: dict[str, Any] = {
        "schema_version": 2,
        "run_id": rid,
        "status": status,
        "created": f"2026-11-24T23:{minute:02d}:00+00:00",
        "identity": identity,
        "split": {"sizes": {"train": 10, "valid": 4, "test": 4}, "n_dropped": 0, "dropped": [],
                  "notes": {}},
        "device": "cpu",
        "history": [{"epoch": 0, "loss": 0.6, "valid_metric": 0.7, "lr": 0.001, "seconds": 1.0}],
        "selected_epoch": 0,
        "n_params": 1000,
        "timings": {"total_s": 1.0},
        "peak_memory_mb": {"cpu_rss": 100.0, "cuda": None},
        "git_commit": None,
    }
    if status == "complete":
        record.update(
            finished=f"2026-11-24T23:{minute:02d}:30+00:00",
            scores_path=f"{rid}.scores.npz",
            test={key: {"name": METRICS[key][0], "value": value,
                        "higher_is_better": METRICS[key][2], "headline": METRICS[key][3],
                        "order": METRICS[key][1], "per_label": None, "extra": {}}
                  for key, value in values.items()},
        )
    if status == "failed":
        record["error"] = "RuntimeError: boom"
    return record


def records(*objs: dict) -> list[RunRecord]:
    return [validate(o) for o in objs]


def write_record(results_dir: Path, record: dict) -> Path:
    path = storage.record_path(results_dir, record["identity"]["dataset"]["name"], record["run_id"])
    return storage.atomic_write_json(path, record)
