"""Uncertainty over seeds: ``Estimate``, t-intervals, the seed bootstrap, Holm's correction.

Every number the analysis reports is a mean over seeds of a per-seed value (a difference, a
Shapley part, ...). Seeds are the independent replicates, so intervals and tests are over
seeds: a t-interval and a two-sided one-sample t-test of the per-seed values (a paired
t-test when the value is a within-seed difference), and a percentile bootstrap that
resamples whole seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from scipy import special

__all__ = ["Estimate", "holm", "CONFIDENCE", "ALPHA"]

CONFIDENCE = 0.95  # the level of every interval
ALPHA = 0.05  # significance threshold on Holm-adjusted p-values (1 - CONFIDENCE)


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its uncertainty, and what it was computed from.

    ``value`` is in the units of ``metric`` (for a difference: level minus reference).
    ``ci_low``/``ci_high`` is the 95% t-interval over seeds, ``boot_low``/``boot_high`` the
    95% percentile interval from resampling whole seeds; both are NaN with fewer than two
    seeds (``note`` says so). ``p_value`` is the two-sided t-test of "mean is zero" over seeds
    (paired across seeds for differences); ``p_holm`` is Holm-adjusted within the estimate's
    table and ``significant`` is ``p_holm < 0.05``. ``budget`` is the epoch the values were
    read at; ``n_seeds``/``n_trials`` stand behind the value; ``n_short`` trials of the cells
    compared did not reach the budget and ``n_error`` errored, and both were left out.
    ``survivors_only`` is True when ``n_short > 0``: the value is over the trials that
    reached the budget, not over all of them.
    """

    value: float
    se: float
    ci_low: float
    ci_high: float
    boot_low: float
    boot_high: float
    p_value: float
    p_holm: float
    significant: bool
    metric: str
    budget: int | None
    n_seeds: int
    n_trials: int
    n_short: int
    n_error: int
    survivors_only: bool
    note: str = ""


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment; NaN entries stay NaN and are not counted in the family.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def apply_holm(estimates: Sequence[Estimate]) -> list[Estimate]:
    """The same estimates with ``p_holm`` and ``significant`` set over this family."""
    adj = holm([e.p_value for e in estimates])
    return [replace(e, p_holm=float(a), significant=bool(a < ALPHA))
            for e, a in zip(estimates, adj)]


def estimates(per_seed: np.ndarray, *, metric: str, budget: int | None, n_trials: int,
              n_short: int, n_error: int, n_boot: int, rng: np.random.Generator,
              note: str = "") -> list[Estimate]:
    """One Estimate per row of ``per_seed`` (K contrasts x n seeds, no NaN).

    The bootstrap draws one set of seed resamples shared by all K rows, so intervals of
    parts that sum to a total are computed on the same resamples.
    """
    d = np.atleast_2d(np.asarray(per_seed, dtype=float))
    k, n = d.shape
    nan = np.full(k, np.nan)
    value = d.mean(axis=1) if n else nan
    se, lo, hi, p, blo, bhi = nan, nan, nan, nan, nan, nan
    if n >= 2:
        se = d.std(axis=1, ddof=1) / np.sqrt(n)
        half = special.stdtrit(n - 1, 0.5 + CONFIDENCE / 2) * se
        lo, hi = value - half, value + half
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(value) / se
        p = np.where(se > 0, 2 * special.stdtr(n - 1, -t), np.where(value != 0, 0.0, 1.0))
        if n_boot > 0:
            idx = rng.integers(0, n, size=(n_boot, n))
            boot = d[:, idx].mean(axis=2)
            q = (1 - CONFIDENCE) / 2
            blo, bhi = np.quantile(boot, [q, 1 - q], axis=1)
    if n == 0:
        note = note or "no seed has every cell compared at this budget"
    elif n == 1:
        note = note or "1 seed: no interval or test"
    return [Estimate(value=float(value[i]), se=float(se[i]), ci_low=float(lo[i]),
                     ci_high=float(hi[i]), boot_low=float(blo[i]), boot_high=float(bhi[i]),
                     p_value=float(p[i]), p_holm=float("nan"), significant=False,
                     metric=metric, budget=budget, n_seeds=n, n_trials=n_trials,
                     n_short=n_short, n_error=n_error, survivors_only=n_short > 0, note=note)
            for i in range(k)]
