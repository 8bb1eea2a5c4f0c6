"""The paper's experiments as recipes: declarative TOML files expanded into ordinary runs.

A recipe (shipped ones live in ``mcbench/recipes/<artifact>.toml``; ``mcbench reproduce
PATH.toml`` runs a user's own) declares:

* ``[artifact]``: ``name``, ``title``, the ``metrics`` (keys of metric plugins) the table shows
  and the ``reference`` row (its label) every other row is tested against on the first metric
  (:mod:`mcbench.compare`), and optionally the ``figure`` drawn from the rows' records
  (``scan_ablation``: Fig. 5, one bar per row; ``per_tag``: Fig. 6, per-tag values of the first
  metric for the tags of ``[groups]``, or ``[demo.groups]`` under ``--demo``; ``tsne``: Fig. 7,
  a t-SNE panel per row of the test clips' embeddings, see ``embedding`` below);
* ``[datasets]``: the dataset of each *role* (``main``; for a transfer, ``source`` and
  ``target``), ``[protocols]`` a protocol per role, ``[dataset_params.<role>]`` parameters and
  ``[training]`` training settings (default: the paper's protocol);
* ``[demo]``: what ``--demo`` changes — the synthetic stand-in of each role, and settings sized
  for a 2-core CPU — and a ``note`` saying what stands in for what;
* ``[[rows]]``: one table row each, in the paper's order and words: ``label``, ``model``,
  optional ``variant`` and ``options``, ``on`` (the role of its dataset), ``init_from`` (the role
  whose run of the same model is the transfer source) with ``transfer`` (a strategy of
  :data:`mcbench.transfer.STRATEGIES`), ``paper`` (the paper's value per metric), and
  optionally ``authors`` (the value the authors' notebooks report) and ``authors_training``;
* ``[authors]``: what ``--as authors`` changes (below): ``training`` for every row, and
  ``models.<model>`` per model (the notebooks' epochs and batch sizes), and a ``note``.

Two readings of "the paper" (``--as``): ``paper`` (default) is the text — CRNN-TF with Grid
LSTM blocks, the baselines as their references specify (each model's default variant), and the
protocol of Sec. IV–V-C; ``authors`` is the authors' notebooks (FishInMedi/CRNN-TF) — every
model in its ``wang2019`` variant, the ``wang2019`` protocol (constant learning rate) with the
notebooks' epochs and batch sizes, still selected on validation. The notebooks report the
maximum *test* value over epochs, so a validation-selected run lands at or a little below their
values. A row that names a ``variant`` keeps it in both readings; ``--demo`` keeps its own
epochs and batch sizes in both.

Every row is run through :func:`mcbench.runner.run_experiments`, so finished runs are reused
(a recipe whose runs exist trains nothing) and an interrupted reproduction resumes. A transfer
row's source run is run first, as an ordinary run of the same model on the source role's
dataset; the target starts from that run's id.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from .specs import OptionError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RECIPE_PACKAGE = "mcbench.recipes"
_ROW_KEYS = {"label", "model", "variant", "options", "on", "init_from", "transfer", "paper",
             "embedding", "authors", "authors_training"}
_TOP_KEYS = {"artifact", "datasets", "protocols", "dataset_params", "training", "demo", "rows",
             "groups", "authors"}
#: ``--as``: which reading of the paper a reproduction follows (module docstring).
READINGS = ("paper", "authors")
#: The variant every model takes under ``--as authors``, when it has one.
AUTHORS_VARIANT = "wang2019"
#: Training settings an ``--as authors`` recipe may not set under ``--demo``: the demo's sizes.
_DEMO_SIZES = ("max_epochs", "batch_size")
_MODE_KEYS = {"datasets", "protocols", "dataset_params", "training", "groups"}
#: The figures a recipe may draw (``[artifact] figure``), each a function of :mod:`mcbench.plots`.
FIGURES = ("scan_ablation", "per_tag", "tsne")


class RecipeError(OptionError):
    """A recipe that cannot be used: the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class RecipeRow:
    label: str
    model: str
    on: str
    variant: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    transfer: str | None = None
    paper: dict[str, float] = field(default_factory=dict)
    #: The authors' notebooks' value per metric (shown under ``--as authors``).
    authors: dict[str, float] = field(default_factory=dict)
    #: Training settings of this row under ``--as authors`` (over the recipe's ``[authors]``).
    authors_training: dict[str, Any] = field(default_factory=dict)
    #: Fig. 7: ``model`` (the input of its output layer) or ``input`` (its run's input features
    #: averaged over time).
    embedding: str = "model"


