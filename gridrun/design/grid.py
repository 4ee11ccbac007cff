"""Expand an ``Ablation`` into the list of trials to run.

Designs: ``full`` factorial, ``add_one_in`` (baseline, and baseline plus each technique at its
target level), ``leave_one_out`` (target, and target minus each technique), ``cumulative``
(baseline, +A, +A+B, ... in ``order``) and ``fractional`` (a two-level 2^(k-p) factorial of
the chosen resolution). Every design point is crossed with the seeds. Identical points are run
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

__all__ = ["Trial", "expand", "design_points", "resolve_config", "trial_id"]


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
    keyed = {k: v for k, v in config.items()
             if k in techniques.FIRST or k not in techniques.TECHNIQUES
             or not techniques.same_level(v, techniques.TECHNIQUES[k].default)}
    blob = json.dumps({"config": keyed, "seed": int(seed)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def design_points(ablation) -> list[dict]:
    """The distinct factor-level combinations the design asks for, in a stable order."""
    a = ablation
    names = a.factor_names
    if a.design == "full":
        points = [dict(zip(names, combo))
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
        from gridrun.design.fractional import fractional_plan

        plan = fractional_plan(len(names), a.resolution)
        points = [{n: (a.target[n] if sign > 0 else a.baseline[n])
                   for n, sign in zip(names, row)} for row in plan.runs]
    else:  # validated in spec; kept as a guard for library users building points by hand
        raise ValueError(f"unknown design {a.design!r}")
    unique, seen = [], set()
    for p in points:
        key = json.dumps(p, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def expand(ablation) -> list[Trial]:
    """Every trial of the ablation: design points x seeds (seeds 0..seeds-1)."""
    trials = []
    for levels in design_points(ablation):
        config = resolve_config(levels, ablation.config_fixed)
        for seed in range(ablation.seeds):
            trials.append(Trial(trial_id(config, seed), seed, levels, config))
    return trials
