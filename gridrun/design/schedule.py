"""Ablation-aware early stopping: which cells ASHA may stop, when, and what must be confirmed.

Plain ASHA ranks single trials at early epochs, and an ablation table built from what it
leaves compares techniques at the grace-period epoch: wrong by many points, because early
epochs rank trials poorly and pruning follows the factor levels (a regularizer that starts
slowly is stopped every time). gridrun schedules *cells* (a configuration with all its
seeds) instead, under four rules, each a small pure function here:

- **Anchors** (``anchors_for``): the cells the paper table needs are never stopped. On a full
  factorial those are a balanced fraction of the grid (a regular 2^(k-p) fraction of
  resolution IV or more over the two-level factors, crossed with every level of the factors
  that have more), plus the baseline and the target. The main effects and Shapley parts are
  estimated from the anchors at the full budget, with every seed. On the other designs every
  cell is an anchor: their tables need every cell.
- **Cells, not seeds**: a cell's seeds train in lockstep and are promoted or stopped together,
  on their mean (``RungState``).
- **Stratified promotion**: at every rung, every level of every factor keeps a survivor.
- **Confirmation** (``cells_to_confirm``): after screening, the best screened cells (and any
  anchor that did not finish) are continued from their checkpoints to the full budget.

    >>> a = anchors_for({"A": [False, True], "B": [False, True], "C": [False, True],
    ...                  "D": [False, True]}, {}, {})
    >>> a.name, len(a.points), a.n_cells
    ('2^(4-1) resolution IV', 8, 16)
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from gridrun.design.arrays import mixed_fraction, roman, to_levels
from gridrun.design.fractional import MAX_FACTORS, fractional_plan

__all__ = ["Anchors", "anchors_for", "anchors_of", "anchors_of_spec", "asha_rungs",
           "asha_expected_epochs", "expected_epochs", "RungState", "strata_of", "cutoff",
           "cells_to_confirm", "cell_key", "choose_resolution", "promotion_allowance",
           "capped_epochs", "scheduled_epochs", "budget_settings",
           "DEFAULT_BUDGET", "DEFAULT_RESOLUTION"]

DEFAULT_RESOLUTION = 4  # main effects clear of two-factor interactions
DEFAULT_BUDGET = 0.5  # share of the grid's trial-epochs the schedule may be expected to use


def asha_rungs(max_t: int, grace_period: int, reduction_factor: int) -> list[int]:
    """The epochs at which ASHA compares cells: grace * eta^k below max_t.

    >>> asha_rungs(12, 1, 3)
    [1, 3, 9]
    """
    rungs, r = [], grace_period
    while r < max_t:
        rungs.append(r)
        r *= reduction_factor
    return rungs


def asha_expected_epochs(max_t: int, grace_period: int, reduction_factor: int) -> float:
    """Expected epochs per trial when a fraction 1/eta survives each rung.

    >>> round(asha_expected_epochs(max_t=9, grace_period=1, reduction_factor=3), 4)
    2.3333
    """
    total, prev, alive = 0.0, 0, 1.0
    for r in asha_rungs(max_t, grace_period, reduction_factor):
        total += alive * (r - prev)
        prev, alive = r, alive / reduction_factor
    return total + alive * (max_t - prev)


def cell_key(levels: Mapping[str, Any]) -> str:
    """A stable text key of a configuration (factor -> level), equal across JSON round trips.

    >>> cell_key({"b": 0.5, "a": True})
    '{"a": true, "b": 0.5}'
    """
    return json.dumps({k: _plain(v) for k, v in levels.items()}, sort_keys=True)


def _plain(v):
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()  # numpy scalars from a DataFrame
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return float(v)  # 1 and 1.0 are one level (techniques.same_level)
    return str(v)


# -- anchors -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Anchors:
    """The cells that are never stopped early.

    ``fraction`` is the balanced set the effects are estimated from (every cell when the
    grid cannot be fractionated); ``points`` adds the baseline and target when the fraction
    lacks them. ``name`` says what the fraction is; ``generators`` name its factors."""

    points: tuple[dict, ...]
    fraction: tuple[dict, ...]
    n_cells: int
    name: str
    resolution: int | None
    generators: tuple[str, ...] = ()
    two_level: tuple[str, ...] = ()
    crossed: tuple[str, ...] = ()
    why: str = ""  # how the resolution was chosen, when it was chosen for a budget
    # Main effects that share a contrast with two-factor interactions (resolution III only),
    # e.g. "dropout with optimizer×backbone".
    aliased: tuple[str, ...] = ()

    @property
    def is_all(self) -> bool:
        return len(self.points) == self.n_cells

    def keys(self) -> set[str]:
        return {cell_key(p) for p in self.points}

    def fraction_keys(self) -> set[str]:
        return {cell_key(p) for p in self.fraction}

    def describe(self) -> str:
        """One sentence for the run's output and its report."""
        if self.is_all:
            return f"every cell ({self.n_cells}) at the full budget"
        extra = len(self.points) - len(self.fraction)
        cross = f" crossed with every level of {', '.join(self.crossed)}" if self.crossed else ""
        gens = f" ({', '.join(self.generators)})" if self.generators else ""
        plus = f", plus {extra} for baseline/target" if extra else ""
        why = f" ({self.why})" if self.why else ""
        alias = (f"; its main effects share contrasts with two-factor interactions: "
                 f"{'; '.join(self.aliased)}" if self.aliased else "")
        return (f"the {len(self.fraction)}-cell {self.name} fraction{gens}{cross} of "
                f"{self.n_cells} cells{plus}{why}{alias}")

    def to_dict(self) -> dict:
        return {"name": self.name, "resolution": self.resolution,
                "generators": list(self.generators), "cells": len(self.points),
                "fraction_cells": len(self.fraction), "grid_cells": self.n_cells,
                "two_level": list(self.two_level), "crossed": list(self.crossed),
                "why": self.why, "aliased": list(self.aliased)}


