"""Recipes and ``mcbench reproduce`` (mcbench.reproduce): the shipped recipes hold the paper's
rows and values; a tiny user recipe of the Table III shape runs end to end, reruns without
training, and renders the paper's layout; recipe mistakes name the file and the entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcbench.cli import main
from mcbench.reproduce import RecipeError, load, parse_recipe, shipped

TINY = """
[artifact]
name = "tiny3"
title = "A tiny Table III"
reference = "CRNN-TF"
metrics = ["accuracy"]

[datasets]
source = "synthetic"
target = "synthetic_genres"

[protocols]
target = "cv5"

[dataset_params.source]
n_clips = 30
seconds = 2.0

[dataset_params.target]
n_per_genre = 5
seconds = 2.0

[training]
max_epochs = 1
batch_size = 6

[[rows]]
label = "CRNN-TF"
model = "crnn_tf"
on = "target"
paper = { accuracy = 0.701 }

[[rows]]
label = "Fine-tune CRNN-TF"
model = "crnn_tf"
on = "target"
init_from = "source"
transfer = "finetune"
paper = { accuracy = 0.724 }
"""


def _reproduce_text(ws: Path, text: str, name: str, *args: str):
    """Write a recipe into ``ws`` and reproduce it; the command must succeed."""
    path = ws / name
    path.write_text(text)
    result = _reproduce(ws, str(path), *args)
    assert result.exit_code == 0, result.output
    return result


def _reproduce(ws: Path, *args: str):
    return CliRunner().invoke(main, ["reproduce", *args, "--data-dir", str(ws / "data"),
                                     "--results-dir", str(ws / "results"), "--device", "cpu",
                                     "--no-progress"])


def test_shipped_recipes_hold_the_papers_rows_and_values():
    recipes = shipped()
    assert {"table1", "table3"} <= set(recipes)
    t1 = recipes["table1"]
    assert [r.label for r in t1.rows] == ["FCN", "Timbre CNN", "End-to-end", "CRNN", "CRNN-TF"]
    assert t1.rows[-1].paper["roc_auc"] == 0.9078 and t1.real.datasets == {"main": "mtat"}
    t3 = recipes["table3"]
    assert [(r.label, r.transfer, r.paper["accuracy"]) for r in t3.rows] == [
        ("MFCC + SVM", None, 0.660), ("CRNN-TF", None, 0.701),
        ("Freeze CRNN-TF", "freeze_all", 0.592),
        ("Freeze CNN + Fine-tune RNN", "freeze_cnn", 0.711),
        ("Fine-tune CRNN-TF", "finetune", 0.724)]
    assert t3.real.protocols == {"target": "cv10"}
    demo = t3.setting(demo=True)
    assert demo.datasets == {"source": "synthetic", "target": "synthetic_genres"}
    assert demo.protocols == {"target": "cv5"} and demo.training["max_epochs"] == 4


def test_a_user_recipe_runs_reuses_its_runs_and_renders_the_papers_layout(tmp_path):
    recipe = tmp_path / "tiny3.toml"
    recipe.write_text(TINY)
    plan = _reproduce(tmp_path, str(recipe), "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "11 run(s): 0 done, 0 partial, 11 to do" in plan.output
    assert "no measured throughput on cpu for 11 run(s)" in plan.output  # nothing ran yet
    assert "| source of Fine-tune CRNN-TF | crnn_tf" in plan.output
    assert not (tmp_path / "results" / "runs").exists() and not (tmp_path / "data").exists()
    result = _reproduce(tmp_path, str(recipe))
    assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "results" / "runs").glob("*/*.json"))
    # one source run, 5 folds from scratch, 5 folds fine-tuned from the source
    assert len(runs) == 11
    targets = [json.loads(p.read_text()) for p in runs if p.parent.name == "synthetic_genres"]
    sources = {t["identity"]["transfer"]["source_run"] for t in targets if t["identity"]["transfer"]}
    assert len(sources) == 1
    lines = {line.split("|")[1].strip(): line for line in result.output.splitlines()
             if line.startswith("| ") and "Method" not in line and line.count("|") == 6}
    assert set(lines) == {"CRNN-TF", "Fine-tune CRNN-TF"}
    cells = [c.strip() for c in lines["Fine-tune CRNN-TF"].split("|")[1:-1]]
    ours, paper, delta, n = cells[1], cells[2], cells[3], cells[4]
    assert paper == "0.724" and n == "5" and "±" in ours
    assert float(delta) == pytest.approx(float(ours.split("±")[0]) - 0.724, abs=1.5e-3)

    again = _reproduce(tmp_path, str(recipe))  # everything is reused: nothing trains
    assert again.exit_code == 0, again.output
    assert "▶" not in again.output and again.output.count("already complete") == 11
    assert len(sorted((tmp_path / "results" / "runs").glob("*/*.json"))) == 11

    assert "Wilcoxon signed-rank over 5 folds" in result.output
    (sig,) = [x for x in result.output.splitlines()
              if x.startswith("| Fine-tune CRNN-TF") and "| CRNN-TF |" in x]
    assert "accuracy" in sig

    latex = _reproduce(tmp_path, str(recipe), "--format", "latex")
    assert latex.exit_code == 0, latex.output
    assert r"\toprule" in latex.output and r"\label{tab:mcbench-tiny3}" in latex.output
    assert r"$\pm$" in latex.output and "the paper's data" in latex.output

    # a run whose record says it is still running is partial
    target = next(p for p in runs if p.parent.name == "synthetic_genres")
    record = json.loads(target.read_text())
    record.update(status="running", finished=None)
    target.write_text(json.dumps(record))
    plan = _reproduce(tmp_path, str(recipe), "--dry-run")
    assert "11 run(s): 10 done, 1 partial, 0 to do" in plan.output, plan.output
    # the finished runs measured this machine: the listing has a time for every run
    assert "compute: " in plan.output and "time on this machine (cpu)" in plan.output
    assert "no measured throughput" not in plan.output


DEMO = """
[artifact]
name = "tinydemo"
reference = "CRNN-TF"
metrics = ["accuracy"]

