"""The compiled side of the Keras trainer, shared by every trainer of one structure in a
process: a model, an optimizer, the traced training step and evaluation.

Tracing a Keras training step costs 0.3-0.5 s of Python per model, more than a whole epoch
of a small model on small images; a grid trains hundreds of seeds of a few structures. So
the trainers of one structure (same backbone and options, optimizer, normalization and
loss terms; any seed, learning rate, weight decay, batch size or data) share one
:class:`Program`, and each keeps its own state (weights, batch-norm statistics, dropout
seed states, optimizer state) which :meth:`Program.borrow` swaps in before it trains or
evaluates. A swap copies the state once per epoch and trainer, which is small next to an
epoch. Every value that differs between trainers of one structure lives in a variable.

    >>> program = program_for(config, data)                           # doctest: +SKIP
    >>> program.borrow(trainer)                                       # doctest: +SKIP
"""

from __future__ import annotations

import collections
import gc
import json
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from gridrun.keras._models import build_model, set_base_trainable
from gridrun.keras._optim import Optimizer, clip_by_global_norm, l1_penalty, \
    soft_cross_entropy

__all__ = ["Program", "program_for", "trim_programs", "detach_programs", "forget_programs",
           "structure_key",
           "CACHE_SIZE", "CACHE_BYTES"]

# Programs kept per process: at most CACHE_SIZE, and fewer when their variables (weights and
# optimizer state) would pass CACHE_BYTES; the least recently used go first.
CACHE_SIZE = 4
CACHE_BYTES = 256 * 2 ** 20
_MODEL_KEYS = ("backbone", "batchnorm", "dropout", "activation", "pooling", "global_pool",
               "width", "depth")
_PROGRAMS: "collections.OrderedDict[str, Program]" = collections.OrderedDict()


def structure_key(cfg: Mapping[str, Any], image_shape, num_classes: int) -> str:
    """What a traced step depends on: the model, the optimizer and which terms the loss
    and update have (not their values)."""
    key = {k: cfg[k] for k in _MODEL_KEYS}
    key.update(optimizer=cfg["optimizer"], normalize=cfg["normalize"],
               decay=cfg["weight_decay"] > 0, momentum=cfg["momentum"] > 0,
               l1=cfg["l1"] > 0, clip=cfg["grad_clip"] > 0,
               class_weight=cfg["imbalance_remedy"] == "class_weight",
               image_shape=list(image_shape), num_classes=int(num_classes))
    return json.dumps(key, sort_keys=True)


def program_for(cfg: Mapping[str, Any], image_shape, num_classes: int) -> "Program":
    """The process's program for this structure, built on first use (least recently used
    programs beyond CACHE_SIZE are dropped)."""
    key = structure_key(cfg, image_shape, num_classes)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    program = Program(cfg, image_shape, num_classes)
    _PROGRAMS[key] = program
    trim_programs(keep=1)
    return program


def trim_programs(keep: int = 0) -> None:
    """Drop the least recently used programs while there are more than CACHE_SIZE or their
    variables pass CACHE_BYTES; the ``keep`` most recent stay whatever their size."""
    def total() -> int:
        return sum(p.nbytes for p in _PROGRAMS.values())

    dropped = False
    while len(_PROGRAMS) > keep and (len(_PROGRAMS) > CACHE_SIZE or total() > CACHE_BYTES):
        _PROGRAMS.popitem(last=False)  # trainers holding it keep using it
        dropped = True
    if dropped:  # traced graphs are cyclic: only a full collection returns their memory
        gc.collect()


def detach_programs() -> None:
    """Every cached program hands its owner's state back (see :meth:`Program.detach`)."""
    for program in _PROGRAMS.values():
        program.detach()


def forget_programs() -> None:
    """Drop every cached program (their models, optimizers and traced functions go once
    no trainer holds them)."""
    _PROGRAMS.clear()


def build(cfg: Mapping[str, Any], image_shape, num_classes: int, seed: int):
    h, w, c = image_shape
    return build_model(cfg["backbone"], c, num_classes, (h, w), cfg["batchnorm"],
                       cfg["dropout"], activation=cfg["activation"], pooling=cfg["pooling"],
                       global_pool=cfg["global_pool"], width=cfg["width"],
                       depth=cfg["depth"], seed=seed)