def anchors_for(factors: Mapping[str, Sequence], baseline: Mapping[str, Any],
                target: Mapping[str, Any], *, design: str = "full",
                resolution: int = DEFAULT_RESOLUTION) -> Anchors:
    """The anchors of a grid: ``factors`` maps each factor to its levels (the first is the
    default baseline, the last the default target).

    Only a full factorial is fractionated, by the smallest orthogonal array of strength
    ``resolution`` - 1 that contains the baseline (``gridrun.design.arrays``): a grid of
    two-level factors takes a regular 2^(k-p) fraction (coded -1 at the baseline level, +1
    at the other); factors with three or more levels take regular s^(k-p) fractions of their
    own, crossed with the others, and are crossed in full where no smaller fraction reaches
    the resolution. When nothing smaller than the grid does, every cell is an anchor.

    >>> a = anchors_for({"A": [0, 1], "B": [0, 1], "C": [0, 1], "D": [0, 1], "E": [0, 1],
    ...                  "F": [0, 1]}, {}, {})
    >>> a.describe()
    'the 16-cell 2^(6-2) resolution IV fraction (E=A×B×C, F=B×C×D) of 64 cells'
    >>> three = {n: ["a", "b", "c"] for n in ("dropout", "optimizer", "backbone", "lr")}
    >>> anchors_for({"augmentation": [False, True], **three}, {}, {}).describe()
    'the 54-cell 3^(4-1) resolution IV fraction (lr=dropout+optimizer+backbone (mod 3)) crossed with every level of augmentation of 162 cells, plus 1 for baseline/target'
    """
    names = list(factors)
    levels = {n: list(factors[n]) for n in names}
    base = {n: baseline.get(n, levels[n][0]) for n in names}
    tgt = {n: target.get(n, levels[n][-1]) for n in names}
    key = json.dumps([[n, [cell_key({"v": lv}) for lv in levels[n]], cell_key({"v": base[n]}),
                       cell_key({"v": tgt[n]})] for n in names] + [design, resolution])
    if key not in _ANCHORS:  # plan asks for the same anchors once per design it prices
        if len(_ANCHORS) >= 64:
            _ANCHORS.clear()
        _ANCHORS[key] = _anchors_for(names, levels, base, tgt, design, resolution)
    return _ANCHORS[key]


_ANCHORS: dict[str, Anchors] = {}  # anchors_for's answers, by its arguments as text