@dataclass(frozen=True)
class Setting:
    """Datasets, protocols, parameters and training of one mode (the paper's data or the demo)."""

    datasets: dict[str, str]
    protocols: dict[str, str]
    dataset_params: dict[str, dict[str, Any]]
    training: dict[str, Any]
    #: Fig. 6's tag groups (group -> tags) on this mode's dataset.
    groups: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    metrics: list[str]
    rows: list[RecipeRow]
    real: Setting
    demo: Setting | None
    demo_note: str
    path: str
    reference: str | None = None
    figure: str | None = None
    #: ``[authors]``: training settings of every row and per model under ``--as authors``.
    authors_training: dict[str, Any] = field(default_factory=dict)
    authors_models: dict[str, dict[str, Any]] = field(default_factory=dict)
    authors_note: str = ""

    def setting(self, demo: bool) -> Setting:
        if demo and self.demo is None:
            raise RecipeError(f"recipe {self.name} ({self.path}) has no [demo] section")
        return self.demo if demo else self.real


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise RecipeError(f"{where} must be a table, got {type(value).__name__}")
    return value


def _setting(data: Mapping[str, Any], where: str) -> Setting:
    def section(key: str) -> dict:
        return dict(_table(data.get(key, {}), f"{where}: [{key}]"))

    params = {role: dict(_table(v, f"{where}: [dataset_params.{role}]"))
              for role, v in section("dataset_params").items()}
    return Setting(section("datasets"), section("protocols"), params, section("training"),
                   {g: list(tags) for g, tags in section("groups").items()})


def _demo_setting(real: Setting, demo: Setting) -> Setting:
    """The demo replaces each role's dataset by its stand-in; protocols and parameters of the
    real datasets do not carry over to the stand-ins, training settings do unless replaced."""
    return Setting({**real.datasets, **demo.datasets}, demo.protocols, demo.dataset_params,
                   {**real.training, **demo.training}, demo.groups)


