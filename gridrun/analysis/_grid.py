"""``Grid``: a run's trials laid out as configuration x seed x epoch arrays.

Every estimator reads a ``Grid``. A configuration is the tuple of factor levels, coded as
level indices in the spec's order; ``keys`` number configurations in mixed radix (first
factor most significant) so that "the same configuration with factor i at level l" is one
addition. Errored trials stay in the grid (``error``) so they can be counted, but have no
values and never reach any budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gridrun.store.tables import default_mode, spec_metric

__all__ = ["Grid", "prepare", "METRICS", "mode_of", "metric_of", "metrics_of"]

# The built-in metrics; a run whose trainer reports its own may use any of its epochs
# columns (``metrics_of``).
METRICS = ("val_acc", "val_loss", "train_acc", "train_loss", "gap")
_NOT_METRICS = ("trial_id", "epoch", "seconds", "rss_mb", "lr")  # lr: what a schedule set
_TRIAL_COLUMNS = ("trial_id", "seed", "status", "epochs_run")


@dataclass(frozen=True, eq=False)
class Grid:
    """The arrays behind every estimate (C configurations, S seeds, E epochs).

    ``configs`` (C, k) level indices; ``keys`` (C,) their sorted mixed-radix numbers;
    ``present``/``error`` (C, S) a trial exists / it errored; ``reach`` (C, S) epochs run
    (0 when absent or errored); ``values`` (C, S, E) the metric at each epoch (NaN when not
    reached); ``params``/``wall_seconds``/``test_acc``/``completed`` (C, S) per-trial outcomes.
    """

    factors: tuple[str, ...]
    levels: tuple[tuple, ...]
    baseline: tuple[int, ...]
    target: tuple[int, ...]
    design: str
    order: tuple[str, ...] | None
    metric: str
    mode: str
    epochs: int
    scheduler: Mapping[str, Any] | None
    configs: np.ndarray
    keys: np.ndarray
    strides: np.ndarray
    seeds: np.ndarray
    present: np.ndarray
    error: np.ndarray
    reach: np.ndarray
    values: np.ndarray
    params: np.ndarray
    wall_seconds: np.ndarray
    test_acc: np.ndarray
    completed: np.ndarray
    _usable: dict = field(default_factory=dict, repr=False, compare=False)

    def usable(self, budget: int) -> np.ndarray:
        """(C, S) mask: the trial exists, did not error, reached ``budget`` with a finite
        value. Cached per budget (estimators ask for the same few budgets many times)."""
        if budget not in self._usable:
            self._usable[budget] = (self.reach >= budget) & np.isfinite(
                self.values[:, :, budget - 1])
        return self._usable[budget]

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Row index of each configuration key, -1 where the configuration is absent."""
        keys = np.asarray(keys, dtype=np.int64)
        pos = np.searchsorted(self.keys, keys).clip(0, max(len(self.keys) - 1, 0))
        hit = self.keys[pos] == keys if len(self.keys) else np.zeros(keys.shape, bool)
        return np.where(hit, pos, -1)

    def key(self, codes) -> int:
        return int(np.dot(np.asarray(codes, dtype=np.int64), self.strides))

    def named(self, codes) -> dict:
        """Level indices -> {factor: level}."""
        return {f: self.levels[i][int(c)] for i, (f, c) in enumerate(zip(self.factors, codes))}

    def with_metric(self, metric: str, values: np.ndarray, mode: str | None = None) -> "Grid":
        return replace(self, metric=metric, mode=mode or mode_of(metric), values=values,
                       _usable={})


def mode_of(metric: str, spec: Mapping[str, Any] | None = None) -> str:
    """Whether a larger ``metric`` is better ("max") or a smaller one ("min"): the spec's
    mode for the spec's own metric, else "min" for losses, errors and the train-validation
    gap and "max" for the rest (accuracies)."""
    if spec is not None and metric == metric_of(spec):
        return spec_metric(spec)[1]
    return "min" if metric == "gap" else default_mode(metric)


def metric_of(spec: Mapping[str, Any]) -> str:
    """The metric a run's spec optimizes (val_acc when it names none)."""
    return spec_metric(spec)[0]


def metrics_of(epochs: pd.DataFrame) -> tuple[str, ...]:
    """The metrics a run's epochs hold: the built-in ones, then the trainer's own."""
    own = [c for c in epochs.columns if c not in METRICS and c not in _NOT_METRICS]
    return METRICS + tuple(own)