def _anchors_for(names, levels, base, tgt, design, resolution) -> Anchors:
    n_cells = math.prod(len(v) for v in levels.values())
    two = [n for n in names if len(levels[n]) == 2]
    found = None
    if design == "full" and len(names) >= 2:
        if len(two) == len(names) and len(two) <= MAX_FACTORS:
            found = _two_level_fraction(names, levels, base, resolution)
        else:
            found = _mixed_fraction(names, levels, base, resolution)
    if found is None:
        full = _AllCells(names, [levels[n] for n in names])
        return Anchors(full, full, n_cells, "full grid", None)
    fraction, name, res, gens, crossed, aliased = found
    points, have = list(fraction), {cell_key(p) for p in fraction}
    for extra in (base, tgt):
        if cell_key(extra) not in have:
            points.append(dict(extra))
            have.add(cell_key(extra))
    return Anchors(tuple(points), tuple(fraction), n_cells, name, res, gens, tuple(two),
                   tuple(crossed), aliased=aliased)


class _AllCells(Sequence):
    """Every cell of a grid, as a sequence of factor -> level dicts made when asked for: a
    grid where every cell is an anchor can have a million cells that ``plan`` only counts."""

    def __init__(self, names, levels):
        self._names, self._levels = list(names), [list(v) for v in levels]

    def __len__(self) -> int:
        return math.prod(len(v) for v in self._levels)

    def __iter__(self):
        return (dict(zip(self._names, c)) for c in itertools.product(*self._levels))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        out = {}
        for n, lv in zip(reversed(self._names), reversed(self._levels)):  # the last fastest
            i, r = divmod(i, len(lv))
            out[n] = lv[r]
        return {n: out[n] for n in self._names}


def _two_level_fraction(names, levels, base, resolution):
    """A grid of two-level factors: the catalogue's minimum-aberration fraction, signed so
    that the baseline is in it; None when it is the whole grid."""
    plan = fractional_plan(len(names), resolution)
    if plan.is_full:
        return None
    other = {n: [lv for lv in levels[n] if not _eq(lv, base[n])][0] for n in names}
    signs = _baseline_signs(plan)
    fraction = [{n: (other[n] if s * v > 0 else base[n]) for n, s, v in zip(names, signs, row)}
                for row in plan.runs]
    named = plan.named(names)
    gens = tuple(_generator_text(named, g, s)
                 for g, s in zip(plan.generators, signs[plan.k - plan.p:]))
    aliased = tuple(f"{named.label(a)} with {', '.join(named.label(w) for w in others)}"
                    for a, others in ((a, [w for w in plan.aliases[a] if len(w) == 2])
                                      for a in plan.letters) if others)
    return fraction, plan.name, plan.resolution, gens, (), aliased


def _mixed_fraction(names, levels, base, resolution):
    """Any grid: the orthogonal array of ``gridrun.design.arrays``, its value 0 at every
    factor's baseline level; None when it is the whole grid."""
    arr = mixed_fraction([len(levels[n]) for n in names], resolution - 1).named(names)
    if arr.is_full:
        return None
    idx = {n: next(i for i, lv in enumerate(levels[n]) if _eq(lv, base[n])) for n in names}
    fraction = [{n: levels[n][to_levels(v, idx[n], len(levels[n]))] for n, v in zip(names, row)}
                for row in arr.runs]
    crossed = [names[i] for i in arr.crossed]
    cut = " × ".join(g.name for g in arr.groups if g.p)
    name = f"{cut} resolution {roman(arr.resolution)}"
    aliased = ()
    if arr.resolution < 4:  # only then do main effects share contrasts with 2FIs
        aliases = arr.aliases()
        aliased = tuple(f"{n} with {', '.join(arr.label(e) for e in two)}"
                        for i, n in enumerate(names)
                        if (two := [e for e in aliases[(i,)] if len(e) == 2]))
    return fraction, name, arr.resolution, tuple(arr.generators()), crossed, aliased


def _eq(a, b) -> bool:
    return cell_key({"x": a}) == cell_key({"x": b})


def _baseline_signs(plan) -> list[int]:
    """+1/-1 per column so the all-baseline run (every factor at -1) is in the fraction: a
    generated column that is the product of an even number of base columns is +1 there,
    so it is flipped."""
    m = plan.k - plan.p
    signs = [1] * m
    for g in plan.generators:
        word = g.split("=")[1]
        signs.append(1 if len(word) % 2 == 1 else -1)
    return signs


def _generator_text(named, generator: str, sign: int) -> str:
    """'E=ABC' as 'dropout=augmentation×batchnorm×optimizer', with a minus when flipped."""
    lhs, rhs = generator.split("=")
    return f"{named.label(lhs)}={'-' if sign < 0 else ''}{named.label(rhs)}"