def parse_recipe(text: str, path: str) -> Recipe:
    """A recipe from its TOML text; every error names ``path`` and the entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise RecipeError(f"{path}: unknown section(s) {unknown}; a recipe has "
                          f"{', '.join(sorted(_TOP_KEYS))}")
    artifact = _table(data.get("artifact"), f"{path}: [artifact]")
    name = artifact.get("name")
    if not isinstance(name, str) or not name:
        raise RecipeError(f"{path}: [artifact] needs a name")
    metrics = artifact.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise RecipeError(f"{path}: [artifact] metrics must be a list of metric keys")
    real = _setting(data, path)
    demo_data = data.get("demo")
    demo = None
    note = ""
    if demo_data is not None:
        demo_data = _table(demo_data, f"{path}: [demo]")
        extra = sorted(set(demo_data) - _MODE_KEYS - {"note"})
        if extra:
            raise RecipeError(f"{path}: [demo] has unknown key(s) {extra}")
        demo = _demo_setting(real, _setting(demo_data, f"{path}: [demo]"))
        note = str(demo_data.get("note", ""))
    rows = []
    for i, raw in enumerate(data.get("rows") or []):
        where = f"{path}: [[rows]] #{i + 1}"
        raw = _table(raw, where)
        extra = sorted(set(raw) - _ROW_KEYS)
        if extra:
            raise RecipeError(f"{where}: unknown key(s) {extra}; a row has {', '.join(sorted(_ROW_KEYS))}")
        for key in ("label", "model", "on"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise RecipeError(f"{where}: {key!r} is required (a non-empty string)")
        for role in (raw["on"], raw.get("init_from")):
            if role is not None and role not in real.datasets:
                raise RecipeError(f"{where}: role {role!r} is not in [datasets] "
                                  f"({', '.join(real.datasets) or 'empty'})")
        if (raw.get("transfer") is None) != (raw.get("init_from") is None) and \
                raw.get("transfer") != "scratch":
            raise RecipeError(f"{where}: init_from and transfer go together")
        paper = _table(raw.get("paper", {}), f"{where}: paper")
        authors = _table(raw.get("authors", {}), f"{where}: authors")
        rows.append(RecipeRow(label=raw["label"], model=raw["model"], on=raw["on"],
                              variant=raw.get("variant"), options=dict(raw.get("options", {})),
                              init_from=raw.get("init_from"), transfer=raw.get("transfer"),
                              paper={k: float(v) for k, v in paper.items()},
                              authors={k: float(v) for k, v in authors.items()},
                              authors_training=dict(_table(raw.get("authors_training", {}),
                                                           f"{where}: authors_training")),
                              embedding=str(raw.get("embedding", "model"))))
        if rows[-1].embedding not in ("model", "input"):
            raise RecipeError(f"{where}: embedding must be 'model' or 'input'")
    if not rows:
        raise RecipeError(f"{path}: no [[rows]]; a recipe needs at least one row")
    reference = artifact.get("reference")
    if reference is not None and reference not in [r.label for r in rows]:
        raise RecipeError(f"{path}: [artifact] reference {reference!r} is not the label of a row "
                          f"({', '.join(r.label for r in rows)})")
    figure = artifact.get("figure")
    if figure is not None and figure not in FIGURES:
        raise RecipeError(f"{path}: [artifact] figure {figure!r}: choose from {', '.join(FIGURES)}")
    if figure is not None and not metrics:
        raise RecipeError(f"{path}: [artifact] a figure needs metrics (its first is plotted)")
    if figure == "per_tag" and not real.groups:
        raise RecipeError(f"{path}: figure per_tag needs [groups] (group = [tags])")
    authors = _table(data.get("authors", {}), f"{path}: [authors]")
    extra = sorted(set(authors) - {"training", "models", "note"})
    if extra:
        raise RecipeError(f"{path}: [authors] has unknown key(s) {extra}; it has training, "
                          "models and note")
    models = _table(authors.get("models", {}), f"{path}: [authors.models]")
    return Recipe(name=name, title=str(artifact.get("title", name)), metrics=list(metrics),
                  rows=rows, real=real, demo=demo, demo_note=note, path=path,
                  reference=reference, figure=figure,
                  authors_training=dict(_table(authors.get("training", {}),
                                               f"{path}: [authors.training]")),
                  authors_models={m: dict(_table(v, f"{path}: [authors.models.{m}]"))
                                  for m, v in models.items()},
                  authors_note=str(authors.get("note", "")))


def shipped() -> dict[str, Recipe]:
    """The recipes shipped with mcbench, by artifact name."""
    out = {}
    for entry in sorted(resources.files(RECIPE_PACKAGE).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            recipe = parse_recipe(entry.read_text(encoding="utf-8"), f"{RECIPE_PACKAGE}/{entry.name}")
            out[recipe.name] = recipe
    return out


def load(name_or_path: str) -> Recipe:
    """A shipped recipe by artifact name, or a user's recipe file."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
        return parse_recipe(path.read_text(encoding="utf-8"), str(path))
    recipes = shipped()
    if name_or_path not in recipes:
        raise RecipeError(f"no recipe {name_or_path!r}; shipped: {', '.join(recipes)} "
                          "(or give a PATH.toml)")
    return recipes[name_or_path]


def with_model(recipe: Recipe, model: str) -> Recipe:
    """``--add-model``: the recipe with one more row, the user's model on the role the recipe's
    first row without transfer uses."""
    base = next((r for r in recipe.rows if r.init_from is None), recipe.rows[0])
    row = RecipeRow(label=model, model=model, on=base.on)
    return replace(recipe, rows=[*recipe.rows, row])


# --------------------------------------------------------------------------- running


@dataclass
class ReproduceRequest:
    recipe: Recipe
    demo: bool = False
    #: ``paper`` or ``authors`` (:data:`READINGS`, module docstring).
    reading: str = "paper"
    roots: dict[str, Path] = field(default_factory=dict)  # dataset name -> root
    data_dir: Path | None = None
    results_dir: Path | None = None
    cache_dir: Path | None = None
    device: str = "auto"
    workers: int | None = None
    progress: bool = True
    echo: Callable[[str], None] = print


@dataclass
class RowResult:
    row: RecipeRow
    run_ids: list[str]
    failed: list[str]


