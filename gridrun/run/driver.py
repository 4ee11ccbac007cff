"""Run an ablation on Ray Tune: Ray init (local or a cluster address), the Tuner over the
grid's cells, ablation-aware ASHA, resources, retries, the live progress view, resuming, and
writing the store.

A run folder (a local path or a storage URI) holds the store and, while the run is not
complete, its journal (``gridrun.store.journal``) and checkpoints: a killed driver loses only the
epochs in flight, and ``launch`` on the same spec and folder (or ``resume``) finishes the grid
without training again any trial that had finished. Trials whose worker dies are retried
from their checkpoints on the nodes that remain.

Ray is imported inside functions here and in the trainable, collector and scheduler
modules, so the pure helpers (``trial_row``, ``trial_status``) are usable without Ray.

    >>> from gridrun import load_spec
    >>> summary = launch(load_spec("ablations/quickstart.py"))   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gridrun import store
from gridrun.store import journal, spool
from gridrun.run.cells import as_report, collect_rows, epoch_rows, stored_rows, trial_row, \
    trial_status
from gridrun.run.cluster import ClusterError, check_reachable, join_auth_mode, quiet_environment
from gridrun.run.progress import LiveView, Progress
from gridrun.run.reaper import Reaper
from gridrun.run.runfolder import (RunExistsError, check_no_live_driver, check_storage,
                                   claimed, finished_before, launch_record, prepare_run_dir,
                                   run_location, shown, tidy)
from gridrun.run.scheduler import cell_scheduler, seed_scheduler
from gridrun.run.runinfo import hardware, run_info
from gridrun.store.location import Location, StorageError
from gridrun.run.trainable import checkpoint_of
from gridrun.run.trackers import check_trackers
from gridrun.design.grid import expand
from gridrun.design.schedule import anchors_of

__all__ = ["launch", "resume", "confirm", "LaunchResult", "trial_row", "trial_status",
           "epoch_rows", "RunExistsError", "ClusterError", "join_auth_mode", "run_location",
           "MAX_FAILURES"]

# The in-process cluster is one node: declaring it dead only kills the run. On a busy laptop
# its raylet can miss Ray's default health checks (5 x 3 s) while trainings hold every core.
_LOCAL_HEALTH = {"health_check_failure_threshold": 40}
MAX_FAILURES = 3  # retries of a cell whose worker died (from its checkpoints)
CHECKPOINT_SECONDS = 0.0  # every epoch by default (and always at rungs); >0: at most this often


@dataclass(frozen=True)
class LaunchResult:
    run_dir: Path | Location
    trials: int
    completed: int
    stopped_early: int
    errors: int
    seconds: float
    interrupted: bool
    confirmed: int = 0  # trials continued from a checkpoint to the full budget
    resumed: int = 0  # trials already finished by earlier sessions of this run
    note: str = ""  # one line for the user when there was nothing to run


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
                 logging_level=logging.INFO if verbose else logging.ERROR,
                 **({} if address else {"_system_config": _LOCAL_HEALTH}))
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as e:
        hint = ("; if the cluster uses token authentication, set RAY_AUTH_TOKEN (or "
                "RAY_AUTH_TOKEN_PATH) to its token") if address else ""
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClusterError(f"cannot start or join Ray at {address or 'this machine'}: "
                           f"{first}{hint}") from None


def launch(ablation, *, run_dir: str | Path | None = None, storage: str | None = None,
           address: str | None = None, verbose: bool = False, overwrite: bool = False,
           console=None, spec_path: str | Path | None = None,
           show_progress: bool = True, trackers=None) -> LaunchResult:
    """Run every trial of ``ablation`` on Ray Tune and write the store to ``run_dir`` (a
    path or URI; default ``<storage>/<name>``, storage defaulting to ``runs``). Joins the
    cluster at ``address`` (or $RAY_ADDRESS) when given, else starts Ray in-process. Data
    errors surface before Ray starts.

    A folder holding an unfinished run of the same spec is continued (see ``resume``);
    one holding a complete run, or a run of another spec, is left alone unless
    ``overwrite``.

    With ASHA, cells (a configuration with all its seeds) are screened: anchors run to the
    end, the others may be stopped at rungs (checkpointed there); then the best screened
    cells that did not reach the end are continued from their checkpoints (confirmation).

    ``trackers`` (a ``Trackers`` or a mapping such as ``{"tensorboard": True}``) also sends
    every trial to TensorBoard, MLflow or W&B; see ``gridrun.run.trackers``."""
    loc = run_location(ablation.name, run_dir, storage)
    check_storage(loc)
    trackers = check_trackers(trackers, loc)  # before the data, the folder and Ray
    spec_path = Path(spec_path).resolve() if spec_path else None
    # The data and the spec's own code are checked before the run folder is touched: a spec
    # that cannot run leaves an earlier run (even one --overwrite would replace) as it was.
    data = _load_data(ablation)
    _preflight(ablation, expand(ablation), data, spec_path)
    with claimed(loc):  # one driver per run, even two started at the same moment
        resuming = prepare_run_dir(loc, ablation, overwrite)
        return _session(ablation, loc, resuming=resuming, address=address, verbose=verbose,
                        console=console, spec_path=spec_path, show_progress=show_progress,
                        data=data, trackers=trackers)


def resume(run_dir: str | Path, *, address: str | None = None, verbose: bool = False,
           console=None, show_progress: bool = True, trackers=None) -> LaunchResult:
    """Finish an unfinished run (driver killed, Ctrl-C, a RayJob pod restarted): cells that
    ended keep their results and are not trained again; cells that were running continue
    from their checkpoints; the rest run. The spec is the one stored in the run."""
    from gridrun.spec.ablation import Ablation

    loc = run_location("", run_dir)
    trackers = check_trackers(trackers, loc)
    info, launched = journal.read_state(loc)
    if launched is None and info is None:
        raise store.StoreError(f"{loc}: no gridrun run here to resume")
    if journal.is_complete(info, launched):
        raise RunExistsError(f"{loc} is complete; nothing to resume")
    spec = (launched or info)["spec"]
    spec_file = (launched or info).get("spec_file")
    check_storage(loc)
    with claimed(loc):
        check_no_live_driver(loc)
        return _session(Ablation.from_dict(spec, spec_file), loc, resuming=True,
                        address=address, verbose=verbose, console=console,
                        show_progress=show_progress, spec_path=spec_file, trackers=trackers)


def _session(ablation, loc: Location, *, resuming: bool, address, verbose, console, spec_path,
             show_progress, data=None, trackers=None) -> LaunchResult:
    from rich.console import Console

    from gridrun.run.cells import cells_of

    console = console or Console(stderr=True)
    trials = expand(ablation)
    _check_pretrained(trials)
    previous = finished_before(loc, trials) if resuming else {}
    done = {c.key for c in cells_of(trials)
            if all(t.trial_id in previous for t in c.trials)}
    if show_progress:
        from gridrun.design.labels import label_warnings

        for line in label_warnings(ablation):
            console.print(line, highlight=False, soft_wrap=True)
    if show_progress and ablation.scheduler is not None:
        from gridrun.design.plan import anchors_text

        console.print(anchors_text(ablation), highlight=False, soft_wrap=True)
    if resuming and show_progress:
        n_done = sum(1 for t in trials if t.trial_id in previous)
        console.print(f"resuming {shown(loc)}: {n_done} of {len(trials)} trials finished "
                      f"earlier are kept; running the other {len(trials) - n_done}",
                      highlight=False, soft_wrap=True)
    return _run(ablation, trials, previous, loc=loc, address=address, verbose=verbose,
                console=console, spec_path=spec_path, show_progress=show_progress,
                confirm_top=ablation.scheduler.confirm if ablation.scheduler else 0,
                skip_cells=done, replay=True, data=data, trackers=trackers)


def _run(ablation, trials, previous, *, loc: Location, address, verbose, console, spec_path,
         show_progress, confirm_top, skip_cells=frozenset(), only_cells=None, replay=True,
         continued=None, prior=None, data=None, trackers=None) -> LaunchResult:
    """Run the cells of ``trials`` (but ``skip_cells``; or only ``only_cells``), confirm,
    and write the store. ``previous`` holds {trial_id: (row, epoch rows)} of trials finished
    earlier (earlier sessions, or the run being confirmed): trials not run again keep
    those."""
    from gridrun.run.cells import cells_of

    if not address:  # workers share this environment: a missing framework fails here
        _check_frameworks(trials)
    cells = cells_of(trials)
    anchors = anchors_of(ablation)
    if data is None:  # resume and confirm: checked here, before Ray starts
        data = _load_data(ablation)
        _preflight(ablation, trials, data, spec_path)
    _check_channels(trials, data)
    quiet_environment(verbose)
    started_ray = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    reaper = Reaper() if started_ray and not address else contextlib.nullcontext()
    with reaper:
        if started_ray:
            _init_ray(address, verbose)
        try:
            return _run_on_ray(ablation, trials, previous, cells, anchors, data, loc=loc,
                               verbose=verbose, console=console, spec_path=spec_path,
                               show_progress=show_progress, confirm_top=confirm_top,
                               skip_cells=skip_cells, only_cells=only_cells, replay=replay,
                               continued=continued, prior=prior, trackers=trackers)
        finally:
            if started_ray:
                import ray

                ray.shutdown()


def _run_on_ray(ablation, trials, previous, cells, anchors, data, *, loc, verbose, console,
                spec_path, show_progress, confirm_top, skip_cells, only_cells, replay,
                continued, prior, trackers=None) -> LaunchResult:
    import ray

    from gridrun.run.trackers import open_trackers, run_tag

    from gridrun.run.cells import cell_progress
    from gridrun.run.collector import Heartbeat, make_collector
    from gridrun.design.schedule import cells_to_confirm

    started_at = dt.datetime.now(dt.timezone.utc)
    first = [_unfinished(c, previous) for c in cells if c.key not in skip_cells
             and (only_cells is None or c.key in only_cells)]
    running = {c.key: c for c in first}
    try:
        sessions = launch_record(loc, ablation, trials, cells, spec_path, anchors, started_at)
        loc.child(store.CHECKPOINTS).make_dir()
    except StorageError as e:
        raise store.StoreError(str(e)) from None
    progress = Progress(ablation.name, sum(len(c.trials) for c in first), ablation.metric,
                        ablation.mode)
    tune_dir = tempfile.mkdtemp(prefix="gridrun-tune-")
    interrupted, confirmed, scheduler = False, dict(continued or {}), None
    try:
        with LiveView(progress, console, show_progress) as live, \
                Heartbeat(loc, len(sessions)) as heartbeat, \
                open_trackers(trackers, name=ablation.name, run=loc, tag=run_tag(loc, sessions),
                              cells=[running.get(c.key, c) for c in cells]) as tracked:
            scheduler = None if only_cells is not None else cell_scheduler(ablation, cells,
                                                                       anchors)
            seed_scheduler(scheduler, cells, previous, ablation)
            collector = make_collector(progress, ablation.metric, live, scheduler, run=loc,
                                       session=len(sessions), heartbeat=heartbeat,
                                       max_epochs=ablation.epochs,
                                       cells=[running.get(c.key, c) for c in cells])
            collector.reports.update({tid: list(r) for tid, r in (prior or {}).items()})
            collector.continued.update(confirmed)
            # the trackers after the collector: they send the rows it has just made
            callbacks = [collector, *tracked.callbacks(collector.row)]
            tuner = _tuner(ablation, first, data, tune_dir, callbacks, scheduler, verbose,
                           loc, resume=True, replay=replay, protected=anchors.keys())
            interrupted = (_fit(tuner, ablation.max_concurrent)
                           or _cut_short(first, collector, ablation.epochs))
            if not interrupted and confirm_top is not None:
                reports = {tid: [as_report(e) for e in v[1]] for tid, v in previous.items()}
                reports.update(collector.reports)
                errors = {tid: v[0]["error"] or "error" for tid, v in previous.items()
                          if v[0]["status"] == "error"}
                info = {c.key: cell_progress(c, reports, {**errors, **collector.errors},
                                             ablation.metric) for c in cells}
                keys = cells_to_confirm(info, max_t=ablation.epochs, anchors=anchors.keys(),
                                        top=confirm_top, mode=ablation.mode)
                again = [c for c in cells if c.key in keys]
                if again:
                    reached = {t.trial_id: info[c.key]["reached"] for c in again
                               for t in c.trials}
                    confirmed.update(reached)
                    collector.continued.update(reached)
                    console.print(f"confirming {len(again)} cell(s) at the full budget "
                                  f"({ablation.epochs} epochs), continued from their "
                                  "checkpoints", highlight=False)
                    interrupted = _fit(_tuner(ablation, again, data, tune_dir, callbacks,
                                              None, verbose, loc, resume=True, replay=True),
                                       ablation.max_concurrent)
        machine = hardware(ray)
    finally:
        shutil.rmtree(tune_dir, ignore_errors=True)
    rows, epochs = collect_rows(trials, collector, previous)
    complete = not interrupted and len(rows) == len(trials)
    info = run_info(ablation, spec_path, started_at, data, machine, len(trials), len(rows),
                    not complete)
    capped = _capped_before(loc) if previous else {}  # earlier sessions', or the screen's
    new_caps = {} if scheduler is None else scheduler.state.over_budget
    capped.update(new_caps)
    info["schedule"] = _schedule_info(ablation, anchors, rows, confirmed, capped)
    if new_caps:
        console.print(f"the budget ({ablation.scheduler.budget:.0%} of the grid's epochs) "
                      f"stopped {len(new_caps)} screened cell(s) that would otherwise have "
                      "been promoted", highlight=False, soft_wrap=True)
    info["sessions"] = sessions
    spool.wait_for(loc)  # cells kept here while the storage was away go up before run.json
    info["uploads"] = spool.stats(loc)  # what the storage refused this session (faults.md)
    store.write_run(loc, factor_names=ablation.factor_names, trials=rows, epochs=epochs,
                    info=info)
    spool.discard(loc)  # the store now holds every trial the spool kept
    if complete:
        tidy(loc, rows)
    else:
        heartbeat.write("interrupted")
    counts = {s: sum(r["status"] == s for r in rows) for s in store.STATUSES}
    return LaunchResult(shown(loc), len(rows), counts["completed"], counts["stopped_early"],
                        counts["error"], (dt.datetime.now(dt.timezone.utc) - started_at)
                        .total_seconds(), not complete, len(confirmed),
                        sum(1 for t in trials if t.trial_id in previous
                            and t.trial_id not in collector.ended))


def confirm(run_dir: str | Path, *, top: int | None = None, address: str | None = None,
            verbose: bool = False, console=None, show_progress: bool = True,
            trackers=None) -> LaunchResult:
    """Bring the cells an existing run's table needs to the full budget: every anchor that
    did not get there and the ``top`` best screened cells (default: the spec's
    ``confirm``), continued from their rung checkpoints when the run has them, else trained
    from the start. Works on runs made before gridrun scheduled cells (their anchors are
    those of the default ASHA). The store is rewritten in one step, other trials unchanged."""
    loc = run_location("", run_dir)
    trackers = check_trackers(trackers, loc)
    store.read_run(loc)  # a folder without a run fails here, before anything is written
    check_storage(loc)
    with claimed(loc):
        return _confirm(loc, top, address=address, verbose=verbose, console=console,
                        show_progress=show_progress, trackers=trackers)


def _confirm(loc, top, *, address, verbose, console, show_progress, trackers):
    from rich.console import Console

    from gridrun.run.cells import cell_progress, cells_of
    from gridrun.design.schedule import cells_to_confirm
    from gridrun.spec.ablation import ASHA, Ablation

    run = store.read_run(loc)  # again, now that no other driver can change it
    ablation = Ablation.from_dict(run.spec, run.info.get("spec_file"))
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
    if not keys:  # a second confirm, or --top within the cells already at the end
        counts = run.trials["status"].value_counts()
        return LaunchResult(
            shown(loc), len(run.trials), int(counts.get("completed", 0)),
            int(counts.get("stopped_early", 0)), int(counts.get("error", 0)), 0.0, False,
            note=f"nothing to confirm: every anchor and the {top} best screened cell(s) "
                 f"already ran all {ablation.epochs} epochs (errored cells are never "
                 "confirmed); the run is unchanged")
    ckpt = loc.child(store.CHECKPOINTS)
    continued = {t.trial_id: info[c.key]["reached"] for c in cells if c.key in keys
                 for t in c.trials
                 if checkpoint_of(ckpt, t.trial_id, t.config["framework"]).is_file()}
    # what a continued trial already ran; the rest of a confirmed cell starts again
    prior = {tid: reports[tid][:k] for tid, k in continued.items()}
    return _run(ablation, trials, previous, loc=loc, address=address, verbose=verbose,
                console=console or Console(stderr=True), spec_path=run.info.get("spec_file"),
                show_progress=show_progress, confirm_top=None, only_cells=keys,
                replay=False, continued=continued, prior=prior, trackers=trackers)


def _unfinished(cell, previous):
    """The cell without its trials that completed earlier (a run that grew by seeds): their
    checkpoints are gone with the tidy-up, and their results stand."""
    keep = tuple(t for t in cell.trials
                 if t.trial_id not in previous or previous[t.trial_id][0]["status"] != "completed")
    return cell if len(keep) == len(cell.trials) else dataclasses.replace(cell, trials=keep)


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


def _fit(tuner, max_concurrent) -> bool:
    """Run the tuner; True when the user interrupted it (Ctrl-C)."""
    from gridrun.run.search import pending_trials

    try:
        with pending_trials(max_concurrent):
            tuner.fit()
    except KeyboardInterrupt:
        return True
    return False


def _capped_before(loc) -> dict:
    """The cells the budget's ceiling stopped in earlier sessions of the run (an interrupted
    screen, or the screen that ``confirm`` follows), from its run.json; {} when unknown."""
    try:
        info = journal.read_state(loc)[0] or {}
    except store.StoreError:
        return {}
    return dict((info.get("schedule") or {}).get("stopped_by_budget") or {})


def _schedule_info(ablation, anchors, rows, confirmed, capped) -> dict:
    """What run.json says about scheduling: the anchors, what was confirmed, and the cells
    the budget's ceiling stopped (cell key -> rung epoch)."""
    from gridrun.design.schedule import asha_rungs

    sched = ablation.scheduler
    return {"anchors": anchors.to_dict(), "anchors_text": anchors.describe(),
            "screened": sched is not None and not anchors.is_all,
            "rungs": [] if sched is None else asha_rungs(
                ablation.epochs, sched.grace_period, sched.reduction_factor),
            "confirmed_trials": sorted(confirmed),
            "budget": None if sched is None else sched.budget,
            "stopped_by_budget": dict(capped),
            "trial_epochs": int(sum(r["epochs_run"] for r in rows))}