[datasets]
main = "gtzan"

[demo]
note = "synthetic_genres for GTZAN"
[demo.datasets]
main = "synthetic_genres"
[demo.dataset_params.main]
n_per_genre = 5
seconds = 2.0
[demo.training]
max_epochs = 1
batch_size = 6

[[rows]]
label = "CRNN-TF"
model = "crnn_tf"
on = "main"

[[rows]]
label = "MFCC + SVM"
model = "mfcc_svm"
on = "main"
"""


def test_demo_maps_to_the_stand_in_and_says_it_is_not_the_papers_data(tmp_path):
    path = tmp_path / "demo.toml"
    path.write_text(DEMO)
    result = _reproduce(tmp_path, str(path), "--demo")
    assert result.exit_code == 0, result.output
    assert ("DEMO of tinydemo: synthetic stand-ins, not the paper's data (synthetic_genres for "
            "GTZAN)") in result.output
    assert "DEMO on synthetic stand-ins, not the paper's data" in result.output
    runs = {json.loads(p.read_text())["identity"]["model"]["name"]: json.loads(p.read_text())
            for p in (tmp_path / "results" / "runs" / "synthetic_genres").glob("*.json")}
    assert runs["crnn_tf"]["identity"]["training"]["max_epochs"] == 1
    assert not (tmp_path / "results" / "runs" / "gtzan").exists()
    # one fixed split: the paired bootstrap on the saved test scores, whose full-set difference
    # is the difference of the two runs' recorded accuracies
    (line,) = [x for x in result.output.splitlines() if x.startswith("| MFCC + SVM") and "CRNN-TF |" in x]
    cells = [c.strip() for c in line.split("|")[1:-1]]
    expected = runs["mfcc_svm"]["test"]["accuracy"]["value"] - runs["crnn_tf"]["test"]["accuracy"]["value"]
    assert float(cells[3]) == pytest.approx(expected, abs=1.5e-3)
    assert cells[-1] == "paired bootstrap, B=1000" and cells[4].startswith("[")


@pytest.mark.parametrize("change, message", [
    (("[artifact]", "[artefact]"), "unknown section(s) ['artefact']"),
    (('on = "target"\npaper', 'on = "elsewhere"\npaper'), "role 'elsewhere' is not in [datasets]"),
    (('transfer = "finetune"\n', ""), "init_from and transfer go together"),
    (('label = "CRNN-TF"\n', 'label = "CRNN-TF"\ncolour = "red"\n'), "unknown key(s) ['colour']"),
    (("metrics = [", "metrics = 3 #["), "metrics must be a list"),
])
def test_recipe_mistakes_name_the_file_and_the_entry(change, message):
    with pytest.raises(RecipeError) as info:
        parse_recipe(TINY.replace(*change, 1), "my.toml")
    assert message in str(info.value) and "my.toml" in str(info.value)


def test_unknown_artifact_lists_the_shipped_ones():
    with pytest.raises(RecipeError, match="shipped: fig5, fig6, fig7, table1, table2, table3"):
        load("table9")


def test_list_and_add_model(tmp_path):
    result = CliRunner().invoke(main, ["reproduce", "--list"])
    assert result.exit_code == 0 and "table3" in result.output and "Table III" in result.output
    recipe = tmp_path / "tiny3.toml"
    recipe.write_text(TINY.split("[[rows]]")[0] + "[[rows]]" + TINY.split("[[rows]]")[1])
    result = _reproduce(tmp_path, str(recipe), "--add-model", "fcn_missing")
    assert result.exit_code != 0 and "fcn_missing" in result.output


FIGURES = """
[artifact]
name = "tinyfig"
title = "Tiny scan subsets"
reference = "all"
metrics = ["roc_auc"]
figure = "scan_ablation"