def data_root(registry, req: ReproduceRequest, setting: Setting, role: str) -> Path | None:
    """Where a role's dataset lives: ``--root DATASET=PATH`` if given; for a generated dataset
    with the recipe's own parameters, ``<data dir>/<dataset>-<8 hex of the parameters>``, so
    that recipes generating it differently (10-s clips for one, 29-s for another) never meet in
    one folder; otherwise the runner's default, ``<data dir>/<dataset>``."""
    from .identity import digest
    from .runner import default_data_dir

    dataset = setting.datasets[role]
    if dataset in req.roots:
        return req.roots[dataset]
    params = setting.dataset_params.get(role)
    if params and registry.dataset(dataset).materialize is not None:
        return Path(req.data_dir or default_data_dir()) / f"{dataset}-{digest(params, 8)}"
    return None


def row_variant(registry, req: ReproduceRequest, row: RecipeRow) -> str | None:
    """The variant a row runs in: its own, else under ``--as authors`` the model's
    :data:`AUTHORS_VARIANT` when it has one, else the model's default (None)."""
    if row.variant or req.reading != "authors":
        return row.variant
    return AUTHORS_VARIANT if AUTHORS_VARIANT in registry.model(row.model).variants else None


def row_training(req: ReproduceRequest, setting: Setting, row: RecipeRow) -> dict[str, Any]:
    """A row's training settings: the mode's, then under ``--as authors`` the recipe's
    ``[authors]`` settings, its model's and the row's own (the demo keeps its sizes)."""
    training = dict(setting.training)
    if req.reading == "authors":
        for extra in (req.recipe.authors_training, req.recipe.authors_models.get(row.model, {}),
                      row.authors_training):
            training.update({k: v for k, v in extra.items()
                             if not (req.demo and k in _DEMO_SIZES)})
    return training


def _request(registry, req: ReproduceRequest, setting: Setting, row: RecipeRow, role: str,
             init_from: str | None = None, transfer: str | None = None):
    from .runner import RunRequest

    dataset = setting.datasets[role]
    variant = row_variant(registry, req, row)
    training = row_training(req, setting, row)
    return RunRequest(
        models=[row.model], dataset=dataset, root=data_root(registry, req, setting, role),
        data_dir=req.data_dir,
        results_dir=req.results_dir, cache_dir=req.cache_dir,
        protocol=setting.protocols.get(role),
        training_protocol=training.pop("protocol", RunRequest.training_protocol), training=training,
        variants={row.model: variant} if variant else {},
        model_params={row.model: dict(row.options)} if row.options else {},
        dataset_params=dict(setting.dataset_params.get(role, {})), device=req.device,
        workers=req.workers, progress=req.progress, init_from=init_from, transfer=transfer,
        echo=req.echo)


def _source_key(row: RecipeRow) -> tuple:
    """Rows with the same model, variant, options and source role share one source run."""
    return (row.model, row.variant, tuple(sorted(row.options.items())), row.init_from)


def _done(outcomes) -> tuple[list[str], list[str]]:
    ok = [o.run_id for o in outcomes if o.status in ("complete", "skipped")]
    bad = [f"{o.model}: {o.error}" for o in outcomes if o.status == "failed"]
    return ok, bad


def run_recipe(registry, req: ReproduceRequest, executor=None) -> list[RowResult]:
    """Every row of the recipe through the ordinary runner (module docstring); ``executor``
    (:mod:`mcbench.executors`, ``None``: one run after the other here) runs each row's runs."""
    from .runner import run_experiments as _run_experiments

    def run_experiments(registry, request):
        request.executor = executor
        return _run_experiments(registry, request)

    recipe, setting = req.recipe, req.recipe.setting(req.demo)
    for row in recipe.rows:  # unknown models or datasets fail before any work
        registry.model(row.model)
        for role in (row.on, row.init_from):
            if role is not None:
                registry.dataset(setting.datasets[role])
    if req.demo:
        req.echo(f"DEMO of {recipe.name}: synthetic stand-ins, not the paper's data "
                 f"({recipe.demo_note or 'see the recipe'})")
    sources: dict[tuple, str] = {}
    results = []
    for row in recipe.rows:
        init_from = None
        if row.init_from is not None and row.transfer != "scratch":
            key = _source_key(row)
            if key not in sources:
                req.echo(f"— source of {row.label}: {row.model} on {setting.datasets[row.init_from]}")
                ok, bad = _done(run_experiments(registry, _request(registry, req, setting, row,
                                                                   row.init_from)))
                if not ok:
                    results.append(RowResult(row, [], bad or ["its source run did not finish"]))
                    continue
                sources[key] = ok[0]
            init_from = sources[key]
        req.echo(f"— {row.label}")
        ok, bad = _done(run_experiments(registry, _request(
            registry, req, setting, row, row.on, init_from, row.transfer if init_from else None)))
        results.append(RowResult(row, ok, bad))
    return results


