"""Shapley attribution of the gain from the baseline configuration to the target.

The players are the factors whose baseline and target levels differ; the value of a
coalition S is the metric of the configuration with the factors in S at their target level
and the rest at baseline. Shapley parts sum exactly to target - baseline.

- ``exact``: when all 2^k configurations of that baseline-target lattice are in the run (a
  full factorial), phi_i = sum over S not containing i of |S|!(k-|S|-1)!/k! (v(S+i) - v(S)).
- ``model``: on a fractional design, fit metric ~ main effects + two-factor interactions in
  0/1 coding (0 = baseline level, 1 = target) and take the Shapley values of that model,
  phi_i = b_i + 1/2 sum_j b_ij; the parts sum to the model's gain. Two-factor interactions
  aliased with a main effect (resolution III) cannot be told apart from it and are taken as
  zero; interactions aliased with each other (resolution IV) do not change phi. With
  factors of three or more levels every cell of the fraction is used, each level its own
  column, and the interactions the fraction cannot separate from phi are taken as zero.

Both are linear in the cell values, so they are computed per seed, and intervals are over
seeds; a seed counts only if it has every cell the attribution needs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import factorial
from typing import Any, Mapping

import numpy as np

from gridrun.analysis._contrast import check_budget, contrast
from gridrun.analysis._grid import Grid
from gridrun.analysis._stats import Estimate, apply_holm

__all__ = ["Shapley", "ShapleyPart", "shapley"]


@dataclass(frozen=True)
class ShapleyPart:
    """One factor's part of the gain; ``share`` is its fraction of the total gain."""

    factor: str
    level: Any
    reference: Any
    estimate: Estimate
    share: float


@dataclass(frozen=True)
class Shapley:
    """Parts (in factor order) that sum to ``total`` (target - baseline, or the model's gain
    for ``method="model"``). ``baseline_mean``/``target_mean`` are the two configurations'
    observed means over the same seeds (NaN if a configuration is not in the run).
    ``terms`` lists the model's interaction terms; ``dropped`` those taken as zero."""

    method: str
    baseline: dict
    target: dict
    parts: tuple[ShapleyPart, ...]
    total: Estimate
    baseline_mean: float
    target_mean: float
    terms: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    note: str = ""


def shapley(grid: Grid, *, target: Mapping[str, Any] | str | None = None,
            budget: int | None = None, n_boot: int = 2000, seed: int = 0) -> Shapley | None:
    """Shapley attribution of target - baseline; None when the run has neither the full
    lattice nor a two-level fractional design. ``target`` defaults to the spec's target;
    ``"best"`` uses the best configuration (by the metric's mode) at the common budget.
    The parts are Holm-adjusted among themselves.

    >>> from gridrun.analysis.testing import additive, synthetic_run
    >>> run = synthetic_run({"A": [False, True], "B": [False, True]},
    ...                     value=additive(80, {"A": {True: 1}, "B": {True: 3}},
    ...                                    {("A", "B"): {(True, True): 2}}))
    >>> s = shapley(run.grid())
    >>> [(p.factor, round(p.estimate.value, 6)) for p in s.parts], round(s.total.value, 6)
    ([('A', 2.0), ('B', 4.0)], 6.0)
    """
    budget = check_budget(grid, budget)
    tgt = _target(grid, target, budget)
    moving = [i for i in range(len(grid.factors)) if tgt[i] != grid.baseline[i]]
    if not moving:
        return None
    lattice = _lattice(grid, moving, tgt)
    rows = grid.rows(lattice @ grid.strides)
    if (rows >= 0).all():
        return _exact(grid, moving, tgt, rows, budget, n_boot, seed)
    if grid.design == "fractional":
        if all(len(lv) == 2 for lv in grid.levels):
            return _model(grid, moving, tgt, budget, n_boot, seed)
        return _model_any_levels(grid, moving, tgt, budget, n_boot, seed)
    return None


def _target(grid, target, budget) -> tuple[int, ...]:
    if target is None:
        return grid.target
    if isinstance(target, str):
        if target != "best":
            raise ValueError(f"target must be a mapping of factor -> level or 'best', "
                             f"got {target!r}")
        from gridrun.analysis._summary import best_config
        return best_config(grid, budget)
    out = list(grid.baseline)
    for f, lv in target.items():
        if f not in grid.factors:
            raise ValueError(f"target names {f!r}, which is not a factor: {list(grid.factors)}")
        i = grid.factors.index(f)
        if lv not in grid.levels[i]:
            raise ValueError(f"target {f!r}={lv!r} is not one of its levels {grid.levels[i]}")
        out[i] = grid.levels[i].index(lv)
    return tuple(out)


