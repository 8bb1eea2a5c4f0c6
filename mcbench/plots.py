"""Figures of Wang et al., "Music Classification using an Improved CRNN with Multi-Directional
Spatial Dependencies in Both Time and Frequency Dimensions" (IJCNN 2019), on plain inputs.

* :func:`plot_scan_ablation` — Sec. V-E, Fig. 5: test ROC-AUC of CRNN-TF per scan subset.
* :func:`plot_per_tag` — Sec. V-E, Fig. 6: per-tag test ROC-AUC, tags grouped into genre,
  instrument and mood, one series per model, with the number of tags each model wins.
* :func:`plot_tsne` — Sec. V-F, Fig. 7: t-SNE maps of test-clip embeddings coloured by genre,
  with the silhouette score of the labels in the embedding space.
* :func:`plot_learning_curves` — training loss and validation metric per epoch (no figure of
  the paper; a check on the runs behind the others).

Every function writes ``<stem>.png`` and ``<stem>.pdf``, puts the caller's ``title`` on top of
the figure (e.g. to say that a demo shows synthetic stand-in data), and returns a small frozen
dataclass holding exactly what was drawn — bar heights, points, groups — so that callers and
tests can check the numbers rather than pixels.

matplotlib is an optional dependency (``pip install "mcbench[plots]"``) imported only inside the
functions. Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so plotting
never changes the interactive backend or global state of a session.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCAN_SUBSETS",
    "SCAN_SUBSET_TICKS",
    "SCAN_VERTEX_CAPTION",
    "ScanAblationFigure",
    "PerTagFigure",
    "TsnePanel",
    "TsneFigure",
    "LearningCurve",
    "LearningCurvesFigure",
    "tsne_perplexity",
    "plot_scan_ablation",
    "plot_per_tag",
    "plot_tsne",
    "plot_learning_curves",
]

#: The 15 scan subsets of Fig. 5 in the paper's order: the eight single scans, the row and
#: column scans of each vertex, the four row scans, the four column scans, and all eight.
SCAN_SUBSETS = (
    "Ar", "Ac", "Br", "Bc", "Cr", "Cc", "Dr", "Dc",
    "A_rc", "B_rc", "C_rc", "D_rc",
    "ABCD_r", "ABCD_c",
    "all",
)  # fmt: skip
#: Tick labels of the subsets in the paper's notation (matplotlib mathtext subscripts).
SCAN_SUBSET_TICKS = {
    **{name: f"{name[0]}$_{name[1]}$" for name in SCAN_SUBSETS[:8]},
    **{name: f"{name[0]}$_{{rc}}$" for name in SCAN_SUBSETS[8:12]},
    "ABCD_r": "(ABCD)$_r$",
    "ABCD_c": "(ABCD)$_c$",
    "all": "ABCD",
}
#: Where the groups of Fig. 5 end (a separator is drawn after these subsets).
_SCAN_GROUP_ENDS = ("Dc", "D_rc", "ABCD_c")
#: Which vertex is which, as CRNN-TF's scans read the CNN feature map (Sec. III-C).
SCAN_VERTEX_CAPTION = (
    "Vertices of the CNN feature map (rows = mel bands, row 0 the lowest; columns = frames): "
    "A = lowest band, first frame; B = lowest band, last frame; C = highest band, first frame; "
    "D = highest band, last frame. r = row-wise scan (one step per band row, starting at the "
    "vertex), c = column-wise scan (one step per frame column)."
)

#: Caption width in characters before wrapping.
_WRAP = 110
#: Resolution of the PNG files.
_PNG_DPI = 150


# --------------------------------------------------------------------------- plumbing


def _new_figure(figsize: tuple[float, float]):
    """A matplotlib Figure on an Agg canvas, or a clear error naming the extra to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            'mcbench figures need matplotlib; install it with: pip install "mcbench[plots]"'
        ) from exc
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_title(title: Any) -> str:
    if not isinstance(title, str) or not title.strip():
        raise ValueError(
            "title must be a non-empty string (it heads the figure, e.g. to label a demo "
            f"as synthetic stand-in data); got {title!r}"
        )
    return title