# --------------------------------------------------------------------------- the table


def row_records(results: Sequence[RowResult], results_dir: Path) -> dict[str, list]:
    """The stored records of every row's runs, by row label (load once, pass to the renderers)."""
    from .storage import load_records

    records = {r.run_id: r for r in load_records(results_dir)}
    return {res.row.label: [records[i] for i in res.run_ids if i in records] for res in results}


def _row_stat(records: Sequence, metric: str):
    """The row's :class:`mcbench.aggregate.Stat` of ``metric`` (mean ± std over its runs); None
    when it has no value or its runs do not form one row (they differ in their data)."""
    from .aggregate import aggregate

    rows = aggregate(records)
    return rows[0].metrics.get(metric) if len(rows) == 1 else None


def significance(registry, recipe: Recipe, results: Sequence[RowResult], results_dir: Path,
                 rows: Mapping[str, list] | None = None):
    """Each row against the recipe's reference row on its first metric (:mod:`mcbench.compare`);
    empty without a reference or a metric. ``rows``: :func:`row_records`, if already loaded."""
    from .compare import compare_rows

    if not recipe.reference or not recipe.metrics:
        return []
    rows = row_records(results, results_dir) if rows is None else rows
    specs = [m for m in registry.specs("metric") if m.key == recipe.metrics[0]]
    if not specs:
        return []
    return compare_rows(rows, recipe.reference, specs[0], results_dir)


def _p(value: float | None) -> str:
    return "–" if value is None else ("<0.001" if value < 0.001 else f"{value:.3f}")