def _load_data(ablation):
    """The spec's dataset (a name, a folder, or its own function), split as the spec says."""
    from gridrun.data import load_dataset

    return load_dataset(ablation.plugins.dataset or ablation.dataset,
                        val_fraction=ablation.val_fraction, split_seed=0,
                        train_size=ablation.train_size, image_size=ablation.image_size or 32)


def _preflight(ablation, trials, data, spec_path) -> None:
    from gridrun.run.preflight import check_plugins

    check_plugins(ablation, trials, data, spec_path)


def _check_channels(trials, data) -> None:
    """Saturation and hue need colour: on a grayscale dataset they fail before launch."""
    from gridrun.spec.ablation import SpecError

    if data.image_shape[-1] == 3:
        return
    for name in ("saturation", "hue"):
        if any(t.config.get(name) for t in trials):
            raise SpecError(f"{name} needs RGB images; {data.name} has "
                            f"{data.image_shape[-1]} channel(s)")


_PACKAGES = {"torch": ("torch", "torch"), "tensorflow": ("tensorflow", "tensorflow")}


def _check_frameworks(trials) -> None:
    """Each framework the trials train in must be installed: one line, not a failed trial
    per configuration."""
    import importlib.util

    from gridrun.spec.ablation import SpecError

    for framework in sorted({t.config["framework"] for t in trials}):
        module, extra = _PACKAGES[framework]
        if importlib.util.find_spec(module) is None:
            raise SpecError(f"framework {framework!r} needs {module}, which is not installed: "
                            f"pip install 'gridrun[{extra}]'")


