"""Which transforms keep a dataset's labels. A mirrored or upside-down digit is often another
digit, and a spec that flips digits measures label noise, not augmentation; such a spec
still runs (it may be the point), but gets a warning at launch, in ``plan`` and in
``--dry-run``. Pure: the dataset's name and the spec's configurations.

    >>> from gridrun import Ablation, Factor
    >>> a = Ablation(name="x", dataset="mnist", factors=[Factor("flip", [False, True])])
    >>> label_warnings(a)[0].startswith("warning: flip=True on mnist")
    True
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

__all__ = ["LABEL_CHANGING", "label_warnings"]

_DIGIT_RULES: Mapping[str, tuple[Callable[[Any], bool], str]] = {
    "flip": (lambda v: v is True, "a mirrored digit is often another digit or none"),
    "augmentation": (lambda v: v is True, "it flips images (use crop: no flip)"),
    "augment_policy": (lambda v: v in ("standard", "strong"),
                       "the policy flips images (use crop, rotation, zoom: no flip)"),
    "rotation": (lambda v: isinstance(v, (int, float)) and v > 45,
                 "rotations past 45 degrees turn 6 into 9"),
}

# dataset name -> technique -> (does this value change labels?, why)
LABEL_CHANGING: Mapping[str, Mapping[str, tuple[Callable[[Any], bool], str]]] = {
    "digits": _DIGIT_RULES,
    "mnist": _DIGIT_RULES,
}


def label_warnings(ablation) -> list[str]:
    """One line per (technique, value) of the spec that changes labels on its dataset."""
    from gridrun.design.grid import design_points, resolve_config

    rules = LABEL_CHANGING.get(ablation.dataset, {})
    seen, out = set(), []
    # a full factorial holds every level of every factor: its levels stand for its cells
    points = ([{f.name: lv} for f in ablation.factors for lv in f.levels] or [{}]
              if ablation.design == "full" else design_points(ablation))
    for point in points:
        config = resolve_config(point, ablation.config_fixed)
        for name, (changes, why) in rules.items():
            value = config.get(name)
            if (name, repr(value)) not in seen and changes(value):
                seen.add((name, repr(value)))
                out.append(f"warning: {name}={value!r} on {ablation.dataset} changes what "
                           f"images mean: {why}")
    return out