def _save(fig, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf``; a ``.png``/``.pdf`` suffix on ``path`` is dropped."""
    stem = Path(path)
    if stem.suffix.lower() in (".png", ".pdf"):
        stem = stem.with_suffix("")
    if not stem.name:
        raise ValueError(f"path must name a file stem such as 'figures/fig5', got {path!r}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = stem.with_name(stem.name + ".png")
    pdf = stem.with_name(stem.name + ".pdf")
    fig.savefig(png, dpi=_PNG_DPI)
    # No creation date: the same data give the same PDF bytes.
    fig.savefig(pdf, metadata={"CreationDate": None})
    return png, pdf


def _optional_value(value: Any, where: str) -> float | None:
    """A finite float, or None for a missing value (None or NaN)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a number or None, got {value!r}") from None
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise ValueError(f"{where} is infinite")
    return number


def _class_colours(n_classes: int):
    """Distinct colours: tab10 up to 10 classes, tab20 up to 20, then a continuous map."""
    from matplotlib import colormaps

    if n_classes <= 10:
        return [colormaps["tab10"](i) for i in range(n_classes)]
    if n_classes <= 20:
        return [colormaps["tab20"](i) for i in range(n_classes)]
    cmap = colormaps["viridis"]
    return [cmap(i / (n_classes - 1)) for i in range(n_classes)]


# --------------------------------------------------------------------------- Fig. 5


@dataclass(frozen=True)
class ScanAblationFigure:
    """What :func:`plot_scan_ablation` drew, one entry per subset on the x axis.

    ``ours`` are the bar heights (None: no bar), ``ours_std`` the error-bar half-lengths
    (None: no error bar), ``paper`` the marker heights (None: no marker).
    """

    subsets: tuple[str, ...]
    ours: tuple[float | None, ...]
    ours_std: tuple[float | None, ...]
    paper: tuple[float | None, ...]
    caption: str
    files: tuple[Path, Path]


def _check_subsets(mapping: Mapping, name: str) -> None:
    if not isinstance(mapping, Mapping):
        raise ValueError(
            f"{name} must be a dict keyed by scan subset, got {type(mapping).__name__}"
        )
    unknown = [k for k in mapping if k not in SCAN_SUBSETS]
    if unknown:
        raise ValueError(f"{name} has unknown scan subsets {unknown}; use {list(SCAN_SUBSETS)}")


def plot_scan_ablation(
    ours: Mapping[str, tuple[float, float | None]],
    paper: Mapping[str, float],
    path: str | os.PathLike,
    title: str,
    ylabel: str = "test ROC-AUC",
    ours_label: str = "mcbench",
) -> ScanAblationFigure:
    """Fig. 5 (Sec. V-E): CRNN-TF's test ROC-AUC for each subset of its eight scans.

    ``ours`` maps a subset of :data:`SCAN_SUBSETS` to ``(mean, std)`` (std None for one run):
    drawn as bars with ± std error bars. ``paper`` maps a subset to the paper's value: drawn as
    markers. The x axis holds, in the paper's order, every subset present in either; the
    caption under the axis says which vertex of the feature map is which
    (:data:`SCAN_VERTEX_CAPTION`). The y axis starts just below the lowest value shown, so
    the bars' lower ends are cut off and only their tops compare.
    """
    title = _check_title(title)
    _check_subsets(ours, "ours")
    _check_subsets(paper, "paper")
    subsets = tuple(s for s in SCAN_SUBSETS if s in ours or s in paper)
    if not subsets:
        raise ValueError("ours and paper are both empty; give at least one scan subset's value")

    means, stds, refs = [], [], []
    for s in subsets:
        mean = std = None
        if s in ours:
            entry = ours[s]
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                raise ValueError(f"ours[{s!r}] must be a pair (mean, std or None), got {entry!r}")
            mean = _optional_value(entry[0], f"ours[{s!r}] mean")
            std = _optional_value(entry[1], f"ours[{s!r}] std")
            if std is not None and std < 0:
                raise ValueError(f"ours[{s!r}] std must be ≥ 0, got {std}")
            if mean is None:
                std = None
        means.append(mean)
        stds.append(std)
        refs.append(_optional_value(paper.get(s), f"paper[{s!r}]"))

    fig = _new_figure((11.0, 4.8))
    ax = fig.add_subplot()
    x = np.arange(len(subsets))
    bar_x = [i for i, m in enumerate(means) if m is not None]
    if bar_x:
        has_std = any(stds[i] is not None for i in bar_x)
        ax.bar(
            bar_x,
            [means[i] for i in bar_x],
            width=0.7,
            color="tab:blue",
            label=f"{ours_label} (mean ± std)" if has_std else ours_label,
            zorder=2,
        )
        err_x = [i for i in bar_x if stds[i] is not None]
        if err_x:
            ax.errorbar(
                err_x,
                [means[i] for i in err_x],
                yerr=[stds[i] for i in err_x],
                fmt="none",
                ecolor="black",
                capsize=3,
                zorder=3,
            )
    ref_x = [i for i, v in enumerate(refs) if v is not None]
    if ref_x:
        ax.plot(
            ref_x,
            [refs[i] for i in ref_x],
            linestyle="none",
            marker="D",
            color="tab:red",
            label="Wang et al. 2019, Fig. 5",
            zorder=4,
        )
    lows = [m - (s or 0.0) for m, s in zip(means, stds) if m is not None]
    highs = [m + (s or 0.0) for m, s in zip(means, stds) if m is not None]
    lows += [v for v in refs if v is not None]
    highs += [v for v in refs if v is not None]
    span = max(highs) - min(lows)
    margin = max(0.1 * span, 0.01)
    ax.set_ylim(min(lows) - margin, max(highs) + margin)
    for end in _SCAN_GROUP_ENDS:
        if end in subsets and subsets.index(end) < len(subsets) - 1:
            ax.axvline(subsets.index(end) + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(x, [SCAN_SUBSET_TICKS[s] for s in subsets])
    ax.set_ylabel(ylabel)
    ax.set_xlabel("scan subset\n" + textwrap.fill(SCAN_VERTEX_CAPTION, _WRAP), fontsize=8)
    ax.set_title("CRNN-TF per scan subset (cf. Wang et al. 2019, Sec. V-E, Fig. 5)", fontsize=10)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    files = _save(fig, path)
    return ScanAblationFigure(
        subsets=subsets,
        ours=tuple(means),
        ours_std=tuple(stds),
        paper=tuple(refs),
        caption=SCAN_VERTEX_CAPTION,
        files=files,
    )


# --------------------------------------------------------------------------- Fig. 6


@dataclass(frozen=True)
class PerTagFigure:
    """What :func:`plot_per_tag` drew and who wins each tag.

    ``tags`` is the x order (group by group) and ``tag_groups`` the group of each tag;
    ``values[model]`` the plotted value per tag (None: no point). ``wins[model][group]``
    counts the tags of the group where that model alone has the highest value; ``ties`` maps
    each tag whose highest value is shared (exactly equal) to the models sharing it. A tied
    tag is nobody's win.
    """

    tags: tuple[str, ...]
    tag_groups: tuple[str, ...]
    models: tuple[str, ...]
    values: dict[str, tuple[float | None, ...]]
    wins: dict[str, dict[str, int]]
    ties: dict[str, tuple[str, ...]]
    files: tuple[Path, Path]


def _check_groups(groups: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(group, tag) pairs in order; every group non-empty, no tag twice."""
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty dict of group name -> list of tags")
    pairs: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for group, tags in groups.items():
        if isinstance(tags, str) or not isinstance(tags, Sequence) or not tags:
            raise ValueError(f"groups[{group!r}] must be a non-empty list of tag names")
        for tag in tags:
            if tag in seen:
                raise ValueError(f"tag {tag!r} is listed in group {seen[tag]!r} and {group!r}")
            seen[tag] = group
            pairs.append((group, tag))
    return pairs


def plot_per_tag(
    per_tag: Mapping[str, Mapping[str, float | None]],
    groups: Mapping[str, Sequence[str]],
    path: str | os.PathLike,
    title: str,
    ylabel: str = "test ROC-AUC",
) -> PerTagFigure:
    """Fig. 6 (Sec. V-E): per-tag values of several models, tags grouped (genre, instrument, mood).

    ``per_tag[model][tag]`` is the model's value on that tag; None or NaN (an undefined
    per-tag AUC) leaves that point out. Only the tags named in ``groups`` are drawn, in the
    order given, so ``per_tag`` may hold all tags of the dataset. A tag of ``groups`` that no
    model has at all is an error (usually a misspelt name). Models appear in the order of
    ``per_tag``. Wins are counted per group: the model with the strictly highest value on a
    tag wins it; exact ties are reported in ``ties`` and count for nobody.
    """
    title = _check_title(title)
    if not isinstance(per_tag, Mapping) or not per_tag:
        raise ValueError("per_tag must be a non-empty dict of model -> {tag: value}")
    pairs = _check_groups(groups)
    models = tuple(per_tag)
    for model in models:
        if not isinstance(per_tag[model], Mapping):
            raise ValueError(f"per_tag[{model!r}] must be a dict of tag -> value")
    absent = [tag for _, tag in pairs if not any(tag in per_tag[m] for m in models)]
    if absent:
        raise ValueError(
            f"no model has a value for the tags {absent}; check the tag names in groups "
            "against the dataset's label names"
        )

    tags = tuple(tag for _, tag in pairs)
    tag_groups = tuple(group for group, _ in pairs)
    values = {
        m: tuple(_optional_value(per_tag[m].get(t), f"per_tag[{m!r}][{t!r}]") for t in tags)
        for m in models
    }
    wins = {m: {g: 0 for g in groups} for m in models}
    ties: dict[str, tuple[str, ...]] = {}
    for i, (group, tag) in enumerate(pairs):
        scored = {m: values[m][i] for m in models if values[m][i] is not None}
        if not scored:
            continue
        best = max(scored.values())
        leaders = tuple(m for m, v in scored.items() if v == best)
        if len(leaders) == 1:
            wins[leaders[0]][group] += 1
        else:
            ties[tag] = leaders

    # One gap between groups; lines are drawn within a group only.
    positions, x = [], 0
    for i, group in enumerate(tag_groups):
        if i and group != tag_groups[i - 1]:
            x += 1
        positions.append(x)
        x += 1

    fig = _new_figure((max(8.0, 0.42 * len(tags) + 2.5), 5.0))
    ax = fig.add_subplot()
    colours = _class_colours(len(models))
    markers = "osD^vP*Xh<>"
    for k, model in enumerate(models):
        for j, group in enumerate(groups):
            idx = [
                i for i, g in enumerate(tag_groups) if g == group and values[model][i] is not None
            ]
            ax.plot(
                [positions[i] for i in idx],
                [values[model][i] for i in idx],
                color=colours[k],
                marker=markers[k % len(markers)],
                markersize=5,
                linewidth=1,
                alpha=0.8,
                label=model if j == 0 else None,
            )
    for group in groups:
        members = [positions[i] for i, g in enumerate(tag_groups) if g == group]
        ax.text(
            (members[0] + members[-1]) / 2,
            1.01,
            group,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=9,
            fontweight="bold",
        )
        if members[-1] != positions[-1]:
            ax.axvline(members[-1] + 1, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(positions, tags, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    ax.set_title("Per-tag results (cf. Wang et al. 2019, Sec. V-E, Fig. 6)", fontsize=10, pad=18)
    fig.suptitle(title)
    files = _save(fig, path)
    return PerTagFigure(
        tags=tags,
        tag_groups=tag_groups,
        models=models,
        values=values,
        wins=wins,
        ties=ties,
        files=files,
    )


# --------------------------------------------------------------------------- Fig. 7


@dataclass(frozen=True)
class TsnePanel:
    """One t-SNE panel: its points, the perplexity used and the silhouette score.

    ``silhouette`` is computed on the original embeddings (Euclidean distance), not on the 2-D
    map; None when the panel has fewer than two classes or as many classes as points (the
    score is undefined there). ``coords`` is the ``(N, 2)`` map that was drawn.
    """

    name: str
    n_points: int
    n_dims: int
    perplexity: float
    silhouette: float | None
    classes: tuple[int, ...]
    coords: np.ndarray


@dataclass(frozen=True)
class TsneFigure:
    panels: tuple[TsnePanel, ...]
    label_names: tuple[str, ...]
    seed: int
    files: tuple[Path, Path]


def tsne_perplexity(requested: float, n_points: int) -> float:
    """``min(requested, (N − 1) / 3)``.

    t-SNE's Gaussian neighbourhoods hold about 3·perplexity points, and the reference
    implementation (van der Maaten's bhtsne) refuses ``N − 1 < 3·perplexity``; scikit-learn
    only needs perplexity < N. Capping at (N − 1)/3 keeps small panels (a demo's few test clips)
    valid under both and leaves the requested value in place for real test sets.
    """
    return float(min(requested, (n_points - 1) / 3.0))


def _panel_inputs(name: str, panel: Any, n_names: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(panel, (tuple, list)) or len(panel) != 2:
        raise ValueError(f"panels[{name!r}] must be a pair (embeddings (N, D), labels (N,))")
    emb = np.asarray(panel[0], dtype=np.float64)
    lab = np.asarray(panel[1])
    if emb.ndim != 2 or emb.shape[1] < 2:
        raise ValueError(f"panels[{name!r}] embeddings must be (N, D) with D ≥ 2, got {emb.shape}")
    if emb.shape[0] < 4:
        raise ValueError(
            f"panels[{name!r}] has {emb.shape[0]} points; t-SNE needs at least 4 "
            "(perplexity (N − 1)/3 ≥ 1)"
        )
    if not np.isfinite(emb).all():
        raise ValueError(f"panels[{name!r}] embeddings hold NaN or infinite values")
    if lab.shape != (emb.shape[0],):
        raise ValueError(
            f"panels[{name!r}] labels must have shape ({emb.shape[0]},), got {lab.shape}"
        )
    if not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() >= n_names:
        raise ValueError(
            f"panels[{name!r}] labels must be class indices in 0..{n_names - 1} "
            "(one per label_names entry)"
        )
    return emb, lab.astype(np.int64)


def plot_tsne(
    panels: Mapping[str, tuple[Any, Any]],
    label_names: Sequence[str],
    path: str | os.PathLike,
    title: str,
    perplexity: float = 30.0,
    seed: int = 0,
) -> TsneFigure:
    """Fig. 7 (Sec. V-F): t-SNE maps of embeddings, one panel each, coloured by class.

    ``panels[name] = (embeddings (N, D), labels (N,))`` with labels indexing ``label_names``
    (the paper's panels: time-averaged log-mel features, CRNN embeddings and CRNN-TF
    embeddings of FMA-medium test clips, coloured by top genre). Each map is
    ``sklearn.manifold.TSNE(n_components=2, perplexity=p, init="pca",
    learning_rate="auto", random_state=seed)`` with ``p`` = :func:`tsne_perplexity`. The
    panel title gives the silhouette score of the labels, ``sklearn.metrics.silhouette_score``
    on the embeddings themselves (Euclidean), so "better clustered" is a number that does not
    depend on the map.
    """
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score

    title = _check_title(title)
    if not isinstance(panels, Mapping) or not panels:
        raise ValueError("panels must be a non-empty dict of panel name -> (embeddings, labels)")
    names = tuple(str(n) for n in label_names)
    if not names:
        raise ValueError("label_names must name at least one class")
    if not perplexity > 0:
        raise ValueError(f"perplexity must be positive, got {perplexity!r}")

    prepared = {name: _panel_inputs(name, panel, len(names)) for name, panel in panels.items()}
    fig = _new_figure((4.2 * len(prepared) + 1.8, 4.6))
    axes = fig.subplots(1, len(prepared), squeeze=False)[0]
    colours = _class_colours(len(names))
    drawn_classes: set[int] = set()
    results = []
    for ax, (name, (emb, lab)) in zip(axes, prepared.items()):
        n_points = emb.shape[0]
        used = tsne_perplexity(perplexity, n_points)
        coords = TSNE(
            n_components=2,
            perplexity=used,
            init="pca",
            learning_rate="auto",
            random_state=seed,
        ).fit_transform(emb)
        classes = tuple(int(c) for c in np.unique(lab))
        score = float(silhouette_score(emb, lab)) if 2 <= len(classes) <= n_points - 1 else None
        for c in classes:
            mask = lab == c
            ax.scatter(
                coords[mask, 0],
                coords[mask, 1],
                s=10,
                color=colours[c],
                label=names[c] if c not in drawn_classes else None,
            )
            drawn_classes.add(c)
        ax.set_xticks([])
        ax.set_yticks([])
        shown = "n/a" if score is None else f"{score:.3f}"
        ax.set_title(f"{name}\nsilhouette {shown} (N = {n_points})", fontsize=9)
        coords.setflags(write=False)
        results.append(
            TsnePanel(
                name=name,
                n_points=n_points,
                n_dims=int(emb.shape[1]),
                perplexity=used,
                silhouette=score,
                classes=classes,
                coords=coords,
            )
        )
    fig.legend(loc="outside right center", fontsize=8, markerscale=1.5)
    fig.suptitle(f"{title}\nt-SNE of embeddings (cf. Wang et al. 2019, Sec. V-F, Fig. 7)")
    files = _save(fig, path)
    return TsneFigure(panels=tuple(results), label_names=names, seed=int(seed), files=files)


# --------------------------------------------------------------------------- learning curves


@dataclass(frozen=True)
class LearningCurve:
    """One run's curves as drawn: epochs counted from 1, values None where the entry had none.

    ``best_epoch`` (from 1) has the highest validation metric, the earliest on a tie — the
    epoch whose checkpoint a trainer that keeps the first best value selects.
    """

    label: str
    epochs: tuple[int, ...]
    loss: tuple[float | None, ...]
    valid_metric: tuple[float | None, ...]
    best_epoch: int | None


@dataclass(frozen=True)
class LearningCurvesFigure:
    curves: tuple[LearningCurve, ...]
    files: tuple[Path, Path]


def _curve(label: str, history: Any) -> LearningCurve:
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence) or not history:
        raise ValueError(f"histories[{label!r}] must be a non-empty list of history entries")
    rows = []
    for i, entry in enumerate(history):
        where = f"histories[{label!r}][{i}]"
        if not isinstance(entry, Mapping) or "epoch" not in entry:
            raise ValueError(f"{where} must be a dict with an 'epoch' (counted from 0)")
        epoch = entry["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"{where}['epoch'] must be an integer ≥ 0, got {epoch!r}")
        rows.append(
            (
                int(epoch) + 1,
                _optional_value(entry.get("loss"), f"{where}['loss']"),
                _optional_value(entry.get("valid_metric"), f"{where}['valid_metric']"),
            )
        )
    rows.sort(key=lambda r: r[0])
    epochs = [r[0] for r in rows]
    if len(set(epochs)) != len(epochs):
        raise ValueError(f"histories[{label!r}] lists an epoch twice: {epochs}")
    scored = [(r[2], r[0]) for r in rows if r[2] is not None]
    best_epoch = None
    if scored:
        best = max(v for v, _ in scored)
        best_epoch = min(e for v, e in scored if v == best)
    return LearningCurve(
        label=label,
        epochs=tuple(epochs),
        loss=tuple(r[1] for r in rows),
        valid_metric=tuple(r[2] for r in rows),
        best_epoch=best_epoch,
    )


def plot_learning_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | os.PathLike,
    title: str,
    metric_name: str = "validation metric",
) -> LearningCurvesFigure:
    """Training loss (left) and validation metric (right) per epoch, one line per run.

    ``histories[run label]`` is the list of per-epoch entries a trainer records, each with an
    ``epoch`` counted from 0 and optional ``loss`` and ``valid_metric``; the x axis counts
    epochs from 1, as training logs do. Missing or None values leave gaps; a star marks each
    run's best validation epoch.
    """
    title = _check_title(title)
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError("histories must be a non-empty dict of run label -> history entries")
    curves = tuple(_curve(str(label), h) for label, h in histories.items())

    fig = _new_figure((11.0, 4.4))
    ax_loss, ax_metric = fig.subplots(1, 2)
    colours = _class_colours(len(curves))
    for colour, curve in zip(colours, curves):
        for ax, values in ((ax_loss, curve.loss), (ax_metric, curve.valid_metric)):
            ys = [np.nan if v is None else v for v in values]
            ax.plot(curve.epochs, ys, color=colour, marker="o", markersize=3, label=curve.label)
        if curve.best_epoch is not None:
            best = curve.valid_metric[curve.epochs.index(curve.best_epoch)]
            ax_metric.plot([curve.best_epoch], [best], marker="*", markersize=12, color=colour)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(metric_name)
    ax_metric.set_title("★ = best validation epoch", fontsize=9)
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    fig.suptitle(title)
    files = _save(fig, path)
    return LearningCurvesFigure(curves=curves, files=files)
