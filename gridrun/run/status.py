"""``gridrun status RUN``: how a run is doing, read from its storage alone (the journal while
it runs, the store once it has one), so a grid running in a RayJob or on a cloud cluster can
be watched from a laptop. No Ray, no framework.
"""

from __future__ import annotations

import socket
import time
from typing import Iterator

from gridrun import store
from gridrun.store import journal, spool
from gridrun.store.location import Location, StorageError
from gridrun.store.tables import spec_metric

__all__ = ["status_text", "read_status", "watch_status"]


def _from_store(loc: Location):
    """(parts-like {trial_id: (row, epochs, 0)}, run.json) of a run's store."""
    run = store.read_run(loc)
    eps: dict[str, list] = {}
    for r in run.epochs.sort_values(["trial_id", "epoch"]).to_dict("records"):
        eps.setdefault(r["trial_id"], []).append(r)
    parts = {r["trial_id"]: (r, eps.get(r["trial_id"], []), 0)
             for r in run.trials.to_dict("records")}
    return parts, run.info


def _launch_of_store(info: dict, parts: dict) -> dict:
    """A launch record for a run that has none (made before runs kept a journal): one cell
    per stored trial, since the spec's trials are all that can be known."""
    metric, mode = spec_metric(info["spec"])  # the spec says whether smaller is better
    return {"spec": info["spec"], "cells": {tid: [tid] for tid in parts},
            "metric": metric, "mode": mode,
            "expected_epochs": None, "sessions": [{"started_at": info.get("started_at")}]}


def read_status(run: str, cache: dict | None = None) -> journal.RunStatus:
    """The status of the run at ``run`` (a path or URI); ``cache``: see
    ``journal.read_parts``."""
    try:
        loc = Location(run)
        if not loc.is_dir():
            raise store.StoreError(f"{run}: no such run folder")
        info, launched = journal.read_state(loc)
        parts = journal.read_parts(loc, cache)
        heartbeat = journal.read_heartbeat(loc)
    except (StorageError, ValueError) as e:
        raise store.StoreError(f"{run}: cannot read the run ({e})") from None
    here = spool.pending(loc)  # kept on this machine: newer news than the heartbeat's
    if here and heartbeat is not None and heartbeat.get("host") == socket.gethostname():
        heartbeat = {**heartbeat, "uploads": {**(heartbeat.get("uploads") or {}),
                                              "waiting": here}}
    if launched is None and info is None:
        raise store.StoreError(f"{run}: not a gridrun run folder (no launch.json or "
                               "run.json)")
    if info is not None and (info.get("complete") or not parts):
        stored, info = _from_store(loc)
        parts = {**stored, **parts}
    if launched is None:
        launched = _launch_of_store(info, parts)
    if info is not None and not info.get("complete") and heartbeat \
            and heartbeat.get("state") == "running":
        info = None  # a resumed session is running: its journal is the news
    return journal.run_status(launched, parts, heartbeat, info)


def status_text(run: str) -> str:
    return read_status(run).text()


# A watch ends with the run: complete, interrupted, or its driver known to be gone.
_ENDED = ("complete", "interrupted")


def watch_status(run: str, every: float | None) -> Iterator[str]:
    """The status text of ``run``, once (``every`` None), or again every ``every`` seconds
    until the run has ended (complete, interrupted, or its driver is gone)."""
    cache: dict = {}  # the parts read so far: each poll fetches only the new ones
    while True:
        s = read_status(run, cache)
        yield s.text()
        if every is None or s.state in _ENDED or s.gone:
            return
        time.sleep(every)
