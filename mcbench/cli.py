"""The ``mcbench`` command.

Listing (``plugins``, ``models``, ``datasets``, ``metrics``) and ``--help`` import neither torch
nor any model code: plugins are cheap metadata until a run builds one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .plugins import DISABLE_ENV, PLUGINS_DIR_ENV, Registry, resolve_model_names
from .specs import DatasetError, PluginError


class Context:
    def __init__(self, plugin_dirs: tuple[Path, ...]):
        self.plugin_dirs = list(plugin_dirs)
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(plugin_dirs=self.plugin_dirs)
        return self._registry


pass_ctx = click.make_pass_decorator(Context)


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


def _parse_value(text: str):
    """Command-line values: JSON when it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_assignments(items: tuple[str, ...], option: str, scoped: bool) -> dict:
    """``key=value`` (or ``scope.key=value`` when scoped) into dicts."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"{option} expects KEY=VALUE, got {item!r}")
        if scoped:
            scope, dot, name = key.partition(".")
            if not dot:
                _fail(f"{option} expects MODEL.KEY=VALUE (e.g. crnn_tf.cell=gru), got {item!r}")
            out.setdefault(scope, {})[name] = _parse_value(value)
        else:
            out[key] = _parse_value(value)
    return out


def _split_per_model(options: dict[str, tuple[tuple[str, ...], str]],
                     models: list[str]) -> tuple[dict, dict[str, dict]]:
    """Integer settings given as ``N`` (every model) or ``MODEL=N`` (one model).

    ``{"max_epochs": (("3", "fcn=2"), "--epochs")}`` → ``({"max_epochs": 3},
    {"fcn": {"max_epochs": 2}})``. A model name not among the run's models is an error, so a
    typo does not silently train with the default.
    """
    common: dict = {}
    per_model: dict[str, dict] = {}
    for key, (items, option) in options.items():
        for item in items:
            model, sep, value = item.rpartition("=")
            if sep and model not in models:
                _fail(f"{option} {item}: {model!r} is not among the models of this run ({', '.join(models)})")
            try:
                number = int(value)
            except ValueError:
                _fail(f"{option} expects N or MODEL=N with an integer N, got {item!r}")
            if number < 1:
                _fail(f"{option} must be at least 1, got {item!r}")
            (per_model.setdefault(model, {}) if sep else common)[key] = number
    return common, per_model


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mcbench")
@click.option("--plugins-dir", "plugin_dirs", multiple=True, type=click.Path(path_type=Path),
              help=f"Folder of one-file plugins (*.py) to load; repeatable. Also ${PLUGINS_DIR_ENV}.")
@click.pass_context
def main(ctx: click.Context, plugin_dirs: tuple[Path, ...]) -> None:
    """mcbench: benchmark music classifiers (CRNN-TF and the paper's baselines).

    \b
    Quick start:
      mcbench run --models all --dataset synthetic   # train + evaluate every model
      mcbench table --dataset synthetic              # the table again, from stored records
    """
    ctx.obj = Context(plugin_dirs)


# --------------------------------------------------------------------------- listing


@main.group(invoke_without_command=True)
@pass_ctx
@click.pass_context
def plugins(click_ctx: click.Context, ctx: Context) -> None:
    """List plugins, where they come from and what they provide (and broken ones, with errors)."""
    if click_ctx.invoked_subcommand is not None:
        return
    reg = ctx.registry
    for p in reg.plugins:
        if p.ok:
            provides = "; ".join(f"{k}s: {', '.join(v)}" for k, v in p.provides.items()) or "nothing"
            click.echo(f"{click.style('ok', fg='green')}     {p.name:<18} {provides}")
            click.echo(f"       {'':<18} from {p.origin}")
        else:
            click.echo(f"{click.style('FAILED', fg='red')} {p.name:<18} {p.error}")
            click.echo(f"       {'':<18} from {p.origin}")
    for kind in ("model", "dataset", "metric"):
        for name, providers in reg.conflicts(kind).items():
            click.secho(
                f"CONFLICT {kind} {name!r} is provided by {' and '.join(providers)}; "
                f"disable one with {DISABLE_ENV}=<plugin>", fg="red")
    if reg.disabled:
        click.echo(f"disabled by {DISABLE_ENV}: {', '.join(sorted(reg.disabled))}")


@plugins.command("validate")
@click.argument("name")
@click.option("--task", type=click.Choice(["multilabel", "multiclass"]), default=None,
              help="Task to validate for (default: every task the model supports).")
@click.option("--variant", default=None, help="Variant to validate (default: every variant).")
@pass_ctx
def plugins_validate(ctx: Context, name: str, task: str | None, variant: str | None) -> None:
    """Check that model plugin NAME honours the contract (runs on CPU in seconds)."""
    from .validate import validate_model

    try:
        spec = ctx.registry.model(name)
    except PluginError as exc:
        _fail(str(exc))
    ok = validate_model(spec, task=task, variant=variant, echo=click.echo)
    sys.exit(0 if ok else 1)


@main.command()
@pass_ctx
def models(ctx: Context) -> None:
    """List model plugins with their variants."""
    for m in ctx.registry.specs("model"):
        click.echo(f"{click.style(m.name, bold=True)}: {m.summary}")
        click.echo(f"    tasks: {', '.join(m.tasks)}" + (f" · source: {m.source}" if m.source else ""))
        for v, desc in m.variants.items():
            mark = " (default)" if v == m.default_variant else ""
            click.echo(f"    variant {v}{mark}: {desc} [input: {m.frontend(v)}]")


@main.command()
@pass_ctx
def datasets(ctx: Context) -> None:
    """List dataset plugins."""
    for d in ctx.registry.specs("dataset"):
        protocols = ", ".join(f"{p} ({n} fold{'s' if n > 1 else ''})" for p, n in d.protocols.items())
        click.echo(f"{click.style(d.name, bold=True)}: {d.summary}")
        click.echo(f"    task: {d.task} · protocols: {protocols} · default: {d.default_protocol}")
        if d.readme:
            click.echo(f"    how to obtain: {d.readme}")


@main.command()
@pass_ctx
def metrics(ctx: Context) -> None:
    """List metric plugins."""
    for m in sorted(ctx.registry.specs("metric"), key=lambda m: (m.tasks, m.order)):
        flags = [", ".join(m.tasks)]
        if m.selects:
            flags.append("selects checkpoints")
        if not m.headline:
            flags.append("extra")
        click.echo(f"{m.key:<22} {m.name:<12} [{'; '.join(flags)}] {m.summary}")


# --------------------------------------------------------------------------- run


@main.command()
@click.option("--models", "models_", default="all", show_default=True,
              help="'all' or comma-separated model names.")
@click.option("--dataset", required=True, help="Dataset plugin name (see `mcbench datasets`).")
@click.option("--root", type=click.Path(path_type=Path), help="Dataset root (default: <data-dir>/<dataset>).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Default data folder (default: ./datasets or $MCBENCH_DATA_DIR).")
@click.option("--results-dir", type=click.Path(path_type=Path), default=None,
              help="Where run records go (default: ./results or $MCBENCH_RESULTS_DIR).")
@click.option("--seeds", type=int, default=1, show_default=True, help="Number of seeds per model.")
@click.option("--seed", "first_seed", type=int, default=0, show_default=True, help="First seed.")
@click.option("--protocol", default=None, help="Dataset protocol (default: the dataset's default).")
@click.option("--folds", default=None, help="Folds to run for k-fold protocols, e.g. 0,1,2 (default all).")
@click.option("--training-protocol", type=click.Choice(["paper", "wang2019"]), default="paper",
              show_default=True, help="Optimiser/schedule/L2 protocol (models.md §9).")
@click.option("--epochs", "epochs", multiple=True, metavar="N|MODEL=N",
              help="Maximum epochs: N for every model or MODEL=N for one; repeatable "
                   "(default: the dataset's suggestion, else 50).")
@click.option("--batch-size", "batch_size", multiple=True, metavar="N|MODEL=N",
              help="Batch size: N or MODEL=N, repeatable (default: the dataset's suggestion, else 32).")
@click.option("--patience", type=int, default=None, help="Early-stopping patience in epochs (default off).")
@click.option("--no-standardize", is_flag=True,
              help="Feed raw dB features (default: standardise with the training split's mean/std).")
@click.option("--variant", "variants", multiple=True, help="MODEL=VARIANT, repeatable.")
@click.option("--param", "params", multiple=True, help="MODEL.KEY=VALUE model option, repeatable.")
@click.option("--dataset-param", "dataset_params", multiple=True, help="KEY=VALUE dataset option, repeatable.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--select-metric", default=None, help="Validation metric key for checkpoint selection.")
@click.option("--workers", type=int, default=None, help="Decoding processes (default: all cores).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv", "plain"]),
              default="markdown", show_default=True, help="Format of the table printed at the end.")
@pass_ctx
def run(ctx: Context, models_, dataset, root, data_dir, results_dir, seeds, first_seed, protocol,
        folds, training_protocol, epochs, batch_size, patience, no_standardize, variants, params, dataset_params,
        device, select_metric, workers, no_progress, fmt) -> None:
    """Train and evaluate models on a dataset, then print the comparison table.

    Running the same command again skips finished runs and resumes interrupted ones.
    """
    from .runner import RunRequest, default_results_dir, run_experiments
    from .tables import NoRunsError, table_for

    reg = ctx.registry
    try:
        reg.dataset(dataset)
        names = resolve_model_names(reg, models_)
    except PluginError as exc:
        _fail(str(exc))
    training, model_training = _split_per_model(
        {"max_epochs": (epochs, "--epochs"), "batch_size": (batch_size, "--batch-size")}, names)
    if patience is not None:
        training["patience"] = patience
    if no_standardize:
        training["standardize"] = False
    req = RunRequest(
        models=names, dataset=dataset, root=root, data_dir=data_dir, results_dir=results_dir,
        seeds=list(range(first_seed, first_seed + seeds)),
        folds=[int(f) for f in folds.split(",")] if folds else None,
        protocol=protocol, training_protocol=training_protocol, training=training,
        model_training=model_training,
        variants=_parse_assignments(variants, "--variant", scoped=False),
        model_params=_parse_assignments(params, "--param", scoped=True),
        dataset_params=_parse_assignments(dataset_params, "--dataset-param", scoped=False),
        device=device, select_metric=select_metric, workers=workers, progress=not no_progress,
        echo=click.echo,
    )
    try:
        outcomes = run_experiments(reg, req)
    except (DatasetError, PluginError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("\nstopped; run the same command again to resume.", err=True)
        sys.exit(130)
    failed = [o for o in outcomes if o.status == "failed"]
    click.echo("")
    try:
        click.echo(table_for(results_dir or default_results_dir(), dataset=dataset, fmt=fmt))
    except NoRunsError as exc:
        click.echo(str(exc), err=True)
    if failed:
        click.secho(f"{len(failed)} run(s) failed: " + "; ".join(f"{o.model}: {o.error}" for o in failed),
                    fg="red", err=True)
        sys.exit(1)


@main.command()
@click.option("--dataset", default=None, help="Only this dataset (default: all with records).")
@click.option("--results-dir", type=click.Path(path_type=Path), default=None,
              help="Where run records are (default: ./results or $MCBENCH_RESULTS_DIR).")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv", "plain"]),
              default="markdown", show_default=True)
@click.option("--metrics", "metric_keys", default=None, help="Comma-separated metric keys to show.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="Write to a file.")
def table(dataset, results_dir, fmt, metric_keys, output) -> None:
    """Regenerate comparison tables from stored run records (no retraining)."""
    from .runner import default_results_dir
    from .tables import NoRunsError, table_for

    try:
        text = table_for(results_dir or default_results_dir(), dataset=dataset, fmt=fmt,
                         metrics=metric_keys.split(",") if metric_keys else None)
    except NoRunsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except ValueError as exc:
        _fail(str(exc))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
        click.echo(f"wrote {output}")
    else:
        click.echo(text)


# --------------------------------------------------------------------------- data


@main.group()
def data() -> None:
    """Check a downloaded dataset, and prepare (decode + cache) its features."""


def _data_common(f):
    f = click.option("--root", type=click.Path(path_type=Path), default=None,
                     help="Dataset root (default: <data-dir>/<dataset>).")(f)
    f = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                     help="Default data folder (default: ./datasets or $MCBENCH_DATA_DIR).")(f)
    return click.argument("dataset")(f)


@data.command("check")
@_data_common
@pass_ctx
def data_check(ctx: Context, dataset, root, data_dir) -> None:
    """Report the layout and health of DATASET's files without computing features."""
    from .datacmd import check_dataset

    try:
        ok = check_dataset(ctx.registry, dataset, root, data_dir, echo=click.echo)
    except (DatasetError, PluginError) as exc:
        _fail(str(exc))
    sys.exit(0 if ok else 1)


@data.command("prepare")
@_data_common
@click.option("--frontend", "frontends", default="logmel", show_default=True,
              help="Front ends to cache, comma-separated (logmel, waveform).")
@click.option("--protocol", default=None, help="Protocol whose splits to prepare (default: the dataset's).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Feature cache folder.")
@click.option("--workers", type=int, default=None, help="Decoding processes (default: all cores).")
@click.option("--dataset-param", "dataset_params", multiple=True, help="KEY=VALUE dataset option.")
@pass_ctx
def data_prepare(ctx: Context, dataset, root, data_dir, frontends, protocol, cache_dir, workers,
                 dataset_params) -> None:
    """Decode every clip of DATASET in parallel and cache its features (resumable)."""
    from .datacmd import prepare_dataset

    try:
        prepare_dataset(ctx.registry, dataset, root, data_dir, cache_dir,
                        frontends=[f.strip() for f in frontends.split(",") if f.strip()],
                        protocol=protocol, workers=workers,
                        params=_parse_assignments(dataset_params, "--dataset-param", scoped=False),
                        echo=click.echo)
    except (DatasetError, PluginError, ValueError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("\nstopped; run the same command again to resume.", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
