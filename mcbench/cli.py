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
from .plugins import (
    DISABLE_ENV,
    PLUGINS_DIR_ENV,
    Registry,
    missing_plugin_dirs,
    resolve_model_names,
)
from .reproduce import READINGS
from .specs import DatasetError, OptionError, PluginError
from .storage import StateError
from .transfer import STRATEGIES

#: Errors that stop a command with a message (exit 2) rather than a traceback.
USER_ERRORS = (DatasetError, PluginError, OptionError)


class Context:
    def __init__(self, plugin_dirs: tuple[Path, ...]):
        self.plugin_dirs = list(plugin_dirs)
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(plugin_dirs=self.plugin_dirs)
            for message in self._registry.missing_dirs:  # listing commands go on
                click.secho(f"warning: {message}", fg="yellow", err=True)
        return self._registry

    def require_plugin_dirs(self) -> None:
        """Stop (exit 2) before any work when a plugin folder given does not exist: a run must
        not go ahead without the plugins the user asked for."""
        missing = missing_plugin_dirs(self.plugin_dirs)
        if missing:
            _fail("; ".join(missing))

    def warn_broken_plugins(self) -> None:
        """Say on stderr which plugins failed to load (``mcbench plugins`` lists them in full)."""
        broken = [p for p in self.registry.plugins if not p.ok]
        for p in broken:
            click.secho(f"warning: plugin {p.name} did not load: {p.error}", fg="yellow", err=True)
        if broken:
            click.secho("  (see `mcbench plugins`)", fg="yellow", err=True)


pass_ctx = click.make_pass_decorator(Context)


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


def _parse_assignments(items: tuple[str, ...], option: str, scoped: bool) -> dict:
    """``key=value`` (or ``scope.key=value`` when scoped) into dicts of text values; the
    plugin's declared option types convert them (``True``/``false``/``1``, numbers, lists)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"{option} expects KEY=VALUE, got {item!r}")
        if scoped:
            scope, dot, name = key.partition(".")
            if not dot or not name:
                _fail(f"{option} expects MODEL.KEY=VALUE (e.g. crnn_tf.cell=gru), got {item!r}")
            out.setdefault(scope, {})[name] = value
        else:
            out[key] = value
    return out


def _parse_int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        _fail(f"{option} expects comma-separated integers (e.g. 0,1,2), got {text!r}")
    if not values:
        _fail(f"{option} expects at least one integer, got {text!r}")
    return values


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


def version_text() -> str:
    """``mcbench --version``: mcbench's version, torch's and its build (CPU, or the CUDA version
    it was built with), and whether CUDA is usable here. Imports torch, never TensorFlow."""
    lines = [f"mcbench {__version__}"]
    try:
        import torch
    except ImportError as exc:
        lines.append(f"torch: not importable ({exc})")
        return "\n".join(lines)
    cuda = getattr(torch.version, "cuda", None)
    build = f"CUDA {cuda}" if cuda else "CPU"
    lines.append(f"torch {torch.__version__} ({build} build)")
    if torch.cuda.is_available():
        lines.append(f"CUDA available: yes, {torch.cuda.device_count()} device(s), "
                     f"{torch.cuda.get_device_name(0)}")
    else:
        lines.append("CUDA available: no" + (" (no usable GPU or driver)" if cuda else
                                             " (a CPU build of torch; see the README, Set-up)"))
    return "\n".join(lines)


def _print_version(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(version_text())
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show mcbench's and torch's versions, torch's build (CPU or CUDA x.y) and "
                   "whether CUDA is available, then exit.")
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


def _with_backends(reg: Registry, kind: str, names: list[str]) -> list[str]:
    """Model names with their backends, ``crnn_tf (torch, keras)``; other kinds as they are."""
    if kind != "model":
        return names
    out = []
    for name in names:
        try:
            out.append(f"{name} ({', '.join(reg.model(name).backends)})")
        except PluginError:  # a conflict, reported below
            out.append(name)
    return out


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
            provides = "; ".join(f"{k}s: {', '.join(_with_backends(reg, k, v))}"
                                 for k, v in p.provides.items()) or "nothing"
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


@plugins.command("validate", epilog="""\b
Examples:
  mcbench plugins validate crnn_tf --task multilabel
  mcbench plugins validate crnn --backend keras --variant wang2019
  mcbench plugins validate synthetic_genres --root /tmp/sg --dataset-param n_per_genre=5
  mcbench --plugins-dir my_plugins plugins validate my_metric