class Program:
    """One structure's model, optimizer and traced functions; see the module docstring."""

    def __init__(self, cfg: Mapping[str, Any], image_shape, num_classes: int):
        self.model = build(cfg, image_shape, int(num_classes), seed=0)
        self._setup(cfg, image_shape, num_classes)

    def _setup(self, cfg: Mapping[str, Any], image_shape, num_classes: int) -> None:
        """Everything but the model: its optimizer, the settings' variables and the
        evaluation step (shared with a program whose model is the spec's own)."""
        h, w, c = image_shape
        self.num_classes = k = int(num_classes)
        self.optimizer = Optimizer(cfg["optimizer"], self.model.trainable_variables,
                                   decay=cfg["weight_decay"] > 0,
                                   momentum=cfg["momentum"] > 0)
        self.normalize_mode = cfg["normalize"]
        self.use_l1, self.use_clip = cfg["l1"] > 0, cfg["grad_clip"] > 0
        self.use_weights = cfg["imbalance_remedy"] == "class_weight"

        def var(value, shape=None):
            return tf.Variable(value, trainable=False, shape=shape)

        self.mean, self.std = var(tf.zeros((1, 1, 1, c))), var(tf.ones((1, 1, 1, c)))
        self.l1, self.clip, self.smooth = var(0.0), var(0.0), var(0.0)
        self.class_weights = var(tf.ones(k))
        self.lrs = var(tf.zeros(1), shape=tf.TensorShape([None]))  # per step of the epoch
        self.sums = var(tf.zeros(2, tf.float64))  # loss x examples, hits
        self.state = list(self.model.variables) + self.optimizer.state()
        self.nbytes = sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size
                          for v in self.state)
        self.owner = None  # the trainer whose state the variables hold
        self._steps: dict[bool, Any] = {}
        self.evaluate_batch = tf.function(self._evaluate_batch, input_signature=[
            tf.TensorSpec((None, h, w, c), tf.float32), tf.TensorSpec((None,), tf.int32)])

    # ---------------------------------------------------------------- state

    def initial_state(self, cfg: Mapping[str, Any], image_shape, seed: int) -> list:
        """A new trainer's state: the weights (and dropout seed states) a model built with
        ``seed`` starts from, and a zero optimizer state."""
        fresh = build(cfg, image_shape, self.num_classes, seed)
        return [v.numpy() for v in fresh.variables] + \
            [np.zeros(v.shape, v.dtype.as_numpy_dtype) for v in self.optimizer.state()]

    def snapshot(self) -> list[np.ndarray]:
        """Copies of the variables' values (the owner's current state)."""
        return [np.array(v.numpy(), copy=True) for v in self.state]

    def borrow(self, trainer) -> None:
        """Put ``trainer``'s state into the variables (saving the previous owner's first)
        and its settings into the setting variables."""
        if self.owner is trainer:
            return
        self.detach()
        for v, value in zip(self.state, trainer._state):
            v.assign(value)
        trainer._state = None  # the variables hold it now
        self.owner = trainer
        cfg, data = trainer.config, trainer.data
        self.optimizer.configure(weight_decay=cfg["weight_decay"], momentum=cfg["momentum"])
        self.mean.assign(data.mean)
        self.std.assign(data.std)
        self.l1.assign(cfg["l1"])
        self.clip.assign(cfg["grad_clip"])
        self.smooth.assign(cfg["label_smoothing"])
        if trainer.class_weights is not None:
            self.class_weights.assign(trainer.class_weights)

    def detach(self) -> None:
        """Hand the owner its state back and forget it (a finished cell's trainer and its
        data are then freed with the cell)."""
        if self.owner is not None:
            self.owner._state = self.snapshot()
            self.owner = None

    def release(self, trainer) -> list[np.ndarray]:
        """``trainer``'s state as arrays, wherever it lives now."""
        return self.snapshot() if self.owner is trainer else trainer._state

    # ---------------------------------------------------------------- compute

    def normalize(self, x):
        if self.normalize_mode == "standardize":
            return (x - self.mean) / self.std
        return x if self.normalize_mode == "rescale" else x * 255.0

    def train_step(self, frozen: bool):
        """The traced training step of one freezing state (freezing changes which variables
        train, and batch norm's mode in the base)."""
        set_base_trainable(self.model, not frozen)
        if frozen not in self._steps:
            self._steps[frozen] = tf.function(self._make_step(), reduce_retracing=True)
        return self._steps[frozen]

    def _make_step(self):
        model, opt, k = self.model, self.optimizer, self.num_classes
        variables = list(model.trainable_variables)  # the head only while frozen
        weights = self.class_weights if self.use_weights else None

        def step(i, x, t):
            soft = t if t.dtype.is_floating else tf.one_hot(t, k)
            with tf.GradientTape() as tape:
                logits = model(self.normalize(x), training=True)
                loss = soft_cross_entropy(logits, soft, label_smoothing=self.smooth,
                                          weights=weights)
                if self.use_l1:
                    loss = loss + self.l1 * l1_penalty(model)
            grads = tape.gradient(loss, variables)
            if self.use_clip:
                grads = clip_by_global_norm(grads, self.clip)
            opt.apply(grads, variables, self.lrs[i])
            hits = tf.argmax(logits, 1, output_type=tf.int32) == \
                tf.argmax(soft, 1, output_type=tf.int32)
            self.sums.assign_add(tf.stack([
                tf.cast(loss, tf.float64) * tf.cast(tf.shape(x)[0], tf.float64),
                tf.reduce_sum(tf.cast(hits, tf.float64))]))

        return step

    def _evaluate_batch(self, x, y):
        logits = self.model(self.normalize(x), training=False)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        hits = tf.argmax(logits, 1, output_type=tf.int32) == y
        return loss, tf.reduce_sum(tf.cast(hits, tf.int64))
