"""Models of the researcher's own in the Keras trainer: built by the spec's builder from the
trial's config, seeded as the built-in backbones are, checked once on the driver.

    >>> import keras
    >>> def tiny(config, input_shape, num_classes):
    ...     c, h, w = input_shape                  # always (channels, height, width)
    ...     inputs = keras.Input((h, w, c))        # the trainer feeds NHWC float32
    ...     x = keras.layers.Flatten()(inputs)
    ...     return keras.Model(inputs, keras.layers.Dense(num_classes)(x))
    >>> sorted(check_model(tiny, {"dropout": 0.0}, (1, 8, 8), 10, "models['tiny']"))
    []

The contract for a builder: ``input_shape`` is ``(channels, height, width)``, as for torch;
the model is fed float32 batches channels-last, ``(N, height, width, channels)``, so its
input is ``keras.Input((height, width, channels))``. The values are those of the config's
``normalize``: per-channel z-scores (standardize), [0, 1] (rescale) or [0, 255] (none). It
returns a ``keras.Model`` giving float logits ``(N, num_classes)``; the trainer calls it
with ``training=True`` to train and ``training=False`` to evaluate.

Seeding, as the built-ins' (:mod:`gridrun.keras._models`): a build never depends on what the
process built before, nor changes its global random state. The builder runs with Keras'
layer-name counters started afresh (auto-names are ``conv2d``, ``conv2d_1``, ... in every
build) and with Python's and NumPy's global generators seeded from the trial's seed, then
restored. Then every unseeded random initializer's variable is drawn again from ``(seed,
layer path)`` (a kernel, as the built-ins') or ``(seed, variable path)`` (another variable),
and every unseeded dropout-like seed generator starts from ``(seed, layer path)``: a builder
that lays out a built-in network with its layer names gets exactly its weights and masks.
Initializers and layers given a seed of their own keep it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
from typing import Any, Callable, Mapping

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.common import global_state  # Keras' layer-name counters

from gridrun.keras import _program
from gridrun.keras._models import _layer_seed
from gridrun.spec.plugins import ReadLog, describe, frozen_config

__all__ = ["build_own", "check_model", "seeded_build", "own_program_for", "OwnProgram",
           "count_own_parameters"]

_MISSING = "<not in the config>"  # a key a builder asked for that the config lacks


def build_own(builder: Callable, config: Mapping[str, Any], input_shape, num_classes: int,
              what: str) -> keras.Model:
    """``builder(config, input_shape, num_classes)``, which must return a ``keras.Model``;
    the builder sees a read-only config (a ReadLog is passed on as it is)."""
    view = config if isinstance(config, ReadLog) else frozen_config(config)
    model = builder(view, tuple(input_shape), int(num_classes))
    if not isinstance(model, keras.Model):
        raise ValueError(f"{what} returned {type(model).__name__}, not a keras.Model")
    return model


def check_model(builder: Callable, config: Mapping[str, Any], input_shape, num_classes: int,
                what: str) -> set[str]:
    """Build the model once and run a batch of two blank NHWC float32 images through it in
    inference mode: ValueError with one line when the builder raises, returns something
    else than a keras.Model, or the model's output is not (2, num_classes) float logits.
    Returns the config keys the builder read. The global random state is left as it was."""
    log, (c, h, w) = ReadLog(config), input_shape
    batch = (2, h, w, c)
    with _fresh_build(0):
        try:
            model = builder(log, tuple(input_shape), int(num_classes))
        except Exception as e:  # noqa: BLE001 - the user's code: one line
            raise ValueError(f"{what} raised {type(e).__name__}: {_one_line(e)}") from None
        if not isinstance(model, keras.Model):
            raise ValueError(f"{what} returned {type(model).__name__}, not a keras.Model")
        try:
            out = model(np.zeros(batch, np.float32), training=False)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{what}: its model fails on a batch of shape {batch} (NHWC "
                             f"float32): {type(e).__name__}: {_one_line(e)}") from None
    if not tf.is_tensor(out) or tuple(out.shape) != (2, num_classes) \
            or not out.dtype.is_floating:
        shape = tuple(out.shape) if tf.is_tensor(out) else type(out).__name__
        raise ValueError(f"{what}: its model maps a batch of shape {batch} (NHWC) to "
                         f"{shape}, not to float logits of shape (2, {num_classes})")
    return log.read - {"framework"}


def seeded_build(builder: Callable, config: Mapping[str, Any], input_shape, num_classes: int,
                 what: str, seed: int) -> keras.Model:
    """The builder's model for one seed, built (variables made) and seeded as the module
    docstring says; ``input_shape`` is (channels, height, width)."""
    c, h, w = input_shape
    with _fresh_build(seed):
        model = build_own(builder, config, input_shape, num_classes, what)
        if not model.built:  # a Sequential without Input, a subclassed model: no variables
            model(np.zeros((1, h, w, c), np.float32), training=False)
    _reseed(model, seed)
    return model


def count_own_parameters(model: keras.Model) -> int:
    """What torch's ``count_parameters`` counts: every weight (frozen or not) but the
    batch-norm moving statistics, which are torch buffers; seed states are not weights."""
    stats = {id(v) for layer in model._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, keras.layers.BatchNormalization)
             for v in (layer.moving_mean, layer.moving_variance)}
    return sum(int(np.prod(v.shape)) for v in model.weights if id(v) not in stats)


# ---------------------------------------------------------------- seeding

@contextlib.contextmanager
def _fresh_build(seed: int):
    """Keras' name counters fresh, Python's and NumPy's generators seeded; all restored."""
    uids = global_state.get_global_attribute("object_name_uids")
    py_state, np_state = random.getstate(), np.random.get_state()
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", uids)
        random.setstate(py_state)
        np.random.set_state(np_state)


