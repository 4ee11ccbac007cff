"""The ablation spec: ``Ablation``, ``Factor``, ``ASHA``, their validation, and loading a
spec file.

A spec is a Python file that defines exactly one ``Ablation`` at module level::

    from gridrun import Ablation, Factor, ASHA

    ablation = Ablation(
        name="quickstart",
        dataset="digits",
        factors=[Factor("augmentation", [False, True]), Factor("dropout", [0.0, 0.3])],
        fixed={"epochs": 6},
        seeds=2,
        scheduler=ASHA(grace_period=2),
    )

Every problem is a ``SpecError`` (a ``ValueError``) whose message is one line naming the
factor, the offending value and what is allowed. ``load_spec`` prefixes the file name.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gridrun.spec import techniques
from gridrun.data import DATASET_NAMES
from gridrun.spec.plugins import KINDS, Plugins, PluginError, check_trainer, describe, resolve
from gridrun.spec.techniques import suggest

__all__ = ["Ablation", "Factor", "ASHA", "SpecError", "load_spec", "DESIGNS", "METRICS"]

DESIGNS = ("full", "add_one_in", "leave_one_out", "cumulative", "fractional")
METRICS = ("val_acc", "val_loss", "train_acc", "train_loss")
FRAMEWORKS = techniques.FRAMEWORKS
RESOURCE_KEYS = ("cpu", "gpu")
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class SpecError(ValueError):
    """A spec that cannot run. The message is one line, meant for the user."""


def _fail(msg: str):
    raise SpecError(msg)


@dataclass(frozen=True, init=False)
class Factor:
    """One technique varied over ``levels``; the first level is the default baseline.

    ``custom=True`` declares a factor of the researcher's own (not in the registry): its
    levels are plain values of one kind (bool, int, float or str), and the spec's model
    builder, dataset function or trainer reads it from the config.

        >>> Factor("se_block", [False, True], custom=True).kind
        'bool'
    """

    name: str
    levels: tuple
    custom: bool = False

    def __init__(self, name: str, levels, custom: bool = False) -> None:
        if not isinstance(name, str):
            _fail(f"factor name {name!r} must be a string")
        if not isinstance(custom, bool):
            _fail(f"factor {name!r}: custom must be True or False, got {custom!r}")
        object.__setattr__(self, "custom", custom)
        if custom:
            _custom_factor(self, name, levels)
            return
        try:
            tech = techniques.get(name)
        except ValueError as e:  # a typo gets its suggestion; a new name, how to declare it
            _fail(str(e) if "did you mean" in str(e) else
                  f"{e}; or declare a factor of your own: Factor({name!r}, [...], custom=True)")
        if not tech.factor:
            _fail(f"{name!r} cannot be a factor; set it in fixed={{'{name}': ...}}")
        if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
            _fail(f"factor {name!r}: levels must be a list, got {levels!r}")
        levels = list(levels)
        if not levels:
            _fail(f"factor {name!r} has no levels; give at least one")
        clean = []
        for lv in levels:
            try:
                v = techniques.check_value(tech, lv)
            except ValueError as e:
                if name == "backbone" and isinstance(lv, str) and lv.strip():
                    v = lv  # perhaps one of the spec's own models: the Ablation checks it
                else:
                    _fail(f"factor {name!r}: {e}")
            if any(type(v) is type(c) and v == c for c in clean):
                _fail(f"factor {name!r}: level {lv!r} is listed twice")
            clean.append(v)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "levels", tuple(clean))

    @property
    def kind(self) -> str:
        """The kind of its values: the registry's, or a custom factor's own."""
        if self.custom:
            return _kind_of(self.levels)
        return techniques.get(self.name).kind


def _kind_of(levels) -> str:
    kinds = {KINDS[type(v)] for v in levels}
    return "float" if kinds == {"int", "float"} else kinds.pop()


def _custom_factor(f: Factor, name: str, levels) -> None:
    if name in techniques.TECHNIQUES:
        _fail(f"custom factor {name!r} has the name of a built-in technique; give it a name "
              f"of its own (or drop custom=True to vary the built-in one)")
    if not name.isidentifier():
        _fail(f"custom factor name {name!r} must be a Python identifier (letters, digits, "
              f"'_'): it names a column of the results")
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
        _fail(f"factor {name!r}: levels must be a list, got {levels!r}")
    levels = list(levels)
    if not levels:
        _fail(f"factor {name!r} has no levels; give at least one")
    bad = [v for v in levels if type(v) not in KINDS
           or (isinstance(v, float) and not math.isfinite(v))]
    if bad:
        _fail(f"custom factor {name!r}: level {bad[0]!r} must be a bool, an int, a finite "
              f"float or a str")
    kinds = {KINDS[type(v)] for v in levels}
    if len(kinds) > 1 and kinds != {"int", "float"}:
        _fail(f"custom factor {name!r}: levels of one kind only, got {sorted(kinds)}")
    if kinds == {"int", "float"}:
        levels = [float(v) for v in levels]
    for i, v in enumerate(levels):
        if v in levels[:i]:
            _fail(f"factor {name!r}: level {v!r} is listed twice")
    object.__setattr__(f, "name", name)
    object.__setattr__(f, "levels", tuple(levels))


@dataclass(frozen=True)
class ASHA:
    """Ablation-aware asynchronous successive halving over cells (a configuration with all
    its seeds): stop the weakest cells at rungs grace_period, grace_period*reduction_factor,
    ... (in epochs), but never the anchors the table is built from.

    On a full factorial the anchors are a balanced fraction of the grid plus the baseline
    and target; they run every epoch with every seed. ``resolution`` 4 keeps main effects
    clear of two-factor interactions, 5 clears three-factor interactions too; None (the
    default) takes 5 when the whole schedule is expected to fit ``budget`` (a share of the
    trial-epochs of running every cell to the end), else 4. 3 is never chosen for you: it
    aliases each main effect with two-factor interactions, and is for grids where no
    resolution IV fraction is smaller than the grid (``gridrun plan`` says when). ``budget`` is also a ceiling:
    screened cells are promoted only while the run stays within it. ``confirm`` best
    screened cells are brought to the full budget at the end. Every level of every factor
    keeps survivors at each rung (stratified promotion), budget permitting."""

    grace_period: int = 1
    reduction_factor: int = 3
    resolution: int | None = None
    confirm: int = 1
    budget: float = 0.5

    def __post_init__(self) -> None:
        for key, lo in (("grace_period", 1), ("reduction_factor", 2), ("confirm", 0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                _fail(f"ASHA {key} must be an integer >= {lo}, got {v!r}")
        if self.resolution is not None and (isinstance(self.resolution, bool)
                                            or self.resolution not in (3, 4, 5)):
            _fail(f"ASHA resolution must be 3, 4, 5 or None (the anchors' fraction: IV keeps "
                  f"main effects clear of two-factor interactions, V keeps those clear too, "
                  f"III aliases main effects with them; None picks V when it fits the "
                  f"budget, else IV), got {self.resolution!r}")
        b = self.budget
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 < b <= 1:
            _fail(f"ASHA budget must be a share of the full grid's epochs in (0, 1], "
                  f"got {b!r}")

    def to_dict(self) -> dict:
        return {"type": "asha", "grace_period": self.grace_period,
                "reduction_factor": self.reduction_factor, "resolution": self.resolution,
                "confirm": self.confirm, "budget": self.budget}


@dataclass(frozen=True)
class Ablation:
    """A grid of training techniques to run and attribute.

    ``factors`` vary; ``fixed`` holds other techniques constant; everything else takes the
    registry default. ``baseline`` (default: each factor's first level) is the "plain"
    configuration effects are measured against; ``target`` (default: each factor's last
    level) is the "everything on" configuration of the one-at-a-time designs.
    """

    name: str
    dataset: Any  # a dataset name, "folder:PATH", or the spec's own function (see plugins)
    factors: tuple
    baseline: Mapping[str, Any] | None = None
    target: Mapping[str, Any] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    seeds: int = 1
    design: str = "full"
    order: tuple | None = None  # cumulative design: the order techniques are added in
    resolution: int | None = None  # fractional design: 3, 4 or 5
    scheduler: ASHA | None = None
    resources: Mapping[str, float] = field(default_factory=lambda: {"cpu": 1, "gpu": 0})
    metric: str = "val_acc"
    framework: str = "torch"
    train_size: int | None = None  # cap on training examples (stratified), for quick runs
    val_fraction: float = 0.1
    max_concurrent: int | None = None
    image_size: int | None = None  # "folder:PATH" datasets: images resized to this (32)
    keep_weights: bool = False  # save each completed trial's final weights in RUN/weights
    # The researcher's own code (gridrun.spec.plugins): backbone name -> builder, and a
    # trainer for what is not a built-in CNN classifier.
    models: Mapping[str, Any] = field(default_factory=dict)
    trainer: Any = None
    mode: str | None = None  # "max" or "min"; None: "min" for a metric ending in "loss"

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived views -------------------------------------------------------------
    @property
    def factor_names(self) -> list[str]:
        return [f.name for f in self.factors]

    @property
    def plugins(self) -> Plugins:
        """The spec's own code, resolved: models, dataset function, trainer, custom factors
        (worked out again on each call: an Ablation holds only its fields)."""
        return _validate_plugins(self)

    @property
    def custom_factors(self) -> dict:
        """{custom factor name: kind}."""
        return {f.name: f.kind for f in self.factors if f.custom}

    @property
    def frameworks(self) -> tuple[str, ...]:
        """The frameworks the trials train in: the levels of a ``framework`` factor, else
        ``framework``."""
        for f in self.factors:
            if f.name == "framework":
                return tuple(f.levels)
        return (self.framework,)

    @property
    def config_fixed(self) -> dict:
        """``fixed`` plus the framework when it is not a factor: the values every trial's
        config shares (``gridrun.design.grid.resolve_config`` adds the factor levels)."""
        if "framework" in self.factor_names:
            return dict(self.fixed)
        return {**self.fixed, "framework": self.framework}

    @property
    def epochs(self) -> int:
        return self.fixed.get("epochs", techniques.get("epochs").default)

    def to_dict(self) -> dict:
        """A JSON-ready description (stored in run.json; read back by the analysis)."""
        out = {
            "name": self.name, "dataset": self.dataset_name, "framework": self.framework,
            "factors": {f.name: list(f.levels) for f in self.factors},
            "baseline": dict(self.baseline), "target": dict(self.target),
            "fixed": dict(self.fixed), "seeds": self.seeds, "design": self.design,
            "order": list(self.order) if self.order else None, "resolution": self.resolution,
            "scheduler": None if self.scheduler is None else self.scheduler.to_dict(),
            "resources": dict(self.resources), "metric": self.metric, "mode": self.mode,
            "epochs": self.epochs, "train_size": self.train_size,
            "val_fraction": self.val_fraction, "max_concurrent": self.max_concurrent,
            "image_size": self.image_size, "keep_weights": self.keep_weights,
        }
        if not self.plugins.empty:  # where the researcher's own code came from
            out["plugins"] = dict(self.plugins.refs)
        return out

    @property
    def dataset_name(self) -> str:
        """The dataset as text: its name, or where the spec's dataset function comes from."""
        return self.dataset if isinstance(self.dataset, str) and self.plugins.dataset is None \
            else describe(self.plugins.dataset)


    @classmethod
    def from_dict(cls, d: Mapping[str, Any], spec_file: str | Path | None = None) -> "Ablation":
        """The Ablation that ``to_dict`` described (e.g. a run's run.json ``spec``). A spec
        with the researcher's own code (``plugins``) is loaded again from ``spec_file``,
        which must still describe the same spec.

        >>> a = Ablation(name="x", dataset="digits", factors=[Factor("batchnorm", [False, True])])
        >>> Ablation.from_dict(a.to_dict()) == a
        True
        """
        if d.get("plugins"):
            return _from_spec_file(d, spec_file)
        sched = d.get("scheduler")
        if sched:
            sched = ASHA(**{k: v for k, v in sched.items() if k != "type"})
        return cls(
            name=d["name"], dataset=d["dataset"], framework=d.get("framework", "torch"),
            factors=[Factor(n, lv) for n, lv in d["factors"].items()],
            baseline=d.get("baseline"), target=d.get("target"), fixed=d.get("fixed") or {},
            seeds=d.get("seeds", 1), design=d.get("design", "full"),
            order=tuple(d["order"]) if d.get("order") else None,
            resolution=d.get("resolution"), scheduler=sched,
            resources=d.get("resources") or {"cpu": 1}, metric=d.get("metric", "val_acc"),
            train_size=d.get("train_size"), val_fraction=d.get("val_fraction", 0.1),
            max_concurrent=d.get("max_concurrent"), image_size=d.get("image_size"),
            keep_weights=d.get("keep_weights", False), mode=d.get("mode"))


def _from_spec_file(d: Mapping[str, Any], spec_file) -> Ablation:
    """A spec with plug-ins, from its file: code cannot be read back from run.json."""
    if not spec_file or not Path(spec_file).is_file():
        _fail(f"this run's spec uses its own code ({', '.join(d['plugins'])}), which only its "
              f"spec file holds, and that file ({spec_file or 'not recorded'}) is not there; "
              f"run gridrun launch SPEC --out RUN to continue the run")
    ablation = load_spec(spec_file)
    now = ablation.to_dict()
    if now != dict(d):
        changed = sorted(k for k in set(now) | set(d) if now.get(k) != d.get(k))
        _fail(f"{spec_file} has changed since the run began ({', '.join(changed)} differ); "
              f"restore it, or start a new run with gridrun launch")
    return ablation


def _set(obj, key, value) -> None:
    object.__setattr__(obj, key, value)


def _check_int(what: str, v, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        _fail(f"{what} must be an integer >= {lo}, got {v!r}")


def _validate(a: Ablation) -> None:
    if not isinstance(a.name, str) or not a.name or not set(a.name) <= NAME_CHARS:
        _fail(f"name {a.name!r} must be a non-empty string of letters, digits, '_', '-', '.'")
    own_data = _validate_plugins(a).dataset is not None
    folder = isinstance(a.dataset, str) and a.dataset.startswith("folder:")
    if folder and not a.dataset[len("folder:"):].strip():
        _fail("dataset 'folder:' needs a path: folder:/path/to/images (one subfolder per "
              "class)")
    if a.image_size is not None:
        _check_int("image_size", a.image_size, 8)
        if not folder:
            _fail(f"image_size is only used by folder datasets (folder:PATH), not "
                  f"{a.dataset!r}")
    if not folder and not own_data and a.dataset not in DATASET_NAMES:
        _fail(f"unknown dataset {a.dataset!r}; allowed: {', '.join(DATASET_NAMES)}, or "
              f"folder:PATH for a folder of images"
              f"{suggest(a.dataset, DATASET_NAMES)}")
    if a.framework not in FRAMEWORKS:
        _fail(f"unknown framework {a.framework!r}; allowed: {', '.join(FRAMEWORKS)}"
              f"{suggest(a.framework, FRAMEWORKS)}")
    factors = list(a.factors) if not isinstance(a.factors, Factor) else [a.factors]
    if not factors:
        _fail("factors is empty; give at least one Factor")
    seen = set()
    for f in factors:
        if not isinstance(f, Factor):
            _fail(f"factors must hold Factor(...) objects, got {f!r}")
        if f.name in seen:
            _fail(f"factor {f.name!r} is declared twice")
        seen.add(f.name)
    _set(a, "factors", tuple(factors))
    if isinstance(a.fixed, Mapping) and "framework" in a.fixed:
        _fail("set the framework with Ablation(framework=...), or make it a factor: "
              "Factor('framework', ['torch', 'tensorflow']); not in fixed")
    if "framework" in seen and a.framework != "torch":
        _fail(f"framework is a factor; leave Ablation(framework=...) unset (it is "
              f"{a.framework!r})")
    _set(a, "fixed", _validate_fixed(a.fixed, seen))
    _set(a, "baseline", _validate_point("baseline", a.baseline, factors, 0))
    _set(a, "target", _validate_point("target", a.target, factors, -1))
    _check_int("seeds", a.seeds, 1)
    if a.design not in DESIGNS:
        _fail(f"unknown design {a.design!r}; allowed: {', '.join(DESIGNS)}"
              f"{suggest(a.design, DESIGNS)}")
    _validate_design_options(a, factors)
    _validate_framework(a, factors)
    if a.scheduler is not None:
        if not isinstance(a.scheduler, ASHA):
            _fail(f"scheduler must be ASHA(...) or None, got {a.scheduler!r}")
        if a.scheduler.grace_period > a.epochs:
            _fail(f"ASHA grace_period {a.scheduler.grace_period} is greater than epochs "
                  f"{a.epochs}; it must be <= epochs")
    _set(a, "resources", _validate_resources(a.resources))
    if a.trainer is None and a.metric not in METRICS:
        _fail(f"unknown metric {a.metric!r}; allowed: {', '.join(METRICS)} (a trainer of "
              f"your own may report others){suggest(a.metric, METRICS)}")
    if not isinstance(a.metric, str) or not a.metric.isidentifier():
        _fail(f"metric {a.metric!r} must be the name of a metric the trainer reports")
    if a.mode is None:
        _set(a, "mode", "min" if a.metric.endswith(("loss", "error", "mse", "mae")) else "max")
    elif a.mode not in ("max", "min"):
        _fail(f"mode must be 'max' or 'min' (whether a larger {a.metric} is better), "
              f"got {a.mode!r}")
    if a.train_size is not None:
        _check_int("train_size", a.train_size, 10)
    v = a.val_fraction
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        _fail(f"val_fraction must be a number in (0, 1), got {v!r}")
    if a.max_concurrent is not None:
        _check_int("max_concurrent", a.max_concurrent, 1)
    if not isinstance(a.keep_weights, bool):
        _fail(f"keep_weights must be True or False, got {a.keep_weights!r}")


def _validate_plugins(a: Ablation) -> Plugins:
    """The spec's own code, resolved and checked as far as it can be without a framework:
    model names, builders, the dataset function, the trainer, custom factor names; and
    every backbone level or fixed value that is not built in must be one of ``models``."""
    refs: dict = {}
    try:
        models = _validate_models(a.models, refs)
        dataset = None
        if callable(a.dataset) or (isinstance(a.dataset, str) and ":" in a.dataset
                                   and not a.dataset.startswith("folder:")):
            dataset = resolve(a.dataset, "dataset")
            refs["dataset"] = describe(dataset)
        trainer = None
        if a.trainer is not None:
            trainer = check_trainer(resolve(a.trainer, "trainer"))
            refs["trainer"] = describe(trainer)
    except PluginError as e:
        _fail(str(e))
    factors = list(a.factors) if not isinstance(a.factors, Factor) else [a.factors]
    custom = {f.name: f.kind for f in factors if isinstance(f, Factor) and f.custom}
    if custom:
        refs["factors"] = custom
    builtin = techniques.get("backbone").choices
    fixed = a.fixed if isinstance(a.fixed, Mapping) else {}
    asked = [(f"factor 'backbone'", lv) for f in factors if isinstance(f, Factor)
             and f.name == "backbone" for lv in f.levels]
    asked += [("fixed 'backbone'", fixed["backbone"])] if "backbone" in fixed else []
    for where, lv in asked:
        if isinstance(lv, str) and lv not in builtin and lv not in models:
            own = f", or one of models= ({', '.join(models)})" if models else \
                " (or a model of your own: models={name: builder})"
            _fail(f"{where}: unknown level {lv!r}; allowed: {', '.join(builtin)}{own}"
                  f"{suggest(lv, [*builtin, *models])}")
    return Plugins(models=models, dataset=dataset, trainer=trainer, factors=custom, refs=refs)


def _validate_models(models, refs: dict) -> dict:
    if not isinstance(models, Mapping):
        raise PluginError(f"models must be a dict of backbone name -> builder, got {models!r}")
    builtin = techniques.get("backbone").choices
    out = {}
    for name, value in models.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(f"models: name {name!r} must be a Python identifier (it is a "
                              f"level of backbone)")
        if name in builtin:
            raise PluginError(f"models: {name!r} is a built-in backbone; give your model a "
                              f"name of its own")
        by = value if isinstance(value, Mapping) else {"torch": value, "tensorflow": value}
        bad = [k for k in by if k not in FRAMEWORKS]
        if bad:
            raise PluginError(f"models[{name!r}]: {bad[0]!r} is not a framework; allowed: "
                              f"{', '.join(FRAMEWORKS)}")
        out[name] = {fw: resolve(fn, f"models[{name!r}]") for fw, fn in by.items()}
        refs.setdefault("models", {})[name] = {fw: describe(fn) for fw, fn in out[name].items()}
    return out


def _validate_framework(a: Ablation, factors) -> None:
    """Every technique the spec sets away from its default must exist in each framework
    its trials train in."""
    used = [k for k, v in a.fixed.items()
            if not techniques.same_level(v, techniques.get(k).default)]
    used += [f.name for f in factors if f.name != "framework" and not f.custom]
    for framework in a.frameworks:
        for name in used:
            tech = techniques.get(name)
            if framework not in tech.frameworks:
                _fail(f"{name!r} is not implemented by the {framework} trainer (it is by: "
                      f"{', '.join(tech.frameworks) or 'none yet'})")


def _validate_fixed(fixed, factor_names: set) -> dict:
    if not isinstance(fixed, Mapping):
        _fail(f"fixed must be a dict of technique -> value, got {fixed!r}")
    out = {}
    for key, value in fixed.items():
        try:
            tech = techniques.get(key)
        except ValueError as e:
            _fail(f"fixed: {e}")
        if key in factor_names:
            _fail(f"{key!r} is both a factor and fixed; keep one")
        if key == "backbone" and isinstance(value, str) and value not in tech.choices:
            out[key] = value  # one of the spec's own models (checked with the plug-ins)
            continue
        try:
            out[key] = techniques.check_value(tech, value)
        except ValueError as e:
            _fail(f"fixed {key!r}: {e}")
    return out


def _validate_point(what: str, point, factors, default_index: int) -> dict:
    by_name = {f.name: f for f in factors}
    point = {} if point is None else point
    if not isinstance(point, Mapping):
        _fail(f"{what} must be a dict of factor -> level, got {point!r}")
    for key in point:
        if key not in by_name:
            _fail(f"{what}: {key!r} is not a factor; factors: {', '.join(by_name)}"
                  f"{suggest(key, by_name)}")
    out = {}
    for f in factors:
        if f.name not in point:
            out[f.name] = f.levels[default_index]
            continue
        value = point[f.name]
        match = [lv for lv in f.levels if techniques.same_level(lv, value)]
        if not match:
            _fail(f"{what} {f.name!r}={value!r} is not one of its levels: "
                  f"{', '.join(map(repr, f.levels))}{suggest(value, f.levels)}")
        out[f.name] = match[0]
    return out


def _validate_design_options(a: Ablation, factors) -> None:
    names = [f.name for f in factors]
    if a.design == "cumulative":
        order = list(a.order) if a.order is not None else names
        for n in order:
            if n not in names:
                _fail(f"order: {n!r} is not a factor; factors: {', '.join(names)}"
                      f"{suggest(n, names)}")
        if len(set(order)) != len(order):
            _fail(f"order lists a factor twice: {order}")
        _set(a, "order", tuple(order))
    elif a.order is not None:
        _fail(f"order is only used by design='cumulative', not {a.design!r}")
    if a.design in ("add_one_in", "leave_one_out", "cumulative"):
        same = [n for n in names if techniques.same_level(a.baseline[n], a.target[n])]
        if same:
            _fail(f"design {a.design!r}: factor {same[0]!r} has the same baseline and "
                  f"target level {a.baseline[same[0]]!r}; give it a different target")
    if a.design == "fractional":
        single = [f.name for f in factors if len(f.levels) < 2]
        if single:
            _fail(f"design 'fractional' needs two or more levels per factor; {single[0]!r} "
                  f"has one (set it in fixed instead)")
        if len(factors) < 2:
            _fail(f"design 'fractional' needs 2 or more factors, got {len(factors)}")
        if isinstance(a.resolution, bool) or a.resolution not in (3, 4, 5):
            _fail(f"design 'fractional' needs resolution=3, 4 or 5, got {a.resolution!r}")
    elif a.resolution is not None:
        _fail(f"resolution is only used by design='fractional', not {a.design!r}")


def _validate_resources(res) -> dict:
    if not isinstance(res, Mapping):
        _fail(f"resources must be a dict like {{'cpu': 1, 'gpu': 0}}, got {res!r}")
    out = {"cpu": 1.0, "gpu": 0.0}
    for key, value in res.items():
        if key not in RESOURCE_KEYS:
            _fail(f"resources: unknown key {key!r}; allowed: cpu, gpu{suggest(key, RESOURCE_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(f"resources {key!r} must be a number, got {value!r}")
        if value < 0:
            _fail(f"resources {key!r} must not be negative, got {value!r}")
        out[key] = float(value)
    if out["cpu"] == 0 and out["gpu"] == 0:
        _fail("resources: a trial needs some cpu or gpu, got cpu=0 and gpu=0")
    return out


def load_spec(path: str | Path) -> Ablation:
    """Import the spec file at ``path`` and return its one ``Ablation``.

    Raises SpecError with a one-line message that starts with the file name.
    """
    path = Path(path)
    if not path.is_file():
        _fail(f"{path}: no such spec file")
    mod_name = f"_gridrun_spec_{uuid.uuid4().hex}"
    # The spec may import modules beside it (its own model, data, trainer), as a script can.
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module  # dataclasses in the spec need their module
        spec.loader.exec_module(module)
    except SpecError as e:
        _fail(f"{path}: {e}")
    except SyntaxError as e:
        _fail(f"{path}:{e.lineno}: syntax error: {e.msg}")
    except Exception as e:  # noqa: BLE001 - any error in user code is a spec error
        line = _user_line(e, path)
        _fail(f"{path}{line}: {type(e).__name__}: {e}")
    finally:
        sys.modules.pop(mod_name, None)
        if added:
            sys.path.remove(folder)
    found = [(k, v) for k, v in vars(module).items() if isinstance(v, Ablation)]
    if not found:
        _fail(f"{path}: defines no Ablation; assign one at module level, "
              "e.g. ablation = Ablation(...)")
    if len(found) > 1:
        _fail(f"{path}: defines {len(found)} Ablation objects "
              f"({', '.join(k for k, _ in found)}); keep exactly one")
    return found[0][1]


def _user_line(exc: BaseException, path: Path) -> str:
    tb, line = exc.__traceback__, ""
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line