""")
@click.argument("name")
@click.option("--kind", type=click.Choice(["model", "dataset", "metric"]), default=None,
              help="What NAME is, when a model, dataset or metric share it (default: found).")
@click.option("--task", type=click.Choice(["multilabel", "multiclass"]), default=None,
              help="Task to validate for, models and metrics (default: every task declared).")
@click.option("--variant", default=None, help="Model variant to validate (default: every variant).")
@click.option("--backend", default=None,
              help="Model build to validate, e.g. keras (default: the model's default backend).")
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help="Dataset root to read (datasets; a generated dataset writes its data there). "
                   "Without it, only the spec is checked.")
@click.option("--protocol", default=None, help="Dataset protocol to read (default: every one).")
@click.option("--dataset-param", "dataset_params", multiple=True,
              help="KEY=VALUE dataset parameter, repeatable (`mcbench datasets NAME` lists them).")
@pass_ctx
def plugins_validate(ctx: Context, name: str, kind: str | None, task: str | None,
                     variant: str | None, backend: str | None, root: Path | None,
                     protocol: str | None, dataset_params: tuple[str, ...]) -> None:
    """Check that model, dataset or metric plugin NAME honours the contract.

    Models: build, outputs, a few training steps, save/load, on the CPU in seconds. Datasets: the
    spec, and with --root what tracks() and check() read there (splits disjoint, labels in
    range, targets of the task's shape). Metrics: small random inputs per task, a finite value,
    perfect scores ranked against reversed ones as higher_is_better says. Exit 1 when a check
    fails.
    """
    from .validate import validate_dataset, validate_metric, validate_model

    ctx.require_plugin_dirs()
    reg = ctx.registry
    found = [k for k in ("model", "dataset", "metric") if name in reg.names(k)]
    if kind is None and len(found) > 1:
        _fail(f"{name!r} is a {' and a '.join(found)}; say which with --kind")
    kind = kind or (found[0] if found else None)
    if kind is None or kind not in found:
        listing = "; ".join(f"{k}s: {', '.join(reg.names(k)) or '(none)'}"
                            for k in ("model", "dataset", "metric"))
        import difflib

        what = kind or "model, dataset or metric"
        close = difflib.get_close_matches(name, [n for k in ("model", "dataset", "metric")
                                                 for n in reg.names(k)], n=1)
        _fail(f"unknown {what} {name!r}. {listing}."
              + (f" Did you mean {close[0]!r}?" if close else "")
              + (" Some plugins failed to load; run `mcbench plugins` to see why."
                 if any(not p.ok for p in reg.plugins) else ""))
    given = {"--task": task if kind == "dataset" else None,
             "--variant": variant if kind != "model" else None,
             "--backend": backend if kind != "model" else None,
             "--root": root if kind != "dataset" else None,
             "--protocol": protocol if kind != "dataset" else None,
             "--dataset-param": dataset_params if kind != "dataset" else None}
    wrong = [opt for opt, value in given.items() if value]
    if wrong:
        _fail(f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to {kind} "
              f"{name!r}; see `mcbench plugins validate --help`")
    try:
        spec = reg.get(kind, name)
    except PluginError as exc:
        _fail(str(exc))
    if kind == "model":
        ok = validate_model(spec, task=task, variant=variant, echo=click.echo, backend=backend)
    elif kind == "dataset":
        ok = validate_dataset(spec, root=root, protocol=protocol, echo=click.echo,
                              params=_parse_assignments(dataset_params, "--dataset-param", scoped=False))
    else:
        ok = validate_metric(spec, task=task, echo=click.echo)
    sys.exit(0 if ok else 1)


def _describe_options(options, variant=None) -> list[str]:
    lines = []
    for name, opt in options.items():
        if variant is not None and opt.variants and variant not in opt.variants:
            continue
        only = f" [{', '.join(opt.variants)} only]" if opt.variants else ""
        lines.append(f"      {name}: {opt.help}{only}")
        lines.append(f"          {opt.describe()}")
    return lines


@main.command()
@click.argument("name", required=False)
@pass_ctx
def models(ctx: Context, name: str | None) -> None:
    """List model plugins with their variants; with NAME, also its options.

    \b
    Examples:
      mcbench models
      mcbench models crnn_tf
    """
    specs = ctx.registry.specs("model")
    if name is not None:
        try:
            specs = [ctx.registry.model(name)]
        except PluginError as exc:
            _fail(str(exc))
    for m in specs:
        click.echo(f"{click.style(m.name, bold=True)}: {m.summary}")
        click.echo(f"    tasks: {', '.join(m.tasks)} · backends: {', '.join(m.backends)}"
                   + (f" · source: {m.source}" if m.source else ""))
        for v, desc in m.variants.items():
            mark = " (default)" if v == m.default_variant else ""
            click.echo(f"    variant {v}{mark}: {desc} [input: {m.frontend(v)}; "
                       f"backends: {', '.join(m.backends_of(v))}]")
        for b, build in m.builds.items():
            for option, allowed in build.choices.items():
                click.echo(f"    {b} build: {option} {' or '.join(map(str, allowed))} only")
        if name is not None:
            click.echo("    options (--param " + m.name + ".NAME=VALUE):" if m.options
                       else "    options: none")
            for line in _describe_options(m.options):
                click.echo(line)


@main.command()
@click.argument("name", required=False)
@pass_ctx
def datasets(ctx: Context, name: str | None) -> None:
    """List dataset plugins; with NAME, also its parameters and how to obtain the data.

    \b
    Examples:
      mcbench datasets
      mcbench datasets gtzan
    """
    specs = ctx.registry.specs("dataset")
    if name is not None:
        try:
            specs = [ctx.registry.dataset(name)]
        except PluginError as exc:
            _fail(str(exc))
    for d in specs:
        protocols = ", ".join(f"{p} ({n} fold{'s' if n > 1 else ''})" for p, n in d.protocols.items())
        click.echo(f"{click.style(d.name, bold=True)}: {d.summary}")
        click.echo(f"    task: {d.task} · protocols: {protocols} · default: {d.default_protocol}")
        if name is None:
            continue
        click.echo("    parameters (--dataset-param NAME=VALUE):" if d.params
                   else "    parameters: none")
        for line in _describe_options(d.params):
            click.echo(line)
        text = _readme_text(d)
        if text:
            click.echo("")
            click.echo(text.rstrip())


#: The package the built-in datasets' READMEs are installed as: ``datasets/<name>/README.md`` of
#: the source tree becomes ``mcbench_plugins/dataset_readmes/<name>/README.md`` (pyproject.toml).
README_PACKAGE = "mcbench_plugins.dataset_readmes"


def _readme_text(spec) -> str:
    """The README of a dataset plugin, for ``mcbench datasets NAME``.

    ``spec.readme`` is the text itself (several lines) or a path. A built-in dataset's path,
    ``datasets/<folder>/README.md``, is looked up first in the installed package
    :data:`README_PACKAGE`, so the text is there after a plain ``pip install``; any path is then
    tried as given (absolute or relative to the working folder) and relative to the source
    checkout.
    """
    ref = spec.readme or ""
    if "\n" in ref:
        return ref
    parts = Path(ref).parts if ref else ("datasets", spec.name, "README.md")
    if len(parts) == 3 and parts[0] == "datasets" and parts[2] == "README.md":
        from importlib import resources

        try:
            installed = resources.files(README_PACKAGE) / parts[1] / "README.md"
            if installed.is_file():
                return installed.read_text(encoding="utf-8")
        except (ModuleNotFoundError, OSError):
            pass
    if ref:
        for path in (Path(ref), Path(__file__).resolve().parents[1] / ref):
            if path.is_file():
                return path.read_text(encoding="utf-8")
    return f"how to obtain: {ref}" if ref else ""


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


def _executor_options(f):
    """``--executor``, ``--ray-address``, ``--ray-cpus-per-run`` (mcbench.executors)."""
    f = click.option("--ray-cpus-per-run", type=click.FloatRange(min=0, min_open=True),
                     default=1.0, show_default=True,
                     help="With --executor ray on CPU: the CPUs Ray gives each run (and its "
                          "torch threads). On CUDA each run asks for one GPU.")(f)
    f = click.option("--ray-address", default=None, metavar="ADDRESS",
                     help="With --executor ray: join this Ray cluster (auto, or "
                          "ray://HEAD:10001) instead of starting a local Ray instance.")(f)
    f = click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
                     show_default=True,
                     help="local: one run after the other in this process; ray: each run a "
                          "Ray task, side by side on the free GPUs/CPUs of this machine or of "
                          "a cluster (needs the ray extra).")(f)
    return f


def _under_torchrun(nproc: int, executor: str) -> None:
    """``run --nproc N``: this command again under ``torchrun --standalone --nproc-per-node N``
    (one machine; across machines start torchrun yourself, see the README), then exit with its
    status."""
    import subprocess

    from .distributed import requested

    if requested():
        _fail("--nproc starts torchrun itself; under torchrun leave it out")
    if executor != "local":
        _fail("--nproc trains one run across processes; --executor ray fans runs out over "
              "processes itself: use one of them")
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           str(nproc), "-m", "mcbench", *args]
    click.echo("starting: " + " ".join(cmd[1:]), err=True)
    sys.exit(subprocess.call(cmd))


def _executor(name: str, address: str | None, cpus_per_run: float):
    """The executor, or exit 2 with how to install Ray / what is wrong."""
    from .executors import make_executor

    try:
        return make_executor(name, address, cpus_per_run, echo=click.echo)
    except OptionError as exc:
        _fail(str(exc))


@main.command(epilog="""\b
Examples:
  mcbench run --models all --dataset synthetic
  mcbench run --models crnn_tf,fcn --dataset mtat --root /data/mtat --seeds 3
  mcbench run --models crnn_tf --dataset synthetic --param crnn_tf.scans=A_rc --epochs 3
  mcbench run --models crnn_tf,fcn --dataset synthetic --backend keras
  mcbench run --models crnn --dataset gtzan --root /data/gtzan --folds 0,1 --device cuda
  mcbench run --models crnn_tf --dataset gtzan --root /data/gtzan --init-from mtat --transfer freeze_cnn
  mcbench run --models all --dataset mtat --seeds 5 --executor ray
  torchrun --nproc-per-node 4 -m mcbench run --models fcn --dataset mtat
""")
@click.option("--models", "models_", default="all", show_default=True,
              help="'all' or comma-separated model names (see `mcbench models`).")
@click.option("--dataset", required=True, help="Dataset plugin name (see `mcbench datasets`).")
@click.option("--root", type=click.Path(path_type=Path), help="Dataset root (default: <data-dir>/<dataset>).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Default data folder (default: ./datasets or $MCBENCH_DATA_DIR).")
@click.option("--results-dir", type=click.Path(path_type=Path), default=None,
              help="Where run records go (default: ./results or $MCBENCH_RESULTS_DIR).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of seeds per model (at least 1).")
@click.option("--seed", "first_seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="First seed.")
@click.option("--protocol", default=None, help="Dataset protocol (default: the dataset's default).")
@click.option("--folds", default=None, help="Folds to run for k-fold protocols, e.g. 0,1,2 (default all).")
@click.option("--training-protocol", type=click.Choice(["paper", "wang2019"]), default="paper",
              show_default=True,
              help="paper: Adam 1e-3 decayed x0.9 per epoch, L2 1e-6 (Sec. IV of the paper); "
                   "wang2019: the authors' notebooks (constant lr, no L2).")
@click.option("--epochs", "epochs", multiple=True, metavar="N|MODEL=N",
              help="Maximum epochs: N for every model or MODEL=N for one; repeatable "
                   "(default: the dataset's suggestion, else 50).")
@click.option("--batch-size", "batch_size", multiple=True, metavar="N|MODEL=N",
              help="Batch size: N or MODEL=N, repeatable (default: the dataset's suggestion, else 32).")
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="Early-stopping patience in epochs (default off).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None,
              help="fp32 (the paper's, default) or bf16 autocast (faster on recent GPUs; "
                   "part of the run's identity).")
@click.option("--no-standardize", is_flag=True,
              help="Feed raw dB features (default: standardise with the training split's mean/std).")
@click.option("--variant", "variants", multiple=True, help="MODEL=VARIANT, repeatable.")
@click.option("--backend", default=None, metavar="torch|keras",
              help="Which build of each model to train: torch or keras (`mcbench models` lists "
                   "each model's backends; keras needs the tensorflow extra). Default: torch, or "
                   "a model's own backend when it has no torch build.")
@click.option("--param", "params", multiple=True,
              help="MODEL.KEY=VALUE model option, repeatable (`mcbench models NAME` lists them).")
@click.option("--dataset-param", "dataset_params", multiple=True,
              help="KEY=VALUE dataset parameter, repeatable (`mcbench datasets NAME` lists them).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--select-metric", default=None, help="Validation metric key for checkpoint selection.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Decoding processes (default: all cores).")
@click.option("--restart", is_flag=True,
              help="Discard the checkpoints of unfinished runs and train them from epoch 1 "
                   "(finished runs are kept; remove them with `mcbench runs rm`).")
@click.option("--init-from", "init_from", default=None, metavar="SOURCE",
              help="Start from the weights of a finished run (transfer learning, Sec. V-G of the "
                   "paper): a run id, a record file, or a dataset name meaning the finished run "
                   "of the same model, variant and options there (e.g. mtat). Every layer but "
                   "the output layer is loaded.")
@click.option("--transfer", type=click.Choice(list(STRATEGIES)), default=None,
              help="What to train on the target (Table III of the paper): "
                   + "; ".join(f"{s.name}: {s.help}" for s in STRATEGIES.values())
                   + ". Default with --init-from: finetune.")
@click.option("--freeze", default=None, metavar="GROUPS",
              help="Freeze these parameter groups of the source instead of a --transfer "
                   "strategy, comma-separated from cnn, rnn.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv", "plain"]),
              default="markdown", show_default=True, help="Format of the table printed at the end.")
@_executor_options
@click.option("--nproc", type=click.IntRange(min=1), default=None, metavar="N",
              help="Train each run across N processes with DistributedDataParallel (GPUs with "
                   "NCCL, or CPU processes with gloo): starts this command under torchrun "
                   "--standalone --nproc-per-node N. --batch-size is then the effective batch.")
@pass_ctx
def run(ctx: Context, models_, dataset, root, data_dir, results_dir, seeds, first_seed, protocol,
        folds, training_protocol, epochs, batch_size, patience, precision, no_standardize,
        variants, params, dataset_params, device, select_metric, workers, restart, init_from,
        transfer, freeze, no_progress, fmt, backend=None, executor="local", ray_address=None,
        ray_cpus_per_run=1.0, nproc=None) -> None:
    """Train and evaluate models on a dataset, then print the comparison table.

    A run is identified by its data (clip ids and the computed features), the model with every
    option, the resolved training settings and the seed: running the same thing again skips
    finished runs and resumes interrupted ones; anything else is a new run.
    """
    from .runner import RunRequest, default_results_dir, run_experiments
    from .tables import NoRunsError, table_for

    if nproc is not None and nproc > 1:
        _under_torchrun(nproc, executor)
    ctx.require_plugin_dirs()
    reg = ctx.registry
    ctx.warn_broken_plugins()
    if not models_.strip() or not [m for m in models_.split(",") if m.strip()]:
        _fail("--models is empty; name one or more models (see `mcbench models`) or use all")
    try:
        reg.dataset(dataset)
        names = resolve_model_names(reg, models_)
    except PluginError as exc:
        _fail(str(exc))
    training, model_training = _split_per_model(
        {"max_epochs": (epochs, "--epochs"), "batch_size": (batch_size, "--batch-size")}, names)
    if patience is not None:
        training["patience"] = patience
    if precision is not None:
        training["precision"] = precision
    if no_standardize:
        training["standardize"] = False
    req = RunRequest(
        models=names, dataset=dataset, root=root, data_dir=data_dir, results_dir=results_dir,
        seeds=list(range(first_seed, first_seed + seeds)),
        folds=_parse_int_list(folds, "--folds"),
        protocol=protocol, training_protocol=training_protocol, training=training,
        model_training=model_training,
        variants=_parse_assignments(variants, "--variant", scoped=False),
        model_params=_parse_assignments(params, "--param", scoped=True),
        dataset_params=_parse_assignments(dataset_params, "--dataset-param", scoped=False),
        device=device, select_metric=select_metric, workers=workers, progress=not no_progress,
        restart=restart, init_from=init_from, transfer=transfer, freeze=freeze, echo=click.echo,
        backend=backend, executor=_executor(executor, ray_address, ray_cpus_per_run),
    )
    try:
        outcomes = run_experiments(reg, req)
    except (*USER_ERRORS, StateError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("\nstopped; run the same command again to resume.", err=True)
        sys.exit(130)
    finally:
        if req.executor is not None:
            req.executor.close()
    from . import distributed

    main_rank = distributed.is_main()
    distributed.teardown()  # under torchrun: rank 0 alone prints the table (mcbench.distributed)
    if not main_rank:
        return
    failed = [o for o in outcomes if o.status == "failed"]
    done = [o.run_id for o in outcomes if o.status in ("complete", "skipped")]
    click.echo("")
    try:
        if done:
            click.echo(table_for(results_dir or default_results_dir(), dataset=dataset, fmt=fmt,
                                 run_ids=done))
    except NoRunsError as exc:
        click.echo(str(exc), err=True)
    if failed:
        click.secho(f"{len(failed)} run(s) failed: " + "; ".join(f"{o.model}: {o.error}" for o in failed),
                    fg="red", err=True)
        sys.exit(1)


def _parse_where(items: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--where expects KEY=VALUE (e.g. epochs=2 or training.lr=0.001), got {item!r}")
        out.append((key.strip(), value.strip()))
    return out


@main.command(epilog="""\b
Examples:
  mcbench table --dataset synthetic
  mcbench table --dataset synthetic --models crnn_tf,fcn --where epochs=2 --format latex
""")
@click.option("--dataset", default=None, help="Only this dataset (default: all with records).")
@click.option("--results-dir", type=click.Path(path_type=Path), default=None,
              help="Where run records are (default: ./results or $MCBENCH_RESULTS_DIR).")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv", "plain"]),
              default="markdown", show_default=True)
@click.option("--metrics", "metric_keys", default=None, help="Comma-separated metric keys to show.")
@click.option("--models", "models_", default=None, help="Only these models (comma-separated).")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Only runs whose configuration field KEY equals VALUE, repeatable; KEY is a "
                   "short name (epochs, lr, cell, data.n_clips…) or a full one (training.max_epochs).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="Write to a file.")
def table(dataset, results_dir, fmt, metric_keys, models_, where, output) -> None:
    """Regenerate comparison tables from stored run records (no retraining).

    A row holds the runs whose configuration is equal except for the seed (and the fold of a
    k-fold protocol); runs that differ in anything else are separate rows, labelled by what
    differs. The runs column says how many runs each row holds.
    """
    from .aggregate import FilterError
    from .runner import default_results_dir
    from .storage import atomic_write_text
    from .tables import NoRunsError, table_for

    try:
        text = table_for(results_dir or default_results_dir(), dataset=dataset, fmt=fmt,
                         metrics=metric_keys.split(",") if metric_keys else None,
                         models=[m.strip() for m in models_.split(",") if m.strip()] if models_ else None,
                         where=_parse_where(where))
    except NoRunsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except (ValueError, FilterError) as exc:
        _fail(str(exc))
    if output:
        atomic_write_text(output, text + "\n")
        click.echo(f"wrote {output}")
    else:
        click.echo(text)


# --------------------------------------------------------------------------- runs, export


@main.group()
def runs() -> None:
    """List, show and remove stored runs."""


def _results_option(f):
    return click.option("--results-dir", type=click.Path(path_type=Path), default=None,
                        help="Where run records are (default: ./results or $MCBENCH_RESULTS_DIR).")(f)


@runs.command("list")
@_results_option
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--status", type=click.Choice(["all", "complete", "failed", "running"]),
              default="all", show_default=True)
@click.option("--models", "models_", default=None, help="Only these models (comma-separated).")
def runs_list(results_dir, dataset, status, models_) -> None:
    """One line per stored run: id, status, dataset, model, seed, fold, headline metric."""
    from tabulate import tabulate

    from .export import run_summary
    from .runner import default_results_dir
    from .storage import load_records

    warnings_seen: list[str] = []
    records = load_records(results_dir or default_results_dir(), dataset=dataset,
                           status=None if status == "all" else status, warn=warnings_seen.append)
    if models_:
        wanted = {m.strip() for m in models_.split(",")}
        records = [r for r in records if r.model in wanted]
    for w in warnings_seen:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    if not records:
        click.echo("no runs stored" + (f" for {dataset}" if dataset else ""), err=True)
        sys.exit(1)
    rows = [run_summary(r) for r in records]
    click.echo(tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True))


def _find_record(results_dir: Path, run_id: str) -> Path:
    matches = sorted((results_dir / "runs").glob(f"*/{run_id}.json"))
    if not matches:
        _fail(f"no stored run {run_id!r} under {results_dir / 'runs'}; `mcbench runs list` shows them")
    return matches[0]


@runs.command("show")
@_results_option
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
def runs_show(results_dir, run_id, as_json) -> None:
    """Show one run: its identity, training history and test metrics."""
    from .identity import flatten
    from .records import RecordError
    from .runner import default_results_dir
    from .storage import read_record

    path = _find_record(Path(results_dir or default_results_dir()), run_id)
    try:
        record = read_record(path)
    except RecordError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(record.to_json(), indent=2, ensure_ascii=False))
        return
    click.echo(f"{record.run_id}  [{record.status}]  {path}")
    click.echo(f"  created {record.created}" + (f", finished {record.finished}" if record.finished else "")
               + (f", on {record.device}" if record.device else ""))
    for key, value in flatten(record.identity_dict()).items():
        if not key.startswith("dataset.splits") and key != "dataset.labels":
            click.echo(f"  {key}: {value}")
    for name, split in record.identity.dataset.splits.items():
        click.echo(f"  data {name}: {split.n} clips, ids {split.fingerprint}, content {split.content}")
    for entry in record.history:
        click.echo(f"  epoch {entry.epoch + 1}: loss {entry.loss}, valid {entry.valid_metric}")
    for _key, m in sorted(record.test.items(), key=lambda kv: kv[1].order):
        click.echo(f"  test {m.name}: {m.value}")
    if record.error:
        click.echo(f"  error: {record.error}")


@runs.command("rm")
@_results_option
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def runs_rm(results_dir, run_ids, yes) -> None:
    """Remove stored runs: record, test scores and checkpoints."""
    import shutil

    from .runner import default_results_dir
    from .storage import work_dir

    results = Path(results_dir or default_results_dir())
    paths = [_find_record(results, rid) for rid in run_ids]
    if not yes and not click.confirm(f"remove {len(paths)} run(s) and their checkpoints?"):
        sys.exit(1)
    for rid, path in zip(run_ids, paths):
        for p in (path, path.with_name(f"{rid}.scores.npz")):
            p.unlink(missing_ok=True)
        shutil.rmtree(work_dir(results, rid), ignore_errors=True)
        click.echo(f"removed {rid}")


@main.command(epilog="""\b
Examples:
  mcbench export -o runs.csv                     # runs.csv and runs.per_label.csv
  mcbench export --dataset mtat --format parquet -o mtat.parquet
  python -c "import pandas as pd; print(pd.read_csv('runs.csv').head())"
""")
@_results_option
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="File of the runs table; the per-label table goes beside it (NAME.per_label.EXT).")
@click.option("--all", "all_status", is_flag=True, help="Include failed and running runs.")
def export(results_dir, dataset, fmt, output, all_status) -> None:
    """Export stored runs as tables: one row per run, and one row per (run, metric, label)."""
    from .export import export_tables
    from .runner import default_results_dir

    try:
        written = export_tables(results_dir or default_results_dir(), output, fmt=fmt,
                                dataset=dataset, status=None if all_status else "complete")
    except (ValueError, ImportError) as exc:
        _fail(str(exc))
    for path, n in written:
        click.echo(f"wrote {path} ({n} rows)")


# --------------------------------------------------------------------------- embed


@main.command(epilog="""\b
Examples:
  mcbench embed RUN_ID --dataset gtzan --root /data/gtzan --split test -o crnn_tf_gtzan_test.npz
  mcbench embed RUN_ID --dataset synthetic_genres --split test --fold 2
  python -c "import numpy as np; d = np.load('crnn_tf_gtzan_test.npz'); print(d['embeddings'].shape)"
""")
@click.argument("run_id")
@click.option("--dataset", required=True, help="Dataset whose clips to embed (see `mcbench datasets`).")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True)
@click.option("--root", type=click.Path(path_type=Path), help="Dataset root (default: <data-dir>/<dataset>).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Default data folder (default: ./datasets or $MCBENCH_DATA_DIR).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Feature cache folder.")
@_results_option
@click.option("--protocol", default=None,
              help="Dataset protocol (default: the run's on its own dataset, else the dataset's).")
@click.option("--fold", type=click.IntRange(min=0), default=None,
              help="Fold of a k-fold protocol (default: the run's on its own dataset, else 0).")
@click.option("--dataset-param", "dataset_params", multiple=True,
              help="KEY=VALUE dataset parameter, repeatable (default on the run's own dataset: the run's).")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Clips per forward pass (default: the run's batch size).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Decoding processes (default: all cores).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="The .npz to write (default: <results-dir>/embeddings/RUN_ID.DATASET.SPLIT.npz).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@pass_ctx
def embed(ctx: Context, run_id, dataset, split, root, data_dir, cache_dir, results_dir, protocol,
          fold, dataset_params, device, batch_size, workers, output, no_progress) -> None:
    """Save what a finished run's model feeds its output layer, for every clip of one split.

    CRNN-TF gives the 256-d concatenation of its eight scans (eq. (1) of Wang et al., IJCNN
    2019); a torch baseline the input of its head; MFCC+SVM its MFCC statistics. The dataset
    may be another one than the run's, if its front end and clip length are the run's. The
    .npz holds embeddings, clip_ids, labels, label_names and run_id (plus model, variant,
    dataset, protocol, fold, split), readable with numpy without pickle.
    """
    from .embed import EmbeddingError, EmbedRequest, embed_run
    from .records import RecordError

    ctx.require_plugin_dirs()
    req = EmbedRequest(
        run_id=run_id, dataset=dataset, split=split, root=root, data_dir=data_dir,
        results_dir=results_dir, cache_dir=cache_dir, output=output, protocol=protocol, fold=fold,
        dataset_params=_parse_assignments(dataset_params, "--dataset-param", scoped=False),
        device=device, batch_size=batch_size, workers=workers, progress=not no_progress,
        echo=click.echo)
    try:
        result = embed_run(ctx.registry, req)
    except (*USER_ERRORS, StateError, EmbeddingError, RecordError) as exc:
        _fail(str(exc))
    n, dims = result.embeddings.shape
    click.echo(f"wrote {result.path}: {n} clips × {dims} dims ({dataset} {split})")


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
    except (*USER_ERRORS, StateError) as exc:
        _fail(str(exc))
    sys.exit(0 if ok else 1)


@data.command("prepare")
@_data_common
@click.option("--frontend", "frontends", default="logmel", show_default=True,
              help="Front ends to cache, comma-separated (logmel, waveform).")
@click.option("--protocol", default=None, help="Protocol whose splits to prepare (default: the dataset's).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Feature cache folder.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Decoding processes (default: all cores).")
@click.option("--dataset-param", "dataset_params", multiple=True, help="KEY=VALUE dataset option.")
@click.option("--device", default="cpu", show_default=True,
              help="Where the log-mel is computed (cpu, cuda, cuda:N) while CPU workers decode.")
@pass_ctx
def data_prepare(ctx: Context, dataset, root, data_dir, frontends, protocol, cache_dir, workers,
                 dataset_params, device) -> None:
    """Decode every clip of DATASET in parallel and cache its features (resumable)."""
    from .datacmd import prepare_dataset
    from .features import FRONTEND_NAMES

    ctx.require_plugin_dirs()
    names = [f.strip() for f in frontends.split(",") if f.strip()]
    if not names:
        raise click.BadParameter(f"give at least one front end: {', '.join(FRONTEND_NAMES)}",
                                 param_hint="--frontend")
    unknown = [f for f in names if f not in FRONTEND_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown front end {unknown[0]!r}; choose from "
                                 f"{', '.join(FRONTEND_NAMES)}", param_hint="--frontend")
    try:
        prepared = prepare_dataset(
            ctx.registry, dataset, root, data_dir, cache_dir,
            frontends=names,
            protocol=protocol, workers=workers,
            params=_parse_assignments(dataset_params, "--dataset-param", scoped=False),
            echo=click.echo, device=device)
    except (*USER_ERRORS, StateError, ValueError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("\nstopped; run the same command again to resume.", err=True)
        sys.exit(130)
    # 1: a split is left without a usable clip (the status line says which and why)
    sys.exit(0 if prepared.ok else 1)



# --------------------------------------------------------------------------- reproduce


def _parse_roots(items: tuple[str, ...]) -> dict[str, Path]:
    roots = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            _fail(f"--root expects DATASET=PATH (e.g. --root mtat=/data/mtat), got {item!r}")
        roots[name.strip()] = Path(path)
    return roots


@main.command(epilog="""\b
Examples:
  mcbench reproduce --list
  mcbench reproduce table3 --demo
  mcbench reproduce table3 --demo --dry-run
  mcbench reproduce table1 --root mtat=/data/mtat --device cuda
  mcbench reproduce table1 --root mtat=/data/mtat --as authors
  mcbench reproduce table1 --demo --add-model my_cnn
  mcbench reproduce my_recipe.toml
  mcbench reproduce table3 --executor ray --ray-address auto
""")
@click.argument("artifact", required=False)
@click.option("--list", "list_", is_flag=True, help="List the shipped recipes and what each runs.")
@click.option("--demo", is_flag=True,
              help="Run on the synthetic stand-ins with settings sized for a 2-core CPU "
                   "(not the paper's data; the output says so).")
@click.option("--root", "roots", multiple=True, metavar="DATASET=PATH",
              help="Root of a dataset the recipe uses, repeatable (default: <data-dir>/<dataset>).")
@click.option("--as", "reading", type=click.Choice(READINGS), default=READINGS[0],
              show_default=True,
              help="paper: the text (CRNN-TF with Grid LSTM blocks, baselines as their references "
                   "specify, the protocol of Sec. IV-V-C); authors: the authors' notebooks "
                   "(wang2019 variants and protocol, the notebooks' epochs and batch sizes), "
                   "compared with the notebooks' values.")
@click.option("--dry-run", is_flag=True,
              help="List every run the recipe needs and whether it is done, partial or to do; "
                   "train nothing.")
@click.option("--add-model", "add_models", multiple=True, metavar="MODEL",
              help="Add a row for this model (e.g. your own plugin), repeatable.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Default data folder (default: ./datasets or $MCBENCH_DATA_DIR).")
@_results_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Decoding processes.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv", "plain"]),
              default="markdown", show_default=True, help="Format of the artifact's table.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@_executor_options
@pass_ctx
def reproduce(ctx: Context, artifact, list_, demo, roots, reading, dry_run, add_models, data_dir,
              results_dir, device, workers, fmt, no_progress, executor="local", ray_address=None,
              ray_cpus_per_run=1.0) -> None:
    """Reproduce one of the paper's tables from its recipe: every run it needs (finished runs
    are reused, interrupted ones resume), then the table in the paper's layout with the
    paper's values beside ours."""
    from .reproduce import (
        RecipeError,
        ReproduceRequest,
        load,
        paper_table,
        run_recipe,
        shipped,
        significance,
        significance_table,
    )
    from .runner import default_results_dir

    try:
        if list_ or artifact is None:
            from .reproduce import dry_run as plan_recipe
            from .storage import load_records

            stored = load_records(results_dir or default_results_dir(), status=None)
            for recipe in shipped().values():
                models = ", ".join(dict.fromkeys(r.model for r in recipe.rows))
                runs = {demo: len(plan_recipe(ctx.registry, ReproduceRequest(
                    recipe, demo=demo, results_dir=results_dir, data_dir=data_dir),
                    estimate=False, records=stored))
                    for demo in ((False, True) if recipe.demo else (False,))}
                click.echo(f"{recipe.name:<8} {recipe.title}")
                click.echo(f"         {len(recipe.rows)} rows ({models}), {runs[False]} runs on "
                           f"{', '.join(sorted(set(recipe.real.datasets.values())))}; --demo: "
                           + (f"{runs[True]} runs on "
                              f"{', '.join(sorted(set(recipe.demo.datasets.values())))}"
                              if recipe.demo else "none"))
            click.echo("\nwhat a recipe's runs cost (MACs, and hours where this machine has "
                       "measured the models): `mcbench reproduce NAME --dry-run`")
            if artifact is None and not list_:
                click.echo("name an artifact, e.g. `mcbench reproduce table3 --demo`")
            return
        recipe = load(artifact)
        for model in add_models:
            ctx.registry.model(model)
            from .reproduce import with_model

            recipe = with_model(recipe, model)
        req = ReproduceRequest(recipe, demo=demo, reading=reading, roots=_parse_roots(roots),
                               data_dir=data_dir,
                               results_dir=results_dir, device=device, workers=workers,
                               progress=not no_progress, echo=click.echo)
        if dry_run:
            from .reproduce import dry_run as plan_recipe
            from .reproduce import dry_run_table

            if demo:
                click.echo(f"DEMO of {recipe.name}: synthetic stand-ins, not the paper's data")
            click.echo(dry_run_table(plan_recipe(ctx.registry, req), device))
            return
        runner = _executor(executor, ray_address, ray_cpus_per_run)
        try:
            results = run_recipe(ctx.registry, req, executor=runner)
        finally:
            if runner is not None:
                runner.close()
    except (*USER_ERRORS, StateError, RecipeError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("\nstopped; run the same command again to resume.", err=True)
        sys.exit(130)
    from . import distributed

    main_rank = distributed.is_main()
    distributed.teardown()  # under torchrun rank 0 alone renders and saves the artifact
    if not main_rank:
        return
    out = Path(results_dir or default_results_dir())
    from .reproduce import row_records

    rows = row_records(results, out)  # every renderer below reads these records
    comparisons = significance(ctx.registry, recipe, results, out, rows=rows)
    click.echo("")
    click.echo(paper_table(recipe, results, out, demo, fmt, comparisons=comparisons,
                           reading=reading, rows=rows))
    if comparisons and fmt != "csv":
        click.echo(significance_table(comparisons, fmt))
    try:
        from .reproduce import draw

        drawn = draw(recipe, results, out, demo, ctx.registry, req, rows=rows)
    except ImportError as exc:
        click.echo(f"figures skipped: {exc} (pip install -c constraints.txt -e \".[plots]\")",
                   err=True)
        files, summary = [], ""
    else:
        files, summary = drawn.files, drawn.summary
        if summary:
            click.echo(summary)
        for f in files:
            click.echo(f"wrote {f}")
    from .report import save_artifact

    save_artifact(out, recipe.name + ("-authors" if reading == "authors" else ""), demo,
                  recipe.title,
                  paper_table(recipe, results, out, demo, "markdown", comparisons=comparisons,
                              reading=reading, rows=rows) + (f"\n{summary}" if summary else ""),
                  significance_table(comparisons) if comparisons else "", files,
                  [i for r in results for i in r.run_ids])
    click.echo("`mcbench report` collects every artifact reproduced so far into one page")
    failed = [f for r in results for f in r.failed]
    if failed:
        click.secho(f"{len(failed)} run(s) failed: " + "; ".join(failed), fg="red", err=True)
        sys.exit(1)


@main.command(epilog="""\b
Examples:
  mcbench report
  mcbench report -o paper/report.html
""")
@_results_option
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="The HTML file (default: <results>/report.html); its markdown twin is written "
                   "beside it (.md).")