def _reseed(model: keras.Model, seed: int) -> None:
    """Draw every unseeded random initializer's variable from (seed, path), and start every
    unseeded seed generator from (seed, layer path): the built-ins' rule."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        generators = 0
        for attr, value in list(vars(layer).items()):
            if isinstance(value, keras.initializers.Initializer) and attr.endswith(
                    "_initializer") and value.get_config().get("seed", 0) is None:
                _redraw(layer, attr[:-len("_initializer")], value, seed)
            elif isinstance(value, keras.random.SeedGenerator) and \
                    value.get_config()["seed"] is None:
                key = layer.path or layer.name
                key = key if not generators else f"{key}/{attr}"
                state = np.array([_layer_seed(seed, key), 0], value.state.dtype)
                value.state.assign(state)
                generators += 1


def _redraw(layer, name: str, initializer, seed: int) -> None:
    """The variable ``name`` (or ``name_kernel``) of ``layer`` drawn again with
    ``initializer`` seeded from its path; a variable not found keeps the seeded build's."""
    variable = getattr(layer, name, None)
    if not isinstance(variable, keras.Variable):
        variable = getattr(layer, f"{name}_kernel", None)
    if not isinstance(variable, keras.Variable):
        return
    path = variable.path
    key = path[:-len("/kernel")] if path.endswith("/kernel") else path
    try:
        seeded = type(initializer).from_config({**initializer.get_config(),
                                                "seed": _layer_seed(seed, key)})
    except (TypeError, ValueError, NotImplementedError):  # one that takes no seed
        return
    variable.assign(seeded(tuple(variable.shape), dtype=variable.dtype))


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())  # Keras' messages span several lines
    return text if len(text) <= 300 else text[:297] + "..."


# ---------------------------------------------------------------- programs

def own_program_for(builder: Callable, cfg: Mapping[str, Any], image_shape, num_classes: int,
                    what: str) -> "OwnProgram":
    """The process's program for this builder and structure, in the built-ins' cache
    (:mod:`gridrun.keras._program`: the same bounds, ``release`` and trimming). Its
    structure is the built-ins' key plus the values of every config key the builder read
    (custom factors among them). ``image_shape`` is the data's (H, W, C)."""
    if cfg["pretrained"] or cfg["freeze_epochs"]:
        raise ValueError(f"{what}: pretrained and freeze_epochs load or freeze a built-in "
                         f"backbone's base; a model of one's own has none: drop them")
    base = _program.structure_key(cfg, image_shape, num_classes)
    cache = _program._PROGRAMS
    for key, program in cache.items():
        if isinstance(program, OwnProgram) and program.builder is builder \
                and program.base_key == base \
                and all(cfg.get(k, _MISSING) == v for k, v in program.read.items()):
            cache.move_to_end(key)
            return program
    program = OwnProgram(builder, cfg, image_shape, num_classes, what)
    cache[program.key] = program
    _program.trim_programs(keep=1)
    return program


class OwnProgram(_program.Program):
    """A :class:`gridrun.keras._program.Program` whose model is the spec's builder's: the
    same state, swapping, steps and evaluation, with no base/head split (no freezing)."""

    def __init__(self, builder: Callable, cfg: Mapping[str, Any], image_shape,
                 num_classes: int, what: str):
        h, w, c = image_shape
        self.builder, self.what, self.input_shape = builder, what, (c, h, w)
        log = ReadLog(cfg)
        self.model = seeded_build(builder, log, self.input_shape, num_classes, what, 0)
        self.read = {k: cfg.get(k, _MISSING) for k in log.read}
        self.base_key = _program.structure_key(cfg, image_shape, num_classes)
        self.key = f"own:{describe(builder)}:{self.base_key}:" \
                   f"{json.dumps(self.read, sort_keys=True, default=str)}"
        self._setup(cfg, image_shape, num_classes)

    def initial_state(self, cfg: Mapping[str, Any], image_shape, seed: int) -> list:
        """A new trainer's state: the builder's model for ``seed``, a zero optimizer state."""
        fresh = seeded_build(self.builder, cfg, self.input_shape,
                             self.num_classes, self.what, seed)
        if fresh is self.model:  # reseeding it would overwrite the owner's weights
            raise ValueError(f"{self.what} returned the same model twice: a builder must "
                             f"build a new model on each call")
        if len(fresh.variables) != len(self.model.variables):
            raise ValueError(f"{self.what} built {len(fresh.variables)} variables, then "
                             f"{len(self.model.variables)} for the same config: a builder "
                             f"must depend only on config, input_shape and num_classes")
        return [v.numpy() for v in fresh.variables] + \
            [np.zeros(v.shape, v.dtype.as_numpy_dtype) for v in self.optimizer.state()]

    def train_step(self, frozen: bool):
        """The traced training step; nothing to freeze (own_program_for refuses it)."""
        if frozen:
            raise ValueError(f"{self.what}: freeze_epochs needs a built-in backbone")
        if False not in self._steps:
            self._steps[False] = tf.function(self._make_step(), reduce_retracing=True)
        return self._steps[False]