def significance_table(comparisons, fmt: str = "markdown", digits: int = 3) -> str:
    """Row − reference, its 95 % interval, p and Holm-corrected p, per compared row."""
    from tabulate import tabulate

    body = [[c.label, c.reference, c.metric,
             "–" if c.difference is None else f"{c.difference:+.{digits}f}",
             "–" if c.ci_low is None else f"[{c.ci_low:+.{digits}f}, {c.ci_high:+.{digits}f}]",
             _p(c.p_value), _p(c.p_holm), "†" if c.significant else "", c.test + (
                 f" ({c.note})" if c.note else "")] for c in comparisons]
    headers = ["Method", "vs", "metric", "Δ", "95% CI", "p", "p (Holm)", "", "test"]
    tablefmt = {"markdown": "github", "plain": "simple", "latex": "latex_booktabs"}.get(fmt, "github")
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def paper_table(recipe: Recipe, results: Sequence[RowResult], results_dir: Path,
                demo: bool, fmt: str = "markdown", digits: int = 3,
                comparisons: Sequence = (), reading: str = "paper",
                rows: Mapping[str, list] | None = None) -> str:
    """The artifact in the paper's layout: the paper's rows and words, per metric our mean ± std
    over the row's runs (seeds, folds), the paper's value (under ``reading="authors"``, the
    authors' notebooks' value), and ours minus it. A row that differs significantly from the
    reference on the first metric is marked † (``comparisons``, from :func:`significance`).
    ``rows``: :func:`row_records`, if already loaded."""
    from tabulate import tabulate

    rows = row_records(results, results_dir) if rows is None else rows
    marked = {c.label for c in comparisons if c.significant}
    pm = {"latex": r"$\pm$"}.get(fmt, "±")
    theirs = "authors" if reading == "authors" else "paper"
    headers = ["Method"]
    for key in recipe.metrics:
        headers += [f"{key} (ours)", f"{key} ({theirs})", "Δ"]
    headers.append("runs")
    body = []
    for res in results:
        line: list[Any] = [res.row.label]
        for key in recipe.metrics:
            stat = _row_stat(rows[res.row.label], key)
            ours = None if stat is None else stat.mean
            paper = (res.row.authors if reading == "authors" else res.row.paper).get(key)
            text = "–" if ours is None else f"{ours:.{digits}f}"
            if stat is not None and stat.std is not None:
                text += f" {pm} {stat.std:.{digits}f}"
            if key == recipe.metrics[0] and res.row.label in marked:
                text += " †"
            line += [text, "–" if paper is None else f"{paper:.{digits}f}",
                     "–" if ours is None or paper is None else f"{ours - paper:+.{digits}f}"]
        done = len(rows[res.row.label])
        line.append(done if done or not res.failed else "failed")
        body.append(line)
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(headers)
        writer.writerows(body)
        return buf.getvalue()
    where = "DEMO on synthetic stand-ins, not the paper's data" if demo else "the paper's data"
    if reading == "authors":
        versus = ("the authors' notebooks' value (FishInMedi/CRNN-TF: the maximum test value "
                  "over epochs; ours is selected on validation)")
        where += ("; the authors' reading: wang2019 variants and protocol"
                  + (f", {recipe.authors_note}" if recipe.authors_note else ""))
    else:
        versus = "the paper's value"
    caption = (f"{recipe.title}: ours (mean {pm} std over the runs of each row: seeds and "
               f"folds), {versus}, and the difference; {where}.")
    if recipe.reference and comparisons:
        caption += (f" † marks a row whose {recipe.metrics[0]} differs significantly from "
                    f"{recipe.reference}'s (Holm-corrected p < 0.05; tests below).")
    if fmt == "latex":
        def cells(values):
            return " & ".join(str(v).replace("_", r"\_").replace("%", r"\%") for v in values)

        head = cells(h.replace("Δ", r"$\Delta$") for h in headers)
        lines = [r"\begin{table}", r"\centering", r"\begin{tabular}{l" + "r" * (len(headers) - 1) + "}",
                 r"\toprule", head + r" \\", r"\midrule",
                 *(cells(line) + r" \\" for line in body), r"\bottomrule", r"\end{tabular}",
                 f"\\caption{{{caption}}}", f"\\label{{tab:mcbench-{recipe.name}{'-authors' if reading == 'authors' else ''}}}", r"\end{table}"]
        return "\n".join(lines) + "\n"
    tablefmt = {"markdown": "github", "plain": "simple"}[fmt]
    text = tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True)
    return f"### {recipe.name}: {caption}\n\n{text}\n"


# --------------------------------------------------------------------------- --dry-run


@dataclass(frozen=True)
class PlannedRun:
    """One run a recipe needs, with its status among the stored records."""

    row: str
    plan: Any
    transfer: tuple[str, str] | None  # (strategy, source dataset)
    status: str  # "done", "partial" (started, unfinished or failed) or "to do"
    #: The run's compute (:mod:`mcbench.estimate`), when :func:`dry_run` estimated it.
    cost: Any = None


def _same_run(record, plan, transfer: tuple[str, str] | None) -> bool:
    """Whether ``record`` is the run ``plan`` describes, up to the data itself (the split
    contents are known only once features are computed)."""
    from .identity import to_jsonable

    ident = record.identity_dict()
    model, data = ident["model"], ident["dataset"]
    if (model["name"], model["variant"], model["backend"], model["options"]) != (
            plan.model, plan.variant, plan.backend, to_jsonable(plan.options)):
        return False
    if (data["name"], data["protocol"], data["fold"], data["params"]) != (
            plan.dataset, plan.protocol, plan.fold, to_jsonable(plan.data_params)):
        return False
    if ident["training"] != to_jsonable({**plan.training, "select_metric": plan.select_metric}):
        return False
    if ident["seed"] != plan.seed:
        return False
    got = ident.get("transfer")
    if transfer is None:
        return got is None
    return bool(got) and (got.get("strategy"), got.get("source_dataset")) == transfer


