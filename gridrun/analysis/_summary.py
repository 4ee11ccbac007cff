"""Per-configuration summaries (metric, rank, cost) and ASHA survival per factor level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from gridrun.analysis._contrast import check_budget, default_budget, usable
from gridrun.analysis._grid import Grid
from gridrun.analysis._stats import CONFIDENCE

__all__ = ["ConfigSummary", "config_summaries", "best_config", "Survival", "SurvivalRow",
           "survival"]


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration at the common ``budget``: the metric over seeds (mean, std,
    95% t-interval) and its ``rank`` (1 = best by the metric's mode), with cost: ``params``,
    ``wall_seconds`` (mean over completed trials), ``seconds_per_epoch`` (over every
    non-errored trial, so stopped trials count too) and ``test_acc`` over completed trials."""

    levels: dict
    rank: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    budget: int | None
    n_seeds: int
    n_short: int
    n_error: int
    params: int | None
    wall_seconds: float
    seconds_per_epoch: float
    test_acc: float
    n_completed: int


def config_summaries(grid: Grid, *, budget: int | None = None) -> tuple[ConfigSummary, ...]:
    """Every configuration, best first, at the budget every trial reached (or ``budget``)."""
    b, y, ok = _at_common_budget(grid, budget)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(ok, y, 0).sum(axis=1) / np.maximum(n, 1), np.nan)
        dev = np.where(ok, y - mean[:, None], 0.0)
        std = np.where(n > 1, np.sqrt((dev ** 2).sum(axis=1) / np.maximum(n - 1, 1)), np.nan)
        half = special.stdtrit(np.maximum(n - 1, 1), 0.5 + CONFIDENCE / 2) * std / np.sqrt(n)
    rank = _rank(mean, grid.mode)
    live = grid.present & ~grid.error
    comp = grid.completed & grid.present
    epochs_run = np.where(live, grid.reach, 0).sum(axis=1)
    wall_live = np.where(live, np.nan_to_num(grid.wall_seconds), 0).sum(axis=1)
    cost = {
        "params": _masked_mean(grid.params, grid.present),
        "wall": _masked_mean(grid.wall_seconds, comp),
        "test": _masked_mean(grid.test_acc, comp),
        "spe": np.where(epochs_run > 0, wall_live / np.maximum(epochs_run, 1), np.nan),
    }
    short = (live & ~ok).sum(axis=1)
    err = (grid.present & grid.error).sum(axis=1)
    ncomp = comp.sum(axis=1)
    out = []
    for c in np.argsort(rank, kind="stable"):
        p = cost["params"][c]
        out.append(ConfigSummary(
            grid.named(grid.configs[c]), int(rank[c]), float(mean[c]), float(std[c]),
            float(mean[c] - half[c]), float(mean[c] + half[c]), b, int(n[c]), int(short[c]),
            int(err[c]), None if np.isnan(p) else int(round(p)), float(cost["wall"][c]),
            float(cost["spe"][c]), float(cost["test"][c]), int(ncomp[c])))
    return tuple(out)


def best_config(grid: Grid, budget: int | None = None) -> tuple[int, ...]:
    """Level indices of the configuration with the best mean at the common budget."""
    _, y, ok = _at_common_budget(grid, budget)
    n = ok.sum(axis=1)
    mean = np.where(n > 0, np.where(ok, y, 0).sum(axis=1) / np.maximum(n, 1), np.nan)
    if np.isnan(mean).all():
        raise ValueError("no configuration has a value at the budget; cannot pick the best")
    return tuple(int(v) for v in grid.configs[int(np.argmin(_rank(mean, grid.mode)))])


def _at_common_budget(grid, budget):
    budget = check_budget(grid, budget)
    rows = np.arange(len(grid.keys))
    b = default_budget(grid, rows) if budget is None else budget
    if b is None:
        return None, np.full(grid.present.shape, np.nan), np.zeros(grid.present.shape, bool)
    return b, grid.values[:, :, b - 1], usable(grid, rows, b)


def _rank(mean, mode) -> np.ndarray:
    key = np.where(np.isnan(mean), np.inf, -mean if mode == "max" else mean)
    order = np.argsort(key, kind="stable")
    rank = np.empty(len(mean), np.int64)
    rank[order] = np.arange(1, len(mean) + 1)
    return rank


def _masked_mean(v, mask) -> np.ndarray:
    m = mask & np.isfinite(v)
    n = m.sum(axis=1)
    return np.where(n > 0, np.where(m, v, 0).sum(axis=1) / np.maximum(n, 1), np.nan)


@dataclass(frozen=True)
class SurvivalRow:
    """Trials of one factor level; ``reached[e-1]`` of them ran at least e epochs."""

    factor: str
    level: Any
    n_trials: int
    reached: tuple[int, ...]


@dataclass(frozen=True)
class Survival:
    """How far trials got, per factor level: ``epochs`` is 1..E, ``rungs`` the ASHA rungs
    (grace_period * reduction_factor^i below E, then E), ``total`` over all non-errored
    trials. Errored trials (``n_error``) are left out."""

    epochs: tuple[int, ...]
    rungs: tuple[int, ...]
    total: tuple[int, ...]
    n_trials: int
    n_error: int
    rows: tuple[SurvivalRow, ...]


def survival(grid: Grid) -> Survival:
    """Counts of trials reaching each epoch, per factor level (for ASHA reports and plots)."""
    E = grid.epochs
    live = grid.present & ~grid.error
    reach = np.clip(grid.reach, 0, E)
    total = _reached(np.bincount(reach[live], minlength=E + 1))
    rows = []
    for i, f in enumerate(grid.factors):
        L = len(grid.levels[i])
        lv = np.broadcast_to(grid.configs[:, i][:, None], reach.shape)[live]
        counts = np.bincount(lv * (E + 1) + reach[live], minlength=L * (E + 1))
        for j, c in enumerate(counts.reshape(L, E + 1)):
            rows.append(SurvivalRow(f, grid.levels[i][j], int(c.sum()), _reached(c)))
    return Survival(tuple(range(1, E + 1)), _rungs(grid.scheduler, E), total,
                    int(live.sum()), int((grid.present & grid.error).sum()), tuple(rows))


def _reached(counts) -> tuple[int, ...]:
    """counts[r] = trials that ran exactly r epochs -> trials that ran >= e, e = 1..E."""
    return tuple(int(v) for v in np.cumsum(counts[::-1])[::-1][1:])


def _rungs(scheduler, E) -> tuple[int, ...]:
    if not scheduler:
        return (E,)
    g, rf = int(scheduler.get("grace_period", 1)), int(scheduler.get("reduction_factor", 3))
    rungs, r = [], g
    while r < E:
        rungs.append(r)
        r *= rf
    return tuple(rungs) + (E,)
