"""Main effects and two-factor interactions, blocked on seed.

The main effect of level l of factor F is, within each seed, the mean over the other
factors' configurations of (metric with F=l) - (metric with F=baseline): pairs of cells
that differ only in F, in the same seed (blocked on seed). On a balanced full factorial this
is exactly the difference of marginal means; a pair missing in one seed (an errored trial)
takes its mean over the other seeds, so the estimate stays the marginal difference. On a two-level fractional
design it is the usual effect contrast: mean over runs with F at its target level minus mean
over runs at its baseline level.

The interaction of levels (a, b) of factors (F, G) is the difference of differences
[y(a,b) - y(a,G0)] - [y(F0,b) - y(F0,G0)] (F0, G0 the baselines), averaged over the other
factors: how much more F's gain is when G is at b. In 0/1 coding it is the coefficient of
the F x G term.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gridrun.analysis._contrast import check_budget, contrast
from gridrun.analysis._grid import Grid
from gridrun.analysis._stats import Estimate, apply_holm
from gridrun.analysis._summary import ConfigSummary

__all__ = ["Effect", "Interaction", "main_effects", "interactions"]


@dataclass(frozen=True)
class Effect:
    """A change of one factor from ``reference`` to ``level``: ``estimate`` is the mean
    difference (level minus reference), ``mean``/``reference_mean`` the mean metric on each
    side over the cells compared. ``kind`` is "main", "add_one_in", "leave_one_out" or
    "cumulative". For "cumulative", ``config`` is the configuration after this step.
    For the one-at-a-time kinds, ``summary`` is the configuration the ablation table's row
    shows (with the change for add-one-in and cumulative, without it for leave-one-out)
    at the estimate's budget, so the row's mean and its difference are at one epoch."""

    kind: str
    factor: str
    level: Any
    reference: Any
    estimate: Estimate
    mean: float
    reference_mean: float
    config: dict | None = None
    summary: ConfigSummary | None = None


@dataclass(frozen=True)
class Interaction:
    """Difference of differences of two factors (0/1-coded interaction coefficient)."""

    factors: tuple[str, str]
    levels: tuple[Any, Any]
    references: tuple[Any, Any]
    estimate: Estimate


def main_effects(grid: Grid, *, budget: int | None = None, n_boot: int = 2000,
                 seed: int = 0) -> tuple[Effect, ...]:
    """Main effect of every non-baseline level of every factor vs its baseline level.

    Needs a full factorial (any levels) or a two-level fractional design. Holm-adjusted
    over the returned rows.

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"A": [False, True], "B": ["x", "y"]},
    ...                     value=lambda lv: 80 + 3 * lv["A"])
    >>> [round(e.estimate.value, 6) for e in main_effects(run.grid())]
    [3.0, 0.0]
    """
    budget = check_budget(grid, budget)
    if grid.design not in ("full", "fractional"):
        raise ValueError(f"main effects need a full or fractional design, not {grid.design!r};"
                         " use add_one_in / leave_one_out / cumulative")
    rng = np.random.default_rng(seed)
    out = []
    for i, f in enumerate(grid.factors):
        b = grid.baseline[i]
        for lv in range(len(grid.levels[i])):
            if lv == b:
                continue
            if grid.design == "fractional":
                c = _fractional_contrast(grid, i, b, lv, budget)
            else:
                low = grid.rows(grid.keys[grid.configs[:, i] == b])
                high = grid.rows(grid.keys[grid.configs[:, i] == b] + (lv - b) * grid.strides[i])
                units = np.column_stack([high, low])[high >= 0]
                c = contrast(grid, units, [[1, -1], [1, 0], [0, 1]], budget)
            est, m1, m0 = c.estimates(grid, n_boot, rng)
            out.append(Effect("main", f, grid.levels[i][lv], grid.levels[i][b], est,
                              m1.value, m0.value))
    return tuple(_holm_effects(out))


def _fractional_contrast(grid, i, b, lv, budget):
    """Effect contrast over a balanced fraction: mean of the runs at level ``lv`` minus mean
    of the runs at the baseline level ``b`` (runs at a third level weigh nothing). For a
    two-level factor this is the usual mean(+ runs) - mean(- runs)."""
    on, off = grid.configs[:, i] == lv, grid.configs[:, i] == b
    n_on, n_off = on.sum(), off.sum()
    if n_on == 0 or n_off == 0:
        return contrast(grid, np.zeros((0, 1)), [[1.0]] * 3, budget)
    w = np.where(on, 1.0 / n_on, np.where(off, -1.0 / n_off, 0.0))
    units = np.arange(len(grid.keys))[None, :]
    return contrast(grid, units, [w, np.where(on, w, 0.0), np.where(off, -w, 0.0)], budget)


def interactions(grid: Grid, *, budget: int | None = None, n_boot: int = 2000,
                 seed: int = 0) -> tuple[Interaction, ...]:
    """Every two-factor interaction contrast, largest magnitude first (full factorial).
    Holm-adjusted over the returned rows.

    >>> from gridrun.analysis.testing import additive, synthetic_run
    >>> run = synthetic_run({"A": [False, True], "B": [False, True]},
    ...                     value=additive(80, pairs={("A", "B"): {(True, True): 2.0}}))
    >>> [(x.factors, round(x.estimate.value, 6)) for x in interactions(run.grid())]
    [(('A', 'B'), 2.0)]
    """
    budget = check_budget(grid, budget)
    if grid.design != "full":
        raise ValueError(f"interactions need a full factorial design, not {grid.design!r}")
    rng = np.random.default_rng(seed)
    out = []
    for i, j in itertools.combinations(range(len(grid.factors)), 2):
        bi, bj = grid.baseline[i], grid.baseline[j]
        corner = grid.keys[(grid.configs[:, i] == bi) & (grid.configs[:, j] == bj)]
        for a in (a for a in range(len(grid.levels[i])) if a != bi):
            for c in (c for c in range(len(grid.levels[j])) if c != bj):
                da, dc = (a - bi) * grid.strides[i], (c - bj) * grid.strides[j]
                units = np.column_stack([grid.rows(corner + da + dc), grid.rows(corner + da),
                                         grid.rows(corner + dc), grid.rows(corner)])
                units = units[(units >= 0).all(axis=1)]
                con = contrast(grid, units, [[1, -1, -1, 1]], budget)
                (est,) = con.estimates(grid, n_boot, rng)
                out.append(Interaction((grid.factors[i], grid.factors[j]),
                                       (grid.levels[i][a], grid.levels[j][c]),
                                       (grid.levels[i][bi], grid.levels[j][bj]), est))
    out = [replace(x, estimate=e) for x, e in zip(out, apply_holm([x.estimate for x in out]))]
    return tuple(sorted(out, key=lambda x: -abs(np.nan_to_num(x.estimate.value, nan=-1.0))))


def _holm_effects(effects: list[Effect]) -> list[Effect]:
    adj = apply_holm([e.estimate for e in effects])
    return [replace(e, estimate=a) for e, a in zip(effects, adj)]
