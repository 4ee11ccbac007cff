"""Run an ablation on Ray Tune: Ray init (local or a cluster address), the Tuner over the
expanded trials, ASHA, resources, the live progress view, and writing the store.

This is the only module that imports ray, and it does so inside functions, so the pure
helpers below (``trial_row``, ``trial_status``) are usable without Ray installed.

    >>> from gridrun import load_spec
    >>> summary = launch(load_spec("ablations/quickstart.py"))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gridrun import store
from gridrun._cluster import ClusterError, check_reachable, join_auth_mode, quiet_environment
from gridrun._progress import LiveView, Progress
from gridrun._runinfo import hardware, run_info
from gridrun._cells import (EPOCH_KEYS, as_report, collect_rows, epoch_rows, stored_rows,
                            trial_row, trial_status)
from gridrun.design import expand
from gridrun.schedule import anchors_of

__all__ = ["launch", "confirm", "LaunchResult", "trial_row", "trial_status", "epoch_rows",
           "RunExistsError", "ClusterError", "join_auth_mode", "checkpoint_path"]

class RunExistsError(ValueError):
    """The output folder already holds a run and overwriting was not asked for."""


@dataclass(frozen=True)
class LaunchResult:
    run_dir: Path
    trials: int
    completed: int
    stopped_early: int
    errors: int
    seconds: float
    interrupted: bool
    confirmed: int = 0  # trials continued from a checkpoint to the full budget


# -- the trainable (runs in Ray workers) ---------------------------------------------------
def checkpoint_path(directory: str | Path, trial_id: str) -> Path:
    """Where one trial's (configuration + seed) latest rung checkpoint is kept."""
    return Path(directory) / f"{trial_id}.pt"


def _cell_trainable(config: dict, data=None) -> None:
    """Train every seed of one cell in lockstep and report once per epoch: the seeds' mean
    metric (what the scheduler judges) and each seed's own metrics. Before each report at an
    epoch in ``save_at``, every seed is checkpointed, because the scheduler may stop the
    cell at that report and the loop never resumes. A seed that raises is dropped and
    reported as an error; the cell goes on with the others."""
    from ray import tune

    from gridrun.torch import Trainer, prepare_data, set_threads

    cell, metric = config["cell"], config["metric"]
    set_threads(config["threads"])
    shared = prepare_data(data)
    trainers, errors = {}, {}
    for t in cell["trials"]:
        path = checkpoint_path(cell["checkpoints"], t["trial_id"])
        try:
            if cell["resume"] and path.is_file():
                trainers[t["trial_id"]] = Trainer.load(path, shared)
            else:
                trainers[t["trial_id"]] = Trainer(cell["config"], shared, seed=t["seed"])
        except (RuntimeError, ValueError, OSError) as e:
            errors[t["trial_id"]] = f"{type(e).__name__}: {e}"
    save_at = set(cell["save_at"])
    while any(not tr.done for tr in trainers.values()):
        per_seed = {}
        for tid, tr in list(trainers.items()):
            if tr.done:  # a seed that resumed from a later checkpoint than its siblings
                continue
            try:
                per_seed[tid] = {**tr.step(), "elapsed": tr.seconds}
            except (RuntimeError, ValueError) as e:  # e.g. a diverged seed
                errors[tid] = f"{type(e).__name__}: {e}"
                del trainers[tid]
        if not per_seed:
            break
        epoch = min(m["epoch"] for m in per_seed.values())
        if epoch in save_at:
            for tid, tr in trainers.items():
                tr.save(checkpoint_path(cell["checkpoints"], tid))
        vals = [m[metric] for m in per_seed.values() if math.isfinite(m[metric])]
        tune.report({"epoch": epoch, metric: sum(vals) / len(vals) if vals else math.nan,
                     "per_seed": per_seed, "seed_errors": dict(errors)})
    if not trainers and errors:
        raise RuntimeError(next(iter(errors.values())))