def dry_run(registry, req: ReproduceRequest, estimate: bool = True,
            records: Sequence | None = None) -> list[PlannedRun]:
    """Every run of the recipe with its status and its compute (:mod:`mcbench.estimate`),
    planned as :func:`run_recipe` would run it; nothing is trained, generated or computed.
    ``records``: every stored record (any status), if already loaded."""
    from .estimate import costs
    from .runner import default_results_dir, plan_runs
    from .storage import load_records

    recipe, setting = req.recipe, req.recipe.setting(req.demo)
    results_dir = Path(req.results_dir or default_results_dir())
    if records is None:
        records = load_records(results_dir, status=None)
    planned: list[PlannedRun] = []
    seen_sources: set[tuple] = set()
    for row in recipe.rows:
        steps = []
        transfer = None
        if row.init_from is not None and row.transfer != "scratch":
            key = _source_key(row)
            if key not in seen_sources:
                seen_sources.add(key)
                steps.append((f"source of {row.label}", row.init_from, None))
            transfer = (row.transfer, setting.datasets[row.init_from])
        steps.append((row.label, row.on, transfer))
        for label, role, how in steps:
            plans, _ = plan_runs(registry, _request(registry, req, setting, row, role))
            for plan in plans:
                same = next((i for i, p in enumerate(planned)
                             if p.plan == plan and p.transfer == how), None)
                if same is not None:  # two rows of one run (Fig. 7's raw features and CRNN)
                    planned[same] = replace(planned[same], row=f"{planned[same].row}, {label}")
                    continue
                mine = [r for r in records if _same_run(r, plan, how)]
                status = ("done" if any(r.status == "complete" for r in mine)
                          else "partial" if mine else "to do")
                planned.append(PlannedRun(label, plan, how, status))
    if not estimate:
        return planned
    estimates = costs(registry, [p.plan for p in planned], records, results_dir, req.device)
    return [replace(p, cost=c) for p, c in zip(planned, estimates)]


def dry_run_table(planned: Sequence[PlannedRun], device: str = "auto") -> str:
    """The runs, their status and compute, and the totals (:func:`mcbench.estimate.summary`)."""
    from tabulate import tabulate

    from .estimate import hours_text, macs_text, summary

    body = [[p.row, p.plan.model, p.plan.variant, p.plan.dataset, p.plan.protocol,
             "–" if p.plan.fold is None else p.plan.fold, p.plan.seed,
             p.plan.training.get("max_epochs"), p.plan.training.get("batch_size"),
             "–" if p.transfer is None else f"{p.transfer[0]} from {p.transfer[1]}",
             "–" if p.cost is None or p.cost.train_clips is None else p.cost.train_clips,
             macs_text(None if p.cost is None else p.cost.macs),
             hours_text(None if p.cost is None else p.cost.seconds), p.status]
            for p in planned]
    counts = {s: sum(p.status == s for p in planned) for s in ("done", "partial", "to do")}
    text = tabulate(body, headers=["Row", "model", "variant", "dataset", "protocol", "fold",
                                   "seed", "epochs", "batch", "transfer", "train clips",
                                   "compute", "time", "status"],
                    tablefmt="github", disable_numparse=True)
    text += (f"\n\n{len(planned)} run(s): {counts['done']} done, {counts['partial']} "
             f"partial, {counts['to do']} to do\n")
    if planned and all(p.cost is not None for p in planned):
        text += summary([p.cost for p in planned], device, [p.plan.model for p in planned])
    return text


# --------------------------------------------------------------------------- figures


def _per_label_means(records: Sequence, metric: str) -> dict[str, float | None]:
    values: dict[str, list[float]] = {}
    for r in records:
        entry = r.test.get(metric)
        for item in (entry.per_label or []) if entry is not None else []:
            v = item.get("value")
            values.setdefault(str(item.get("label")), [])
            if v is not None:
                values[str(item.get("label"))].append(float(v))
    import numpy as np

    return {k: (float(np.mean(v)) if v else None) for k, v in values.items()}


@dataclass(frozen=True)
class Drawn:
    """The files :func:`draw` wrote and what its figure says in words (Fig. 6: the tags each
    model wins per group; Fig. 7: the silhouette score of each panel)."""

    files: list[Path]
    summary: str = ""


def wins_table(figure) -> str:
    """Fig. 6 in numbers: per group, how many of its tags each model wins (the strictly highest
    value; a tie is nobody's), the claim of Sec. V-E being that CRNN-TF wins every genre and mood
    tag and 5 of the 9 instrument tags."""
    from tabulate import tabulate

    groups = list(dict.fromkeys(figure.tag_groups))
    sizes = {g: figure.tag_groups.count(g) for g in groups}
    body = [[m, *(f"{figure.wins[m][g]}/{sizes[g]}" for g in groups),
             f"{sum(figure.wins[m].values())}/{len(figure.tags)}"] for m in figure.models]
    text = tabulate(body, headers=["tags won", *groups, "all"], tablefmt="github",
                    disable_numparse=True)
    if figure.ties:
        text += "\n\nties (nobody's win): " + "; ".join(
            f"{tag}: {', '.join(models)}" for tag, models in figure.ties.items())
    return text + "\n"


