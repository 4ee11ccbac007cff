"""The run folder of a launch: where it is, whether it holds a run to continue or one to
leave alone, what earlier sessions finished, and the record of each session (launch.json).
No Ray; ``launch`` calls these.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
from pathlib import Path

from gridrun import store
from gridrun.store import claim, journal, spool
from gridrun.run.cells import stored_rows
from gridrun.store.location import Location, StorageError

__all__ = ["RunExistsError", "run_location", "prepare_run_dir", "check_no_live_driver",
           "check_storage", "claimed", "finished_before", "launch_record", "tidy", "shown"]


class RunExistsError(ValueError):
    """The output folder already holds a run that cannot be continued, or a driver is
    running it now."""


def run_location(name: str, run_dir=None, storage=None) -> Location:
    """Where a run goes: ``run_dir`` (a path or URI) when given, else ``<storage>/<name>``,
    else ``runs/<name>``."""
    if run_dir is not None and storage is not None:
        raise RunExistsError("give --out (the run folder) or --storage (where run folders "
                             "go), not both")
    try:
        if run_dir is not None:
            return Location(run_dir)
        return Location(storage if storage is not None else "runs").child(name)
    except StorageError as e:
        raise store.StoreError(str(e)) from None


def shown(loc: Location):
    """The run folder as the user named it: a Path, or the URI."""
    return Path(loc.text) if loc.is_local and "://" not in loc.text else loc


def check_storage(loc: Location) -> None:
    """An object store that cannot be written (no such bucket, refused credentials, no
    endpoint) fails here, before Ray starts, with one line and nothing written."""
    if loc.is_local:
        return  # a folder's problems are clear from its first write
    try:
        loc.check_writable()
    except StorageError as e:
        raise store.StoreError(str(e)) from None


@contextlib.contextmanager
def claimed(loc: Location):
    """This process drives the run at ``loc`` until the block ends; RunExistsError when
    another live driver has it (``gridrun.store.claim``: safe on S3 without atomic rename)."""
    try:
        mine = claim.acquire(loc)
    except claim.RunClaimed as e:
        raise RunExistsError(str(e)) from None
    except StorageError as e:
        raise store.StoreError(str(e)) from None
    try:
        yield mine
    finally:
        mine.release()


# -- is this a new run, a run to continue, or one to leave alone? --------------------------
def check_no_live_driver(loc: Location) -> None:
    hb = journal.read_heartbeat(loc)
    if not hb or hb.get("state") != "running":
        return
    age = (dt.datetime.now(dt.timezone.utc)
           - dt.datetime.fromisoformat(hb["at"])).total_seconds()
    if hb.get("host") == socket.gethostname():
        if journal.driver_gone(hb):
            return
        alive = int(hb["pid"]) != os.getpid()
    else:
        alive = age < 2 * 5.0 + 20  # a few missed heartbeats
    if alive:
        raise RunExistsError(f"{loc} is being run by another driver (host {hb.get('host')}, "
                             f"pid {hb.get('pid')}, heartbeat {age:.0f} s ago); watch it "
                             f"with: gridrun status {loc}")


def added_seeds(stored: dict, ablation) -> tuple[int, int] | None:
    """(seeds stored, seeds asked) when ``ablation`` is the stored spec with another number
    of seeds. With more, the run can grow: its finished trials keep their results (trial ids
    do not depend on the number of seeds) and only the new seeds train; fewer is refused
    (``_check_growth``). None when the specs are the same or differ otherwise.

    Growing needs every cell to run to the full budget; under ASHA a new seed would join
    cells that were judged, and some stopped, on the old seeds alone.

    >>> from gridrun import Ablation, Factor
    >>> a = Ablation(name="g", dataset="digits", factors=[Factor("dropout", [0.0, 0.3])],
    ...              seeds=2)
    >>> added_seeds(a.to_dict(), Ablation(**{**a.__dict__, "seeds": 5}))
    (2, 5)
    >>> added_seeds(a.to_dict(), Ablation(**{**a.__dict__, "seeds": 5, "name": "h"})) is None
    True
    """
    new = json.loads(journal.canonical_spec(ablation.to_dict()))
    old = json.loads(journal.canonical_spec(stored))
    if old.get("seeds", 1) == new["seeds"]:
        return None
    if {**old, "seeds": new["seeds"]} != new:
        return None
    return int(old.get("seeds", 1)), int(new["seeds"])


def _check_growth(loc: Location, ablation, seeds: tuple[int, int]) -> None:
    from gridrun.design.schedule import anchors_of

    before, after = seeds
    if after < before:
        raise RunExistsError(f"{loc} holds this spec with {before} seeds; asking for {after} "
                             "would drop finished trials; pass --overwrite to start again "
                             "with fewer, or --out to write elsewhere")
    if ablation.scheduler is not None and not anchors_of(ablation).is_all:
        raise RunExistsError(f"{loc}: seeds can be added only to a run without early "
                             "stopping (scheduler=None): ASHA judged this run's cells on "
                             f"{before} seeds; pass --overwrite to run all {after} seeds "
                             "again, or --out to write elsewhere")


def prepare_run_dir(loc: Location, ablation, overwrite: bool) -> bool:
    """True when ``loc`` holds a run to continue: an unfinished run of this spec, or a run
    of this spec with fewer seeds (it grows; see ``added_seeds``). False for a new run
    (after removing what --overwrite replaces)."""
    if overwrite:
        try:  # all but the claims: this driver's, and any that is just arriving
            names = loc.list()
            for name in names if claim.CLAIMS in names else []:
                if name != claim.CLAIMS:
                    loc.child(name).delete()
            if claim.CLAIMS not in names:
                loc.delete()
        except StorageError as e:
            raise store.StoreError(str(e)) from None
        spool.discard(loc)
        return False
    info, launched = journal.read_state(loc)
    if info is None and launched is None:
        for name in (store.CHECKPOINTS, journal.PARTS, journal.HEARTBEAT):
            loc.child(name).delete()  # leftovers of no run
        return False
    spec = (launched or info)["spec"]
    grow = added_seeds(spec, ablation)
    if grow is not None:
        _check_growth(loc, ablation, grow)
    elif journal.is_complete(info, launched):
        raise RunExistsError(f"{loc} already holds a complete run; pass --overwrite to "
                             "replace it or --out to write elsewhere")
    elif not journal.same_spec(spec, ablation.to_dict()):
        raise RunExistsError(f"{loc} holds an unfinished run of a different spec "
                             f"({spec.get('name')}); pass --overwrite to replace it, or "
                             "--out to write elsewhere")
    check_no_live_driver(loc)
    return True


def finished_before(loc: Location, trials) -> dict:
    """{trial_id: (row, epoch rows)} of every trial an earlier session of the run finished:
    the store of an interrupted session, then the journal (newer), after uploading the
    cells an earlier session on this machine kept while the storage did not answer."""
    spool.flush(loc)
    previous = {}
    if loc.child(store.RUN_FILE).is_file():
        previous.update(stored_rows(store.read_run(loc), trials))
    ids = {t.trial_id for t in trials}
    previous.update({tid: (row, eps) for tid, (row, eps, _) in journal.read_parts(loc).items()
                     if tid in ids})
    return previous


def launch_record(loc, ablation, trials, cells, spec_path, anchors, started_at) -> list:
    """Write launch.json with this session added; returns every session so far (this one
    last)."""
    from gridrun.design.schedule import scheduled_epochs

    launched = journal.read_launch(loc) or {}
    sessions = list(launched.get("sessions", []))
    sessions.append({"started_at": started_at.isoformat(), "host": socket.gethostname(),
                     "pid": os.getpid(), "command": " ".join(sys.argv)})
    expected = len(trials) * ablation.epochs
    if ablation.scheduler is not None and not anchors.is_all:
        expected = scheduled_epochs(ablation, anchors) * ablation.seeds
    journal.write_launch(loc, {
        "spec": ablation.to_dict(), "spec_file": str(spec_path) if spec_path else None,
        "trials": len(trials), "cells": {c.key: [t.trial_id for t in c.trials] for c in cells},
        "metric": ablation.metric, "mode": ablation.mode, "max_epochs": ablation.epochs,
        "expected_epochs": expected, "sessions": sessions})
    return sessions


def tidy(loc: Location, rows) -> None:
    """A complete run needs no journal, nor the checkpoints of trials that reached the end
    (those of stopped trials stay: ``gridrun confirm`` continues them)."""
    try:
        journal.clear(loc)
        ckpts = loc.child(store.CHECKPOINTS)
        done = {r["trial_id"] for r in rows if r["status"] != "stopped_early"}
        # one listing, then only what is there: a trial's checkpoint (.pt for torch, .npz
        # for Keras) and its history are "<trial id>.<suffix>"
        for name in ckpts.list():
            if name.split(".")[0] in done:
                ckpts.child(name).delete_file()
    except StorageError as e:
        print(f"warning: could not tidy {loc}: {e}", file=sys.stderr)
