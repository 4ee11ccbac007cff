"""Run an ablation on Ray Tune: Ray init (local or a cluster address), the Tuner over the
expanded trials, ASHA, resources, the live progress view, and writing the store.

This is the only module that imports ray, and it does so inside functions, so the pure
helpers below (``trial_row``, ``trial_status``) are usable without Ray installed.

    >>> from gridrun import load_spec
    >>> summary = launch(load_spec("ablations/quickstart.py"))   # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from gridrun import store
from gridrun._progress import LiveView, Progress
from gridrun._runinfo import hardware, run_info
from gridrun.design import Trial, expand

__all__ = ["launch", "LaunchResult", "trial_row", "trial_status", "RunExistsError",
           "ClusterError", "join_auth_mode"]

EPOCH_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


class RunExistsError(ValueError):
    """The output folder already holds a run and overwriting was not asked for."""


class ClusterError(ValueError):
    """The Ray cluster at the given address could not be joined."""


@dataclass(frozen=True)
class LaunchResult:
    run_dir: Path
    trials: int
    completed: int
    stopped_early: int
    errors: int
    seconds: float
    interrupted: bool


# -- pure helpers ----------------------------------------------------------------------
def trial_status(epochs_run: int, max_epochs: int, error: str | None,
                 stopped_by_scheduler: bool) -> str | None:
    """completed (all epochs), stopped_early (the scheduler stopped it before the last
    epoch), error (the trial raised or its worker died), or None: the trial ended for
    another reason (the launch was interrupted), so it has no result to store."""
    if error:
        return "error"
    if epochs_run >= max_epochs:
        return "completed"
    return "stopped_early" if stopped_by_scheduler else None


def trial_row(trial: Trial, reports: list[Mapping[str, Any]], *, max_epochs: int,
              error: str | None = None, stopped_by_scheduler: bool = False,
              wall_seconds: float | None = None) -> dict | None:
    """The trials.parquet row of one trial, from the metrics it reported (one per epoch);
    None for a trial that was cut off by an interrupted launch."""
    val = [r["val_acc"] for r in reports]
    finite = [(v, i) for i, v in enumerate(val) if v is not None and math.isfinite(v)]
    best_val, best_i = max(finite, key=lambda t: t[0]) if finite else (None, None)
    last = reports[-1] if reports else {}
    status = trial_status(len(reports), max_epochs, error, stopped_by_scheduler)
    if status is None:
        return None
    return {
        "trial_id": trial.trial_id, **trial.levels, "seed": trial.seed, "status": status,
        "epochs_run": len(reports), "last_val_acc": last.get("val_acc"),
        "best_val_acc": best_val,
        "best_epoch": None if best_i is None else int(reports[best_i]["epoch"]),
        "test_acc": last.get("test_acc") if status == "completed" else None,
        "params": last.get("params"),
        "wall_seconds": last.get("elapsed", wall_seconds) if reports else wall_seconds,
        "error": error,
    }


def epoch_rows(trial_id: str, reports: list[Mapping[str, Any]]) -> list[dict]:
    return [{"trial_id": trial_id, "epoch": int(r["epoch"]),
             **{k: r.get(k) for k in EPOCH_KEYS}, "seconds": r.get("epoch_seconds")}
            for r in reports]


# -- the trainable (runs in Ray workers) ---------------------------------------------------
def _trainable(config: dict, data=None) -> None:
    from ray import tune

    from gridrun.torch import train

    spec = config["trial"]
    start = time.perf_counter()

    def report(metrics: dict) -> None:
        tune.report({**metrics, "elapsed": time.perf_counter() - start})

    train(spec["config"], data, seed=spec["seed"], report=report, threads=config["threads"])


def _make_collector(progress: Progress, metric: str, live, scheduler):
    from ray import tune

    class Collector(tune.Callback):
        """Keeps every reported epoch on the driver and drives the progress view.

        Nothing here is closed over: Tune pickles callbacks (class included) into its
        experiment state, and the console inside the live view cannot be pickled."""

        def __init__(self, progress, metric, live, scheduler):
            self.progress, self.metric, self.live = progress, metric, live
            self.scheduler = scheduler
            self.reports: dict[str, list] = {}
            self.errors: dict[str, str] = {}
            self.ended: set[str] = set()

        def __getstate__(self):
            return {}  # what this holds only means something in this driver process

        @staticmethod
        def _tid(trial) -> str:
            return trial.config["trial"]["trial_id"]

        def on_trial_start(self, iteration, trials, trial, **info):
            self.progress.start(self._tid(trial))
            self.live()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            keep = {k: result.get(k) for k in
                    ("epoch", *EPOCH_KEYS, "epoch_seconds", "test_acc", "params", "elapsed")}
            self.reports.setdefault(self._tid(trial), []).append(keep)
            self.progress.result(result.get(self.metric))
            self.live()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._end(trial, None)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._end(trial, _error_text(trial))

        def _end(self, trial, error):
            tid = self._tid(trial)
            if tid in self.ended:
                return
            self.ended.add(tid)
            if error:
                self.errors[tid] = error
            n = len(self.reports.get(tid, []))
            status = trial_status(n, trial.config["trial"]["epochs"], error,
                                  self.stopped_by_scheduler(tid))
            self.progress.finish(tid, status or "interrupted")
            self.live()

        def stopped_by_scheduler(self, tid: str) -> bool:
            return self.scheduler is not None and tid in self.scheduler.stopped

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


def _quiet_environment(verbose: bool) -> None:
    # Set before ray.init so the local raylet and workers inherit them.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # we keep our own
    if not verbose:
        # Tune's new output engine prints its header at every verbosity; the legacy
        # reporter honours verbose=0, and our own progress line replaces both.
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for name in ("ray", "ray.tune", "ray.train", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)


def join_auth_mode(address: str | None, environ=os.environ, home: Path | None = None):
    """The RAY_AUTH_MODE to join ``address`` with, or None to leave Ray's choice alone.

    ``ray start`` and a local ``ray.init()`` turn token authentication on by default, but
    a driver joining an existing cluster does not, so it is refused even when the token
    sits in ~/.ray/auth_token. When no mode is set and a token is available (RAY_AUTH_TOKEN,
    RAY_AUTH_TOKEN_PATH or the default file), join in token mode, as ``ray start`` would.
    """
    if not address or "RAY_AUTH_MODE" in environ:
        return None
    path = environ.get("RAY_AUTH_TOKEN_PATH") or (home or Path.home()) / ".ray" / "auth_token"
    return "token" if environ.get("RAY_AUTH_TOKEN") or Path(path).is_file() else None


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens at: Ray itself retries for many minutes."""
    if not address or address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"cannot join Ray at {address}: expected host:port, "
                           "ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ClusterError(f"cannot join Ray at {address}: nothing answers there "
                           f"({e.strerror or e}); is the cluster's head running?") from None


