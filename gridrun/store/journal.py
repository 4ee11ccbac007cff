"""The journal of a run in progress, kept in its run folder so nothing finished is lost:

- ``launch.json``: the spec and the grid's size, written when a launch starts, with one
  entry per session (the first launch and every resume);
- ``parts/<cell>.json``: the trials.parquet and epochs.parquet rows of one cell, written
  the moment the cell ends (completed, stopped by ASHA or failed);
- ``heartbeat.json``: what the driver is doing, rewritten every few seconds.

A killed driver loses only the epochs in flight (and those continue from their
checkpoints). ``gridrun launch`` on the same spec and folder, or ``gridrun resume``, runs only
the cells without a part; ``gridrun status`` reads these files, from wherever the run is
stored. Pure functions over a ``Location``: no Ray, no framework.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import socket
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from gridrun.store import spool
from gridrun.store.location import Location
from gridrun.store.tables import spec_metric

__all__ = ["LAUNCH_FILE", "PARTS", "HEARTBEAT", "part_name", "part_file", "part_text",
           "write_part", "read_parts",
           "write_launch", "read_launch", "read_state", "write_heartbeat", "read_heartbeat",
           "driver_gone", "RunStatus",
           "run_status", "now_iso", "clear"]

LAUNCH_FILE, PARTS, HEARTBEAT = "launch.json", "parts", "heartbeat.json"
STALE_SECONDS = 60.0  # a heartbeat older than this: the driver is probably gone


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _json(obj) -> str:
    return json.dumps(obj, indent=1, default=_plain, allow_nan=True) + "\n"


def _plain(v):
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return str(v)


def part_name(cell_key: str) -> str:
    """The part file of a cell: a stable hash of its key (keys hold any characters)."""
    return hashlib.sha1(cell_key.encode()).hexdigest()[:20] + ".json"


def part_file(run: Location, cell_key: str) -> Location:
    return run.child(PARTS, part_name(cell_key))


def part_text(cell_key: str, trials: Sequence[Mapping], epochs: Sequence[Mapping],
              session: int) -> str:
    return _json({"cell": cell_key, "session": session, "ended_at": now_iso(),
                  "trials": list(trials), "epochs": list(epochs)})


def write_part(run: Location, cell_key: str, trials: Sequence[Mapping],
               epochs: Sequence[Mapping], session: int) -> None:
    part_file(run, cell_key).write_text(part_text(cell_key, trials, epochs, session))


def read_parts(run: Location, cache: dict | None = None
               ) -> dict[str, tuple[dict, list[dict], int]]:
    """{trial_id: (trials row, epochs rows, session)} of every cell that has ended. A part
    that cannot be parsed (a write cut off on storage without atomic writes) is skipped:
    its cell runs again. ``cache`` (a dict kept by the caller between reads, as ``gridrun
    status --watch`` does) holds the parts read before with their modification times, so
    a read after the first fetches only new or rewritten parts: one listing and a few GETs
    on an object store, instead of one GET per cell."""
    out = {}
    folder = run.child(PARTS)
    cache = {} if cache is None else cache
    listed = folder.files()  # one listing; a missing folder lists nothing
    for name in [n for n in cache if n not in listed]:
        del cache[name]
    for name, mtime in sorted(listed.items()):
        if not name.endswith(".json"):
            continue
        if name in cache and mtime is not None and cache[name][0] == mtime:
            part = cache[name][1]
        else:
            try:
                part = json.loads(folder.child(name).read_text())
            except (ValueError, OSError):
                continue
            cache[name] = (mtime, part)
        eps: dict[str, list] = {}
        for e in part["epochs"]:
            eps.setdefault(e["trial_id"], []).append(e)
        for row in part["trials"]:
            out[row["trial_id"]] = (row, eps.get(row["trial_id"], []), part.get("session", 0))
    return out


def write_launch(run: Location, info: Mapping[str, Any]) -> None:
    run.child(LAUNCH_FILE).write_text(_json(info))


def _read_json(f: Location) -> dict | None:
    """A journal file, or None when it is absent or torn (written half on storage without
    atomic writes)."""
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except ValueError:
        return None


def read_launch(run: Location) -> dict | None:
    return _read_json(run.child(LAUNCH_FILE))


def read_state(run: Location) -> tuple[dict | None, dict | None]:
    """(run.json, launch.json) of a run folder, each None when absent; StoreError when the
    folder cannot be read or run.json is not JSON."""
    from gridrun.store import tables as store

    try:
        info_file = run.child(store.RUN_FILE)
        info = json.loads(info_file.read_text()) if info_file.is_file() else None
        return info, read_launch(run)
    except (OSError, ValueError) as e:  # StorageError is a ValueError
        raise store.StoreError(f"{run}: cannot read the run folder ({e})") from None


def canonical_spec(spec: Mapping[str, Any]) -> str:
    """A spec as it reads back from JSON, so a live spec compares equal to a stored one."""
    return json.dumps(json.loads(json.dumps(spec, default=str)), sort_keys=True)


def same_spec(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return canonical_spec(a) == canonical_spec(b)


def is_complete(info: Mapping | None, launched: Mapping | None) -> bool:
    """run.json says complete, and no later session (one adding seeds, cut off before it
    rewrote run.json) started with another spec."""
    return bool(info is not None and info.get("complete")
                and (launched is None or same_spec(info["spec"], launched["spec"])))


def write_heartbeat(run: Location, *, session: int, running: Mapping[str, int],
                    session_epochs: int, session_started: str,
                    state: str = "running", uploads: Mapping[str, int] | None = None) -> None:
    """``running``: {cell key: epochs its seeds have reported}; ``session_epochs``:
    trial-epochs trained by this session, which started at ``session_started`` (their rate
    gives the time left; the run's total comes from the parts); ``uploads``: the session's
    parts that needed retries or were kept on this host (``gridrun.store.spool.stats``)."""
    run.child(HEARTBEAT).write_text(_json(
        {"at": now_iso(), "host": socket.gethostname(), "pid": os.getpid(),
         "session": session, "state": state, "running": dict(running),
         "session_epochs": int(session_epochs),
         "session_started": session_started, "uploads": dict(uploads or {})}))


def read_heartbeat(run: Location) -> dict | None:
    return _read_json(run.child(HEARTBEAT))


def driver_gone(heartbeat: Mapping | None) -> bool:
    """The heartbeat's driver ran on this host and its process is gone (killed, or the
    machine restarted): known at once, without waiting for the heartbeat to grow stale. A
    driver on another host cannot be checked from here (False)."""
    hb = heartbeat or {}
    if hb.get("host") != socket.gethostname() or hb.get("pid") is None:
        return False
    try:
        os.kill(int(hb["pid"]), 0)
    except (ProcessLookupError, ValueError):
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def clear(run: Location) -> None:
    """Remove the journal once the run's store holds everything (a complete run)."""
    for name in (PARTS, HEARTBEAT):
        run.child(name).delete()