def _make_collector(progress: Progress, metric: str, live, scheduler):
    from ray import tune

    class Collector(tune.Callback):
        """Keeps every seed's reported epochs on the driver and drives the progress view.

        Nothing here is closed over: Tune pickles callbacks (class included) into its
        experiment state, and the console inside the live view cannot be pickled."""

        def __init__(self, progress, metric, live, scheduler):
            self.progress, self.metric, self.live = progress, metric, live
            self.scheduler = scheduler
            self.reports: dict[str, list] = {}
            self.errors: dict[str, str] = {}
            self.ended: set[str] = set()
            self.epochs = 0

        def __getstate__(self):
            return {}  # what this holds only means something in this driver process

        @staticmethod
        def _ids(trial) -> list[str]:
            return [t["trial_id"] for t in trial.config["cell"]["trials"]]

        def on_trial_start(self, iteration, trials, trial, **info):
            for tid in self._ids(trial):
                self.progress.start(tid)
            self.live()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            for tid, m in (result.get("per_seed") or {}).items():
                keep = {k: m.get(k) for k in
                        ("epoch", *EPOCH_KEYS, "epoch_seconds", "test_acc", "params",
                         "elapsed")}
                self.reports.setdefault(tid, []).append(keep)
                self.progress.result(m.get(self.metric))
            for tid, text in (result.get("seed_errors") or {}).items():
                if tid not in self.errors:
                    self.errors[tid] = text
            self.live()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._end(trial, None)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._end(trial, _error_text(trial))

        def _end(self, trial, error):
            epochs = trial.config["cell"]["epochs"]
            for tid in self._ids(trial):
                if error and tid not in self.errors:
                    self.errors[tid] = error
                n = len(self.reports.get(tid, []))
                status = trial_status(n, epochs, self.errors.get(tid),
                                      self.stopped_by_scheduler(tid))
                if tid in self.ended:  # a confirmation continued a stopped trial
                    self.progress.reclassify(tid, "stopped_early", status or "interrupted")
                    continue
                self.ended.add(tid)
                self.progress.finish(tid, status or "interrupted")
            self.live()

        def stopped_by_scheduler(self, tid: str) -> bool:
            return self.scheduler is not None and tid in self.scheduler.stopped_trials

    return Collector(progress, metric, live, scheduler)


def _error_text(trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "trial failed (no error text)"


# -- the launch ----------------------------------------------------------------------------
def _prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    if (run_dir / store.RUN_FILE).exists() and not overwrite:
        raise RunExistsError(f"{run_dir} already holds a run; pass --overwrite to replace "
                             "it or --out to write elsewhere")


def _init_ray(address: str | None, verbose: bool) -> None:
    check_reachable(address)
    mode = join_auth_mode(address)
    if mode:  # before ray is imported: Ray reads its config once, at import
        os.environ["RAY_AUTH_MODE"] = mode
    import ray

    try:
        # "local": a fresh in-process Ray. A bare ray.init() would instead join whatever
        # cluster /tmp/ray/ray_current_cluster names, even a dead one, and hang there.
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=verbose,
                 logging_level=logging.INFO if verbose else logging.ERROR)
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as e:
        hint = ("; if the cluster uses token authentication, set RAY_AUTH_TOKEN (or "
                "RAY_AUTH_TOKEN_PATH) to its token") if address else ""
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClusterError(f"cannot start or join Ray at {address or 'this machine'}: "
                           f"{first}{hint}") from None


