"""The researcher's own code in a grid: model builders, a dataset function, factors of their
own and a trainer, declared in the spec and carried to every worker.

    from gridrun import Ablation, Factor

    def tiny_net(config, input_shape, num_classes):        # PyTorch: an nn.Module
        ...

    ablation = Ablation(name="mine", dataset="fashion_mnist",
                        models={"tiny_net": tiny_net},       # a level of `backbone`
                        factors=[Factor("backbone", ["simple_cnn", "tiny_net"]),
                                 Factor("se_block", [False, True], custom=True)])

- ``models``: name -> builder (or {"torch": builder, "tensorflow": builder}, or a
  ``"package.module:function"`` string). A builder is called with the trial's resolved
  config (every technique and custom factor, read-only), the input shape (channels, height,
  width) and the number of classes, and returns an ``nn.Module`` (torch) or a
  ``keras.Model`` (tensorflow) that maps a batch of images to logits.
- ``dataset``: a function returning ``(x_train, y_train, x_test, y_test)`` NumPy arrays
  (images N x H x W or N x H x W x C, integer labels from 0), or a dict with those keys and
  optionally ``classes``.
- ``trainer``: what trains a trial when it is not a built-in CNN classifier: a class with
  ``__init__(config, data, seed)``, ``step() -> dict`` (one epoch's metrics),
  ``state() -> bytes`` and ``load(state: bytes)``; or a function
  ``train(config, data, seed, report, checkpoint=None)`` that calls ``report(metrics,
  state)`` once per epoch and continues from ``checkpoint`` (the last ``state``) when given.
- ``Factor(name, levels, custom=True)``: a factor of the researcher's own, read from the
  trial's config by the builder or the trainer. (The dataset function is called once, by
  the driver, for every trial: a factor that changes the data is read by a trainer.)

Pure: no framework is imported here. Functions and classes are resolved (and
``"module:attr"`` strings imported) when the spec is made; ``install`` makes a run's plug-ins
the ones a process's trainers use (in each Ray worker, from the trainable's parameters).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

__all__ = ["Plugins", "PluginError", "resolve", "describe", "check_trainer", "install",
           "active", "frozen_config", "check_config", "ReadLog", "ARCHITECTURE", "TRANSFER",
           "TRAINER_METHODS", "KINDS"]

TRAINER_METHODS = ("step", "state", "load")  # a trainer class's contract, besides __init__
KINDS = {bool: "bool", int: "int", float: "float", str: "str"}  # a custom factor's kinds


class PluginError(ValueError):
    """A plug-in that cannot be used; the message is one line naming it."""


@dataclass(frozen=True)
class Plugins:
    """A run's own code: ``models`` {backbone name: {framework: builder}}, ``dataset`` (a
    function or None), ``trainer`` (a class, a function or None) and ``factors`` {custom
    factor name: kind}. ``refs`` says where each came from, for run.json."""

    models: Mapping[str, Mapping[str, Callable]] = field(default_factory=dict)
    dataset: Callable | None = None
    trainer: Any = None
    factors: Mapping[str, str] = field(default_factory=dict)
    refs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.models or self.dataset or self.trainer or self.factors)

    def builder(self, backbone: str, framework: str) -> Callable | None:
        """The builder of a custom backbone in ``framework``; None for a built-in name.
        PluginError when the model has no builder for that framework."""
        if backbone not in self.models:
            return None
        by = self.models[backbone]
        if framework not in by:
            raise PluginError(f"models[{backbone!r}] has no {framework} builder (it has: "
                              f"{', '.join(by)}); give {{'{framework}': builder}} too")
        return by[framework]

    def trainer_kind(self) -> str | None:
        """"class", "function" or None (the built-in trainers)."""
        if self.trainer is None:
            return None
        return "class" if inspect.isclass(self.trainer) else "function"


def resolve(value, what: str):
    """A callable, or the attribute a ``"package.module:attr"`` string names (imported).

    >>> resolve("math:sqrt", "x")(4.0)
    2.0
    """
    if callable(value):
        return value
    if not isinstance(value, str) or value.count(":") != 1:
        raise PluginError(f"{what} must be a function, a class or a 'package.module:name' "
                          f"string, got {value!r}")
    module, _, attr = value.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise PluginError(f"{what} {value!r}: cannot import {module!r} ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"{what} {value!r}: {module!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PluginError(f"{what} {value!r} is not callable")
    return obj


def describe(obj) -> str:
    """Where a plug-in comes from, for run.json: 'module:qualname' (the spec file's own
    functions: 'spec:qualname')."""
    module = getattr(obj, "__module__", None) or "?"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
    return f"{'spec' if module.startswith('_gridrun_spec_') else module}:{name}"


def check_trainer(trainer, what: str = "trainer"):
    """A trainer class must have the contract's methods; a function must take
    (config, data, seed, report, checkpoint). PluginError saying what is missing."""
    if inspect.isclass(trainer):
        missing = [m for m in TRAINER_METHODS if not callable(getattr(trainer, m, None))]
        if missing:
            raise PluginError(f"{what} {describe(trainer)} lacks {', '.join(m + '()' for m in missing)}: a "
                              f"trainer class has __init__(config, data, seed), step() -> "
                              f"dict, state() -> bytes and load(state)")
        return trainer
    try:
        params = inspect.signature(trainer).parameters
    except (TypeError, ValueError):
        return trainer
    names = list(params)
    varargs = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values())
    if not varargs and not {"report", "checkpoint"} <= set(names):
        raise PluginError(f"{what} {describe(trainer)} takes ({', '.join(names)}); a trainer "
                          f"function takes (config, data, seed, report, checkpoint=None)")
    return trainer


# -- the plug-ins a process's trainers use ---------------------------------------------------
_ACTIVE = [Plugins()]


def install(plugins: Plugins | None) -> None:
    """Make ``plugins`` the ones this process's trainers use (None: none)."""
    _ACTIVE[0] = plugins if plugins is not None else Plugins()


