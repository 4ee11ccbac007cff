"""Checks of the spec's own code before Ray starts and before anything is written: each
model of the spec built once on a blank batch per configuration it meets (wrong type, wrong
output, an exception: one line naming the model and the levels), built-in techniques that
would do nothing to it refused, and the plug-ins proven to travel to the workers."""

from __future__ import annotations

import json

from gridrun.spec import plugins, techniques
from gridrun.spec.ablation import SpecError

__all__ = ["check_plugins", "MAX_BUILDS"]

MAX_BUILDS = 16  # configurations a model is built for on the driver (distinct ones first)


def check_plugins(ablation, trials, data, spec_path=None) -> None:
    """SpecError (one line) for a plug-in that cannot run; installs the plug-ins here, and
    registers the modules beside ``spec_path`` to travel by value (``shipping``)."""
    from gridrun.run.shipping import ship_by_value

    own = ablation.plugins
    plugins.install(own)
    if own.empty:
        return
    ship_by_value(spec_path)
    if own.trainer is None:
        for (name, framework), configs in _model_configs(own, trials).items():
            _check_model(own, name, framework, configs, data)
    _check_travels(own)


def _model_configs(own, trials) -> dict:
    """{(model name, framework): the distinct configs its cells build it with}."""
    keys = (*plugins.ARCHITECTURE, *plugins.TRANSFER, *own.factors)
    out: dict = {}
    for t in trials:
        name = t.config["backbone"]
        if name in own.models:
            configs = out.setdefault((name, t.config["framework"]), {})
            configs.setdefault(json.dumps({k: t.config.get(k) for k in keys}, sort_keys=True,
                                          default=str), t)
    return {k: [t.config for t in v.values()] for k, v in out.items()}


def _check_model(own, name: str, framework: str, configs, data) -> None:
    try:
        builder = own.builder(name, framework)
    except plugins.PluginError as e:
        raise SpecError(str(e)) from None
    ref = own.refs.get("models", {}).get(name, {}).get(framework, name)
    package = _framework(framework)
    h, w, c = data.image_shape
    read: set = set()
    for config in configs[:MAX_BUILDS]:
        levels = ", ".join(f"{k}={config[k]!r}" for k in (*own.factors, *plugins.ARCHITECTURE)
                           if k in config and (k in own.factors or not techniques.same_level(
                               config[k], techniques.get(k).default)))
        what = f"models[{name!r}] ({ref}){' at ' + levels if levels else ''}"
        try:
            read |= package.check_model(builder, config, (c, h, w), data.num_classes, what)
        except ValueError as e:
            raise SpecError(str(e)) from None
    for k in plugins.TRANSFER:
        if any(not techniques.same_level(cfg[k], techniques.get(k).default) for cfg in configs):
            raise SpecError(f"{k} is for the built-in backbones (it loads or freezes their "
                            f"base); models[{name!r}] builds its own network: drop {k} for it")
    for k in plugins.ARCHITECTURE:
        values = {json.dumps(cfg[k]) for cfg in configs}
        moved = len(values) > 1 or any(
            not techniques.same_level(cfg[k], techniques.get(k).default) for cfg in configs)
        if moved and k not in read:
            raise SpecError(f"{k} does nothing to models[{name!r}]: its builder ({ref}) never "
                            f"reads config[{k!r}]; read it in the builder, or keep {k} at its "
                            f"default for that model")


def _framework(framework: str):
    if framework == "tensorflow":
        import gridrun.keras as package
    else:
        import gridrun.torch as package
    return package


def _check_travels(own) -> None:
    """The plug-ins are sent to the workers pickled (by value where their module is the
    spec or lives beside it): something that cannot be pickled fails here, not in Ray."""
    from ray import cloudpickle

    try:
        cloudpickle.dumps(own)
    except Exception as e:  # noqa: BLE001 - whatever the researcher's objects hold
        raise SpecError(f"the spec's own code cannot be sent to the workers ({type(e).__name__}"
                        f": {e}); keep models, dataset and trainer to plain functions and "
                        f"classes at module level") from None
