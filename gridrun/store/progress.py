"""A run read back in whatever state it is in: complete, running, stalled or killed.

A complete run is its three files (``tables.read_run``). Until then the finished cells are in
the journal (``parts/``, one file per cell as it ends) and, after an interrupted session, in
an earlier run.json and its tables. ``read_progress`` merges them (the journal is newer) into
the same ``Run`` the analysis reads, with ``info["partial"]`` saying how far the run is, so
``gridrun report`` can print the tables of the cells finished so far. Nothing is written.
"""

from __future__ import annotations

from typing import Any, Mapping

from gridrun.store import journal
from gridrun.store.location import Location, StorageError
from gridrun.store.tables import (RUN_FILE, Run, StoreError, _table, epochs_schema, read_run,
                                  spec_metric, trials_schema)

__all__ = ["read_progress"]


def read_progress(run_dir) -> Run:
    """The run at ``run_dir`` as far as it got. A complete run reads as ``read_run`` does;
    any other has ``info["partial"]``: {"state": running | stalled | interrupted, "cells",
    "cells_done", "trials", "trials_done", "sessions"}. StoreError names what is missing
    when the folder holds no run at all."""
    try:
        loc = run_dir if isinstance(run_dir, Location) else Location(run_dir)
        if not loc.is_dir():
            raise StoreError(f"{run_dir}: no such run folder")
        info, launched = journal.read_state(loc)
        if journal.is_complete(info, launched) or (info is not None and launched is None):
            return read_run(loc)
        if launched is None:
            raise StoreError(f"{run_dir}: missing {RUN_FILE} and launch.json; is this a "
                             "gridrun run folder?")
        parts = journal.read_parts(loc)
        heartbeat = journal.read_heartbeat(loc)
    except StorageError as e:
        raise StoreError(f"{run_dir}: cannot read the run ({e})") from None
    rows = {}
    if info is not None and journal.same_spec(info["spec"], launched["spec"]):
        rows.update(_stored(read_run(loc)))  # an interrupted session's store
    rows.update({tid: (row, eps) for tid, (row, eps, _) in parts.items()})
    if (heartbeat or {}).get("state") == "running":
        info = None  # a resumed session is running: its journal is the news
    status = journal.run_status(launched, {t: (*v, 0) for t, v in rows.items()}, heartbeat,
                                info)
    return _as_run(loc, launched, rows, status)


def _stored(run: Run) -> dict:
    eps: dict[str, list] = {}
    for r in run.epochs.sort_values(["trial_id", "epoch"]).to_dict("records"):
        eps.setdefault(r["trial_id"], []).append(r)
    return {r["trial_id"]: (r, eps.get(r["trial_id"], [])) for r in run.trials.to_dict("records")}


def _as_run(loc: Location, launched: Mapping[str, Any], rows: Mapping[str, tuple],
            status: journal.RunStatus) -> Run:
    """The finished trials of a run in progress as the store's two tables, with their types
    (the same schemas ``write_run`` uses, so the analysis sees what it would see later)."""
    spec = launched["spec"]
    ids = [tid for ids in launched["cells"].values() for tid in ids]
    order = [tid for tid in ids if tid in rows]  # the grid's order, as write_run keeps it
    kinds = (spec.get("plugins") or {}).get("factors")
    t_schema = trials_schema(list(spec["factors"]), kinds, metric=spec_metric(spec)[0])
    trials = [_plain({k: v for k, v in rows[t][0].items() if k in t_schema.names})
              for t in order]
    epochs = [_plain(e) for t in order for e in rows[t][1]]
    e_table = _table(epochs, epochs_schema(k for r in epochs for k in r))
    cells = launched["cells"]
    done = sum(all(t in rows for t in ids) for ids in cells.values())
    partial = {"state": status.state, "cells": len(cells), "cells_done": done,
               "trials": len(ids), "trials_done": len(order),
               "sessions": status.sessions, "gone": status.gone}
    info = {"spec": spec, "spec_file": launched.get("spec_file"), "complete": False,
            "trials_expected": len(ids), "trials_written": len(order), "partial": partial,
            "sessions": launched.get("sessions", [])}
    path = loc.local_path if loc.is_local else loc
    return Run(path, _table(trials, t_schema).to_pandas(), e_table.to_pandas(), info)


def _plain(row: Mapping[str, Any]) -> dict:
    """A row as the store keeps it: a NaN read back from a table is a null again, and numpy
    scalars are plain Python."""
    out = {}
    for k, v in row.items():
        v = v.item() if hasattr(v, "item") else v
        out[k] = None if isinstance(v, float) and v != v else v
    return out
