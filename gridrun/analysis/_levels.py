"""Per factor level: mean and spread of the metric at one common budget, and where early
stopping ended that level's trials. The first table of a report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from gridrun.analysis._grid import metric_of
from gridrun.spec.techniques import same_level

__all__ = ["LevelSummary", "level_summaries"]


@dataclass(frozen=True)
class LevelSummary:
    """``mean``/``std`` over the trials of this level that reached ``budget``; ``delta`` is
    the mean minus the baseline level's mean (0 for the baseline itself). ``stopped`` maps
    an epoch to how many of the level's trials early stopping ended there."""

    factor: str
    level: Any
    is_baseline: bool
    mean: float
    std: float
    delta: float
    n: int
    n_short: int
    n_error: int
    budget: int
    stopped: tuple[tuple[int, int], ...]


def common_budget(trials: pd.DataFrame) -> int:
    """The largest epoch every trial that did not error reached."""
    ok = trials[trials.status != "error"]
    return int(ok.epochs_run.min()) if len(ok) else 0


def level_summaries(trials: pd.DataFrame, epochs: pd.DataFrame, spec: Mapping, *,
                    metric: str | None = None, budget: int | None = None
                    ) -> tuple[LevelSummary, ...]:
    """One summary per factor level of ``metric`` (default: the spec's), all at ``budget``
    (default: ``common_budget``).

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"A": [False, True]}, value=lambda lv: 0.8 + 0.1 * lv["A"])
    >>> [round(s.delta, 6) for s in level_summaries(run.trials, run.epochs, run.spec)]
    [0.0, 0.1]
    """
    metric = metric or metric_of(spec)
    if metric not in epochs.columns:
        raise ValueError(f"epochs has no column {metric!r}; per-level summaries need it")
    b = common_budget(trials) if budget is None else int(budget)
    at_b = epochs.loc[epochs.epoch == b, ["trial_id", metric]]
    df = trials.merge(at_b, on="trial_id", how="left")
    out = []
    for factor, levels in spec["factors"].items():
        base_mean = np.nan
        for level in levels:
            # None (lr, pretrained) is stored as a missing value
            rows = df[df[factor].isna()] if level is None else df[df[factor] == level]
            err = rows.status == "error"
            vals = rows.loc[~err, metric].dropna()
            stopped = rows.loc[rows.status == "stopped_early", "epochs_run"].value_counts()
            mean = float(vals.mean()) if len(vals) else np.nan
            is_base = same_level(level, spec["baseline"][factor])
            if is_base:
                base_mean = mean
            out.append(LevelSummary(
                factor, level, is_base, mean,
                float(vals.std(ddof=1)) if len(vals) > 1 else np.nan, np.nan, len(vals),
                int((~err).sum() - len(vals)), int(err.sum()), b,
                tuple(sorted((int(e), int(c)) for e, c in stopped.items()))))
        out[-len(levels):] = [_with_delta(s, base_mean) for s in out[-len(levels):]]
    return tuple(out)


def _with_delta(s: LevelSummary, base_mean: float) -> LevelSummary:
    from dataclasses import replace

    return replace(s, delta=s.mean - base_mean)
