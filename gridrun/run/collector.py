"""The driver's side of a launch: a Ray Tune callback that keeps every seed's reported epochs,
writes each cell's rows to the run's journal the moment the cell ends, and a heartbeat
thread that tells ``gridrun status`` what is running.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from gridrun.store import claim, journal, spool
from gridrun.run.cells import EPOCH_KEYS, epoch_rows, own_metrics, trial_row, trial_status
from gridrun.run.trainable import checkpoint_of, history_of
from gridrun.store.tables import CHECKPOINTS

__all__ = ["make_collector", "Heartbeat", "error_text"]

# What the driver keeps of a seed's report, besides the metrics of the trainer's own
# (``own_metrics``): the rest is bookkeeping of the worker (replayed, resumed_from).
_KEEP = ("epoch", *EPOCH_KEYS, "epoch_seconds", "test_acc", "params", "elapsed", "node")


def error_text(trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "trial failed (no error text)"


class Heartbeat:
    """Rewrites the run's heartbeat.json every ``every`` seconds while a launch runs; each
    beat also renews this driver's claim on the run (``gridrun.store.claim``) and uploads
    the finished cells kept on this machine while the storage did not answer
    (``gridrun.store.spool``)."""

    def __init__(self, run, session: int, every: float = 5.0):
        self.run, self.session, self.every = run, session, every
        self.started = journal.now_iso()
        self.running: dict[str, int] = {}
        self.epochs = 0  # trained (not replayed) in this session
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gridrun-heartbeat",
                                        daemon=True)

    def write(self, state: str = "running") -> None:
        try:
            if spool.pending(self.run):
                spool.flush(self.run, say=True)
            held = claim.held(self.run)
            if held is not None:
                held.renew()
            journal.write_heartbeat(self.run, session=self.session,
                                     running=dict(self.running), state=state,
                                     session_epochs=self.epochs,
                                     session_started=self.started,
                                     uploads=spool.stats(self.run))
        except (OSError, ValueError):
            pass  # a missed heartbeat only makes the status look older

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.write()

    def __enter__(self):
        self.write()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.every + 1)


def make_collector(progress, metric: str, live, scheduler, *, run, session: int, heartbeat,
                   max_epochs: int, cells, mode: str | None = None):
    """The launch's Tune callback; ``mode`` ("max" or "min", default the progress view's)
    picks each trial's best epoch by ``metric``."""
    from ray import tune

    class Collector(tune.Callback):
        """Keeps every seed's reported epochs on the driver, drives the progress view and
        journals every cell that ends.

        Nothing here is closed over: Tune pickles callbacks (class included) into its
        experiment state, and the console inside the live view cannot be pickled."""

        def __init__(self, progress, metric, live, scheduler, run, session, heartbeat,
                     max_epochs, cells, mode):
            self.progress, self.metric, self.live = progress, metric, live
            self.mode = mode or getattr(progress, "mode", "max")
            self.scheduler, self.run, self.session = scheduler, run, session
            self.heartbeat, self.max_epochs = heartbeat, max_epochs
            self.cells = {c.key: c for c in cells}
            self.reports: dict[str, list] = {}
            self.errors: dict[str, str] = {}
            self.resumed: dict[str, int] = {}  # trial id -> epoch it was continued from
            self.continued: dict[str, int] = {}  # confirmations, set by the driver
            self.ended: set[str] = set()
            self.warned: set[str] = set()  # cells whose checkpoint writes failed, told once
            self.keeping = False  # parts are being kept on this machine (told once)

        def __getstate__(self):
            return {}  # what this holds only means something in this driver process

        @staticmethod
        def _ids(trial) -> list[str]:
            return [t["trial_id"] for t in trial.config["cell"]["trials"]]

        def on_trial_start(self, iteration, trials, trial, **info):
            for tid in self._ids(trial):
                self.progress.start(tid)
            self.heartbeat.running[trial.config["cell"]["key"]] = 0
            self.live()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            for tid, m in (result.get("per_seed") or {}).items():
                keep = {**{k: m.get(k) for k in _KEEP}, **own_metrics(m)}
                got = self.reports.setdefault(tid, [])
                e = int(m["epoch"])
                del got[e - 1:]  # a retried or resumed cell reports its epochs again
                got.append(keep)
                if m.get("resumed_from") and not m.get("replayed"):
                    self.resumed[tid] = int(m["resumed_from"])
                if not m.get("replayed"):
                    self.progress.result(m.get(self.metric))
                    self.heartbeat.epochs += 1
            for tid, text in (result.get("seed_errors") or {}).items():
                if tid not in self.errors:
                    self.errors[tid] = text
            key = trial.config["cell"]["key"]
            self.heartbeat.running[key] = int(result.get("epoch", 0))
            if result.get("storage_warning") and key not in self.warned:
                self.warned.add(key)
                print(f"warning: {result['storage_warning']}", file=sys.stderr)
            self.live()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._end(trial, None)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._end(trial, error_text(trial))

        def _end(self, trial, error):
            key = trial.config["cell"]["key"]
            self.heartbeat.running.pop(key, None)
            rows = []
            for tid in self._ids(trial):
                if error and tid not in self.errors:
                    self.errors[tid] = error
                n = len(self.reports.get(tid, []))
                status = trial_status(n, self.max_epochs, self.errors.get(tid),
                                      self.stopped_by_scheduler(tid))
                rows.append(status)
                if tid in self.ended:  # a confirmation continued a stopped trial
                    self.progress.reclassify(tid, "stopped_early", status or "interrupted")
                    continue
                self.ended.add(tid)
                self.progress.finish(tid, status or "interrupted")
            if all(s is not None for s in rows):
                self._journal(key)
            self.live()

        def _journal(self, key: str) -> None:
            trials, epochs = [], []
            for t in self.cells[key].trials:
                reports = self.reports.get(t.trial_id, [])
                row = self.row(t)
                trials.append(row)
                epochs.extend(epoch_rows(t.trial_id, reports))
            text = journal.part_text(key, trials, epochs, self.session)
            try:
                how = spool.put(self.run, journal.part_file(self.run, key), text.encode())
            except OSError as e:  # the spool's own disk: the store at the end still has it
                print(f"warning: could not journal a finished cell: {e}", file=sys.stderr)
                return
            if how == "kept":
                if not self.keeping:
                    print(f"warning: {self.run} does not answer: finished cells are kept "
                          f"in {spool.spool_dir(self.run)} and uploaded when it answers "
                          "again", file=sys.stderr)
                self.keeping = True
                return  # its checkpoints stay until the part is up (the end tidies them)
            self.keeping = False
            try:
                ckpts = self.run.child(CHECKPOINTS)
                for t, row in zip(self.cells[key].trials, trials):
                    if row["status"] != "stopped_early":  # only those may be continued
                        checkpoint_of(ckpts, t.trial_id, t.config["framework"]).delete_file()
                        history_of(ckpts, row["trial_id"]).delete_file()
            except (OSError, ValueError):
                pass  # the tidy-up at the end deletes them

        def row(self, t) -> dict | None:
            reports = self.reports.get(t.trial_id, [])
            start = self.continued.get(t.trial_id) or self.resumed.get(t.trial_id)
            return trial_row(t, reports, max_epochs=self.max_epochs,
                             error=self.errors.get(t.trial_id),
                             stopped_by_scheduler=self.stopped_by_scheduler(t.trial_id),
                             continued_from=start or None, metric=self.metric,
                             mode=self.mode)

        def stopped_by_scheduler(self, tid: str) -> bool:
            return self.scheduler is not None and tid in self.scheduler.stopped_trials

    return Collector(progress, metric, live, scheduler, run, session, heartbeat, max_epochs,
                     cells, mode)