def _silhouettes(figure) -> str:
    lines = [f"- {p.name}: silhouette {p.silhouette:+.3f}" for p in figure.panels
             if getattr(p, "silhouette", None) is not None]
    return ("silhouette score of the labels in each embedding space (higher: better "
            "separated):\n" + "\n".join(lines) + "\n") if lines else ""


def draw(recipe: Recipe, results: Sequence[RowResult], results_dir: Path, demo: bool,
         registry=None, req: ReproduceRequest | None = None,
         rows: Mapping[str, list] | None = None) -> Drawn:
    """The recipe's figure (if it declares one) and the learning curves of all its runs, as PNG
    and PDF under ``<results>/figures/``; a demo's file names and titles say ``demo``.
    ``rows``: :func:`row_records`, if already loaded."""
    from . import plots

    rows = row_records(results, results_dir) if rows is None else rows
    stem = Path(results_dir) / "figures" / (recipe.name + ("-demo" if demo else ""))
    stem.parent.mkdir(parents=True, exist_ok=True)
    title = recipe.title + (" — DEMO on synthetic stand-ins, not the paper's data" if demo else "")
    files: list[Path] = []
    summary = ""
    metric = recipe.metrics[0] if recipe.metrics else None
    if recipe.figure == "scan_ablation":
        ours = {}
        for res in results:
            stat = _row_stat(rows[res.row.label], metric)
            if stat is not None and stat.mean is not None:
                ours[res.row.label] = (stat.mean, stat.std)
        paper = {res.row.label: res.row.paper[metric] for res in results if metric in res.row.paper}
        files += plots.plot_scan_ablation(ours, paper, stem, title).files
    elif recipe.figure == "per_tag":
        per_tag = {label: _per_label_means(recs, metric) for label, recs in rows.items() if recs}
        figure = plots.plot_per_tag(per_tag, recipe.setting(demo).groups, stem, title)
        files += figure.files
        summary = wins_table(figure)
    elif recipe.figure == "tsne":
        panels, names = _embeddings(registry, req, results)
        if panels:
            figure = plots.plot_tsne(panels, names, stem, title)
            files += figure.files
            summary = _silhouettes(figure)
    histories = {f"{label} [{r.run_id}]": [h.model_dump() for h in r.history]
                 for label, recs in rows.items() for r in recs if r.history}
    if histories:
        files += plots.plot_learning_curves(histories, stem.with_name(stem.name + "-learning-curves"),
                                            title).files
    return Drawn(files, summary)


def _embeddings(registry, req: ReproduceRequest, results: Sequence[RowResult]):
    """Fig. 7's panels: per row, the test clips' embeddings of its first run (seed 0 or the
    first fold), computed by :func:`mcbench.embed.embed_run`, and their labels."""
    from .embed import EmbedRequest, embed_run
    from .runner import default_results_dir

    setting = req.recipe.setting(req.demo)
    panels, names = {}, []
    for res in results:
        if not res.run_ids:
            continue
        dataset = setting.datasets[res.row.on]
        out = embed_run(registry, EmbedRequest(
            res.run_ids[0], dataset, "test", root=data_root(registry, req, setting, res.row.on),
            data_dir=req.data_dir,
            results_dir=req.results_dir, cache_dir=req.cache_dir,
            dataset_params=dict(setting.dataset_params.get(res.row.on, {})),
            output=Path(req.results_dir or default_results_dir()) / "embeddings"
            / f"{req.recipe.name}-{res.run_ids[0]}-{res.row.embedding}.npz",
            workers=req.workers, progress=req.progress, input_features=res.row.embedding == "input",
            echo=req.echo))
        import numpy as np

        labels = np.asarray(out.labels)
        panels[res.row.label] = (out.embeddings, labels if labels.ndim == 1 else labels.argmax(1))
        names = out.label_names
    return panels, names