def _lattice(grid, moving, tgt) -> np.ndarray:
    k = len(moving)
    bits = (np.arange(2 ** k)[:, None] >> np.arange(k)) & 1
    codes = np.tile(np.asarray(grid.baseline), (2 ** k, 1))
    codes[:, moving] = np.where(bits, np.asarray(tgt)[moving], np.asarray(grid.baseline)[moving])
    return codes


def _exact(grid, moving, tgt, rows, budget, n_boot, seed) -> Shapley:
    k = len(moving)
    bits = ((np.arange(2 ** k)[:, None] >> np.arange(k)) & 1).astype(bool)
    size = bits.sum(axis=1)
    fact = np.array([factorial(n) for n in range(k + 1)], dtype=float)
    w_in = fact[np.maximum(size - 1, 0)] * fact[k - size] / fact[k]  # weight of v(S+i)
    w_out = fact[size] * fact[np.maximum(k - size - 1, 0)] / fact[k]  # weight of v(S)
    W = np.where(bits.T, w_in, -w_out)
    ends = np.zeros((3, 2 ** k))
    ends[0, -1], ends[0, 0], ends[1, 0], ends[2, -1] = 1, -1, 1, 1  # total, base, target
    con = contrast(grid, rows[None, :], np.vstack([W, ends]), budget)
    return _result(grid, "exact", moving, tgt, con, n_boot, seed)


def _model(grid, moving, tgt, budget, n_boot, seed) -> Shapley | None:
    fixed = [i for i in range(len(grid.factors)) if i not in moving]
    on_lattice = np.ones(len(grid.keys), bool)
    for i in moving:
        on_lattice &= np.isin(grid.configs[:, i], [grid.baseline[i], tgt[i]])
    for i in fixed:
        on_lattice &= grid.configs[:, i] == grid.baseline[i]
    rows = np.flatnonzero(on_lattice)
    if len(rows) == 0:
        return None
    x = (grid.configs[rows][:, moving] == np.asarray(tgt)[moving]).astype(float)
    z = 2 * x - 1
    k = len(moving)
    names = [grid.factors[i] for i in moving]
    kept, dropped = [], []
    for a, b in itertools.combinations(range(k), 2):
        zz = z[:, a] * z[:, b]
        aliased = [c for c in range(k) if abs(zz @ z[:, c]) == len(zz)]
        if aliased or abs(zz.sum()) == len(zz):
            dropped.append(f"{names[a]}×{names[b]}")
        else:
            kept.append((a, b))
    X = np.column_stack([np.ones(len(rows)), x] + [x[:, a] * x[:, b] for a, b in kept])
    A = np.zeros((k, X.shape[1]))  # phi_i = b_i + 1/2 sum_j b_ij
    A[:, 1:k + 1] = np.eye(k)
    for t, (a, b) in enumerate(kept):
        A[[a, b], k + 1 + t] = 0.5
    P = np.linalg.pinv(X)
    W = A @ P
    if not np.allclose(W @ X, A, atol=1e-8):  # phi not estimable from this design
        return None
    ends = np.vstack([W.sum(axis=0), _indicator(x, 0), _indicator(x, 1)])
    con = contrast(grid, rows[None, :], np.vstack([W, ends]), budget)
    note = ("two-factor interactions aliased with main effects taken as zero: "
            + ", ".join(dropped)) if dropped else ""
    missing = tuple(lv for lv in (0, 1) if not (x == lv).all(axis=1).any())
    return _result(grid, "model", moving, tgt, con, n_boot, seed, missing=missing,
                   terms=tuple(f"{names[a]}×{names[b]}" for a, b in kept),
                   dropped=tuple(dropped), note=note)