# -- status ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunStatus:
    """What ``gridrun status`` prints about a run, from its storage alone."""

    name: str
    state: str  # running, stalled, interrupted, complete
    trials: int
    counts: Mapping[str, int]  # completed / stopped_early / error / running / pending
    best: tuple[str, float, int] | None  # (cell key, seed-mean metric, epoch)
    metric: str
    elapsed: float | None  # seconds since the first session started (to now or the end)
    left: float | None  # seconds, estimated
    epochs_done: int
    epochs_expected: float | None
    heartbeat_age: float | None
    sessions: int
    gone: bool = False  # the driver's process is known to be gone (``driver_gone``)
    uploads: Mapping[str, Any] | None = None  # spool.stats of the session, and its host

    def text(self) -> str:
        c = self.counts
        lines = [f"{self.name}: {self.state}"
                 + (f" (session {self.sessions})" if self.sessions > 1 else ""),
                 f"trials: {self.trials} = " + ", ".join(
                     f"{c[k]} {k.replace('_', ' ')}" for k in
                     ("completed", "stopped_early", "error", "running", "pending")
                     if c.get(k))]
        if self.epochs_expected:
            lines.append(f"trial-epochs: {self.epochs_done} of about "
                         f"{self.epochs_expected:.0f} expected")
        if self.best is not None:
            key, value, epoch = self.best
            lines.append(f"best so far: {self.metric} {value:.4f} at epoch {epoch}: {key}")
        if self.elapsed is not None:
            left = f", about {_duration(self.left)} left" if self.left is not None else ""
            lines.append(f"elapsed: {_duration(self.elapsed)}{left}")
        if self.state == "stalled" and self.gone:
            lines.append("the driver is no longer running (killed?): gridrun resume RUN "
                         "continues it")
        elif self.state == "stalled":
            lines.append(f"no heartbeat for {_duration(self.heartbeat_age)}: the driver may "
                         "have stopped; gridrun resume RUN continues it")
        elif self.state == "interrupted":
            lines.append("interrupted: gridrun resume RUN continues it")
        lines.extend(spool.describe(self.uploads))
        return "\n".join(lines) + "\n"



