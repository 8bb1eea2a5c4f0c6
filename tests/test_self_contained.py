"""User-visible text stands on its own: no pointer to the team's design documents, and the dataset
READMEs that messages point at ship with the package.

* Every ``--help`` text of the CLI, every string of every plugin spec (metric summaries, model
  variants and options, dataset summaries, parameters and READMEs), the messages of a dataset
  check on an empty root, and every file of the installed packages ``mcbench`` and
  ``mcbench_plugins`` are free of design-document references.
* ``mcbench datasets NAME`` prints the dataset's README, also outside the source checkout.
* A wheel built from the source holds the four dataset READMEs as the package
  ``mcbench_plugins.dataset_readmes``; installed from it, away from the checkout,
  ``importlib.resources`` finds them and ``mcbench datasets NAME`` prints them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Mapping
from pathlib import Path

import click
import mcbench_plugins
import pytest
from click.testing import CliRunner

import mcbench
from mcbench.cli import README_PACKAGE, _readme_text, main
from mcbench.plugins import Registry
from mcbench.specs import DatasetError

REPO = Path(__file__).resolve().parents[1]

#: A reference to one of the team's design documents, or a section sign.
DESIGN_REF = re.compile(r"\b(metrics|models|datasets|architecture|experiments)\.md\b|\u00a7")

#: The dataset READMEs of the source tree: folder -> the datasets that print it.
README_FOLDERS = {
    "mtat": ["mtat"],
    "fma": ["fma"],
    "gtzan": ["gtzan"],
    "synthetic": ["synthetic", "synthetic_genres"],
}
BUILTIN_DATASETS = [name for names in README_FOLDERS.values() for name in names]

#: Text files of a package worth reading (sources, schemas, package data).
TEXT_SUFFIXES = {".py", ".json", ".md", ".txt", ".toml", ".cfg"}


def design_refs(text: str) -> list[str]:
    """The lines of ``text`` that cite a design document."""
    return [line.strip() for line in text.splitlines() if DESIGN_REF.search(line)]


def first_heading(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("# "))


def strings_of(value, seen=None) -> list[str]:
    """Every string reachable from a spec: fields of dataclasses, mappings, sequences."""
    seen = set() if seen is None else seen
    if isinstance(value, str):
        return [value]
    if id(value) in seen or callable(value) and not dataclasses.is_dataclass(value):
        return []
    seen.add(id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for f in dataclasses.fields(value) for s in strings_of(getattr(value, f.name), seen)]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in [*strings_of(k, seen), *strings_of(v, seen)]]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for v in value for s in strings_of(v, seen)]
    return []


def command_paths(group: click.Group, prefix=()) -> list[tuple[str, ...]]:
    """Every command and subcommand of ``group``, as the argument list that reaches it."""
    paths = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        paths.append(path)
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, path))
    return paths


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


# --------------------------------------------------------------------------- no design references


def test_every_help_text_stands_on_its_own():
    paths = [(), *command_paths(main)]
    assert ("run",) in paths and ("datasets",) in paths and len(paths) > 10
    assert any(len(p) == 2 for p in paths), "subcommands of the command groups are walked"
    runner = CliRunner()
    offending = {}
    for path in paths:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        if design_refs(result.output):
            offending[" ".join(path) or "mcbench"] = design_refs(result.output)
    assert not offending


def test_every_plugin_spec_string_stands_on_its_own(registry):
    offending = {}
    for kind in ("model", "dataset", "metric"):
        specs = registry.specs(kind)
        assert specs, kind
        for spec in specs:
            name = getattr(spec, "key", None) or spec.name
            texts = strings_of(spec)
            if kind == "dataset":
                texts.append(_readme_text(spec))
            assert any(len(t) > 20 for t in texts), (kind, name)
            refs = [r for t in texts for r in design_refs(t)]
            if refs:
                offending[f"{kind} {name}"] = refs
    assert not offending
    summaries = [m.summary for m in registry.specs("metric")]
    assert len(summaries) >= 14 and all(summaries)


def test_the_shipped_dataset_readmes_stand_on_their_own():
    for folder in README_FOLDERS:
        text = (REPO / "datasets" / folder / "README.md").read_text(encoding="utf-8")
        assert first_heading(text)
        assert not design_refs(text), folder


@pytest.mark.parametrize("name", ["mtat", "fma", "gtzan"])
def test_check_on_an_empty_root_points_at_a_command_not_a_source_path(registry, tmp_path, name):
    spec = registry.dataset(name)
    try:
        report = spec.check(tmp_path)
        texts = [*report.notes, *(str(p) for p in report.problems)]
    except DatasetError as exc:
        texts = [str(exc)]
    message = "\n".join(texts)
    assert f"`mcbench datasets {name}`" in message
    assert f"datasets/{name}/README.md" not in message
    assert not design_refs(message)


@pytest.mark.parametrize("name", ["mtat", "fma", "gtzan"])
def test_data_check_of_a_missing_root_points_at_a_command(tmp_path, name):
    """Before: "See datasets/mtat/README.md …", a path a pip install does not have."""
    result = CliRunner().invoke(main, ["data", "check", name, "--root", str(tmp_path / "absent")])
    assert result.exit_code != 0
    assert f"`mcbench datasets {name}`" in result.output
    assert "README.md" not in result.output


def package_text_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts]


def test_the_installed_package_files_stand_on_their_own():
    roots = [Path(mcbench.__file__).parent, Path(mcbench_plugins.__file__).parent]
    offending = {}
    n_files = 0
    for root in roots:
        for path in package_text_files(root):
            n_files += 1
            refs = design_refs(path.read_text(encoding="utf-8"))
            if refs:
                offending[str(path.relative_to(root.parent))] = refs
    assert n_files > 30
    assert not offending


# --------------------------------------------------------------------------- mcbench datasets NAME


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_datasets_command_prints_the_readme_outside_the_checkout(registry, tmp_path, monkeypatch, name):
    folder = next(f for f, names in README_FOLDERS.items() if name in names)
    heading = first_heading((REPO / "datasets" / folder / "README.md").read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)  # no datasets/ folder here
    result = CliRunner().invoke(main, ["datasets", name])
    assert result.exit_code == 0, result.output
    assert heading in result.output.splitlines()
    assert "how to obtain:" not in result.output


# --------------------------------------------------------------------------- a real wheel


def _copy_source(dest: Path) -> None:
    """The files a wheel is built from: pyproject, the README, the packages, the dataset READMEs."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "mcbench", dest / "mcbench", ignore=ignore)
    shutil.copytree(REPO / "plugins", dest / "plugins", ignore=ignore)
    for readme in (REPO / "datasets").glob("*/README.md"):
        target = dest / "datasets" / readme.parent.name
        target.mkdir(parents=True)
        shutil.copy2(readme, target / "README.md")