def _check_pretrained(trials) -> None:
    """A pretrained file that is not there fails the launch, not every trial."""
    from gridrun.spec.ablation import SpecError

    from gridrun.data._files import is_url, split_source

    for src in sorted({t.config.get("pretrained") for t in trials} - {None}):
        location = split_source(src)[0]
        if not is_url(location) and not Path(location).expanduser().is_file():
            raise SpecError(f"pretrained {src!r}: no such file (make one with gridrun "
                            "weights RUN --out FILE from a run with keep_weights=True)")


def _for_workers(config) -> dict:
    """The config as workers need it: a relative pretrained path is relative to where the
    driver runs (workers run elsewhere), so it goes out absolute."""
    from gridrun.data._files import is_url, split_source

    config = dict(config)
    src = config.get("pretrained")
    if src and not is_url(split_source(src)[0]):
        config["pretrained"] = str(Path(src).expanduser().absolute())
    return config


def _checkpoint_seconds() -> float:
    text = os.environ.get("GRIDRUN_CHECKPOINT_SECONDS")
    try:
        return max(0.0, float(text)) if text else CHECKPOINT_SECONDS
    except ValueError:
        raise ClusterError(f"GRIDRUN_CHECKPOINT_SECONDS must be a number of seconds, got "
                           f"{text!r}") from None


