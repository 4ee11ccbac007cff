"""The ``gridrun`` command: a thin layer over the library.

    gridrun launch ablations/quickstart.py         run the grid, write runs/quickstart
    gridrun launch ablations/standard.py --dry-run print the trials, run nothing
    gridrun plan ablations/standard.py             trials and compute per design
    gridrun report runs/quickstart                 the ablation table from the Parquet store
    gridrun techniques                             the techniques a spec may use

Every user error (bad spec, data file, run folder, argument) is one line on stderr and
exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gridrun import techniques
from gridrun.spec import SpecError, load_spec

USER_ERRORS: tuple = (SpecError,)


def _user_errors() -> tuple:
    from gridrun.data import DataError
    from gridrun.launch import RunExistsError
    from gridrun.store import StoreError

    return (SpecError, DataError, StoreError, RunExistsError)


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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (default: runs/<name>).")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in the run folder.")
@click.option("--verbose", is_flag=True, help="Show Ray's own output and logs.")
def launch(spec: Path, dry_run: bool, address: str | None, out: Path | None, overwrite: bool,
           verbose: bool) -> None:
    """Run the ablation defined in SPEC (a Python file) on Ray Tune.

    Example: gridrun launch ablations/quickstart.py
    """
    try:
        ablation = load_spec(spec)
    except SpecError as e:
        _fail(str(e))
    if dry_run:
        from gridrun.plan import plan_text

        click.echo(plan_text(ablation))
        return
    try:
        from gridrun.launch import launch as run
    except ImportError as e:  # ray or a framework is not installed
        _fail(f"launching needs Ray and PyTorch ({e.name} is missing): "
              "pip install 'gridrun[torch]'")
    try:
        result = run(ablation, run_dir=out, address=address, verbose=verbose,
                     overwrite=overwrite, spec_path=spec)
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
    from gridrun.plan import calibrate as measure, plan_text

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
    from gridrun.report import report_text

    state = "interrupted" if result.interrupted else "finished"
    click.echo(f"{state} in {result.seconds:.1f} s: {result.trials} trials "
               f"({result.completed} completed, {result.stopped_early} stopped by ASHA, "
               f"{result.errors} errors) -> {result.run_dir}")
    click.echo()
    click.echo(report_text(result.run_dir))
    if result.errors:
        sys.exit(1)


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--metric", default=None, help="Metric to attribute (default: the spec's).")
def report(run: Path, metric: str | None) -> None:
    """Print the ablation table of the run folder RUN (reads only its Parquet files).

    Example: gridrun report runs/quickstart
    """
    from gridrun.report import report_text

    try:
        click.echo(report_text(run, metric=metric))
    except _user_errors() as e:
        _fail(str(e))


@main.command(name="techniques")
def list_techniques() -> None:
    """List the techniques a spec may vary or fix, with their allowed values."""
    from tabulate import tabulate

    rows = [(t.name, t.allowed(), repr(t.default), t.description)
            for t in techniques.TECHNIQUES.values()]
    click.echo(tabulate(rows, headers=["technique", "allowed", "default", "what it does"],
                        tablefmt="github"))


if __name__ == "__main__":
    main()
