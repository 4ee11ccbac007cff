"""What each technique does to overfitting: its effect on the train - validation accuracy
gap, with the estimator the design calls for (main effects on full and fractional designs,
the design's own deltas on one-at-a-time designs).
"""

from __future__ import annotations

from gridrun.analysis import _paths
from gridrun.analysis._effects import Effect, main_effects
from gridrun.analysis._grid import Grid

__all__ = ["generalization_gap"]


def generalization_gap(gap_grid: Grid, *, budget: int | None = None, n_boot: int = 2000,
                       seed: int = 0) -> tuple[Effect, ...]:
    """What each technique does to the train - validation accuracy gap (overfitting).

    ``gap_grid`` is ``prepare(..., metric="gap")``. A negative estimate means the technique
    shrinks the gap. Main effects on full and fractional designs; on one-at-a-time designs
    the design's own deltas (add-one-in, leave-one-out or cumulative).
    """
    if gap_grid.metric != "gap":
        raise ValueError(f"generalization_gap needs a grid prepared with metric='gap', "
                         f"got metric {gap_grid.metric!r}")
    kw = dict(budget=budget, n_boot=n_boot, seed=seed)
    if gap_grid.design in ("full", "fractional"):
        return main_effects(gap_grid, **kw)
    return getattr(_paths, gap_grid.design)(gap_grid, **kw)