def _level(v) -> str:
    if v is None or isinstance(v, float) and math.isnan(v):
        return "None"
    if hasattr(v, "item"):
        v = v.item()
    return f"{v:g}" if isinstance(v, float) else str(v)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _ts(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def run_status(launch: Mapping[str, Any], parts: Mapping[str, tuple], heartbeat: Mapping | None,
               run_info: Mapping | None, now: dt.datetime | None = None) -> RunStatus:
    """The status of a run from its journal (``launch``, ``parts``, ``heartbeat``) and its
    run.json when one was written (``run_info``). ``launch`` holds "spec", "trials",
    "cells" (key -> trial ids), "metric", "mode", "max_epochs", "expected_epochs",
    "sessions" (each with "started_at")."""
    now = now or dt.datetime.now(dt.timezone.utc)
    spec = launch["spec"]
    # a launch record names its metric and mode; older ones only the spec does
    metric, mode = spec_metric(spec)
    metric, mode = launch.get("metric") or metric, launch.get("mode") or mode
    cells: Mapping[str, Sequence[str]] = launch["cells"]
    n = sum(len(v) for v in cells.values())
    counts = {"completed": 0, "stopped_early": 0, "error": 0, "running": 0, "pending": 0}
    gone = (heartbeat or {}).get("state") == "running" and driver_gone(heartbeat)
    running = (heartbeat or {}).get("running", {}) \
        if (heartbeat or {}).get("state") == "running" and not gone else {}
    best = None
    epochs_done = 0
    for key, ids in cells.items():
        rows = [parts[t] for t in ids if t in parts]
        for row, eps, _ in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
            epochs_done += len(eps)
        if len(rows) < len(ids):
            k = "running" if key in running else "pending"
            counts[k] += len(ids) - len(rows)
            epochs_done += running.get(key, 0) * (len(ids) - len(rows))
        done = [(row, eps) for row, eps, _ in rows if row["status"] == "completed"]
        if done and len(done) == len(ids):
            vals = [eps[-1].get(metric) for _, eps in done if eps]
            vals = [v for v in vals if v is not None and math.isfinite(v)]
            if vals:
                v = sum(vals) / len(vals)
                better = best is None or (v > best[1] if mode == "max" else v < best[1])
                if better:
                    row = done[0][0]
                    what = ", ".join(f"{f}={_level(row.get(f))}" for f in spec["factors"])
                    best = (what or key, v, int(done[0][1][-1]["epoch"]))
    sessions = launch.get("sessions") or [{"started_at": launch.get("started_at")}]
    start = _ts(sessions[0].get("started_at"))
    hb_at = _ts((heartbeat or {}).get("at"))
    age = (now - hb_at).total_seconds() if hb_at else None
    complete = is_complete(run_info, launch)
    if complete:
        state = "complete"
    elif (heartbeat or {}).get("state") == "interrupted" or (run_info and not hb_at):
        state = "interrupted"
    elif (age is not None and age > STALE_SECONDS) or gone:
        state = "stalled"
    else:
        state = "running"
    if state == "complete" and run_info.get("finished_at"):
        end = _ts(run_info["finished_at"])
    elif state == "running":
        end = now
    else:
        end = hb_at or now
    elapsed = (end - start).total_seconds() if start else None
    expected = launch.get("expected_epochs")
    left = None
    hb = heartbeat or {}
    s_start, s_epochs = _ts(hb.get("session_started")), hb.get("session_epochs") or 0
    if state == "running" and expected and s_start and s_epochs:
        # the rate of this session's epochs, over what is still expected
        rate = s_epochs / max((now - s_start).total_seconds(), 1e-9)
        left = max(0.0, expected - epochs_done) / rate
    elif state == "complete":
        left = 0.0
    uploads = {**(hb.get("uploads") or {}), "host": hb.get("host")} \
        if hb.get("uploads") and not complete else None
    return RunStatus(name=spec["name"], state=state, trials=n, counts=counts, best=best,
                     metric=metric, elapsed=elapsed, left=left, epochs_done=epochs_done,
                     epochs_expected=expected, heartbeat_age=age, sessions=len(sessions),
                     gone=gone and not complete, uploads=uploads)