def _scheduler(ablation, cells, anchors):
    """The ablation-aware ASHA of ``gridrun.schedule`` as a Ray Tune scheduler: one Tune
    trial is one cell; anchors always continue; stratified promotion. None when nothing
    may be stopped (no scheduler, or every cell is an anchor)."""
    if ablation.scheduler is None or anchors.is_all:
        return None
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    from gridrun.schedule import RungState, asha_rungs, strata_of

    sch = ablation.scheduler
    state = RungState(asha_rungs(ablation.epochs, sch.grace_period, sch.reduction_factor),
                      sch.reduction_factor, ablation.mode, protected=anchors.keys(),
                      strata={c.key: strata_of(c.levels) for c in cells})
    seeds = {c.key: [t.trial_id for t in c.trials] for c in cells}

    class CellASHA(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.state, self.stopped_trials = state, set()

        def on_trial_result(self, tune_controller, trial, result):
            key = trial.config["cell"]["key"]
            if self.state.on_result(key, result["epoch"], result.get(ablation.metric)) \
                    == "stop":
                self.stopped_trials.update(seeds[key])
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

    return CellASHA()


def launch(ablation, *, run_dir: str | Path | None = None, address: str | None = None,
           verbose: bool = False, overwrite: bool = False, console=None,
           spec_path: str | Path | None = None, show_progress: bool = True) -> LaunchResult:
    """Run every trial of ``ablation`` on Ray Tune and write the store to ``run_dir``
    (default ``runs/<name>``). Joins the cluster at ``address`` (or $RAY_ADDRESS) when
    given, else starts Ray in-process. Data errors surface before Ray starts.

    With ASHA, cells (a configuration with all its seeds) are screened: anchors run to the
    end, the others may be stopped at rungs (checkpointed there); then the best screened
    cells that did not reach the end are continued from their checkpoints (confirmation)."""
    run_dir = Path(run_dir) if run_dir else Path("runs") / ablation.name
    _prepare_run_dir(run_dir, overwrite)
    shutil.rmtree(run_dir / store.CHECKPOINTS, ignore_errors=True)
    trials = expand(ablation)
    if ablation.scheduler is not None and show_progress:
        from rich.console import Console

        from gridrun.plan import anchors_text

        (console or Console(stderr=True)).print(anchors_text(ablation), highlight=False,
                                               soft_wrap=True)
    return _run(ablation, trials, {}, run_dir=run_dir, address=address, verbose=verbose,
                console=console, spec_path=spec_path, show_progress=show_progress,
                confirm_top=ablation.scheduler.confirm if ablation.scheduler else 0)


def _run(ablation, trials, previous, *, run_dir, address, verbose, console, spec_path,
         show_progress, confirm_top, only_cells=None, resume=False,
         continued=None, prior=None) -> LaunchResult:
    """Screen ``trials`` (or only the cells ``only_cells``), confirm, and write the store.
    ``previous`` holds {trial_id: (row, epoch rows)} of a run being confirmed: trials not
    run again keep those."""
    from rich.console import Console

    from gridrun._cells import cell_progress, cells_of
    from gridrun.data import load_dataset
    from gridrun.schedule import cells_to_confirm

    console = console or Console(stderr=True)
    cells = cells_of(trials)
    anchors = anchors_of(ablation)
    data = load_dataset(ablation.dataset, val_fraction=ablation.val_fraction, split_seed=0,
                        train_size=ablation.train_size)
    quiet_environment(verbose)
    started_ray = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    if started_ray:
        _init_ray(address, verbose)
    import ray

    started_at = dt.datetime.now(dt.timezone.utc)
    ckpt_dir = (run_dir / store.CHECKPOINTS).resolve()
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    first = [c for c in cells if only_cells is None or c.key in only_cells]
    n_run = sum(len(c.trials) for c in first)
    progress = Progress(ablation.name, n_run, ablation.metric, ablation.mode)
    storage = tempfile.mkdtemp(prefix="gridrun-tune-")
    interrupted, confirmed = False, dict(continued or {})
    try:
        with LiveView(progress, console, show_progress) as live:
            scheduler = None if resume else _scheduler(ablation, cells, anchors)
            collector = _make_collector(progress, ablation.metric, live, scheduler)
            collector.reports.update({tid: list(r) for tid, r in (prior or {}).items()})
            tuner = _tuner(ablation, first, data, storage, collector, scheduler, verbose,
                           ckpt_dir, resume=resume, protected=anchors.keys())
            interrupted = _fit(tuner) or _cut_short(first, collector, ablation.epochs)
        if not interrupted and confirm_top is not None:
            info = {c.key: cell_progress(c, collector.reports, collector.errors,
                                         ablation.metric) for c in first}
            keys = cells_to_confirm(info, max_t=ablation.epochs, anchors=anchors.keys(),
                                    top=confirm_top, mode=ablation.mode)
            again = [c for c in first if c.key in keys]
            if again:
                confirmed.update({t.trial_id: info[c.key]["reached"] for c in again
                                  for t in c.trials})
                console.print(f"confirming {len(again)} cell(s) at the full budget "
                              f"({ablation.epochs} epochs), continued from their checkpoints",
                              highlight=False)
                interrupted = _fit(_tuner(ablation, again, data, storage, collector, None,
                                          verbose, ckpt_dir, resume=True))
        machine = hardware(ray)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if started_ray:
            ray.shutdown()
    rows, epochs = collect_rows(trials, collector, ablation.epochs, previous, confirmed)
    interrupted = interrupted or len(rows) < len(trials)
    info = run_info(ablation, spec_path, started_at, data, machine, len(trials), len(rows),
                    interrupted)
    info["schedule"] = _schedule_info(ablation, anchors, rows, confirmed)
    store.write_run(run_dir, factor_names=ablation.factor_names, trials=rows, epochs=epochs,
                    info=info)
    counts = {s: sum(r["status"] == s for r in rows) for s in store.STATUSES}
    return LaunchResult(run_dir, len(rows), counts["completed"], counts["stopped_early"],
                        counts["error"], (dt.datetime.now(dt.timezone.utc) - started_at)
                        .total_seconds(), interrupted, len(confirmed))


def confirm(run_dir: str | Path, *, top: int | None = None, address: str | None = None,
            verbose: bool = False, console=None, show_progress: bool = True) -> LaunchResult:
    """Bring the cells an existing run's table needs to the full budget: every anchor that
    did not get there and the ``top`` best screened cells (default: the spec's
    ``confirm``), continued from their rung checkpoints when the run has them, else trained
    from the start. Works on runs made before gridrun scheduled cells (their anchors are
    those of the default ASHA). The store is rewritten in one step, other trials unchanged."""
    from gridrun._cells import cell_progress, cells_of
    from gridrun.schedule import cells_to_confirm
    from gridrun.spec import ASHA, Ablation

    run = store.read_run(run_dir)
    ablation = Ablation.from_dict(run.spec)
    if ablation.scheduler is None:
        ablation = dataclasses.replace(ablation, scheduler=ASHA(grace_period=1))
    top = ablation.scheduler.confirm if top is None else top
    trials = expand(ablation)
    previous = stored_rows(run, trials)
    reports = {tid: [as_report(e) for e in eps] for tid, (_, eps) in previous.items()}
    errors = {tid: row["error"] or "error" for tid, (row, _) in previous.items()
              if row["status"] == "error"}
    cells = cells_of(trials)
    info = {c.key: cell_progress(c, reports, errors, ablation.metric) for c in cells}
    keys = set(cells_to_confirm(info, max_t=ablation.epochs, anchors=anchors_of(ablation).keys(),
                                top=top, mode=ablation.mode))
    ckpt = Path(run_dir) / store.CHECKPOINTS
    continued = {t.trial_id: info[c.key]["reached"] for c in cells if c.key in keys
                 for t in c.trials if checkpoint_path(ckpt, t.trial_id).is_file()}
    # what a continued trial already ran; the rest of a confirmed cell starts again
    prior = {tid: reports[tid][:k] for tid, k in continued.items()}
    return _run(ablation, trials, previous, run_dir=Path(run_dir), address=address,
                verbose=verbose, console=console, spec_path=run.info.get("spec_file"),
                show_progress=show_progress, confirm_top=None, only_cells=keys, resume=True,
                continued=continued, prior=prior)


def _cut_short(cells, collector, max_epochs) -> bool:
    """True when some trial ended with no result: Tune itself catches Ctrl-C, stops every
    trial and returns from fit() normally, so an interrupt shows only here."""
    for c in cells:
        for t in c.trials:
            n = len(collector.reports.get(t.trial_id, []))
            if trial_status(n, max_epochs, collector.errors.get(t.trial_id),
                            collector.stopped_by_scheduler(t.trial_id)) is None:
                return True
    return False


def _fit(tuner) -> bool:
    """Run the tuner; True when the user interrupted it (Ctrl-C)."""
    try:
        tuner.fit()
    except KeyboardInterrupt:
        return True
    return False


def _schedule_info(ablation, anchors, rows, confirmed) -> dict:
    """What run.json says about scheduling: the anchors and what was confirmed."""
    from gridrun.schedule import asha_rungs

    sched = ablation.scheduler
    return {"anchors": anchors.to_dict(), "anchors_text": anchors.describe(),
            "screened": sched is not None and not anchors.is_all,
            "rungs": [] if sched is None else asha_rungs(
                ablation.epochs, sched.grace_period, sched.reduction_factor),
            "confirmed_trials": sorted(confirmed),
            "trial_epochs": int(sum(r["epochs_run"] for r in rows))}


def _tuner(ablation, cells, data, storage, collector, scheduler, verbose, ckpt_dir, *,
           resume, protected=frozenset()):
    from ray import tune

    from gridrun.schedule import asha_rungs

    threads = max(1, int(ablation.resources["cpu"]))
    trainable = tune.with_resources(tune.with_parameters(_cell_trainable, data=data),
                                    {"cpu": ablation.resources["cpu"],
                                     "gpu": ablation.resources["gpu"]})
    rungs = [] if ablation.scheduler is None else asha_rungs(
        ablation.epochs, ablation.scheduler.grace_period, ablation.scheduler.reduction_factor)
    grid = [{"key": c.key, "config": dict(c.config), "epochs": ablation.epochs,
             "trials": [{"trial_id": t.trial_id, "seed": t.seed} for t in c.trials],
             "checkpoints": str(ckpt_dir), "resume": resume,
             "save_at": rungs if scheduler is not None and c.key not in protected else []}
            for c in cells]
    return tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search(grid), "threads": threads,
                     "metric": ablation.metric},
        tune_config=tune.TuneConfig(metric=ablation.metric, mode=ablation.mode,
                                    scheduler=scheduler, reuse_actors=True,
                                    max_concurrent_trials=ablation.max_concurrent),
        run_config=tune.RunConfig(name=ablation.name, storage_path=storage,
                                  verbose=1 if verbose else 0, callbacks=[collector],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
