"""Per-configuration summaries (metric, rank, cost) and ASHA survival per factor level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import special

from gridrun.analysis._contrast import check_budget, default_budget, usable
from gridrun.analysis._grid import Grid
from gridrun.analysis._stats import CONFIDENCE
from gridrun.spec.techniques import same_level

__all__ = ["ConfigSummary", "config_summaries", "config_summary", "best_config", "Survival",
           "SurvivalRow", "survival"]


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration at the epoch ``budget``: the metric over the seeds that reached it
    (mean, std, 95% t-interval) and its ``rank`` among all configurations at that epoch
    (1 = best by the metric's mode), with cost: ``params``,
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
    out = _summaries(grid, b, y, ok, range(len(grid.keys)))
    return tuple(sorted(out, key=lambda s: s.rank))


def config_summary(grid: Grid, config: Mapping[str, Any], *,
                   budget: int | None = None) -> ConfigSummary:
    """One configuration ({factor: level}) at ``budget`` (default: the last epoch every trial
    of this configuration reached); ``rank`` is among all configurations at that epoch.

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"A": [False, True]}, value=lambda lv: 0.8 + 0.1 * lv["A"],
    ...                     slow=lambda lv: 0.01)
    >>> s = config_summary(run.grid(), {"A": True}, budget=4)
    >>> round(s.mean, 6), s.budget, s.rank
    (0.88, 4, 1)
    """
    unknown = sorted(set(config) ^ set(grid.factors))
    if unknown:
        raise ValueError(f"config must give a level of every factor {list(grid.factors)}; "
                         f"got {sorted(config)}")
    codes = []
    for f, levels in zip(grid.factors, grid.levels):
        hit = [j for j, lv in enumerate(levels) if same_level(lv, config[f])]
        if not hit:
            raise ValueError(f"{config[f]!r} is not a level of {f}; allowed: {list(levels)}")
        codes.append(hit[0])
    row = int(grid.rows([grid.key(codes)])[0])
    if row < 0:
        raise ValueError(f"configuration {dict(config)} is not in the run")
    return summary_at(grid, row, check_budget(grid, budget))


def summary_at(grid: Grid, row: int, budget: int | None) -> ConfigSummary:
    """The summary of configuration ``row`` at ``budget`` (None: its own common budget)."""
    b = default_budget(grid, np.array([row])) if budget is None else budget
    return _summaries(grid, b, *_at(grid, b), [row])[0]


def _summaries(grid, b, y, ok, rows) -> list[ConfigSummary]:
    """Summaries of configuration ``rows`` from values ``y`` where ``ok``, at epoch ``b``."""
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
    for c in rows:
        p = cost["params"][c]
        out.append(ConfigSummary(
            grid.named(grid.configs[c]), int(rank[c]), float(mean[c]), float(std[c]),
            float(mean[c] - half[c]), float(mean[c] + half[c]), b, int(n[c]), int(short[c]),
            int(err[c]), None if np.isnan(p) else int(round(p)), float(cost["wall"][c]),
            float(cost["spe"][c]), float(cost["test"][c]), int(ncomp[c])))
    return out


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
    b = default_budget(grid, np.arange(len(grid.keys))) if budget is None else budget
    return (b, *_at(grid, b))


def _at(grid, b):
    """(C, S) values at epoch ``b`` and where they are usable (nowhere when ``b`` is None)."""
    if b is None:
        return np.full(grid.present.shape, np.nan), np.zeros(grid.present.shape, bool)
    return grid.values[:, :, b - 1], usable(grid, np.arange(len(grid.keys)), b)


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
    """The scheduler's rungs below E, then E itself (just E without a scheduler)."""
    from gridrun.design.schedule import asha_rungs

    if not scheduler:
        return (E,)
    return tuple(asha_rungs(E, int(scheduler.get("grace_period", 1)),
                            int(scheduler.get("reduction_factor", 3)))) + (E,)
