"""Cells: a configuration with all its seeds, the unit gridrun schedules. Pure bookkeeping
(no Ray, no framework): grouping trials into cells, and turning the per-seed epoch reports a
cell produced into trials.parquet and epochs.parquet rows.

    >>> from gridrun import Ablation, Factor
    >>> from gridrun.design.grid import expand
    >>> a = Ablation(name="x", dataset="digits", factors=[Factor("batchnorm", [False, True])],
    ...              seeds=2)
    >>> [len(c.trials) for c in cells_of(expand(a))]
    [2, 2]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from gridrun.design.grid import Trial
from gridrun.design.schedule import cell_key
from gridrun.store.tables import NOT_EPOCH_COLUMNS, metric_columns, spec_metric, trials_schema

__all__ = ["Cell", "cells_of", "trial_status", "trial_row", "epoch_rows", "cell_progress",
           "collect_rows", "stored_rows", "as_report", "own_metrics", "EPOCH_KEYS"]

EPOCH_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "rss_mb")
_NOT_OWN = NOT_EPOCH_COLUMNS | set(EPOCH_KEYS)


def own_metrics(report: Mapping[str, Any]) -> dict:
    """The metrics of a trainer's own in one epoch's report: every number (not a flag, not
    a built-in metric, not bookkeeping such as elapsed or resumed_from)."""
    return {k: v for k, v in report.items() if k not in _NOT_OWN and _is_number(v)}


def _is_number(v) -> bool:
    if isinstance(v, bool) or hasattr(v, "dtype") and v.dtype.kind == "b":
        return False  # flags (early_stopped) are not metrics
    return isinstance(v, (int, float)) or hasattr(v, "dtype") and v.dtype.kind in "iuf"


@dataclass(frozen=True)
class Cell:
    """One configuration and its trials (one per seed), in seed order."""

    key: str
    levels: Mapping[str, Any]
    config: Mapping[str, Any]
    trials: tuple[Trial, ...]


def cells_of(trials: Sequence[Trial]) -> list[Cell]:
    """Group trials by configuration, keeping the design's order."""
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        groups.setdefault(cell_key(t.levels), []).append(t)
    return [Cell(k, ts[0].levels, ts[0].config, tuple(sorted(ts, key=lambda t: t.seed)))
            for k, ts in groups.items()]


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


def _best(reports, metric: str, mode: str) -> tuple[float | None, int | None]:
    """(best value, its index) of ``metric`` over the reports, by ``mode``; the first on a
    tie; (None, None) when no epoch reported a finite value."""
    vals = [(r.get(metric), i) for i, r in enumerate(reports)]
    finite = [(v, i) for v, i in vals if v is not None and math.isfinite(v)]
    if not finite:
        return None, None
    pick = max if mode == "max" else min
    return pick(finite, key=lambda t: t[0])


def trial_row(trial: Trial, reports: list[Mapping[str, Any]], *, max_epochs: int,
              error: str | None = None, stopped_by_scheduler: bool = False,
              wall_seconds: float | None = None, continued_from: int | None = None,
              metric: str = "val_acc", mode: str = "max") -> dict | None:
    """The trials.parquet row of one trial, from the metrics it reported (one per epoch);
    None for a trial that was cut off by an interrupted launch. ``continued_from`` is the
    epoch of the checkpoint a confirmation continued it from (None: never stopped).
    ``metric`` and ``mode`` (the spec's) choose best_epoch; a metric other than val_acc
    adds its ``last_``/``best_`` columns (``metric_columns``)."""
    best_val, _ = _best(reports, "val_acc", mode if metric == "val_acc" else "max")
    best_m, best_i = _best(reports, metric, mode)
    last = reports[-1] if reports else {}
    status = trial_status(len(reports), max_epochs, error, stopped_by_scheduler)
    if status is None:
        return None
    own = dict(zip(metric_columns(metric), (last.get(metric), best_m)))
    return {
        "trial_id": trial.trial_id, **trial.levels, "seed": trial.seed, "status": status,
        "epochs_run": len(reports), "last_val_acc": last.get("val_acc"),
        "best_val_acc": best_val, **own,
        "best_epoch": None if best_i is None else int(reports[best_i]["epoch"]),
        "test_acc": last.get("test_acc") if status == "completed" else None,
        "params": last.get("params"),
        "wall_seconds": last.get("elapsed", wall_seconds) if reports else wall_seconds,
        "error": error, "continued_from": continued_from, "node": last.get("node"),
    }