def report(results_dir, output) -> None:
    """One page (HTML and markdown) with every artifact `mcbench reproduce` has rendered: tables,
    significance, figures, provenance, real data or demo, and the compute each took."""
    from .report import write_report
    from .runner import default_results_dir

    md, page, n = write_report(Path(results_dir or default_results_dir()), output)
    click.echo(f"wrote {page} and {md} ({n} artifact(s))")
    if n == 0:
        click.echo("no artifact reproduced yet; run e.g. `mcbench reproduce table3 --demo`")


def _csv_choices(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    values = [t.strip() for t in text.split(",") if t.strip()]
    bad = [v for v in values if v not in allowed]
    if not values or bad:
        _fail(f"{option} takes a comma-separated list of {', '.join(allowed)}; got {text!r}")
    return values


@main.command(epilog="""\b
Examples:
  mcbench bench                                       # every model, torch, CPU, fp32, batch 8 and 32
  mcbench bench --models crnn_tf,fcn --backend torch,keras --batch-sizes 8,32
  mcbench bench --models fcn --variant fcn=all --format csv -o fcn.csv
  mcbench bench --models all --device cuda --precision fp32,bf16 --batch-sizes 32
  mcbench bench --models fcn --compare results/bench/20260101T000000Z-host.json
""")
@click.option("--models", "models_", default="all", show_default=True,
              help="Comma-separated model names, or `all` (every model plugin).")
@click.option("--variant", "variants", multiple=True, metavar="MODEL=VARIANT",
              help="Variant of a model (repeatable; MODEL=all for every variant). Default: the "
                   "variant each backend's build runs by default.")
@click.option("--backend", "backends", default="torch", show_default=True,
              help="Comma-separated backends: torch, keras.")
@click.option("--device", "devices", default="cpu", show_default=True,
              help="Comma-separated devices: cpu, cuda, cuda:N.")
@click.option("--precision", "precisions", default="fp32", show_default=True,
              help="Comma-separated precisions: fp32, bf16 (bf16 autocast, torch only).")
@click.option("--batch-sizes", default="8,32", show_default=True, help="Comma-separated batch sizes.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True,
              help="Channels-last memory layout of 4-D inputs and weights (torch; the trainer's default).")
@click.option("--compile", "compiled", is_flag=True, help="torch.compile the model (torch only).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed repetitions (one step each) per measurement.")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True,
              help="Untimed repetitions before them.")
