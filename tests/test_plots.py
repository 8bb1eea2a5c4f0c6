"""Tests of mcbench.plots: the data each figure reports, the files it writes, its input errors.

Pixels are not compared; the returned data objects (bar heights, points per panel, groups,
wins) are, and the files must be a real PNG and PDF.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from sklearn.metrics import silhouette_score  # noqa: E402

from mcbench.plots import (  # noqa: E402
    SCAN_SUBSETS,
    SCAN_VERTEX_CAPTION,
    plot_learning_curves,
    plot_per_tag,
    plot_scan_ablation,
    plot_tsne,
    tsne_perplexity,
)

TITLE = "test: synthetic stand-in, not the paper's data"

#: Fig. 5 of the paper as plotted by the authors, used here only as marker input.
PAPER_FIG5 = dict(
    zip(
        SCAN_SUBSETS,
        [0.8119, 0.8015, 0.8089, 0.7694, 0.8021, 0.7857, 0.8187, 0.7975,
         0.8663, 0.8767, 0.8673, 0.8705, 0.8952, 0.9032, 0.9078],
        strict=True,
    )
)  # fmt: skip


def assert_png_and_pdf(files, stem):
    png, pdf = files
    assert (png, pdf) == (stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"


# --------------------------------------------------------------------------- Fig. 5


def test_scan_ablation_bars_errors_and_paper_markers(tmp_path):
    ours = {s: (v - 0.01, 0.004 if i % 2 else None) for i, (s, v) in enumerate(PAPER_FIG5.items())}
    stem = tmp_path / "figs" / "fig5"
    fig = plot_scan_ablation(ours, PAPER_FIG5, stem, TITLE)
    assert fig.subsets == SCAN_SUBSETS
    assert fig.ours == pytest.approx([ours[s][0] for s in SCAN_SUBSETS])
    assert fig.ours_std == tuple(ours[s][1] for s in SCAN_SUBSETS)
    assert fig.paper == tuple(PAPER_FIG5[s] for s in SCAN_SUBSETS)
    assert "A = lowest band, first frame" in fig.caption and fig.caption == SCAN_VERTEX_CAPTION
    assert_png_and_pdf(fig.files, stem)


def test_scan_ablation_with_some_subsets_keeps_the_paper_order(tmp_path):
    ours = {"all": (0.86, 0.01), "Ar": (0.80, None), "ABCD_c": (float("nan"), 0.1)}
    paper = {"Dc": 0.7975, "Ar": 0.8119}
    fig = plot_scan_ablation(ours, paper, tmp_path / "fig5.png", TITLE)
    assert fig.subsets == ("Ar", "Dc", "ABCD_c", "all")
    assert fig.ours == (0.80, None, None, 0.86)  # NaN is a missing bar, and so is its std
    assert fig.ours_std == (None, None, None, 0.01)
    assert fig.paper == (0.8119, 0.7975, None, None)
    assert_png_and_pdf(fig.files, tmp_path / "fig5")


def test_scan_ablation_input_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown scan subsets \['AB'\]"):
        plot_scan_ablation({"AB": (0.8, None)}, {}, tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match=r"ours\['Ar'\] must be a pair"):
        plot_scan_ablation({"Ar": 0.8}, {}, tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match="std must be ≥ 0"):
        plot_scan_ablation({"Ar": (0.8, -0.1)}, {}, tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match="both empty"):
        plot_scan_ablation({}, {}, tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match="title must be a non-empty string"):
        plot_scan_ablation({"Ar": (0.8, None)}, {}, tmp_path / "f", "")
    assert not list(tmp_path.iterdir())


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r'pip install "mcbench\[plots\]"'):
        plot_scan_ablation({"Ar": (0.8, None)}, {}, tmp_path / "f", TITLE)


def test_same_data_give_the_same_pdf(tmp_path):
    ours = {"Ar": (0.8, 0.01), "all": (0.9, None)}
    first = plot_scan_ablation(ours, PAPER_FIG5, tmp_path / "a", TITLE)
    second = plot_scan_ablation(ours, PAPER_FIG5, tmp_path / "b", TITLE)
    assert first.files[1].read_bytes() == second.files[1].read_bytes()


# --------------------------------------------------------------------------- Fig. 6


GROUPS = {
    "genre": ["rock", "pop", "techno"],
    "instrument": ["guitar", "piano"],
    "mood": ["slow", "loud"],
}


def test_per_tag_values_wins_and_ties(tmp_path):
    per_tag = {
        "crnn_tf": {"rock": 0.9, "pop": 0.8, "techno": 0.95, "guitar": 0.7, "piano": 0.9,
                    "slow": 0.85, "loud": 0.9, "other": 0.1},
        "crnn": {"rock": 0.85, "pop": 0.8, "techno": 0.9, "guitar": 0.75, "piano": 0.85,
                 "slow": 0.8, "loud": None},
        "fcn": {"rock": 0.7, "pop": 0.6, "techno": 0.97, "guitar": 0.72, "piano": float("nan"),
                "slow": 0.84, "loud": 0.88},
    }  # fmt: skip
    stem = tmp_path / "fig6"
    fig = plot_per_tag(per_tag, GROUPS, stem, TITLE)
    assert fig.tags == ("rock", "pop", "techno", "guitar", "piano", "slow", "loud")
    assert fig.tag_groups == ("genre",) * 3 + ("instrument",) * 2 + ("mood",) * 2
    assert fig.models == ("crnn_tf", "crnn", "fcn")
    assert fig.values["crnn"] == (0.85, 0.8, 0.9, 0.75, 0.85, 0.8, None)
    assert fig.values["fcn"][4] is None  # NaN: no point
    assert fig.wins == {
        "crnn_tf": {"genre": 1, "instrument": 1, "mood": 2},
        "crnn": {"genre": 0, "instrument": 1, "mood": 0},
        "fcn": {"genre": 1, "instrument": 0, "mood": 0},
    }
    assert fig.ties == {"pop": ("crnn_tf", "crnn")}
    assert_png_and_pdf(fig.files, stem)


def test_per_tag_input_errors(tmp_path):
    per_tag = {"m": {"rock": 0.9, "pop": 0.8}}
    with pytest.raises(ValueError, match=r"no model has a value for the tags \['jazz'\]"):
        plot_per_tag(per_tag, {"genre": ["rock", "jazz"]}, tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match="'rock' is listed in group 'genre' and 'mood'"):
        plot_per_tag(per_tag, {"genre": ["rock"], "mood": ["rock"]}, tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match=r"groups\['genre'\] must be a non-empty list"):
        plot_per_tag(per_tag, {"genre": "rock"}, tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match=r"per_tag\['m'\]\['pop'\] must be a number"):
        plot_per_tag({"m": {"rock": 0.9, "pop": "high"}}, {"g": ["pop"]}, tmp_path / "f", TITLE)


# --------------------------------------------------------------------------- Fig. 7


def clustered(n_per_class=15, n_classes=3, dims=8, spread=0.2, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (n_classes, dims))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + rng.normal(0, spread, (labels.size, dims)), labels


def test_tsne_panels_points_and_silhouette_in_embedding_space(tmp_path):
    tight, labels = clustered()
    noise = np.random.default_rng(1).normal(size=(45, 5))
    stem = tmp_path / "fig7"
    fig = plot_tsne(
        {"raw": (noise, labels), "crnn_tf": (tight, labels)}, ["rock", "pop", "jazz"], stem, TITLE
    )
    raw, ours = fig.panels
    assert (raw.name, ours.name) == ("raw", "crnn_tf")
    assert (raw.n_points, raw.n_dims, ours.n_dims) == (45, 5, 8)
    assert raw.perplexity == pytest.approx(44 / 3)  # min(30, (N − 1)/3)
    assert raw.coords.shape == (45, 2) and raw.classes == (0, 1, 2)
    assert ours.silhouette == pytest.approx(silhouette_score(tight, labels))
    assert ours.silhouette != pytest.approx(silhouette_score(ours.coords, labels), abs=1e-6)
    assert ours.silhouette > 0.8 and abs(raw.silhouette) < 0.2
    assert fig.label_names == ("rock", "pop", "jazz") and fig.seed == 0
    assert_png_and_pdf(fig.files, stem)

    again = plot_tsne({"crnn_tf": (tight, labels)}, ["rock", "pop", "jazz"], tmp_path / "b", TITLE)
    np.testing.assert_array_equal(again.panels[0].coords, ours.coords)


def test_tsne_single_class_has_no_silhouette_and_errors_are_clear(tmp_path):
    emb, _ = clustered(n_per_class=6, n_classes=1)
    fig = plot_tsne({"one": (emb, np.zeros(6, dtype=int))}, ["rock"], tmp_path / "f", TITLE)
    assert fig.panels[0].silhouette is None
    assert fig.panels[0].perplexity == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match=r"class indices in 0\.\.1"):
        plot_tsne({"p": (emb, np.array([0, 1, 2, 0, 1, 0]))}, ["a", "b"], tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\)"):
        plot_tsne({"p": (emb, np.zeros(5, dtype=int))}, ["a"], tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match="at least 4"):
        plot_tsne({"p": (emb[:3], np.zeros(3, dtype=int))}, ["a"], tmp_path / "f", TITLE)


def test_tsne_perplexity_keeps_the_request_on_large_sets():
    assert tsne_perplexity(30, 1000) == 30
    assert tsne_perplexity(30, 91) == 30
    assert tsne_perplexity(30, 61) == 20


# --------------------------------------------------------------------------- learning curves


def test_learning_curves_epochs_values_and_best_epoch(tmp_path):
    histories = {
        "crnn_tf seed 0": [
            {"epoch": 1, "loss": 0.5, "valid_metric": 0.80, "lr": 1e-3},
            {"epoch": 0, "loss": 0.7, "valid_metric": 0.70},
            {"epoch": 2, "loss": 0.4, "valid_metric": 0.80},
        ],
        "mfcc_svm": [{"epoch": 0, "train_accuracy": 0.9, "valid_metric": None}],
    }
    stem = tmp_path / "curves"
    fig = plot_learning_curves(histories, stem, TITLE, metric_name="validation ROC-AUC")
    crnn_tf, svm = fig.curves
    assert crnn_tf.epochs == (1, 2, 3)
    assert crnn_tf.loss == (0.7, 0.5, 0.4)
    assert crnn_tf.valid_metric == (0.70, 0.80, 0.80)
    assert crnn_tf.best_epoch == 2  # the tie at 0.80 keeps the earlier epoch
    assert (svm.epochs, svm.loss, svm.valid_metric, svm.best_epoch) == (
        (1,),
        (None,),
        (None,),
        None,
    )
    assert_png_and_pdf(fig.files, stem)


def test_learning_curves_input_errors(tmp_path):
    with pytest.raises(ValueError, match="lists an epoch twice"):
        plot_learning_curves({"r": [{"epoch": 0}, {"epoch": 0}]}, tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match=r"histories\['r'\]\[1\] must be a dict with an 'epoch'"):
        plot_learning_curves({"r": [{"epoch": 0}, {"loss": 1.0}]}, tmp_path / "f", TITLE)
    with pytest.raises(ValueError, match="non-empty list"):
        plot_learning_curves({"r": []}, tmp_path / "f", TITLE)
