"""One-at-a-time deltas: add-one-in, leave-one-out and the cumulative path.

- add-one-in:   config(baseline + factor at target) - config(baseline)
- leave-one-out: config(target) - config(target - factor, i.e. at baseline)
- cumulative:   each step of baseline, +A, +A+B, ... (in ``order``) minus the step before

Each row is a paired difference of two cells across seeds, at that comparison's budget,
with the summary of the configuration an ablation table shows for it at that same budget.
They work from whatever configurations exist: a full factorial holds them all, the
one-at-a-time designs exactly their own. A row whose cells are not in the run is left out
(factors whose baseline and target levels are the same have no row).
"""

from __future__ import annotations

import numpy as np

from gridrun.analysis._contrast import check_budget, contrast
from gridrun.analysis._effects import Effect, _holm_effects
from gridrun.analysis._grid import Grid
from gridrun.analysis._summary import summary_at

__all__ = ["add_one_in", "leave_one_out", "cumulative"]

_WEIGHTS = [[1, -1], [1, 0], [0, 1]]  # difference, mean after, mean before


def add_one_in(grid: Grid, *, budget: int | None = None, n_boot: int = 2000,
               seed: int = 0) -> tuple[Effect, ...]:
    """Baseline plus one technique at its target level, minus the baseline.

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"A": [False, True], "B": [False, True]}, design="add_one_in",
    ...                     value=lambda lv: 80 + 3 * lv["A"] + 1 * lv["B"])
    >>> [(e.factor, round(e.estimate.value, 6)) for e in add_one_in(run.grid())]
    [('A', 3.0), ('B', 1.0)]
    """
    steps = [(i, grid.baseline, _with(grid.baseline, i, grid.target[i]))
             for i in _moving(grid)]
    return _deltas(grid, "add_one_in", steps, budget, n_boot, seed)


def leave_one_out(grid: Grid, *, budget: int | None = None, n_boot: int = 2000,
                  seed: int = 0) -> tuple[Effect, ...]:
    """The target configuration minus the target with one technique back at baseline."""
    steps = [(i, _with(grid.target, i, grid.baseline[i]), grid.target) for i in _moving(grid)]
    return _deltas(grid, "leave_one_out", steps, budget, n_boot, seed)


def cumulative(grid: Grid, *, order=None, budget: int | None = None, n_boot: int = 2000,
               seed: int = 0) -> tuple[Effect, ...]:
    """The bag-of-tricks path: add techniques in ``order`` (default: the spec's order, else
    factor order), each row the gain of its step over the previous one. The path stops at
    the first step whose configuration is not in the run."""
    order = list(order or grid.order or grid.factors)
    unknown = [f for f in order if f not in grid.factors]
    if unknown:
        raise ValueError(f"order names {unknown}, which are not factors: {list(grid.factors)}")
    steps, current = [], grid.baseline
    for f in order:
        i = grid.factors.index(f)
        if grid.target[i] == grid.baseline[i]:
            continue
        nxt = _with(current, i, grid.target[i])
        if grid.rows([grid.key(nxt)])[0] < 0:
            break
        steps.append((i, current, nxt))
        current = nxt
    return _deltas(grid, "cumulative", steps, budget, n_boot, seed)


def _moving(grid: Grid) -> list[int]:
    return [i for i in range(len(grid.factors)) if grid.target[i] != grid.baseline[i]]


def _with(codes, i, level) -> tuple[int, ...]:
    out = list(codes)
    out[i] = level
    return tuple(out)


def _deltas(grid, kind, steps, budget, n_boot, seed):
    budget = check_budget(grid, budget)
    rng = np.random.default_rng(seed)
    out = []
    for i, before, after in steps:
        rows = grid.rows([grid.key(after), grid.key(before)])
        if (rows < 0).any():
            continue
        est, m1, m0 = contrast(grid, rows[None, :], _WEIGHTS, budget).estimates(grid, n_boot, rng)
        config = grid.named(after) if kind == "cumulative" else None
        shown = rows[1] if kind == "leave_one_out" else rows[0]  # the table row's config
        out.append(Effect(kind, grid.factors[i], grid.levels[i][after[i]],
                          grid.levels[i][before[i]], est, m1.value, m0.value, config,
                          summary_at(grid, int(shown), est.budget)))
    return tuple(_holm_effects(out))