[datasets]
main = "synthetic"

[dataset_params.main]
n_clips = 30
seconds = 2.0

[training]
max_epochs = 1
batch_size = 6

[[rows]]
label = "Ar"
model = "crnn_tf"
on = "main"
options = { scans = "Ar" }
paper = { roc_auc = 0.8119 }

[[rows]]
label = "all"
model = "crnn_tf"
on = "main"
paper = { roc_auc = 0.9078 }
"""


def test_scan_ablation_figure_plots_the_rows_records(tmp_path):
    pytest.importorskip("matplotlib")
    _reproduce_text(tmp_path, FIGURES, "fig.toml")
    figures = tmp_path / "results" / "figures"
    for name in ("tinyfig.png", "tinyfig.pdf", "tinyfig-learning-curves.png"):
        assert (figures / name).stat().st_size > 0, name
    runs = {tuple(json.loads(p.read_text())["identity"]["model"]["options"]["scans"]):
            json.loads(p.read_text()) for p in (tmp_path / "results" / "runs" / "synthetic").glob("*.json")}
    assert set(runs) == {("Ar",), ("Ar", "Ac", "Br", "Bc", "Cr", "Cc", "Dr", "Dc")}

    from mcbench.reproduce import RowResult, draw, parse_recipe

    recipe = parse_recipe(FIGURES, "fig.toml")
    by_label = {"Ar": runs[("Ar",)], "all": runs[("Ar", "Ac", "Br", "Bc", "Cr", "Cc", "Dr", "Dc")]}
    results = [RowResult(row, [by_label[row.label]["run_id"]], []) for row in recipe.rows]
    import mcbench.plots as plots

    drawn = {}
    original = plots.plot_scan_ablation

    def spy(ours, paper, stem, title, **kw):
        drawn.update(ours=dict(ours), paper=dict(paper), title=title)
        return original(ours, paper, stem, title, **kw)

    plots.plot_scan_ablation = spy
    try:
        draw(recipe, results, tmp_path / "results", demo=True)
    finally:
        plots.plot_scan_ablation = original
    assert drawn["ours"] == {k: (v["test"]["roc_auc"]["value"], None) for k, v in by_label.items()}
    assert drawn["paper"] == {"Ar": 0.8119, "all": 0.9078}
    assert "DEMO" in drawn["title"]


def test_per_tag_figure_needs_groups_and_draws_them(tmp_path):
    pytest.importorskip("matplotlib")
    text = (FIGURES.replace('figure = "scan_ablation"', 'figure = "per_tag"')
            .replace('reference = "all"', 'reference = "all"'))
    with pytest.raises(RecipeError, match="needs \\[groups\\]"):
        parse_recipe(text, "x.toml")
    text += '\n[groups]\nspectral = ["low", "high"]\ntemporal = ["slow", "fast", "rising"]\n'
    path = tmp_path / "tags.toml"
    path.write_text(text)
    result = _reproduce(tmp_path, str(path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results" / "figures" / "tinyfig.png").stat().st_size > 0
    won = result.output[result.output.index("| tags won"):].splitlines()[2:4]  # Fig. 6's wins
    assert [line.split("|")[1].strip() for line in won] == ["Ar", "all"]
    wins = [[int(c.split("/")[0]) for c in line.split("|")[2:-1]] for line in won]
    assert all(row[-1] == sum(row[:-1]) for row in wins)  # the groups add up
    assert sum(row[-1] for row in wins) <= 5  # at most one winner per tag


TSNE = """
[artifact]
name = "tinytsne"
metrics = ["accuracy"]
figure = "tsne"

