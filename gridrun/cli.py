"""The ``gridrun`` command: a thin layer over the library.

    gridrun launch ablations/quickstart.py         run the grid, write runs/quickstart
    gridrun launch ablations/standard.py --dry-run print the trials, run nothing
    gridrun plan ablations/standard.py             trials and compute per design
    gridrun report runs/quickstart                 the ablation table from the Parquet store
    gridrun status runs/standard                   a run in progress, here or elsewhere
    gridrun resume runs/standard                   finish a run that was cut off
    gridrun techniques                             the techniques a spec may use

Run folders may be storage URIs (s3://, gs://, file://, ...) wherever a path is taken.

Every user error (bad spec, data file, run folder, argument) is one line on stderr and
exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gridrun.spec import techniques
from gridrun.spec.ablation import SpecError, load_spec

def _user_errors() -> tuple:
    from gridrun.store.location import StorageError
    from gridrun.data import DataError
    from gridrun.run.driver import ClusterError, RunExistsError
    from gridrun.run.trackers import TrackerError
    from gridrun.store.tables import StoreError

    return (SpecError, DataError, StoreError, RunExistsError, ClusterError, StorageError,
            TrackerError)


def _store_errors() -> tuple:
    from gridrun.store.location import StorageError
    from gridrun.store.tables import StoreError

    return (StoreError, StorageError)


def _plots_of(run: str) -> str:
    # a URI's options stay at its end (s3://b/r?endpoint_override=...)
    base, q, query = run.partition("?") if "://" in run else (run, "", "")
    return base.rstrip("/") + "/plots" + q + query


_DEFAULT = "\0default"  # an option given without its value: the tracker's default place


def _tracker_options(command):
    """--tensorboard [DIR], --mlflow [URI], --wandb: the same on launch, resume, confirm."""
    for option in reversed([
        click.option("--tensorboard", is_flag=False, flag_value=_DEFAULT, default=None,
                     metavar="[DIR]", help="Also write TensorBoard event files, one folder per "
                     "trial (default DIR: RUN/tensorboard). Put it after SPEC or use "
                     "--tensorboard=DIR."),
        click.option("--mlflow", is_flag=False, flag_value=_DEFAULT, default=None,
                     metavar="[URI]", help="Also log to MLflow: a run per cell, a nested run "
                     "per trial (default URI: sqlite:///RUN/mlflow.db, no server needed)."),
        click.option("--wandb", is_flag=True, help="Also log to Weights & Biases, a run per "
                     "trial grouped by cell (WANDB_MODE=offline keeps them on disk)."),
    ]):
        command = option(command)
    return command


def _trackers(tensorboard: str | None, mlflow: str | None, wandb: bool) -> dict:
    def chosen(value):
        return True if value == _DEFAULT else value or False

    return {"tensorboard": chosen(tensorboard), "mlflow": chosen(mlflow), "wandb": wandb}


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gridrun")
def main() -> None:
    """Ablation grids of CNN training techniques on Ray Tune, with the tables papers print."""


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the trial count and table; run nothing.")
@click.option("--address", envvar="RAY_ADDRESS", default=None,
              help="Join the Ray cluster at this address (default: $RAY_ADDRESS, else start "
                   "Ray in-process).")
@click.option("--out", default=None, metavar="PATH|URI",
              help="Run folder (default: <storage>/<name>).")
@click.option("--storage", envvar="GRIDRUN_STORAGE", default=None, metavar="PATH|URI",
              help="Where run folders go: a local path or a URI such as s3://bucket/gridrun "
                   "(default: $GRIDRUN_STORAGE, else runs). Trial results, checkpoints and "
                   "the Parquet store are written there.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in the run folder.")
@click.option("--verbose", is_flag=True, help="Show Ray's own output and logs.")
@_tracker_options
def launch(spec: Path, dry_run: bool, address: str | None, out: str | None,
           storage: str | None, overwrite: bool, verbose: bool, tensorboard: str | None,
           mlflow: str | None, wandb: bool) -> None:
    """Run the ablation defined in SPEC (a Python file) on Ray Tune. A run folder holding
    an unfinished run of the same spec is continued: trials that finished are kept.

    Example: gridrun launch ablations/quickstart.py

    Example: gridrun launch ablations/standard.py --storage s3://bucket/gridrun

    Example: gridrun launch ablations/quickstart.py --tensorboard --mlflow
    """
    try:
        ablation = load_spec(spec)
    except SpecError as e:
        _fail(str(e))
    if dry_run:
        from gridrun.design.plan import plan_text

        click.echo(plan_text(ablation))
        return
    try:
        from gridrun.run.driver import launch as run
    except ImportError as e:  # ray or a framework is not installed
        _fail(f"launching needs Ray and a framework ({e.name} is missing): "
              "pip install 'gridrun[torch]' (or 'gridrun[tensorflow]')")
    try:
        result = run(ablation, run_dir=out, storage=storage, address=address,
                     verbose=verbose, overwrite=overwrite, spec_path=spec,
                     trackers=_trackers(tensorboard, mlflow, wandb))
    except SpecError as e:  # the spec's own code, checked before launch: name the file
        _fail(f"{spec}: {e}")
    except _user_errors() as e:
        _fail(str(e))
    _print_launch_summary(result)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seconds-per-epoch", type=click.FloatRange(min=0, min_open=True),
              default=None, help="Seconds one trial-epoch takes, for the compute estimate.")
@click.option("--calibrate", is_flag=True,
              help="Measure seconds per epoch with a short training run per backbone.")
@click.option("--trials/--no-trials", default=False, help="Also print every trial.")
def plan(spec: Path, seconds_per_epoch: float | None, calibrate: bool, trials: bool) -> None:
    """Print what SPEC would run: trials and compute per design, with and without ASHA.

    Example: gridrun plan ablations/standard.py --seconds-per-epoch 20
    """
    from gridrun.design.plan import plan_text
    from gridrun.run.calibrate import calibrate as measure

    try:
        ablation = load_spec(spec)
        per_epoch = measure(ablation) if calibrate else seconds_per_epoch
    except _user_errors() as e:
        _fail(str(e))
    if calibrate:
        click.echo("calibrated seconds per epoch: " + ", ".join(
            f"{k} {v:.2f}" for k, v in per_epoch.items()) + "\n")
    click.echo(plan_text(ablation, per_epoch, show_trials=trials))


def _print_launch_summary(result) -> None:
    from gridrun.report.tables import report_text

    if result.note:
        click.echo(result.note)
        click.echo(f"report: gridrun report {result.run_dir}")
        return
    state = "interrupted" if result.interrupted else "finished"
    confirmed = (f", {result.confirmed} continued to the full budget"
                 if result.confirmed else "")
    click.echo(f"{state} in {result.seconds:.1f} s: {result.trials} trials "
               f"({result.completed} completed, {result.stopped_early} stopped by ASHA, "
               f"{result.errors} errors{confirmed}) -> {result.run_dir}")
    click.echo()
    run = str(result.run_dir)
    click.echo(report_text(run, plots_dir=_plots_of(run), summary=True), nl=False)
    click.echo(f"\nplots: {_plots_of(run)}; every table (per level, configurations, "
               f"interactions, variance, gap, ASHA): gridrun report {run}")
    if result.resumed:
        click.echo(f"({result.resumed} trials were kept from earlier sessions)")
    if result.interrupted:
        click.echo(f"interrupted: {run} holds the trials that finished (run.json says "
                   f"complete: false); continue with: gridrun resume {run}", err=True)
        sys.exit(130)
    if result.errors:
        sys.exit(1)


@main.command()
@click.argument("run", metavar="RUN")
@click.option("--format", "fmt",
              type=click.Choice(["markdown", "latex", "html", "csv", "json"]),
              default="markdown", show_default=True,
              help="Output format (LaTeX uses booktabs; html is one self-contained page with "
                   "the plots embedded); csv and json hold every table as numbers in the "
                   "metric's own units, for pandas.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to this file instead of printing it.")
@click.option("--metric", default=None, metavar="NAME",
              help="Metric to attribute: val_acc, val_loss, train_acc, train_loss or one the "
                   "run's trainer reported (default: the spec's).")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="Compare every trial at this epoch; trials that stopped earlier are left "
                   "out and counted (default: the last epoch all compared trials reached).")
@click.option("--design-view", "view",
              type=click.Choice(["effects", "add_one_in", "leave_one_out", "cumulative",
                                 "configs"]), default=None,
              help="Rows of the ablation table (default: follows the design).")
@click.option("--plots/--no-plots", default=False, show_default=True,
              help="Also draw the plots (PNG and PDF) into RUN/plots; launch draws them at the "
                   "end of every run.")
@click.option("--table", default=None, metavar="NAME",
              help="With --format csv or json, only this table: levels, techniques, "
                   "configurations, add_one_in, leave_one_out, cumulative, interactions, "
                   "variance, gap, survival (and the ASHA diagnostics tables of a run with a "
                   "scheduler).")
def report(run: str, fmt: str, out: Path | None, metric: str | None, budget: int | None,
           view: str | None, plots: bool, table: str | None) -> None:
    """Write the ablation report of the run folder RUN. Reads only its Parquet files and
    run.json, so it works without Ray, PyTorch or TensorFlow.

    Example: gridrun report runs/quickstart --format latex --out table.tex

    Example: gridrun report runs/quickstart --format csv --table techniques
    """
    from gridrun.report.tables import report_text

    try:
        text = report_text(run, fmt=fmt, metric=metric, budget=budget, view=view,
                           plots_dir=_plots_of(run) if plots else None, table=table)
    except _user_errors() + (ValueError,) as e:
        _fail(str(e))
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out)
    except OSError as e:
        _fail(f"{out}: cannot write the report ({e.strerror})")
    click.echo(f"wrote {out}" + (f" and plots in {_plots_of(run)}" if plots else ""), err=True)


@main.command()
@click.argument("run", metavar="RUN")
@click.option("--top", type=click.IntRange(min=0), default=None,
              help="Best screened cells to bring to the full budget (default: the spec's "
                   "ASHA confirm, usually 1).")
@click.option("--address", envvar="RAY_ADDRESS", default=None,
              help="Join the Ray cluster at this address (default: start Ray in-process).")
@click.option("--verbose", is_flag=True, help="Show Ray's own output and logs.")
@_tracker_options
def confirm(run: str, top: int | None, address: str | None, verbose: bool,
            tensorboard: str | None, mlflow: str | None, wandb: bool) -> None:
    """Bring the cells the table of RUN needs to the full budget: anchors that did not get
    there and the best screened cells, continued from their checkpoints (trained from the
    start when the run has none, as runs made before gridrun scheduled cells). The run
    folder is rewritten in one step; other trials are kept as they are.

    Example: gridrun confirm runs/quickstart --top 3
    """
    try:
        from gridrun.run.driver import confirm as run_confirm
    except ImportError as e:
        _fail(f"confirming needs Ray and a framework ({e.name} is missing): "
              "pip install 'gridrun[torch]' (or 'gridrun[tensorflow]')")
    try:
        result = run_confirm(run, top=top, address=address, verbose=verbose,
                             trackers=_trackers(tensorboard, mlflow, wandb))
    except _user_errors() as e:
        _fail(str(e))
    _print_launch_summary(result)


@main.command()
@click.argument("run", metavar="RUN")
@click.option("--address", envvar="RAY_ADDRESS", default=None,
              help="Join the Ray cluster at this address (default: $RAY_ADDRESS, else start "
                   "Ray in-process).")
@click.option("--verbose", is_flag=True, help="Show Ray's own output and logs.")
@_tracker_options
def resume(run: str, address: str | None, verbose: bool, tensorboard: str | None,
           mlflow: str | None, wandb: bool) -> None:
    """Finish the unfinished run in RUN (a path or URI): after a killed driver, Ctrl-C or a
    restarted RayJob pod. Trials that finished are kept; trials that were running continue
    from their checkpoints. Running the same gridrun launch again does the same.

    Example: gridrun resume runs/standard
    """
    try:
        from gridrun.run.driver import resume as run_resume
    except ImportError as e:
        _fail(f"resuming needs Ray and a framework ({e.name} is missing): "
              "pip install 'gridrun[torch]' (or 'gridrun[tensorflow]')")
    try:
        result = run_resume(run, address=address, verbose=verbose,
                            trackers=_trackers(tensorboard, mlflow, wandb))
    except _user_errors() as e:
        _fail(str(e))
    _print_launch_summary(result)


@main.command()
@click.argument("run", metavar="RUN")
@click.option("--watch", is_flag=True,
              help="Refresh in place every --every seconds until the run completes or stops "
                   "(Ctrl-C leaves; the run goes on).")
@click.option("--every", type=click.FloatRange(min=0.2), default=5.0, show_default=True,
              metavar="SECONDS", help="Seconds between refreshes with --watch.")
def status(run: str, watch: bool, every: float) -> None:
    """How the run in RUN (a path or URI) is doing, from what is in its storage: trials per
    status, best so far, elapsed and estimated time left. Works while the run executes
    elsewhere (a RayJob, a cloud cluster); needs neither Ray nor a framework.

    Example: gridrun status s3://bucket/gridrun/standard

    Example: gridrun status runs/standard --watch
    """
    from gridrun.run.status import watch_status

    tty = sys.stdout.isatty()
    shown = 0
    try:
        for text in watch_status(run, every if watch else None):
            if shown and tty:  # back to the first line of the last view, and clear below it
                click.echo(f"\x1b[{shown}F\x1b[J", nl=False)
            elif shown:
                click.echo()
            click.echo(text, nl=False)
            shown = text.count("\n")
    except _store_errors() as e:
        _fail(str(e))
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("run", metavar="RUN")
@click.option("--out", required=True, metavar="FILE|URI",
              help="Where to write the weights (.pt for a torch run, .npz for tensorflow).")
@click.option("--trial", default=None, metavar="ID",
              help="The trial whose weights to export (default: the completed trial with "
                   "the best final value of the spec's metric).")
def weights(run: str, out: str, trial: str | None) -> None:
    """Export the final weights of a trial of RUN, a run made with keep_weights=True, for
    another spec's pretrained technique. Prints the file's sha256, to pin it as
    pretrained="FILE#sha256=...".

    Example: gridrun weights runs/pretrain_mnist --out weights/mnist_simple_cnn.pt

    A torch run saves .pt files (a state_dict), a tensorflow run .npz files; each framework's
    pretrained technique reads its own.
    """
    import hashlib

    from gridrun.store.location import Location
    from gridrun.store.tables import read_run, spec_metric

    def saved(tid):
        for suffix in (".pt", ".npz"):  # torch, tensorflow
            if loc.child("weights", f"{tid}{suffix}").is_file():
                return loc.child("weights", f"{tid}{suffix}")
        return None

    try:
        r = read_run(run)
        loc = Location(run)
        done = r.trials[r.trials.status == "completed"]
        if trial is None:
            have = [t for t in done.trial_id if saved(t) is not None]
            if not have:
                _fail(f"{run} has no saved weights: launch it with keep_weights=True")
            metric, mode = spec_metric(r.spec)
            last = done.set_index("trial_id").loc[have, f"last_{metric}"].astype(float)
            trial = str(last.idxmax() if mode == "max" else last.idxmin())
        src = saved(trial)
        if src is None:
            _fail(f"{run}: no saved weights for trial {trial!r}")
        blob = src.read_bytes()
        Location(out).write_bytes(blob)
    except _store_errors() as e:
        _fail(str(e))
    click.echo(f"wrote {out} (trial {trial}); sha256={hashlib.sha256(blob).hexdigest()}")


@main.command(name="techniques")
@click.option("--framework", type=click.Choice(["torch", "tensorflow"]), default=None,
              help="Only the techniques this framework's trainer implements.")
def list_techniques(framework: str | None) -> None:
    """List the techniques a spec may vary or fix, by group, with their allowed values,
    default and the frameworks that implement them."""
    from tabulate import tabulate

    for group in techniques.GROUPS:
        rows = [(t.name, t.allowed(), repr(t.default), ", ".join(t.frameworks) or "-",
                 t.description) for t in techniques.TECHNIQUES.values()
                if t.group == group and (framework is None or framework in t.frameworks)]
        if not rows:
            continue
        click.echo(f"## {group}\n")
        click.echo(tabulate(rows, headers=["technique", "allowed", "default", "frameworks",
                                           "what it does"], tablefmt="github"))
        click.echo()


if __name__ == "__main__":
    main()