@click.option("--no-store", is_flag=True, help="Skip the feature-store read benchmark.")
@click.option("--isolate/--in-process", default=True, show_default=True,
              help="Time each combination in a fresh process (its own peak memory, no state "
                   "left by an earlier one) or all in this one (faster to start).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="What is printed (the saved file is always JSON).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Where the JSON document goes (default: results/bench/<timestamp>-<host>.json); "
                   "with --format csv/table a path ending in .csv/.txt gets that text instead.")
@click.option("--compare", "compare_to", type=click.Path(path_type=Path), default=None,
              help="An earlier bench JSON: print the ratio new/old of the matching rows.")
@pass_ctx
def bench(ctx: Context, models_, variants, backends, devices, precisions, batch_sizes,
          channels_last, compiled, repeats, warmup, no_store, isolate, fmt, output,
          compare_to) -> None:
    """Training-step and evaluation throughput (clips/s), peak memory, MACs per clip and the
    fraction of the device's dense-matmul rate, per model, variant, backend, device, precision
    and batch size. Times a random batch already on the device; warm-up excluded; median and
    spread over the repetitions."""
    from . import bench as benchmod

    ctx.require_plugin_dirs()
    reg = ctx.registry
    try:
        names = resolve_model_names(reg, models_)
        wanted: dict[str, list[str]] = {}
        for item in variants:
            model, sep, variant = item.partition("=")
            if not sep or not model or not variant:
                _fail(f"--variant expects MODEL=VARIANT (e.g. fcn=wang2019), got {item!r}")
            if model not in names:
                _fail(f"--variant {item}: {model!r} is not among the models benchmarked ({', '.join(names)})")
            wanted.setdefault(model, []).append(variant)
        sizes = _parse_int_list(batch_sizes, "--batch-sizes")
        if any(s < 1 for s in sizes):
            _fail(f"--batch-sizes must be positive, got {batch_sizes!r}")
        device_list = [d.strip() for d in devices.split(",") if d.strip()]
        bad = [d for d in device_list if d != "cpu" and d.split(":")[0] != "cuda"]
        if bad or not device_list:
            _fail(f"--device takes cpu, cuda or cuda:N (comma-separated); got {devices!r}")
        if any(d.startswith("cuda") for d in device_list):
            import torch

            if not torch.cuda.is_available():
                _fail(f"--device {devices}: torch {torch.__version__} sees no CUDA device (build: "
                      f"{'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU'}); install a "
                      "CUDA build of torch (README, Set-up) or use --device cpu")
        old = benchmod.load_document(compare_to) if compare_to else None
        cases, skipped = benchmod.plan_cases(
            reg, names, wanted, _csv_choices(backends, benchmod.BACKENDS, "--backend"), device_list,
            _csv_choices(precisions, benchmod.PRECISIONS, "--precision"), sizes,
            channels_last=channels_last, compiled=compiled)
        for line in skipped:
            click.echo(f"skipped: {line}", err=True)
        if not cases:
            _fail("nothing to benchmark: " + ("; ".join(skipped) or "no model given"))
        doc = benchmod.run_bench(
            reg, cases, repeats=repeats, warmup=warmup, store=not no_store,
            progress=lambda m: click.echo(m, err=True), isolate=isolate,
            plugin_dirs=ctx.plugin_dirs,
            settings={"models": names, "backends": backends, "devices": devices,
                      "precisions": precisions, "batch_sizes": sizes})
    except benchmod.BenchError as exc:
        _fail(str(exc))
    except USER_ERRORS as exc:
        _fail(str(exc))
    doc["skipped"] = skipped + doc["skipped"]
    text = benchmod.format_rows(doc["rows"], fmt)
    json_path = output if output and output.suffix not in (".csv", ".txt") else benchmod.default_output()
    benchmod.save_document(doc, json_path)
    if output and output.suffix in (".csv", ".txt"):
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    click.echo(text)
    if fmt == "table":
        if doc["backend_ratios"]:
            click.echo("\ntorch ÷ keras (clips/s, > 1: torch faster)")
            click.echo(benchmod.format_compare(doc["backend_ratios"]))
        store = doc.get("feature_store")
        if store:
            click.echo(f"\nfeature store ({store['n_clips']} clips of {store['clip_bytes'] // 1024} KiB, "
                       f"batch {store['batch_size']}, {store['source']}): "
                       f"{store['random_clips_per_s']:.0f} clips/s shuffled, "
                       f"{store['contiguous_clips_per_s']:.0f} clips/s in order")
    if old is not None:
        click.echo(f"\nratio new/old against {compare_to}")
        click.echo(benchmod.format_compare(benchmod.compare(doc["rows"], old["rows"])))
    click.echo(f"wrote {json_path}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