#: Run by the wheel's install, away from the checkout: what importlib.resources finds there and
#: what ``mcbench datasets NAME`` prints.
_INSTALLED_PROBE = """
import importlib.resources, json, pathlib, sys
import mcbench, mcbench_plugins
from click.testing import CliRunner
from mcbench.cli import main
readmes = importlib.resources.files(sys.argv[1])
found = {p.name: (p / "README.md").read_text(encoding="utf-8")
         for p in readmes.iterdir() if (p / "README.md").is_file()}
printed = {}
for name in sys.argv[2:]:
    result = CliRunner().invoke(main, ["datasets", name])
    printed[name] = [result.exit_code, result.output]
print(json.dumps({"mcbench": mcbench.__file__, "plugins": mcbench_plugins.__file__,
                  "readmes": found, "printed": printed}))
"""


def test_wheel_ships_the_dataset_readmes_and_its_install_prints_them(tmp_path):
    src, wheels, site, elsewhere = (tmp_path / d for d in ("src", "wheels", "site", "elsewhere"))
    _copy_source(src)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(wheels), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    # Without build isolation the environment's setuptools builds it (>= 70.1, the test extra).
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("mcbench-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for folder in README_FOLDERS:
            assert f"mcbench_plugins/dataset_readmes/{folder}/README.md" in names
        package_files = [n for n in names if n.startswith(("mcbench/", "mcbench_plugins/"))
                         and Path(n).suffix in TEXT_SUFFIXES]
        assert len(package_files) > 30
        offending = {n: design_refs(zf.read(n).decode("utf-8")) for n in package_files}
        assert not {n: r for n, r in offending.items() if r}
        zf.extractall(site)

    # The wheel's files first; the environment's libraries after them, without its site hooks
    # (-S), so an editable install of the checkout cannot stand in for the wheel.
    libs = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *libs])}
    env.pop("MCBENCH_PLUGINS_DIR", None)
    elsewhere.mkdir()
    probe = subprocess.run(
        [sys.executable, "-S", "-c", _INSTALLED_PROBE, README_PACKAGE, *BUILTIN_DATASETS],
        capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300,
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(seen["mcbench"]).is_relative_to(site)
    assert Path(seen["plugins"]).is_relative_to(site)
    assert sorted(seen["readmes"]) == sorted(README_FOLDERS)
    for folder, names in README_FOLDERS.items():
        source = (REPO / "datasets" / folder / "README.md").read_text(encoding="utf-8")
        assert seen["readmes"][folder] == source
        for name in names:
            code, output = seen["printed"][name]
            assert code == 0, output
            assert first_heading(source) in output.splitlines()