[datasets]
main = "synthetic_genres"

[dataset_params.main]
n_per_genre = 6
seconds = 2.0

[training]
max_epochs = 1
batch_size = 6

[[rows]]
label = "Raw features"
model = "crnn_tf"
on = "main"
embedding = "input"

[[rows]]
label = "CRNN-TF"
model = "crnn_tf"
on = "main"
"""


def test_tsne_figure_embeds_the_test_clips_of_each_row(tmp_path):
    pytest.importorskip("matplotlib")
    _reproduce_text(tmp_path, TSNE, "tsne.toml")
    assert (tmp_path / "results" / "figures" / "tinytsne.png").stat().st_size > 0
    import numpy as np

    files = sorted((tmp_path / "results" / "embeddings").glob("tinytsne-*.npz"))
    assert len(files) == 2  # both rows are one run: its embeddings and its input features
    data = {f.stem.rsplit("-", 1)[1]: np.load(f, allow_pickle=False) for f in files}
    assert data["model"]["embeddings"].shape[1] == 256  # eq. (1): 8 scans x 32 units
    assert data["input"]["embeddings"].shape[1] == 96  # one value per mel band
    assert list(data["model"]["clip_ids"]) == list(data["input"]["clip_ids"])


def test_report_shows_every_reproduced_artifact(tmp_path):
    pytest.importorskip("matplotlib")
    empty = CliRunner().invoke(main, ["report", "--results-dir", str(tmp_path / "results")])
    assert empty.exit_code == 0 and "no artifact reproduced yet" in empty.output
    (tmp_path / "demo.toml").write_text(DEMO)
    (tmp_path / "fig.toml").write_text(FIGURES)
    assert _reproduce(tmp_path, str(tmp_path / "demo.toml"), "--demo").exit_code == 0
    assert _reproduce(tmp_path, str(tmp_path / "fig.toml")).exit_code == 0
    result = CliRunner().invoke(main, ["report", "--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    assert "(2 artifact(s))" in result.output
    md = (tmp_path / "results" / "report.md").read_text()
    page = (tmp_path / "results" / "report.html").read_text()
    assert "| tinydemo | DEMO: synthetic stand-ins | 2 |" in md
    assert "| tinyfig | the paper's data | 2 |" in md
    assert "## tinydemo (DEMO: synthetic stand-ins" in md and "| MFCC + SVM " in md
    assert "git commit(s)" in md and "data synthetic_genres: " in md
    # Fig. 5 and the learning curves of both artifacts, embedded
    assert page.count("data:image/png;base64,") == 3
    assert "<th>Method</th>" in page and "tinyfig" in page


def test_recipes_generating_one_dataset_differently_use_separate_roots(tmp_path):
    """Before: the second recipe stopped with "…/synthetic_genres was generated with other
    parameters (n_per_genre: on disk 5, asked 6)"."""
    _reproduce_text(tmp_path, DEMO, "demo.toml", "--demo")  # 5 clips per genre
    _reproduce_text(tmp_path, TSNE.replace('figure = "tsne"\n', ""), "six.toml")  # 6 per genre
    roots = sorted(p.name for p in (tmp_path / "data").glob("synthetic_genres-*"))
    assert len(roots) == 2 and not (tmp_path / "data" / "synthetic_genres").exists()


AUTHORS = FIGURES.replace('paper = { roc_auc = 0.9078 }', 'paper = { roc_auc = 0.9078 }\n'
                          'authors = { roc_auc = 0.9072 }\nauthors_training = { batch_size = 5 }') \
    + '\n[authors]\nnote = "tiny"\n[authors.training]\nprotocol = "wang2019"\n' \
      '[authors.models.crnn_tf]\nbatch_size = 4\n'