def _init_ray(address: str | None, verbose: bool) -> None:
    _check_reachable(address)
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


def _scheduler(ablation):
    """ASHA that remembers which trials it stopped: only those are stopped_early. A trial
    ended by anything else before its last epoch (Ctrl-C) is not a result."""
    if ablation.scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.stopped: set[str] = set()

        def on_trial_result(self, tune_controller, trial, result):
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP:
                self.stopped.add(trial.config["trial"]["trial_id"])
            return action

    return RecordingASHA(time_attr="epoch", max_t=ablation.epochs,
                         grace_period=ablation.scheduler.grace_period,
                         reduction_factor=ablation.scheduler.reduction_factor)


def launch(ablation, *, run_dir: str | Path | None = None, address: str | None = None,
           verbose: bool = False, overwrite: bool = False, console=None,
           spec_path: str | Path | None = None, show_progress: bool = True) -> LaunchResult:
    """Run every trial of ``ablation`` on Ray Tune and write the store to ``run_dir``
    (default ``runs/<name>``). Joins the cluster at ``address`` (or $RAY_ADDRESS) when
    given, else starts Ray in-process. Data errors surface before Ray starts."""
    from rich.console import Console

    from gridrun.data import load_dataset

    console = console or Console(stderr=True)
    run_dir = Path(run_dir) if run_dir else Path("runs") / ablation.name
    _prepare_run_dir(run_dir, overwrite)
    trials = expand(ablation)
    data = load_dataset(ablation.dataset, val_fraction=ablation.val_fraction, split_seed=0,
                        train_size=ablation.train_size)
    _quiet_environment(verbose)
    started_ray = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    if started_ray:
        _init_ray(address, verbose)
    import ray

    started_at = dt.datetime.now(dt.timezone.utc)
    progress = Progress(ablation.name, len(trials), ablation.metric, ablation.mode)
    storage = tempfile.mkdtemp(prefix="gridrun-tune-")
    interrupted = False
    try:
        with LiveView(progress, console, show_progress) as live:
            scheduler = _scheduler(ablation)
            collector = _make_collector(progress, ablation.metric, live, scheduler)
            tuner = _tuner(ablation, trials, data, storage, collector, scheduler, verbose)
            try:
                tuner.fit()
            except KeyboardInterrupt:
                interrupted = True
        machine = hardware(ray)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if started_ray:
            ray.shutdown()
    rows, epochs = _collect_rows(trials, collector, ablation.epochs)
    interrupted = interrupted or len(rows) < len(trials)
    info = run_info(ablation, spec_path, started_at, data, machine, len(trials), len(rows),
                    interrupted)
    store.write_run(run_dir, factor_names=ablation.factor_names, trials=rows, epochs=epochs,
                    info=info)
    counts = {s: sum(r["status"] == s for r in rows) for s in store.STATUSES}
    return LaunchResult(run_dir, len(rows), counts["completed"], counts["stopped_early"],
                        counts["error"], (dt.datetime.now(dt.timezone.utc) - started_at)
                        .total_seconds(), interrupted)


def _tuner(ablation, trials, data, storage, collector, scheduler, verbose):
    from ray import tune

    threads = max(1, int(ablation.resources["cpu"]))
    trainable = tune.with_resources(tune.with_parameters(_trainable, data=data),
                                    {"cpu": ablation.resources["cpu"],
                                     "gpu": ablation.resources["gpu"]})
    grid = [{"trial_id": t.trial_id, "seed": t.seed, "config": dict(t.config),
             "epochs": ablation.epochs} for t in trials]
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(grid), "threads": threads},
        tune_config=tune.TuneConfig(metric=ablation.metric, mode=ablation.mode,
                                    scheduler=scheduler, reuse_actors=True,
                                    max_concurrent_trials=ablation.max_concurrent),
        run_config=tune.RunConfig(name=ablation.name, storage_path=storage,
                                  verbose=1 if verbose else 0, callbacks=[collector],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def _collect_rows(trials, collector, max_epochs):
    """One row per trial that finished (an interrupted run keeps the trials that completed,
    were stopped by the scheduler or failed before the interrupt)."""
    rows, epochs = [], []
    for t in trials:
        if t.trial_id not in collector.ended:
            continue
        reports = collector.reports.get(t.trial_id, [])
        row = trial_row(t, reports, max_epochs=max_epochs, error=collector.errors.get(t.trial_id),
                        stopped_by_scheduler=collector.stopped_by_scheduler(t.trial_id))
        if row is not None:
            rows.append(row)
            epochs.extend(epoch_rows(t.trial_id, reports))
    return rows, epochs