def active() -> Plugins:
    return _ACTIVE[0]


def frozen_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only view of a config, for a builder: it may read, never change it."""
    return MappingProxyType(dict(config))


def check_config(config: Mapping[str, Any], framework: str) -> dict:
    """A built-in trainer's config check (``techniques.check_config``) that also takes the
    active plug-ins: custom factors pass through as they are, and a backbone that is one of
    the spec's models is checked as the trainer's other options are, then kept by name."""
    from gridrun.spec import techniques

    own = active()
    custom = {k: config[k] for k in own.factors if k in config}
    rest = {k: v for k, v in config.items() if k not in own.factors}
    backbone = rest.get("backbone")
    if backbone in own.models:
        rest["backbone"] = techniques.get("backbone").default
    checked = techniques.check_config(rest, framework)
    if backbone in own.models:
        checked["backbone"] = backbone
    return {**checked, **custom}


# Built-in techniques of the "architecture" and "transfer" groups act inside the built-in
# backbones; on a model of the researcher's own they act only if its builder reads them.
ARCHITECTURE = ("batchnorm", "dropout", "activation", "pooling", "global_pool", "width",
                "depth")
TRANSFER = ("pretrained", "freeze_epochs", "finetune_lr")


class ReadLog(Mapping):
    """A read-only config that records which keys a builder read."""

    def __init__(self, config: Mapping[str, Any]):
        self._config, self.read = dict(config), set()

    def __getitem__(self, key):
        self.read.add(key)
        return self._config[key]

    def __iter__(self):
        return iter(self._config)

    def __len__(self) -> int:
        return len(self._config)

    def get(self, key, default=None):
        self.read.add(key)
        return self._config.get(key, default)

    def __contains__(self, key) -> bool:
        self.read.add(key)
        return key in self._config
