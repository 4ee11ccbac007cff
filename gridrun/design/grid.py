"""Expand an ``Ablation`` into the list of trials to run.

Designs: ``full`` factorial, ``add_one_in`` (baseline, and baseline plus each technique at its
target level), ``leave_one_out`` (target, and target minus each technique), ``cumulative``
(baseline, +A, +A+B, ... in ``order``) and ``fractional`` (a regular fraction of the chosen
resolution: 2^(k-p) for two-level factors, an orthogonal array of any levels otherwise). Every design point is crossed with the seeds. Identical points are run
once. Trial ids are a hash of the resolved configuration and the seed, so they are stable
across runs and machines.

    >>> from gridrun import Ablation, Factor
    >>> a = Ablation(name="x", dataset="digits", factors=[Factor("batchnorm", [False, True])],
    ...              seeds=2)
    >>> len(expand(a))
    4
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, Mapping

from gridrun.spec import techniques

__all__ = ["Trial", "expand", "design_points", "resolve_config", "trial_id", "fraction_of",
           "fractional_points"]


@dataclass(frozen=True)
class Trial:
    """One training run: the factor levels, the full resolved config, and the seed."""

    trial_id: str
    seed: int
    levels: Mapping[str, Any]  # factor name -> level
    config: Mapping[str, Any]  # every technique -> value (defaults, fixed, levels)


def resolve_config(levels: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict:
    """Every technique's value: the registry default, overridden by fixed, then by levels."""
    config = {name: t.default for name, t in techniques.TECHNIQUES.items()}
    config.update(fixed)
    config.update(levels)
    return config


def trial_id(config: Mapping[str, Any], seed: int) -> str:
    """A stable 12-hex-digit id from the resolved config and the seed. Techniques added to
    the registry after its first version count only when set away from their default, so
    ids stay the same as the registry grows."""
    return _ids(_keyed(config), [seed])[0]


def _counts(key: str, value) -> bool:
    """Whether a technique's value is part of a trial's id (see ``trial_id``)."""
    return (key in techniques.FIRST or key not in techniques.TECHNIQUES
            or not techniques.same_level(value, techniques.TECHNIQUES[key].default))


def _keyed(config: Mapping[str, Any]) -> dict:
    return {k: v for k, v in config.items() if _counts(k, v)}


def _ids(keyed: Mapping[str, Any], seeds) -> list[str]:
    # json.dumps({"config": keyed, "seed": s}, sort_keys=True), the config written once
    head = '{"config": ' + json.dumps(keyed, sort_keys=True) + ', "seed": '
    return [hashlib.sha1(f"{head}{int(s)}}}".encode()).hexdigest()[:12] for s in seeds]


def design_points(ablation) -> list[dict]:
    """The distinct factor-level combinations the design asks for, in a stable order."""
    a = ablation
    names = a.factor_names
    if a.design == "full":  # every combination once: nothing to deduplicate
        return [dict(zip(names, combo))
                for combo in itertools.product(*(f.levels for f in a.factors))]
    elif a.design == "add_one_in":
        points = [dict(a.baseline)] + [{**a.baseline, n: a.target[n]} for n in names]
    elif a.design == "leave_one_out":
        points = [dict(a.target)] + [{**a.target, n: a.baseline[n]} for n in names]
    elif a.design == "cumulative":
        points, current = [dict(a.baseline)], dict(a.baseline)
        for n in a.order:
            current = {**current, n: a.target[n]}
            points.append(current)
    elif a.design == "fractional":
        points = fractional_points(a)
    else:  # validated in spec; kept as a guard for library users building points by hand
        raise ValueError(f"unknown design {a.design!r}")
    unique, seen = [], set()
    for p in points:
        key = json.dumps(p, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def fraction_of(ablation):
    """The fraction a ``design="fractional"`` spec runs, with factor names: a two-level
    regular 2^(k-p) (``FractionalPlan``) for up to 11 two-level factors, else an orthogonal
    array of any levels (``MixedFraction``). Both ``describe()`` and ``to_dict()``."""
    from gridrun.design.arrays import mixed_fraction
    from gridrun.design.fractional import MAX_FACTORS, fractional_plan

    names = ablation.factor_names
    counts = [len(f.levels) for f in ablation.factors]
    if set(counts) == {2} and len(names) <= MAX_FACTORS:
        return fractional_plan(len(names), ablation.resolution).named(names)
    return mixed_fraction(counts, ablation.resolution - 1).named(names)


def fractional_points(ablation) -> list[dict]:
    """The cells of ``fraction_of(ablation)``: the baseline level where a run codes -1 (two
    levels) or 0 (``MixedFraction``), the target level at +1, the other levels in order."""
    from gridrun.design.arrays import MixedFraction, to_levels

    a = ablation
    names = a.factor_names
    frac = fraction_of(a)
    if not isinstance(frac, MixedFraction):
        return [{n: (a.target[n] if sign > 0 else a.baseline[n]) for n, sign in zip(names, row)}
                for row in frac.runs]
    base = {f.name: next(i for i, lv in enumerate(f.levels)
                         if techniques.same_level(lv, a.baseline[f.name])) for f in a.factors}
    return [{f.name: f.levels[to_levels(v, base[f.name], len(f.levels))]
             for f, v in zip(a.factors, row)} for row in frac.runs]


def expand(ablation) -> list[Trial]:
    """Every trial of the ablation: design points x seeds (seeds 0..seeds-1)."""
    trials = []
    seeds = range(ablation.seeds)
    base = resolve_config({}, ablation.config_fixed)
    base_keyed = _keyed(base)
    for levels in design_points(ablation):
        config = {**base, **levels}  # resolve_config(levels, fixed), from the shared part
        keyed = dict(base_keyed)
        for k, v in levels.items():  # only the factors differ from the shared part
            if _counts(k, v):
                keyed[k] = v
            else:
                keyed.pop(k, None)
        for seed, tid in zip(seeds, _ids(keyed, seeds)):
            trials.append(Trial(tid, seed, levels, config))
    return trials