def epoch_rows(trial_id: str, reports: list[Mapping[str, Any]]) -> list[dict]:
    """The epochs.parquet rows of one trial: the built-in metrics (None where not
    reported), the epoch's seconds, and every metric of the trainer's own."""
    return [{"trial_id": trial_id, "epoch": int(r["epoch"]),
             **{k: r.get(k) for k in EPOCH_KEYS}, "seconds": r.get("epoch_seconds"),
             **own_metrics(r)}
            for r in reports]


def cell_progress(cell: Cell, reports: Mapping[str, list], errors: Mapping[str, str],
                  metric: str) -> dict:
    """How far a cell got: {"reached": the last epoch every live seed reported (0 when every
    seed errored), "value": the seeds' mean ``metric`` there, "error": every seed errored}.
    The input of ``gridrun.design.schedule.cells_to_confirm``."""
    live = [t for t in cell.trials if t.trial_id not in errors]
    if not live:
        return {"reached": 0, "value": None, "error": True}
    reached = min(len(reports.get(t.trial_id, [])) for t in live)
    if reached == 0:
        return {"reached": 0, "value": None, "error": False}
    vals = [reports[t.trial_id][reached - 1].get(metric) for t in live]
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return {"reached": reached, "value": sum(vals) / len(vals) if vals else None,
            "error": False}


def stored_rows(run, trials) -> dict:
    """{trial_id: (trials.parquet row, its epochs rows)} of a stored run, for the trials the
    spec still expands to."""
    ids = {t.trial_id for t in trials}
    rows = {r["trial_id"]: {k: (None if _isna(v) else v) for k, v in r.items()}
            for r in run.trials.to_dict("records") if r["trial_id"] in ids}
    eps: dict[str, list] = {}
    for r in run.epochs.sort_values(["trial_id", "epoch"]).to_dict("records"):
        if r["trial_id"] in rows:
            eps.setdefault(r["trial_id"], []).append(
                {k: (None if _isna(v) else v) for k, v in r.items()})
    kinds = (run.spec.get("plugins") or {}).get("factors")
    known = set(trials_schema(list(run.spec["factors"]), kinds,
                              metric=spec_metric(run.spec)[0]).names)
    return {tid: ({k: v for k, v in row.items() if k in known}, eps.get(tid, []))
            for tid, row in rows.items()}


def _isna(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def as_report(epoch_row: Mapping[str, Any]) -> dict:
    """An epochs.parquet row back in the shape the trainer reports, with the trainer's own
    metrics (those this trial reported: another trial's column is null here)."""
    return {"epoch": int(epoch_row["epoch"]), **{k: epoch_row.get(k) for k in EPOCH_KEYS},
            "epoch_seconds": epoch_row.get("seconds"), **own_metrics(epoch_row)}


def collect_rows(trials, collector, previous):
    """One row per trial that finished (an interrupted run keeps the trials that completed,
    were stopped by the scheduler or failed before the interrupt). A trial not run here
    keeps its ``previous`` row (from the journal of earlier sessions, or the store of a run
    being confirmed)."""
    rows, epochs = [], []
    for t in trials:
        if t.trial_id not in collector.ended:
            if t.trial_id in previous:
                row, eps = previous[t.trial_id][:2]
                rows.append(row)
                epochs.extend(eps)
            continue
        row = collector.row(t)
        if row is not None:
            rows.append(row)
            epochs.extend(epoch_rows(t.trial_id, collector.reports.get(t.trial_id, [])))
    return rows, epochs