def _model_any_levels(grid, moving, tgt, budget, n_boot, seed) -> Shapley | None:
    """``_model`` for a fraction with factors of three or more levels: every cell of the
    fraction, each factor's non-baseline levels as 0/1 columns, and the two-factor
    interaction blocks between moving factors (every pair of their non-baseline levels)
    that the fraction keeps clear of every other two-factor interaction. Blocks aliased
    with another (as in a 3^(4-1) fraction, where A×B shares contrasts with C×D) are taken
    as zero and named in ``dropped``: which of the two is real, the cells cannot say."""
    n, k = len(grid.keys), len(grid.factors)
    codes = grid.configs
    cols, main = [np.ones(n)], {}
    for i in range(k):
        for lv in range(len(grid.levels[i])):
            if lv != grid.baseline[i]:
                main[i, lv] = len(cols)
                cols.append((codes[:, i] == lv).astype(float))
    A = np.zeros((len(moving), len(cols)))
    for r, i in enumerate(moving):
        A[r, main[i, tgt[i]]] = 1.0
    if not _estimable(np.column_stack(cols), A):
        return None
    clear = _clear_pairs(grid)
    kept, dropped = [], []
    for a, b in itertools.combinations(range(len(moving)), 2):
        i, j = moving[a], moving[b]
        name = f"{grid.factors[i]}×{grid.factors[j]}"
        if (i, j) not in clear:
            dropped.append(name)
            continue
        block = [(li, lj) for li in range(len(grid.levels[i])) if li != grid.baseline[i]
                 for lj in range(len(grid.levels[j])) if lj != grid.baseline[j]]
        extra = np.zeros((len(moving), len(block)))
        extra[[a, b], block.index((tgt[i], tgt[j]))] = 0.5
        cols = cols + [(codes[:, i] == li).astype(float) * (codes[:, j] == lj)
                       for li, lj in block]
        A = np.hstack([A, extra])
        kept.append(name)
    X = np.column_stack(cols)
    if not _estimable(X, A):
        return None
    W = A @ np.linalg.pinv(X)
    base = (codes == np.asarray(grid.baseline)).all(axis=1).astype(float)
    top = (codes == np.asarray(tgt)).all(axis=1).astype(float)
    ends = np.vstack([W.sum(axis=0), base / max(base.sum(), 1), top / max(top.sum(), 1)])
    con = contrast(grid, np.arange(n)[None, :], np.vstack([W, ends]), budget)
    note = ("two-factor interactions the fraction aliases with others taken as zero: "
            + ", ".join(dropped)) if dropped else ""
    missing = tuple(lv for lv, hit in ((0, base), (1, top)) if not hit.any())
    return _result(grid, "model", moving, tgt, con, n_boot, seed, missing=missing,
                   terms=tuple(kept), dropped=tuple(dropped), note=note)


def _clear_pairs(grid) -> set:
    """The factor pairs (i, j) whose interaction contrasts are orthogonal, over the cells,
    to every main effect and every other pair's (orthonormal contrasts of each factor's
    levels, multiplied)."""
    codes, k = grid.configs, len(grid.factors)
    basis = []
    for i in range(k):
        s = len(grid.levels[i])
        q, _ = np.linalg.qr(np.column_stack([np.ones(s), np.eye(s)[:, 1:]]))
        basis.append(q[:, 1:][codes[:, i]])
    pairs = {(i, j): np.einsum("ni,nj->nij", basis[i], basis[j]).reshape(len(codes), -1)
             for i, j in itertools.combinations(range(k), 2)}
    others = [basis[i] for i in range(k)]
    clear = set()
    for ij, B in pairs.items():
        rest = others + [C for kl, C in pairs.items() if kl != ij]
        if all(np.abs(B.T @ C).max() < 1e-9 for C in rest):
            clear.add(ij)
    return clear


def _estimable(X: np.ndarray, A: np.ndarray) -> bool:
    """Whether every row of A (a linear function of the coefficients) is estimable from X."""
    return bool(np.allclose(A @ np.linalg.pinv(X) @ X, A, atol=1e-8))


def _indicator(x, level) -> np.ndarray:
    """Weights picking the run with every factor at baseline (0) or target (1), if any."""
    hit = (x == level).all(axis=1)
    return hit / max(hit.sum(), 1)


def _result(grid, method, moving, tgt, con, n_boot, seed, missing=(), **extra) -> Shapley:
    rng = np.random.default_rng(seed)
    k = len(moving)
    ests = con.estimates(grid, n_boot, rng)
    parts_est, (total,) = apply_holm(ests[:k]), apply_holm(ests[k:k + 1])
    base_mean, tgt_mean = (np.nan if lv in missing else ests[k + 1 + lv].value
                           for lv in (0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = [e.value / total.value if total.value else np.nan for e in parts_est]
    parts = tuple(ShapleyPart(grid.factors[i], grid.levels[i][tgt[i]],
                              grid.levels[i][grid.baseline[i]], e, float(s))
                  for i, e, s in zip(moving, parts_est, shares))
    return Shapley(method, grid.named(grid.baseline), grid.named(tgt), parts, total,
                   base_mean, tgt_mean, **extra)