def anchors_of(ablation) -> Anchors:
    """The anchors of a ``gridrun.Ablation``: its scheduler's resolution, or the one
    ``choose_resolution`` picks for the scheduler's epoch budget."""
    s = ablation.scheduler
    return _anchors(
        {f.name: f.levels for f in ablation.factors}, ablation.baseline or {},
        ablation.target or {}, design=ablation.design, max_t=ablation.epochs,
        resolution=s.resolution if s else DEFAULT_RESOLUTION,
        grace_period=s.grace_period if s else 1, reduction_factor=s.reduction_factor if s else 3,
        budget=getattr(s, "budget", DEFAULT_BUDGET), confirm=s.confirm if s else 1)


def budget_settings(ablation) -> dict:
    """The keyword arguments of ``promotion_allowance`` and ``capped_epochs`` for an
    ablation with a scheduler."""
    s = ablation.scheduler
    return dict(max_t=ablation.epochs, grace_period=s.grace_period,
                reduction_factor=s.reduction_factor, budget=s.budget, confirm=s.confirm)


def scheduled_epochs(ablation, anchors: Anchors | None = None) -> float:
    """Expected epochs per seed over a screened full factorial (ASHA on, not every cell an
    anchor) under gridrun's scheduling: ``capped_epochs`` with the scheduler's settings."""
    anchors = anchors_of(ablation) if anchors is None else anchors
    return capped_epochs(anchors, **budget_settings(ablation))


def anchors_of_spec(spec: Mapping[str, Any]) -> Anchors | None:
    """The anchors a run's spec (``Ablation.to_dict()``, as stored in run.json) declares;
    None when the spec has no gridrun scheduler (no ASHA, or a run made before gridrun
    scheduled cells, whose ``scheduler`` has no ``resolution``)."""
    sched = spec.get("scheduler") or {}
    if not sched or "resolution" not in sched:
        return None
    return _anchors(spec["factors"], spec.get("baseline") or {}, spec.get("target") or {},
                    design=spec.get("design", "full"), max_t=int(spec["epochs"]),
                    resolution=sched["resolution"], grace_period=sched["grace_period"],
                    reduction_factor=sched["reduction_factor"],
                    budget=sched.get("budget", DEFAULT_BUDGET),
                    confirm=sched.get("confirm", 1))


def _anchors(factors, baseline, target, *, design, max_t, resolution, grace_period,
             reduction_factor, budget, confirm) -> Anchors:
    if resolution is not None:
        return anchors_for(factors, baseline, target, design=design, resolution=resolution)
    return choose_resolution(factors, baseline, target, design=design, max_t=max_t,
                             grace_period=grace_period, reduction_factor=reduction_factor,
                             budget=budget, confirm=confirm)


def choose_resolution(factors: Mapping[str, Sequence], baseline: Mapping[str, Any],
                      target: Mapping[str, Any], *, max_t: int, grace_period: int,
                      reduction_factor: int, budget: float = DEFAULT_BUDGET,
                      design: str = "full", confirm: int = 1) -> Anchors:
    """The anchors of the highest resolution whose schedule is expected to fit ``budget``
    (a share of the grid's trial-epochs): resolution V when it fits, else IV.

    Resolution IV leaves each main effect aliased with three-factor interactions, and real
    grids have them (batchnorm x dropout x optimizer moved a Fashion-MNIST effect by 1.2
    points); resolution V clears them but costs twice the anchors. Which one a grid can
    afford depends on its size: with 8 two-level factors a resolution V fraction is a quarter
    of the grid, with 6 it is half.

    >>> eight = {n: [0, 1] for n in "ABCDEFGH"}
    >>> a = choose_resolution(eight, {}, {}, max_t=8, grace_period=1, reduction_factor=4)
    >>> print(a.resolution, a.why)
    5 resolution V: an expected 44% of the grid's epochs, within the budget of 50%
    >>> six = {n: [0, 1] for n in "ABCDEF"}
    >>> choose_resolution(six, {}, {}, max_t=8, grace_period=1, reduction_factor=4).why
    "resolution V would need 62% of the grid's epochs, over the budget of 50%"
    >>> print(choose_resolution(six, {}, {}, max_t=8, grace_period=1, reduction_factor=4,
    ...                         budget=0.25).why)   # doctest: +NORMALIZE_WHITESPACE
    resolution V would need 62% of the grid's epochs, over the budget of 25%, and even
    resolution IV's anchors with every first rung exceed it: ...
    """
    four = anchors_for(factors, baseline, target, design=design, resolution=4)
    if four.is_all:
        return four
    total = four.n_cells * max_t

    def share_of(anchors):  # expected trial-epochs, as a share of every cell to the end
        return expected_epochs(anchors, max_t=max_t, grace_period=grace_period,
                               reduction_factor=reduction_factor) / total

    five = anchors_for(factors, baseline, target, design=design, resolution=5)
    share = share_of(five)
    if not five.is_all and share <= budget + 1e-9:
        why = (f"resolution V: an expected {share:.0%} of the grid's epochs, within the "
               f"budget of {budget:.0%}")
        return replace(five, why=why)
    why = ("no resolution V fraction is smaller than the grid" if five.is_all else
           f"resolution V would need {min(share, 1.0):.0%} of the grid's epochs, over the "
           f"budget of {budget:.0%}")
    if promotion_allowance(four, max_t=max_t, grace_period=grace_period,
                           reduction_factor=reduction_factor, budget=budget,
                           confirm=confirm) < 0:  # the smallest anchors: the budget is missed
        why += (", and even resolution IV's anchors with every first rung exceed it: raise "
                "the budget, or add two-level factors, which make the anchors a smaller share")
    return replace(four, why=why)