def test_the_authors_reading_runs_wang2019_and_compares_with_the_notebooks(tmp_path):
    recipe = parse_recipe(AUTHORS, "a.toml")
    assert recipe.authors_training == {"protocol": "wang2019"}
    assert recipe.authors_models == {"crnn_tf": {"batch_size": 4}}
    assert [r.authors for r in recipe.rows] == [{}, {"roc_auc": 0.9072}]
    plan = _reproduce_text(tmp_path, AUTHORS, "a.toml", "--as", "authors", "--dry-run")
    rows = [line for line in plan.output.splitlines() if line.startswith("| A") or
            line.startswith("| all")]
    assert len(rows) == 2 and all("| wang2019 " in line for line in rows), plan.output
    result = _reproduce_text(tmp_path, AUTHORS, "a.toml", "--as", "authors")
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*/*.json")]
    by_scans = {"Ar" if r["identity"]["model"]["options"]["scans"] == ["Ar"] else "all":
                r["identity"] for r in records}
    # the row's own setting beats its model's, which beats the recipe's
    assert {k: (v["model"]["variant"], v["training"]["protocol"], v["training"]["batch_size"])
            for k, v in by_scans.items()} == {"Ar": ("wang2019", "wang2019", 4),
                                              "all": ("wang2019", "wang2019", 5)}
    assert "roc_auc (authors)" in result.output and "authors' notebooks" in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("| all ")]
    assert "| 0.907 " in line  # the notebooks' value beside ours
    assert (tmp_path / "results" / "artifacts" / "tinyfig-authors.json").is_file()
    # the paper reading is other runs: nothing of the authors' is reused
    paper = _reproduce_text(tmp_path, AUTHORS, "a.toml", "--dry-run")
    assert "2 run(s): 0 done, 0 partial, 2 to do" in paper.output


def test_demo_keeps_its_sizes_under_the_authors_reading():
    from mcbench.reproduce import ReproduceRequest, row_training

    recipe = shipped()["table1"]
    fcn = recipe.rows[0]
    real = row_training(ReproduceRequest(recipe, reading="authors"), recipe.real, fcn)
    assert real == {"protocol": "wang2019", "max_epochs": 30, "batch_size": 16}
    demo = ReproduceRequest(recipe, demo=True, reading="authors")
    assert row_training(demo, recipe.setting(True), fcn) == {"protocol": "wang2019"}
    assert row_training(ReproduceRequest(recipe), recipe.real, fcn) == {}


def test_figures_share_the_runs_of_their_tables_in_both_readings():
    """Fig. 6 draws Table I's runs and Fig. 7 Table II's: the same datasets, demo settings and
    authors' settings, so reproducing both trains each run once."""
    recipes = shipped()
    for fig, table in (("fig6", "table1"), ("fig7", "table2")):
        f, t = recipes[fig], recipes[table]
        for demo in (False, True):
            assert f.setting(demo).datasets == t.setting(demo).datasets
            assert f.setting(demo).dataset_params == t.setting(demo).dataset_params
            assert f.setting(demo).training == t.setting(demo).training
        assert f.authors_training == t.authors_training
        models = {r.model for r in f.rows}
        assert {m: v for m, v in t.authors_models.items() if m in models} == f.authors_models


def test_wins_table_counts_each_models_tags_per_group(tmp_path):
    pytest.importorskip("matplotlib")
    from mcbench.plots import plot_per_tag
    from mcbench.reproduce import wins_table

    per_tag = {"CRNN": {"a": 0.9, "b": 0.5, "c": 0.7},
               "CRNN-TF": {"a": 0.8, "b": 0.6, "c": 0.7}}
    figure = plot_per_tag(per_tag, {"genre": ["a", "b"], "mood": ["c"]}, tmp_path / "f", "t")
    text = wins_table(figure)
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in text.splitlines() if line.startswith("| CRNN")}
    assert lines == {"CRNN": ["1/2", "0/1", "1/3"], "CRNN-TF": ["1/2", "0/1", "1/3"]}
    assert "ties (nobody's win): c: CRNN, CRNN-TF" in text


def test_list_counts_runs_and_two_rows_of_one_run_are_one_run(tmp_path):
    from mcbench.plugins import Registry
    from mcbench.reproduce import ReproduceRequest, dry_run

    planned = dry_run(Registry(), ReproduceRequest(shipped()["fig7"], demo=True,
                                                   results_dir=tmp_path), estimate=False)
    assert [p.row for p in planned] == ["Raw features, CRNN", "CRNN-TF"]
    result = _reproduce(tmp_path, "--list")
    assert result.exit_code == 0, result.output
    assert "3 rows (crnn, crnn_tf), 2 runs on fma; --demo: 2 runs on synthetic_genres" in result.output
    assert "--dry-run" in result.output
