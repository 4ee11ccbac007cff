"""Share of variance per factor and two-factor interaction: ANOVA on a balanced full factorial.

The model is metric ~ every factor + every two-factor interaction; everything else (higher
interactions and seed-to-seed noise) is the residual. On a balanced design the sums of
squares come straight from marginal means (type I = II = III), and share = SS / SS_total.
Balance needs every configuration in every seed used, so seeds with a missing value at the
budget are left out (and counted); if no seed is complete, the configuration means (over
the trials that reached the budget) are analysed instead, one value per configuration.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import special  # scipy.stats costs ~0.4 s to import

from gridrun.analysis._contrast import check_budget, default_budget, usable
from gridrun.analysis._grid import Grid

__all__ = ["VarianceShares", "VarianceTerm", "variance_shares"]


@dataclass(frozen=True)
class VarianceTerm:
    """One ANOVA row: ``term`` is ("A",), ("A", "B"), or () for the residual."""

    term: tuple[str, ...]
    df: int
    ss: float
    share: float
    f_value: float
    p_value: float


@dataclass(frozen=True)
class VarianceShares:
    """ANOVA table; ``terms`` hold main effects (factor order) then interactions, and
    ``sum(t.share for t in terms) + residual.share == 1``."""

    metric: str
    budget: int
    n_seeds: int
    n_trials: int
    n_short: int
    n_error: int
    terms: tuple[VarianceTerm, ...]
    residual: VarianceTerm
    total_ss: float
    note: str = ""


def variance_shares(grid: Grid, *, budget: int | None = None) -> VarianceShares | None:
    """ANOVA sums of squares and shares; None unless the run is a complete full factorial
    whose every configuration has a value at the budget. Seeds missing a configuration are
    left out; when no seed is complete, the configuration means are analysed (``note``).

    >>> from gridrun.analysis.testing import additive, synthetic_run
    >>> run = synthetic_run({"A": [False, True], "B": [False, True]}, noise=0.1,
    ...                     value=additive(80, {"A": {True: 2}}), seeds=4)
    >>> v = variance_shares(run.grid())
    >>> [t.term for t in v.terms], v.terms[0].share > 0.9
    ([('A',), ('B',), ('A', 'B')], True)
    """
    budget = check_budget(grid, budget)
    sizes = tuple(len(lv) for lv in grid.levels)
    n_cfg = int(np.prod(sizes))
    if len(grid.keys) != n_cfg or not np.array_equal(grid.keys, np.arange(n_cfg)):
        return None
    rows = np.arange(n_cfg)
    b = default_budget(grid, rows) if budget is None else budget
    if b is None:
        return None
    ok = usable(grid, rows, b)
    live = grid.present & ~grid.error
    complete = ok.all(axis=0)
    left = int((~complete).sum())
    if complete.any():
        y = grid.values[:, complete, b - 1].reshape(sizes + (int(complete.sum()),))
        n_seeds, n_used = int(complete.sum()), int(complete.sum()) * n_cfg
        note = f"{left} seed(s) left out: not every configuration has a value at epoch {b}" \
            if left else ""
    elif ok.any(axis=1).all():
        # No seed has every configuration (e.g. survivors only at a late budget): use each
        # configuration's mean over the trials that reached the budget, one value per cell.
        vals = np.where(ok, grid.values[:, :, b - 1], 0.0)
        y = (vals.sum(axis=1) / ok.sum(axis=1)).reshape(sizes + (1,))
        n_seeds, n_used = int(ok.any(axis=0).sum()), int(ok.sum())
        note = (f"no seed has every configuration at epoch {b}: sums of squares of the "
                f"configuration means over the {n_used} trials that reached it")
    else:
        return None
    terms, total, res_df = _anova(y, grid.factors)
    ss_res = total - sum(t[2] for t in terms)
    ss_res = max(ss_res, 0.0)
    ms_res = ss_res / res_df if res_df > 0 else np.nan
    rows_out = tuple(_term(name, df, ss, total, ms_res, res_df) for name, df, ss in terms)
    residual = VarianceTerm((), res_df, ss_res, ss_res / total if total > 0 else np.nan,
                            np.nan, np.nan)
    return VarianceShares(grid.metric, b, n_seeds, n_used,
                          int((live & ~ok).sum()), int((grid.present & grid.error).sum()),
                          rows_out, residual, float(total), note)


def _anova(y: np.ndarray, factors) -> tuple[list, float, int]:
    """(name, df, SS) for main effects and pairwise interactions of a balanced array whose
    last axis is replicates; total SS; residual df."""
    k, n = len(factors), y.size
    grand = y.mean()
    total = float(((y - grand) ** 2).sum())
    axes = set(range(y.ndim))
    means = {}
    out = []
    for i in range(k):
        m = y.mean(axis=tuple(axes - {i})) - grand
        means[i] = m
        if y.shape[i] > 1:
            out.append(((factors[i],), y.shape[i] - 1, float(n / y.shape[i] * (m ** 2).sum())))
    for i, j in itertools.combinations(range(k), 2):
        if y.shape[i] < 2 or y.shape[j] < 2:
            continue
        mij = y.mean(axis=tuple(axes - {i, j})) - grand
        inter = mij - means[i][:, None] - means[j][None, :]
        cells = y.shape[i] * y.shape[j]
        out.append(((factors[i], factors[j]), (y.shape[i] - 1) * (y.shape[j] - 1),
                    float(n / cells * (inter ** 2).sum())))
    res_df = n - 1 - sum(df for _, df, _ in out)
    return out, total, res_df


def _term(name, df, ss, total, ms_res, res_df) -> VarianceTerm:
    f = (ss / df) / ms_res if ms_res and np.isfinite(ms_res) and ms_res > 0 else np.nan
    p = float(special.fdtrc(df, res_df, f)) if np.isfinite(f) else np.nan
    return VarianceTerm(tuple(name), int(df), ss, ss / total if total > 0 else np.nan,
                        float(f), p)