# -- decisions at a rung ---------------------------------------------------------------------
def cutoff(recorded: Sequence[float], reduction_factor: int, mode: str) -> float | None:
    """ASHA's bar at a rung: the (1 - 1/eta) quantile of the values recorded there (for
    "max"; the 1/eta quantile for "min"); None before anything is recorded.

    >>> cutoff([1, 2, 3, 4], 2, "max")
    2.5
    """
    return _cutoff_sorted(sorted(v for v in recorded if v is not None and math.isfinite(v)),
                          reduction_factor, mode)


def _cutoff_sorted(vals: Sequence[float], reduction_factor: int, mode: str) -> float | None:
    """``cutoff`` of finite values already sorted."""
    if not vals:
        return None
    q = 1 - 1 / reduction_factor if mode == "max" else 1 / reduction_factor
    pos = q * (len(vals) - 1)  # linear interpolation, as numpy.percentile
    lo = math.floor(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


@dataclass
class RungState:
    """The bookkeeping of one ablation-aware ASHA bracket over cells.

    ``on_result(cell, epoch, value)`` returns "continue" or "stop". A cell is judged once
    per rung, on the mean of its seeds. Anchors (``protected``) always continue, but their
    values are recorded, so they set the bar too. A screened cell below the bar still
    continues when some level it has (``strata[cell]``: (factor, level) pairs) has no
    screened survivor at that rung yet, so among the screened cells every level of every
    factor keeps survivors (``stratify``; the anchors already reach the end at every level).
    Decisions are asynchronous, as in ASHA: that survivor is the first of its level to
    reach the rung, not necessarily the best.

    The budget is a ceiling: promoting a screened cell past a rung commits the epochs to its
    next rung (``max_t`` after the last), and a cell whose commitment would take the total
    over ``allowance`` (cell-epochs; ``promotion_allowance``) is stopped, whatever its
    value or strata. Anchors are never stopped. ``allowance`` infinite: no ceiling.

    >>> s = RungState([1, 3], 3, max_t=8, allowance=4, stratify=False)
    >>> [s.on_result(c, 1, .9) for c in "abc"], s.spent, s.over_budget
    (['continue', 'continue', 'stop'], 4, {'c': 1})
    """

    rungs: Sequence[int]
    reduction_factor: int
    mode: str = "max"
    protected: set = field(default_factory=set)
    strata: Mapping[str, Sequence] = field(default_factory=dict)
    stratify: bool = True
    recorded: dict = field(default_factory=dict)  # rung -> {cell: value}
    survivors: dict = field(default_factory=dict)  # rung -> {(factor, level): count}
    stopped: dict = field(default_factory=dict)  # cell -> rung it was stopped at
    max_t: int = 0  # the full budget in epochs (needed with an allowance)
    allowance: float = math.inf  # cell-epochs screened cells may spend past their first rung
    spent: float = 0  # what promotions have committed so far, in cell-epochs
    over_budget: dict = field(default_factory=dict)  # cell -> rung: kept but for the ceiling
    # rung -> [how many of recorded[rung] it holds, their finite values sorted]: the bar
    # without sorting every value at each judgement (that made a grid's screen O(n^2))
    _sorted: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def on_result(self, cell: str, epoch: int, value: float | None) -> str:
        if epoch not in self.rungs:
            return "continue"
        rec = self.recorded.setdefault(epoch, {})
        if cell in rec:
            return "continue"
        bar = _cutoff_sorted(self._values(epoch), self.reduction_factor, self.mode)
        bad = value is None or not math.isfinite(value)
        self._add(epoch, cell, value if not bad else None)
        below = bad or (bar is not None and (value < bar if self.mode == "max" else value > bar))
        surv = self.survivors.setdefault(epoch, {})
        keep = cell in self.protected or not below
        if not keep and self.stratify and not bad:
            keep = any(surv.get(s, 0) == 0 for s in self.strata.get(cell, ()))
        if keep and cell not in self.protected and math.isfinite(self.allowance):
            cost = self._step(epoch)
            keep = self.spent + cost <= self.allowance + 1e-9
            if keep:
                self.spent += cost
            else:
                self.over_budget[cell] = epoch
        if not keep:
            self.stopped[cell] = epoch
            return "stop"
        if cell not in self.protected:
            self._survive(cell, epoch)
        return "continue"

    def _values(self, epoch: int) -> list:
        """The finite values recorded at rung ``epoch``, sorted (rebuilt only when
        ``recorded`` was filled by someone else)."""
        rec = self.recorded.get(epoch, {})
        kept = self._sorted.get(epoch)
        if kept is None or kept[0] != len(rec):
            kept = self._sorted[epoch] = [len(rec), sorted(
                v for v in rec.values() if v is not None and math.isfinite(v))]
        return kept[1]

    def _add(self, epoch: int, cell: str, value: float | None) -> None:
        """Record ``value`` (None: not finite) of ``cell`` at rung ``epoch``."""
        vals = self._values(epoch)
        self.recorded.setdefault(epoch, {})[cell] = value
        self._sorted[epoch][0] += 1
        if value is not None:
            bisect.insort(vals, value)

    def _survive(self, cell: str, epoch: int) -> None:
        """Count a screened cell as a survivor of its levels at rung ``epoch``."""
        surv = self.survivors.setdefault(epoch, {})
        for s in self.strata.get(cell, ()):
            surv[s] = surv.get(s, 0) + 1

    def _step(self, epoch: int) -> int:
        """The epochs a promotion at rung ``epoch`` commits: to the next rung, or the end."""
        later = [r for r in self.rungs if r > epoch]
        return (later[0] if later else self.max_t) - epoch

    def record(self, cell: str, epoch: int, value: float | None, passed: bool) -> None:
        """What an earlier session decided at a rung, replayed as a fact (a resumed run):
        the value joins the bar, and a promotion counts as a survivor and is charged to
        the budget, whatever the bar would say now.

        >>> s = RungState([1, 3], 3, max_t=8, allowance=4, stratify=False)
        >>> s.record("a", 1, .5, passed=True); s.record("b", 1, .9, passed=False)
        >>> s.spent, s.stopped, s.on_result("c", 1, .95)
        (2, {'b': 1}, 'continue')
        """
        if cell in self.recorded.get(epoch, {}):
            return
        self._add(epoch, cell, value if value is not None and math.isfinite(value) else None)
        if not passed:
            self.stopped[cell] = epoch
        elif cell not in self.protected:
            self._survive(cell, epoch)
            self.spent += self._step(epoch)


def strata_of(levels: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The (factor, level) pairs stratified promotion keeps alive, for one cell."""
    return tuple((f, cell_key({"v": v})) for f, v in levels.items())


# -- confirmation ----------------------------------------------------------------------------
def cells_to_confirm(cells: Mapping[str, Mapping[str, Any]], *, max_t: int, anchors: set,
                     top: int, mode: str = "max") -> list[str]:
    """The cells to bring to the full budget ``max_t`` after screening, in order: every
    anchor that did not get there, then the ``top`` best screened cells that did not.

    ``cells`` maps a cell key to {"reached": epochs every seed of it ran (0 if a seed
    errored), "value": its mean metric at that epoch, "error": bool}. Screened cells rank by
    the furthest epoch reached, then by value (ASHA's own ranking: a cell that went further
    beat others at every rung on the way). Errored cells are never confirmed.

    >>> cells = {"a": {"reached": 12, "value": .9}, "b": {"reached": 3, "value": .8},
    ...          "c": {"reached": 3, "value": .85}, "d": {"reached": 1, "value": .99}}
    >>> cells_to_confirm(cells, max_t=12, anchors={"a"}, top=1)
    ['c']
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise ValueError(f"top must be an integer >= 0, got {top!r}")
    ok = {k: c for k, c in cells.items() if not c.get("error")}
    out = [k for k in ok if k in anchors and ok[k]["reached"] < max_t]
    sign = 1 if mode == "max" else -1

    def rank(k):
        v = ok[k]["value"]
        v = -math.inf if v is None or not math.isfinite(v) else sign * v
        return (-ok[k]["reached"], -v, k)

    screened = sorted((k for k in ok if k not in anchors), key=rank)
    out += [k for k in screened[:top] if ok[k]["reached"] < max_t]
    return out


def promotion_allowance(anchors: Anchors, *, max_t: int, grace_period: int,
                        reduction_factor: int, budget: float, confirm: int) -> float:
    """The cell-epochs screened cells may spend past their first rung so the run stays
    within ``budget`` (a share of every cell running ``max_t`` epochs): what is left after
    the anchors' full budget, every screened cell's first rung, and the ``confirm`` best
    cells' run from there to the end (the best may have been stopped at the first rung).
    Negative when those alone exceed the budget: then no screened cell goes past its first
    rung.

    The 6-factor benchmark: 64 cells, 16 anchors, 8 epochs, rungs 1 and 3, a budget of 50%:

    >>> a = anchors_for({n: [0, 1] for n in "ABCDEF"}, {}, {})
    >>> promotion_allowance(a, max_t=8, grace_period=1, reduction_factor=3, budget=.5,
    ...                     confirm=1)   # 256 - 16*8 - 48*1 - 1*(8 - 1)
    73.0
    """
    rungs = asha_rungs(max_t, grace_period, reduction_factor)
    n_screen = anchors.n_cells - len(anchors.points)
    first = rungs[0] if rungs else max_t
    return float(budget * anchors.n_cells * max_t - len(anchors.points) * max_t
                 - n_screen * first - confirm * (max_t - first))


def capped_epochs(anchors: Anchors, *, max_t: int, grace_period: int, reduction_factor: int,
                  budget: float, confirm: int) -> float:
    """``expected_epochs`` under the budget's ceiling: at most the budget, but never less
    than the anchors, every screened cell's first rung and the confirmed cells' run from
    there (what no ceiling can save).

    >>> a = anchors_for({n: [0, 1] for n in "ABCDEF"}, {}, {})
    >>> kw = dict(max_t=8, grace_period=1, reduction_factor=3, confirm=1)
    >>> capped_epochs(a, budget=.5, **kw), capped_epochs(a, budget=.25, **kw)
    (234.66666666666669, 183.0)
    """
    free = expected_epochs(anchors, max_t=max_t, grace_period=grace_period,
                           reduction_factor=reduction_factor)
    allowance = promotion_allowance(anchors, max_t=max_t, grace_period=grace_period,
                                    reduction_factor=reduction_factor, budget=budget,
                                    confirm=confirm)
    ceiling = budget * anchors.n_cells * max_t
    if allowance < 0:  # every screened cell stops at its first rung; the best is confirmed
        return ceiling - allowance
    return min(free, ceiling)


def expected_epochs(anchors: Anchors, *, max_t: int, grace_period: int,
                    reduction_factor: int) -> float:
    """Expected epochs per seed over the whole grid: anchors run ``max_t``; every other cell
    reaches the first rung and a 1/eta share of those each next rung (the last survivors
    run to ``max_t``).

    >>> a = anchors_for({n: [0, 1] for n in "ABCDEF"}, {}, {})
    >>> round(expected_epochs(a, max_t=12, grace_period=1, reduction_factor=3), 2)
    309.33
    """
    # The last rung's survivors run to max_t, so the best screened cells are already there;
    # confirm costs extra only when a run was cut short.
    n_screen = anchors.n_cells - len(anchors.points)
    return len(anchors.points) * max_t + n_screen * asha_expected_epochs(
        max_t, grace_period, reduction_factor)
