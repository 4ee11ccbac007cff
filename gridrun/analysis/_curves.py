"""Learning curves per factor level: the metric at every epoch, pooled over seeds and the
other factors, with a band. Under ASHA the later epochs hold only the survivors; ``n``
says how many trials stand behind each point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from gridrun.analysis._grid import _codes, _metric, epoch_rows, metric_of

__all__ = ["Curve", "learning_curves"]

BANDS = ("std", "percentile")


@dataclass(frozen=True)
class Curve:
    """One level's curve: per epoch in ``epochs``, the ``mean`` and the band ``low``..
    ``high`` (mean -/+ one standard deviation for band "std", 10th..90th percentile for
    "percentile") over ``n`` trials; NaN where no trial reached the epoch."""

    factor: str
    level: Any
    metric: str
    band: str
    epochs: tuple[int, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    n: tuple[int, ...]


def learning_curves(epochs: pd.DataFrame, trials: pd.DataFrame, factor: str, *,
                    metric: str | None = None, spec: Mapping | None = None,
                    band: str = "std") -> tuple[Curve, ...]:
    """One Curve per level of ``factor`` (levels in the spec's order when ``spec`` is given,
    else sorted) of ``metric`` (default: the spec's, val_acc without one). Errored trials
    are left out.

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"A": [False, True]}, value=lambda lv: 0.8 + 0.1 * lv["A"])
    >>> [round(c.mean[-1], 6) for c in learning_curves(run.epochs, run.trials, "A")]
    [0.8, 0.9]
    """
    metric = metric or (metric_of(spec) if spec is not None else "val_acc")
    return curves_by_factor(epochs, trials, [factor], metric=metric, spec=spec,
                            band=band)[factor]


def curves_by_factor(epochs, trials, factors: Sequence[str], *, metric="val_acc",
                     spec=None, band="std", row=None) -> dict[str, tuple[Curve, ...]]:
    """learning_curves for several factors, joining epochs to trials once (``row``: the
    join from ``epoch_rows`` when the caller has it)."""
    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}; allowed: {', '.join(BANDS)}")
    for f in factors:
        if f not in trials.columns:
            raise ValueError(f"trials has no column {f!r}; factors: {list(factors)}")
    row = epoch_rows(trials, epochs) if row is None else row
    live = (trials["status"] != "error").to_numpy(bool) \
        if "status" in trials.columns else np.ones(len(trials), bool)
    v = _metric(epochs, metric)
    ep = epochs["epoch"].to_numpy(np.int64)
    keep = (row >= 0) & np.isfinite(v) & (ep >= 1)
    keep[keep] &= live[row[keep]]
    row, v, ep = row[keep], v[keep], ep[keep]
    E = int(ep.max(initial=0))
    out = {}
    for f in factors:
        levels = _levels(trials[f], f, spec)
        g = _codes(trials[f], f, levels)[row] * E + (ep - 1)
        out[f] = _curves(f, levels, metric, band, g, v, E)
    return out


def _levels(col, factor, spec) -> tuple:
    if spec is not None and factor in spec.get("factors", {}):
        return tuple(spec["factors"][factor])
    return tuple(sorted(pd.unique(col.dropna())))


def _curves(factor, levels, metric, band, g, v, E) -> tuple[Curve, ...]:
    size = len(levels) * E
    n = np.bincount(g, minlength=size)
    s = np.bincount(g, weights=v, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        if band == "std":
            ss = np.bincount(g, weights=(v - mean[g]) ** 2, minlength=size)
            sd = np.sqrt(ss / (n - 1))
            low, high = mean - sd, mean + sd
        else:
            q = pd.Series(v).groupby(g).quantile([0.1, 0.9]).unstack()
            low, high = np.full(size, np.nan), np.full(size, np.nan)
            low[q.index.to_numpy()], high[q.index.to_numpy()] = q[0.1], q[0.9]
    shape = (len(levels), E)
    mean, low, high, n = (a.reshape(shape) for a in (mean, low, high, n))
    return tuple(Curve(factor, lv, metric, band, tuple(range(1, E + 1)), _t(mean[j]),
                       _t(low[j]), _t(high[j]), tuple(int(x) for x in n[j]))
                 for j, lv in enumerate(levels))


def _t(a) -> tuple[float, ...]:
    return tuple(float(x) for x in a)
