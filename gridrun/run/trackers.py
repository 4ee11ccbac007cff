"""Experiment trackers: each seed's epochs and each trial's config and final metrics go to
TensorBoard, MLflow and/or Weights & Biases, as the launch asked (all off by default).

gridrun's own driver-side callback, not Ray Tune's TBX/MLflow/W&B callbacks: a Tune trial here
is a *cell* (one configuration training all its seeds in lockstep), so Tune's callbacks would
log one run per cell with the seeds folded into one ``per_seed`` dict. A gridrun trial is one
(configuration, seed); this callback gives every seed its own run, grouped by cell, with the
numbers epochs.parquet and trials.parquet get.

Tracker packages are imported only when their tracker is on. ``check_trackers`` runs before
Ray starts and writes nothing; a tracker that fails during a run is dropped with a warning and
never stops the grid.

    >>> Trackers(tensorboard=True, wandb=True).chosen
    ['tensorboard', 'wandb']
    >>> from gridrun import launch, load_spec
    >>> launch(load_spec("ablations/quickstart.py"),
    ...        trackers=Trackers(mlflow=True))   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import netrc
import numbers
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from gridrun.run import tracker_writers as tw
from gridrun.run.cells import epoch_rows

__all__ = ["Trackers", "TrackerError", "as_trackers", "check_trackers", "open_trackers",
           "Tracked", "run_tag", "epoch_metrics", "final_metrics", "INSTALL"]

INSTALL = "pip install 'gridrun[trackers]'"
# MLflow 3 writes to these; its old file store ('./mlruns', file:) refuses new data.
MLFLOW_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
WANDB_MODES = ("online", "offline", "disabled", "dryrun", "run", "shared")
_NOT_FINAL = {"trial_id", "seed", "continued_from"}  # trials.parquet bookkeeping, no metric


class TrackerError(ValueError):
    """A tracker option that cannot work (a missing package, a folder that cannot be
    written, a store MLflow cannot use); raised before anything runs or is written."""


@dataclass(frozen=True)
class Trackers:
    """Which trackers a launch sends its trials to. ``tensorboard``: True (RUN/tensorboard)
    or a folder; ``mlflow``: True (sqlite:///RUN/mlflow.db) or a tracking URI; ``wandb``:
    True (project = the grid's name; WANDB_MODE, WANDB_DIR and the rest as W&B reads them)."""

    tensorboard: bool | str | os.PathLike = False
    mlflow: bool | str = False
    wandb: bool = False

    def __post_init__(self):
        kinds = {"tensorboard": (bool, str, os.PathLike), "mlflow": (bool, str),
                 "wandb": (bool,)}
        for name, ok in kinds.items():
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, False)
            elif not isinstance(value, ok) or isinstance(value, str) and not value.strip():
                raise TrackerError(f"trackers: {name}={value!r}; give True/False" +
                                   {"tensorboard": " or a folder", "mlflow": " or a URI",
                                    "wandb": ""}[name])

    @property
    def chosen(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not False]


def as_trackers(value) -> Trackers:
    """``Trackers`` from what a library user passes: None, a Trackers, or a mapping with its
    field names (an unknown key is an error, never dropped)."""
    if value is None:
        return Trackers()
    if isinstance(value, Trackers):
        return value
    if isinstance(value, Mapping):
        allowed = [f.name for f in dataclasses.fields(Trackers)]
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise TrackerError(f"unknown tracker(s) {unknown}; allowed: {', '.join(allowed)}")
        return Trackers(**value)
    raise TrackerError(f"trackers must be a Trackers or a mapping, not {type(value).__name__}")


# -- checks: before Ray starts, writing nothing -----------------------------------------------
def check_trackers(trackers, run) -> Trackers:
    """The trackers with their defaults filled in (an absolute folder, a full URI), after
    checking each can work: its package is installed, its folder can be written. ``run`` is
    the run folder's ``Location``."""
    t = as_trackers(trackers)
    return Trackers(
        tensorboard=_tensorboard_dir(t.tensorboard, run) if t.tensorboard is not False else False,
        mlflow=_mlflow_uri(t.mlflow, run) if t.mlflow is not False else False,
        wandb=_check_wandb() if t.wandb else False)


def _need(module: str, tracker: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise TrackerError(f"{tracker} needs the {module} package, which is not installed: "
                           f"{INSTALL}")


def _writable(path: Path, what: str) -> None:
    """``path`` can be created or written: no file stands where a folder must, and the
    nearest folder that exists is writable."""
    if path.exists() and not path.is_dir():
        raise TrackerError(f"{what} {path}: a file is there, not a folder")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise TrackerError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TrackerError(f"{what} {path}: {parent} is not writable")


def _in_run(run, name: str, tracker: str, give: str) -> Path:
    if not run.is_local:
        raise TrackerError(f"{tracker}: the run folder {run.text} is not on this machine's "
                           f"disk; give {give}")
    return run.local_path / name


def _tensorboard_dir(value, run) -> str:
    _need("tensorboardX", "tensorboard")
    path = (_in_run(run, "tensorboard", "tensorboard", "a local folder (--tensorboard DIR)")
            if value is True else Path(value).expanduser().absolute())
    _writable(path, "tensorboard")
    return str(path)


def _mlflow_uri(value, run) -> str:
    _need("mlflow", "mlflow")
    if value is True:
        path = _in_run(run, "mlflow.db", "mlflow", "a tracking URI (--mlflow URI)")
    else:
        scheme = value.split(":", 1)[0].split("+")[0].lower() if ":" in value else ""
        if scheme not in MLFLOW_SCHEMES:
            raise TrackerError(
                f"mlflow {value!r}: not a tracking store MLflow 3 writes to (its file store "
                "is retired); give sqlite:///PATH.db (a file, no server), http(s)://HOST:PORT "
                "(a tracking server) or a database URI (postgresql://, mysql://, mssql://)")
        if scheme != "sqlite":
            return value
        if not value.startswith("sqlite:///") or value.endswith(":memory:"):
            raise TrackerError(f"mlflow {value!r}: give a database file, as sqlite:///PATH.db "
                               "(relative) or sqlite:////ABSOLUTE/PATH.db")
        path = Path(value[len("sqlite:///"):]).expanduser().absolute()
    for module in ("sqlalchemy", "alembic"):  # MLflow's database stores
        _need(module, "mlflow")
    if path.is_dir():
        raise TrackerError(f"mlflow {path}: a folder is there, not a database file")
    _writable(path.parent, "mlflow")
    return f"sqlite:///{path}"


def _check_wandb() -> bool:
    _need("wandb", "wandb")
    mode = os.environ.get("WANDB_MODE", "online").strip().lower()
    if mode not in WANDB_MODES:
        raise TrackerError(f"wandb: WANDB_MODE={mode!r}; allowed: {', '.join(WANDB_MODES)}")
    if os.environ.get("WANDB_DIR"):
        _writable(Path(os.environ["WANDB_DIR"]).expanduser().absolute(), "wandb WANDB_DIR")
    if mode in ("online", "run", "shared") and not _wandb_login():
        raise TrackerError("wandb: not logged in to W&B (no WANDB_API_KEY, no wandb login); "
                           "run wandb login, or set WANDB_MODE=offline to keep the runs on "
                           "disk and upload them later with wandb sync")
    return True


def _wandb_login() -> bool:
    """Whether W&B has credentials without asking: a key in the environment or a netrc
    entry for its host (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


# -- what every tracker gets ------------------------------------------------------------------
def run_tag(run, sessions) -> str:
    """A short id of this run (its folder and first session's start): stable across resume
    and confirm, new after --overwrite, so those continue the same tracker runs."""
    first = sessions[0]["started_at"] if sessions else ""
    return hashlib.sha1(f"{run.full}|{first}".encode()).hexdigest()[:8]


def epoch_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """One seed's epoch as epochs.parquet stores it (built-in metrics, seconds, the
    trainer's own), without its keys and the values it did not report."""
    row = epoch_rows("", [report])[0]
    return {k: float(v) for k, v in row.items() if k not in ("trial_id", "epoch")
            and v is not None}


def final_metrics(row: Mapping[str, Any] | None, trial) -> dict[str, float]:
    """A trial's trials.parquet numbers (last and best values, best epoch, test accuracy,
    epochs run, seconds, parameters), without its levels and bookkeeping."""
    if not row:
        return {}
    return {k: float(v) for k, v in row.items() if k not in _NOT_FINAL and k not in trial.levels
            and isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v}


class Tracked:
    """Sends what the cells report to the tracker writers; no Ray here (the Tune callback
    only forwards), so tests drive it with made-up reports."""

    def __init__(self, writers, cells):
        self.writers = list(writers)
        self.trials = {t.trial_id: (c, t) for c in cells for t in c.trials}
        self.cells = {c.key: c for c in cells}
        self.logged: dict[str, int] = {}  # trial id -> last epoch sent in this session
        self.open: set[str] = set()
        self.row_of = lambda trial: None

    def result(self, per_seed: Mapping[str, Mapping]) -> None:
        """Each seed's new epoch. A retried or continued cell reports its earlier epochs
        again (``replayed``): those already sent in this session are not sent twice."""
        for tid, report in per_seed.items():
            if tid not in self.trials:
                continue
            epoch, replayed = int(report["epoch"]), bool(report.get("replayed"))
            if replayed and epoch <= self.logged.get(tid, 0):
                continue
            cell, trial = self.trials[tid]
            self._each("epoch", cell, trial, epoch, epoch_metrics(report), replayed)
            self.logged[tid] = max(epoch, self.logged.get(tid, 0))
            self.open.add(tid)

    def ended(self, key: str) -> None:
        """A cell ended: each trial's status and final metrics, as trials.parquet has them
        (``row_of``, the collector's rows: the collector runs first)."""
        cell = self.cells[key]
        for t in cell.trials:
            self._end(cell, t, self.row_of(t))
        self._each("cell_end", cell)

    def _end(self, cell, trial, row) -> None:
        status = row["status"] if row else "interrupted"
        error = row.get("error") if row else None
        self._each("end", cell, trial, status, final_metrics(row, trial), error)
        self.open.discard(trial.trial_id)

    def close(self) -> None:
        """Trials still open were cut off (Ctrl-C, a lost driver's session end)."""
        for tid in sorted(self.open):
            self._end(*self.trials[tid], None)
        for w in self.writers:
            with contextlib.suppress(Exception):
                w.close()
        self.writers = []

    def _each(self, method: str, *args) -> None:
        for w in list(self.writers):
            try:
                getattr(w, method)(*args)
            except Exception as e:  # noqa: BLE001 - a tracker never stops the grid
                print(f"warning: the {w.name} tracker stopped ({type(e).__name__}: {e}); "
                      "the run goes on without it", file=sys.stderr)
                self.writers.remove(w)
                with contextlib.suppress(Exception):
                    w.close()

    def callbacks(self, row_of) -> list:
        """The Tune callbacks to add after the collector (none when no tracker is on)."""
        self.row_of = row_of
        return [_tune_callback(self)] if self.writers else []


def _tune_callback(tracked: Tracked):
    from ray import tune

    class TrackerCallback(tune.Callback):
        """Forwards each cell's per-seed reports and its end to ``Tracked``."""

        def __init__(self, tracked):
            self.tracked = tracked

        def __getstate__(self):
            return {}  # Tune pickles callbacks; writers only mean something in this driver

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.tracked.result(result.get("per_seed") or {})

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.tracked.ended(trial.config["cell"]["key"])

        def on_trial_error(self, iteration, trials, trial, **info):
            self.tracked.ended(trial.config["cell"]["key"])

    return TrackerCallback(tracked)


@contextlib.contextmanager
def open_trackers(trackers: Trackers | None, *, name: str, run, tag: str, cells):
    """The chosen trackers' writers (``check_trackers`` first) as a ``Tracked``, closed on
    exit so every file is complete before the store is written."""
    trackers = trackers or Trackers()
    opening = {"tensorboard": lambda: tw.TensorBoard(trackers.tensorboard),
               "mlflow": lambda: tw.MLflow(trackers.mlflow, name, tag, run),
               "wandb": lambda: tw.WandB(name, tag, run)}
    writers = []
    for tracker in trackers.chosen:
        try:
            writers.append(opening[tracker]())
        except Exception as e:  # noqa: BLE001 - a server that is down must not stop the grid
            print(f"warning: the {tracker} tracker could not start ({type(e).__name__}: {e}); "
                  "the run goes on without it", file=sys.stderr)
    tracked = Tracked(writers, cells)
    try:
        yield tracked
    finally:
        tracked.close()
