"""Effects within each level of one factor: the same analysis on the sub-run at each level.

With ``framework`` as a factor, a paper shows that an effect holds in both frameworks:
:func:`effects_by` analyzes the trials of each framework on their own (the design without
that factor) and returns each level's main effects, side by side.

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"framework": ["torch", "tensorflow"], "A": [False, True]},
    ...                     value=lambda lv: 80 + (2 if lv["framework"] == "torch" else 3)
    ...                     * lv["A"])
    >>> by = effects_by(run.trials, run.epochs, run.spec, "framework", n_boot=200)
    >>> {lv: round(fx[0].estimate.value, 6) for lv, fx in by.items()}
    {'torch': 2.0, 'tensorflow': 3.0}
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

__all__ = ["effects_by", "sub_spec"]


def sub_spec(spec: Mapping[str, Any], factor: str, level) -> dict:
    """The spec of the trials at ``factor`` = ``level``: the same design without it."""
    out = dict(spec)
    out["factors"] = {f: lv for f, lv in spec["factors"].items() if f != factor}
    for point in ("baseline", "target"):
        if spec.get(point):
            out[point] = {f: v for f, v in spec[point].items() if f != factor}
    if factor == "framework":
        out["framework"] = level
    return out


def effects_by(trials: pd.DataFrame, epochs: pd.DataFrame, spec: Mapping[str, Any],
               factor: str, *, metric: str | None = None, budget: int | None = None,
               n_boot: int = 2000, seed: int = 0) -> dict:
    """{level: main effects of the other factors among the trials at that level}, levels
    in the spec's order. ValueError unless the design is a full factorial with ``factor``
    and at least one other factor (only then is each level's sub-run a full factorial).
    A screened run (ASHA anchors) is analyzed at the common budget of each sub-run."""
    from gridrun.analysis import analyze

    if factor not in spec["factors"]:
        raise ValueError(f"{factor!r} is not a factor of this run")
    if spec.get("design", "full") != "full" or len(spec["factors"]) < 2:
        raise ValueError(f"effects per {factor} need a full factorial with another factor "
                         f"(this run: design {spec.get('design')!r})")
    out = {}
    for level in spec["factors"][factor]:
        mask = trials[factor] == level
        if not mask.any():
            continue
        sub = trials[mask].drop(columns=[factor])
        sub_epochs = epochs[epochs.trial_id.isin(set(sub.trial_id))]
        child = sub_spec(spec, factor, level)
        child["scheduler"] = None  # anchors were chosen over the whole grid, not this part
        a = analyze(sub, sub_epochs, child, metric=metric, budget=budget, n_boot=n_boot,
                    seed=seed)
        out[level] = a.main_effects
    return out