def _tuner(ablation, cells, data, tune_dir, callbacks, scheduler, verbose, loc: Location, *,
           resume, replay, protected=frozenset()):
    from ray import tune

    from gridrun.run.search import cell_search
    from gridrun.run.trainable import cell_trainable
    from gridrun.design.schedule import asha_rungs

    threads = max(1, int(ablation.resources["cpu"]))
    own = None if ablation.plugins.empty else ablation.plugins
    trainable = tune.with_resources(tune.with_parameters(cell_trainable, data=data, own=own),
                                    {"cpu": ablation.resources["cpu"],
                                     "gpu": ablation.resources["gpu"]})
    rungs = [] if ablation.scheduler is None else asha_rungs(
        ablation.epochs, ablation.scheduler.grace_period, ablation.scheduler.reduction_factor)
    ckpts = loc.child(store.CHECKPOINTS).full
    every = _checkpoint_seconds()
    grid = [{"key": c.key, "config": _for_workers(c.config), "epochs": ablation.epochs,
             "trials": [{"trial_id": t.trial_id, "seed": t.seed} for t in c.trials],
             "checkpoints": ckpts, "resume": resume, "replay": replay,
             "weights": loc.full if ablation.keep_weights else None,
             "checkpoint_seconds": every,
             "save_at": rungs if scheduler is not None and c.key not in protected else []}
            for c in cells]
    search = cell_search(grid, threads=threads, metric=ablation.metric)
    return tune.Tuner(
        trainable,
        param_space=search["param_space"],
        tune_config=tune.TuneConfig(metric=ablation.metric, mode=ablation.mode,
                                    scheduler=scheduler, reuse_actors=True,
                                    search_alg=search["search_alg"],
                                    num_samples=search["num_samples"],
                                    max_concurrent_trials=ablation.max_concurrent),
        run_config=tune.RunConfig(name=ablation.name, storage_path=tune_dir,
                                  verbose=1 if verbose else 0, callbacks=list(callbacks),
                                  failure_config=tune.FailureConfig(
                                      max_failures=MAX_FAILURES)),
    )
