"""The one computation behind every difference: a linear contrast of cells, per seed, at a
budget, turned into Estimates.

A comparison is a set of *units*, each a few configurations with weights (a pair of cells
for a main effect, four for an interaction, the whole baseline-target lattice for Shapley).
Within a seed, a unit counts only if every one of its cells has a value at the budget, so
cells are always compared like for like, and a trial that did not reach the budget is never
mixed in: it is left out and counted. The seed's value is the mean over units; a unit that
is incomplete in that seed takes its mean over the seeds where it is complete (so the
estimate is the mean over units of each unit's mean over seeds). A seed with no complete
unit is left out.

The default budget of a comparison is the largest epoch that every trial entering it
reached (the final epoch when nothing was stopped early); ``budget=`` overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridrun.analysis._grid import Grid
from gridrun.analysis._stats import Estimate, estimates

__all__ = ["Contrast", "contrast", "check_budget", "default_budget"]


@dataclass(frozen=True, eq=False)
class Contrast:
    """Per-seed values of K contrasts (K x n_seeds) with the counts behind them."""

    per_seed: np.ndarray
    budget: int | None
    n_trials: int
    n_short: int
    n_error: int

    def estimates(self, grid: Grid, n_boot: int, rng: np.random.Generator,
                  note: str = "") -> list[Estimate]:
        if self.budget is None:
            note = note or "no trial of these cells has a value (errored, absent or no epoch)"
        return estimates(self.per_seed, metric=grid.metric, budget=self.budget,
                         n_trials=self.n_trials, n_short=self.n_short, n_error=self.n_error,
                         n_boot=n_boot, rng=rng, note=note)


def check_budget(grid: Grid, budget) -> int | None:
    """Validate a caller's budget (an epoch, 1..E) or pass None through."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) \
            or not 1 <= budget <= grid.epochs:
        raise ValueError(f"budget must be an epoch from 1 to {grid.epochs}, got {budget!r}")
    return int(budget)


def default_budget(grid: Grid, rows: np.ndarray) -> int | None:
    """The largest epoch every non-errored trial of these configurations reached."""
    reach = grid.reach[rows]
    ok = grid.present[rows] & ~grid.error[rows] & (reach >= 1)
    return int(reach[ok].min()) if ok.any() else None


def usable(grid: Grid, rows: np.ndarray, budget: int) -> np.ndarray:
    """(len(rows), S) mask: the trial exists, reached the budget and has a finite value."""
    return grid.usable(budget)[rows]


def contrast(grid: Grid, units: np.ndarray, weights: np.ndarray,
             budget: int | None = None) -> Contrast:
    """Evaluate K weightings of U units of m cells each, per seed.

    ``units`` (U, m) holds configuration rows (all >= 0); ``weights`` (K, m).
    """
    units = np.asarray(units, dtype=np.int64).reshape(-1, np.shape(weights)[-1])
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    K, S = weights.shape[0], len(grid.seeds)
    rows = np.unique(units)
    n_error = int((grid.present[rows] & grid.error[rows]).sum())
    b = default_budget(grid, rows) if budget is None else budget
    live = grid.present[rows] & ~grid.error[rows]
    if b is None or len(units) == 0:  # every trial errored, is absent, or ran no epoch
        return Contrast(np.zeros((K, 0)), b, 0, int(live.sum()), n_error)
    ok_rows = usable(grid, rows, b)
    n_short = int((live & ~ok_rows).sum())
    pos = np.searchsorted(rows, units)  # (U, m) positions into rows
    ok = ok_rows[pos].all(axis=1)  # (U, S): every cell of the unit has a value
    vals = np.where(ok[:, None, :], grid.values[units, :, b - 1], 0.0)  # (U, m, S)
    per_unit = np.einsum("km,ums->kus", weights, vals)
    # A unit missing in some seed (an errored trial, or one short of the budget) takes, in
    # that seed, its mean over the seeds that have it; so the estimate stays the plain mean
    # over units (the marginal) instead of tilting toward the units that are complete.
    n_seeds_u = ok.sum(axis=1)
    keep = n_seeds_u > 0
    unit_mean = per_unit[:, keep].sum(axis=2) / n_seeds_u[keep]
    filled = np.where(ok[keep], per_unit[:, keep], unit_mean[:, :, None])
    seeds = ok.any(axis=0)
    per_seed = filled[:, :, seeds].mean(axis=1) if seeds.any() else np.zeros((K, 0))
    used = np.zeros((len(rows), S), bool)
    u, s = np.nonzero(ok)
    used[pos[u].ravel(), np.repeat(s, units.shape[1])] = True
    return Contrast(per_seed, b, int(used.sum()), n_short, n_error)