def prepare(trials: pd.DataFrame, epochs: pd.DataFrame, spec: Mapping[str, Any], *,
            metric: str | None = None, mode: str | None = None) -> Grid:
    """Lay out a run for the estimators. ``metric`` is an epochs column or ``"gap"``
    (train_acc - val_acc, the generalization gap); default the spec's. ``mode`` ("max" or
    "min") says which way is better; default ``mode_of(metric, spec)``.

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"A": [False, True]}, value=lambda lv: 0.8 + 0.1 * lv["A"])
    >>> prepare(run.trials, run.epochs, run.spec).values.shape
    (2, 3, 6)
    """
    metric = metric or metric_of(spec)
    return prepare_many(trials, epochs, spec, (metric,), modes={metric: mode})[metric]


def prepare_many(trials, epochs, spec, metrics, row=None, modes=None) -> dict[str, Grid]:
    """One Grid per metric, sharing the index work (``row``: ``epoch_rows`` if known;
    ``modes``: {metric: "max" or "min"} where not ``mode_of(metric, spec)``)."""
    allowed = metrics_of(epochs)
    for m in metrics:
        if m not in allowed:
            raise ValueError(f"unknown metric {m!r}; allowed: {', '.join(allowed)}")
    factors, levels, base, target = _factors(spec, trials)
    missing = [c for c in _TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"trials is missing columns {missing}")
    codes = np.column_stack([_codes(trials[f], f, lv) for f, lv in zip(factors, levels)]) \
        if len(trials) else np.zeros((0, len(factors)), np.int64)
    sizes = np.array([len(lv) for lv in levels], dtype=np.int64)
    strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
    ckeys, cfg = np.unique(codes @ strides, return_inverse=True)
    seeds, sd = np.unique(trials["seed"].to_numpy(np.int64), return_inverse=True)
    C, S = len(ckeys), len(seeds)
    cell = cfg * S + sd
    _check_unique(cell, trials)
    configs = (ckeys[:, None] // strides) % sizes
    err = (trials["status"] == "error").to_numpy(bool)
    completed = (trials["status"] == "completed").to_numpy(bool)
    grid2 = lambda v, fill: _scatter(cell, v, (C, S), fill)  # noqa: E731
    reach = np.where(err, 0, trials["epochs_run"].fillna(0).to_numpy(np.int64))
    E = int(max(int(spec.get("epochs") or 0), reach.max(initial=0),
                epochs["epoch"].max() if len(epochs) else 0))
    row = epoch_rows(trials, epochs) if row is None else row
    ep = epochs["epoch"].to_numpy(np.int64)
    keep = (row >= 0) & (ep >= 1)
    keep[keep] &= ~err[row[keep]]
    base_grid = Grid(
        factors=tuple(factors), levels=tuple(levels), baseline=base, target=target,
        design=str(spec.get("design", "full")),
        order=tuple(spec["order"]) if spec.get("order") else None,
        metric="", mode="max", epochs=E, scheduler=spec.get("scheduler"),
        configs=configs, keys=ckeys, strides=strides, seeds=seeds,
        present=grid2(np.ones(len(cell), bool), False), error=grid2(err, False),
        reach=grid2(reach, 0), values=np.empty((C, S, 0)),
        params=grid2(_col(trials, "params"), np.nan),
        wall_seconds=grid2(_col(trials, "wall_seconds"), np.nan),
        test_acc=grid2(_col(trials, "test_acc"), np.nan),
        completed=grid2(completed, False))
    flat = cell[row[keep]] * E + (ep[keep] - 1)
    out = {}
    for m in metrics:
        v = _metric(epochs, m)[keep]
        values = np.full(C * S * E, np.nan)
        values[flat] = v
        mode = (modes or {}).get(m) or mode_of(m, spec)
        out[m] = base_grid.with_metric(m, values.reshape(C, S, E), mode)
    return out


def _factors(spec, trials):
    if not isinstance(spec.get("factors"), Mapping) or not spec["factors"]:
        raise ValueError("spec['factors'] must map each factor name to its list of levels")
    factors = list(spec["factors"])
    levels = [tuple(spec["factors"][f]) for f in factors]
    absent = [f for f in factors if f not in trials.columns]
    if absent:
        raise ValueError(f"trials has no column for factor(s) {absent}")
    base = _point(spec.get("baseline"), factors, levels, 0, "baseline")
    target = _point(spec.get("target"), factors, levels, -1, "target")
    return factors, levels, base, target


def _point(point, factors, levels, default, what) -> tuple[int, ...]:
    point = point or {}
    out = []
    for f, lv in zip(factors, levels):
        if f not in point:
            out.append(default % len(lv))
            continue
        out.append(_level_index(point[f], lv, f, what))
    return tuple(out)


def _missing(value) -> bool:
    return value is None or isinstance(value, (float, np.floating)) and np.isnan(value)


def _level_index(value, levels, name, what) -> int:
    """Index of one value among a factor's levels (the scalar form of ``_codes``)."""
    is_bool = isinstance(value, (bool, np.bool_))
    for j, lv in enumerate(levels):
        if isinstance(lv, (bool, np.bool_)) != is_bool:
            continue
        if isinstance(lv, str) or isinstance(value, str):
            if str(lv) == str(value):
                return j
        elif lv == value or lv is None and _missing(value):
            return j
    raise ValueError(f"{what}: factor {name!r} has value {value!r}, which is not one of its "
                     f"levels {list(levels)}")


def _codes(col: pd.Series, name: str, levels: tuple, what: str = "trials") -> np.ndarray:
    """Level index of every value of a factor column; unknown values are an error."""
    if all(isinstance(v, (bool, np.bool_)) for v in levels):
        index = pd.Index(np.array(levels, dtype=bool), dtype=object)
        vals = col.to_numpy() if col.dtype == bool else \
            col.map(lambda v: v if isinstance(v, (bool, np.bool_)) else None).to_numpy()
        vals = pd.Index(vals, dtype=object)
    elif all(v is None or isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
             for v in levels):
        # None is a level of nullable techniques (lr=None: the optimizer's default); a
        # float column stores it as NaN
        index = pd.Index(np.array([np.nan if v is None else v for v in levels], dtype=float))
        vals = pd.Index(pd.to_numeric(col, errors="coerce").to_numpy(float))
    else:
        # strings (and None: pretrained=None is a level; a missing value is that level)
        index = pd.Index([str(v) for v in levels])
        vals = pd.Index([str(None) if _missing(v) else str(v) for v in col], dtype=object)
    idx = index.get_indexer(vals)
    if (idx < 0).any():
        bad = col.to_numpy()[np.flatnonzero(idx < 0)[0]]
        bad = bad.item() if isinstance(bad, np.generic) else bad
        raise ValueError(f"{what}: factor {name!r} has value {bad!r}, which is not one of its "
                         f"levels {list(levels)}")
    return idx.astype(np.int64)


def _check_unique(cell, trials) -> None:
    uniq, counts = np.unique(cell, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        ids = trials["trial_id"].to_numpy()[np.flatnonzero(cell == dup)[:2]]
        raise ValueError(f"trials {ids[0]!r} and {ids[1]!r} have the same factor levels and "
                         "seed; a run holds one trial per configuration and seed")


def _scatter(cell, v, shape, fill):
    v = np.asarray(v)
    out = np.full(shape[0] * shape[1], fill, dtype=np.result_type(v.dtype, np.asarray(fill)))
    out[cell] = v
    return out.reshape(shape)


def _col(trials, name):
    if name not in trials.columns:
        return np.full(len(trials), np.nan)
    return pd.to_numeric(trials[name], errors="coerce").to_numpy(float)


def epoch_rows(trials, epochs) -> np.ndarray:
    """Row of ``trials`` for every row of ``epochs`` (joined on trial_id, in Arrow)."""
    for c in ("trial_id", "epoch"):
        if c not in epochs.columns:
            raise ValueError(f"epochs is missing column {c!r}")
    ids = pa.array(trials["trial_id"])
    if len(pc.unique(ids)) != len(ids):
        raise ValueError("trials has a trial_id more than once; a run holds one row per trial")
    try:  # Arrow's hash join is ~4x faster than pandas' on a million string ids
        eids = pa.array(epochs["trial_id"]).cast(ids.type)
        row = pc.fill_null(pc.index_in(eids, value_set=ids), -1)
        row = row.to_numpy(zero_copy_only=False).astype(np.int64)
    except pa.ArrowException:  # ids of mixed or odd types: let pandas compare them
        row = pd.Index(trials["trial_id"]).get_indexer(epochs["trial_id"]).astype(np.int64)
    if (row < 0).any():
        bad = epochs["trial_id"].to_numpy()[np.flatnonzero(row < 0)[0]]
        raise ValueError(f"epochs has rows for trial {bad!r}, which is not in trials")
    return row


def _metric(epochs, metric) -> np.ndarray:
    need = ("train_acc", "val_acc") if metric == "gap" else (metric,)
    for c in need:
        if c not in epochs.columns:
            raise ValueError(f"epochs has no column {c!r} (needed for metric {metric!r})")
    if metric == "gap":
        return epochs["train_acc"].to_numpy(float) - epochs["val_acc"].to_numpy(float)
    return epochs[metric].to_numpy(float)
