"""The Keras (TensorFlow) training loop of one trial, steppable one epoch at a time and
resumable: the counterpart of ``gridrun.torch.Trainer``, with the same config, seeds, data
splits and reported metrics.

    >>> from gridrun.design.grid import resolve_config
    >>> config = resolve_config({"framework": "tensorflow"}, {"epochs": 2})
    >>> summary = train(config, data, seed=0, report=print)          # doctest: +SKIP

Reads top to bottom: ``train`` (a loop over a Trainer), then the Trainer: check the config,
take the data as tensors (``_data.py``), get the compiled model, optimizer (PyTorch's
equations, ``_optim.py``) and step of its structure (``_program.py``, shared with the
trainers of the same structure; this trainer keeps its own weights and optimizer state)
and the random streams of one seed, then train one epoch per ``step``: a Python loop of
compiled steps over a ``tf.data`` pipeline that gathers each batch and augments it whole
(``_augment.py``), prefetching the next batch while one trains. Then checkpoints
(``to_bytes``/``from_bytes``), then evaluation.

Randomness: initialisation and dropout come from seeds derived from the trial's seed; the
data order from a numpy generator whose state is checkpointed; augmentation from stateless
ops seeded by (seed, epoch, batch), so a checkpoint continues exactly where it stopped and
trainers of several seeds in one process never perturb each other.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from gridrun.spec import plugins, techniques
from gridrun.spec.rules import EarlyStopping, lr_at, resolve_lr
from gridrun.store.location import Location
from gridrun.data._problems import trial_problems
from gridrun.keras._augment import augment_batch
from gridrun.keras._data import epoch_batches, prepare_data
from gridrun.keras._models import count_parameters
from gridrun.keras._optim import as_float_weights
from gridrun.keras._own import count_own_parameters, own_program_for
from gridrun.keras._pretrained import load_pretrained, model_bytes
from gridrun.keras._program import program_for

__all__ = ["train", "Trainer", "check_config", "IMPLEMENTED", "REPORT_KEYS", "EVAL_BATCH",
           "STATE_FORMAT"]

IMPLEMENTED = tuple(techniques.for_framework("tensorflow"))
REPORT_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
               "epoch_seconds", "params")
EVAL_BATCH = 1024  # evaluation only; bounds memory, does not change the numbers
STATE_FORMAT = "gridrun-keras-trainer-1"


def train(config: Mapping[str, Any], data, *, seed: int,
          report: Callable[[dict], None]) -> dict:
    """Train one configuration and ``report`` metrics once per epoch; the same contract as
    ``gridrun.torch.train`` (call ``gridrun.keras.set_threads`` first to bound threads)."""
    check_config(config)
    started = time.perf_counter()
    trainer = Trainer(config, data, seed=seed)
    while not trainer.done:
        metrics = trainer.step()
        report(dict(metrics))  # under Ray Tune with ASHA this may never return
    return {**metrics, "best_val_acc": trainer.best_val_acc, "best_epoch": trainer.best_epoch,
            "seconds": time.perf_counter() - started, "device": trainer.data.device}


# ---------------------------------------------------------------- model: one seed's trainer

class Trainer:
    """One seed of one configuration, trained one epoch per :meth:`step`, checkpointable.

        >>> trainer = Trainer(config, data, seed=0)                     # doctest: +SKIP
        >>> while not trainer.done:                                     # doctest: +SKIP
        ...     metrics = trainer.step()
    """

    def __init__(self, config: Mapping[str, Any], data, *, seed: int):
        self.config = cfg = check_config(config)
        self.data = prepare_data(data)
        self.seed, self.epochs = int(seed), cfg["epochs"]
        self.epoch, self.best_val_acc, self.best_epoch = 0, -1.0, 0
        self.seconds = 0.0
        init_seed, order_seed, aug_seed = (int(s) for s in
                                           np.random.SeedSequence(seed).generate_state(3))
        self._order = np.random.default_rng(order_seed)
        self._aug_seed = aug_seed % (2 ** 31)
        # the compiled model, optimizer and step this trainer shares with every trainer of
        # its structure; the trainer owns its state (weights, optimizer state) alone
        own = plugins.active().builder(cfg["backbone"], "tensorflow")  # the spec's own model
        self._program = program_for(cfg, self.data.image_shape, self.data.num_classes) \
            if own is None else own_program_for(own, cfg, self.data.image_shape,
                                                self.data.num_classes,
                                                f"models[{cfg['backbone']!r}]")
        self._state = self._program.initial_state(cfg, self.data.image_shape,
                                                  init_seed % (2 ** 31))
        self._n_model = len(self._program.model.variables)
        view = trial_problems(cfg, self.data.y_train_numpy, self.data.num_classes, seed)
        self._index = None if view is None else view[0]
        self._labels = self.data.y_train if view is None else tf.constant(
            view[1].astype(np.int32))
        self.class_weights = None if view is None else as_float_weights(view[2])
        self.flipped = 0 if view is None else view[3]
        if cfg["pretrained"]:
            load_pretrained(self.model, cfg["pretrained"])
        self.params = (count_parameters if own is None else count_own_parameters)(
            self._program.model)
        self.lr = resolve_lr(cfg["optimizer"], cfg["lr"])
        self._fixed_order = None
        if not cfg["shuffle"]:  # one order, drawn once, for every epoch
            self._fixed_order = self._order.permutation(self._n_train)
        self.early = EarlyStopping(cfg["early_stopping"], cfg["early_stopping_monitor"]) \
            if cfg["early_stopping"] else None
        self.stopped_at = None
        self._best_weights = None
        self._restored = None
        self._step = 0
        self._last_lr = self.lr
        self._batches = None  # the tf.data pipeline, built on the first epoch

    @property
    def model(self):
        """The Keras model holding this trainer's weights (shared with the trainers of the
        same structure: read it before stepping another trainer)."""
        self._program.borrow(self)
        return self._program.model

    @property
    def _n_train(self) -> int:
        return len(self._index) if self._index is not None else len(self.data.y_train_numpy)

    @property
    def _steps_per_epoch(self) -> int:
        return -(-self._n_train // self.config["batch_size"])

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    def _lrs(self) -> np.ndarray:
        """The learning rate of every step of the next epoch (the schedule with warm-up,
        times finetune_lr once a frozen base is released): PyTorch trainer's rule."""
        cfg, n = self.config, self._steps_per_epoch
        steps = range(self._step, self._step + n)
        if cfg["lr_schedule"] != "constant" or cfg["warmup_epochs"]:
            lrs = [lr_at(s, base_lr=self.lr, steps_per_epoch=n, epochs=self.epochs,
                         schedule=cfg["lr_schedule"], step_epochs=cfg["lr_step_epochs"],
                         gamma=cfg["lr_gamma"], staircase=cfg["lr_staircase"],
                         warmup_epochs=cfg["warmup_epochs"]) for s in steps]
        else:
            lrs = [self.lr] * n
        if cfg["freeze_epochs"] and self.epoch >= cfg["freeze_epochs"]:
            lrs = [lr * cfg["finetune_lr"] for lr in lrs]
        return np.asarray(lrs, dtype=np.float32)

    # ---------------------------------------------------------------- train

    def step(self) -> dict:
        """Train the next epoch and return its metrics (REPORT_KEYS, plus test_acc after the
        last epoch). RuntimeError when all epochs are done, or on a non-finite loss."""
        if self.done:
            raise RuntimeError(f"all {self.epochs} epochs are trained; nothing left to step")
        start, epoch, data = time.perf_counter(), self.epoch + 1, self.data
        if self.stopped_at is not None:  # early stopping ended training: the restored model
            metrics = {**self._restored, "epoch": epoch, "early_stopped": True,
                       "epoch_seconds": time.perf_counter() - start}
            return self._finish_epoch(metrics, epoch, start)
        train_loss, train_acc = self._train_epoch()
        val_loss, val_acc = self._evaluate(data.x_val, data.y_val)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            cfg = self.config
            raise RuntimeError(
                f"non-finite loss in epoch {epoch} (train_loss={train_loss}, "
                f"val_loss={val_loss}) with optimizer={cfg['optimizer']}, lr={self.lr:g}, "
                f"backbone={cfg['backbone']}, batchnorm={cfg['batchnorm']}; training "
                f"diverged, try a smaller lr")
        metrics = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                   "val_loss": val_loss, "val_acc": val_acc, "lr": self._last_lr,
                   "epoch_seconds": time.perf_counter() - start, "params": self.params}
        if self.early is not None:
            stop = self.early.update(epoch, metrics)
            if self.early.best_epoch == epoch:
                self._best_weights = [v.numpy() for v in self.model.weights]
            if stop or epoch == self.epochs:
                metrics = self._stop_early(epoch, metrics)
        return self._finish_epoch(metrics, epoch, start)

    def _stop_early(self, epoch: int, metrics: dict) -> dict:
        """Restore the best weights; later epochs report the restored model (as torch)."""
        self.stopped_at = epoch
        if self.early.best_epoch == epoch:
            self._restored = {**metrics, "epoch_seconds": 0.0}
            return metrics
        for v, value in zip(self.model.weights, self._best_weights):
            v.assign(value)
        val_loss, val_acc = self._evaluate(self.data.x_val, self.data.y_val)
        self._restored = {"train_loss": None, "train_acc": None, "val_loss": val_loss,
                          "val_acc": val_acc, "lr": 0.0, "params": self.params}
        return {**metrics, "val_loss": val_loss, "val_acc": val_acc,
                "restored_epoch": self.early.best_epoch}

    def _finish_epoch(self, metrics: dict, epoch: int, start: float) -> dict:
        if metrics["val_acc"] > self.best_val_acc and self.stopped_at in (None, epoch) \
                and "restored_epoch" not in metrics:
            self.best_val_acc, self.best_epoch = metrics["val_acc"], epoch
        if epoch == self.epochs:  # the only look at the test set
            metrics["test_acc"] = self._evaluate(self.data.x_test, self.data.y_test)[1]
        self.epoch = epoch
        self.seconds += time.perf_counter() - start
        return metrics

    def _train_epoch(self) -> tuple[float, float]:
        """One pass over the training set in this seed's order: mean loss and accuracy."""
        cfg, n, program = self.config, self._n_train, self._program
        frozen = self.epoch < cfg["freeze_epochs"]
        order = self._fixed_order if self._fixed_order is not None else \
            self._order.permutation(n)
        if self._index is not None:
            order = self._index[order]
        lrs = self._lrs()
        if self._batches is None:
            self._make_pipeline()
        self._epoch_order.assign(order.astype(np.int32))
        self._epoch_no.assign(self.epoch)
        program.borrow(self)
        program.lrs.assign(lrs)
        program.sums.assign(tf.zeros(2, tf.float64))
        train_step = program.train_step(frozen)
        # A Python loop of compiled steps: 3x faster here than the same loop inside one
        # tf.function (a while loop over the dataset) on small models.
        for i, x, t in self._batches:
            train_step(i, x, t)
        loss_sum, correct = program.sums.numpy()
        self._step += len(lrs)
        self._last_lr = float(lrs[-1])
        return float(loss_sum) / n, float(correct) / n

    def _make_pipeline(self) -> None:
        """The tf.data pipeline of every epoch, built once: the epoch's order and number
        live in variables set before each pass."""
        cfg, k = self.config, self.data.num_classes
        self._epoch_order = tf.Variable(tf.zeros(self._n_train, tf.int32), trainable=False)
        self._epoch_no = tf.Variable(tf.constant(0, tf.int64), trainable=False)
        aug_seed, epoch_no = tf.constant(self._aug_seed, tf.int64), self._epoch_no

        def augment(i, x, y):  # no reference to self: the trainer is freed without a gc pass
            seed = tf.stack([aug_seed, epoch_no * (2 ** 24) + i])
            x, t = augment_batch(cfg, x, y, seed, k)
            return i, x, t

        # tf.data's own pool follows set_threads too (0: TensorFlow's choice)
        threads = tf.config.threading.get_intra_op_parallelism_threads() or None
        self._batches = epoch_batches(self.data.x_train, self._labels, self._epoch_order,
                                      cfg["batch_size"], augment, threads=threads)

    def _normalize(self, x):
        self._program.borrow(self)
        return self._program.normalize(x)

    # ---------------------------------------------------------------- evaluate

    def _evaluate(self, x, y) -> tuple[float, float]:
        """Mean cross-entropy and accuracy over the whole split, in inference mode."""
        self._program.borrow(self)
        n, loss_sum, correct = int(y.shape[0]), 0.0, 0
        for start in range(0, n, EVAL_BATCH):
            loss, hits = self._program.evaluate_batch(x[start:start + EVAL_BATCH],
                                                      y[start:start + EVAL_BATCH])
            loss_sum += float(loss)
            correct += int(hits)
        return loss_sum / n, correct / n

    # ---------------------------------------------------------------- checkpoint

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: plain values under "meta", and the
        model's variables (weights, batch-norm statistics, dropout seed states) and the
        optimizer's state as numpy arrays."""
        meta = {"format": STATE_FORMAT, "config": dict(self.config), "seed": self.seed,
                "data": self.data.signature(), "epoch": self.epoch,
                "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch,
                "params": self.params, "seconds": self.seconds, "step": self._step,
                "last_lr": self._last_lr, "order": self._order.bit_generator.state,
                "stopped_at": self.stopped_at,
                "early": self.early.state_dict() if self.early is not None else None,
                "restored": self._restored, "has_best": self._best_weights is not None}
        state = self._program.release(self)
        return {"meta": meta, "model": state[:self._n_model],
                "optimizer": state[self._n_model:], "best": list(self._best_weights or [])}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict` or :meth:`to_bytes`).
        ValueError if it was saved with another config, seed or dataset."""
        meta = state["meta"]
        self._check_state(meta)
        program = self._program
        _check_shapes(program.model.variables, state["model"], "model")
        _check_shapes(program.optimizer.state(), state["optimizer"], "optimizer")
        if program.owner is self:  # the variables hold the old state: forget it
            program.owner = None
        self._state = [np.asarray(a) for a in (*state["model"], *state["optimizer"])]
        self._order.bit_generator.state = meta["order"]
        self.epoch, self.best_epoch = meta["epoch"], meta["best_epoch"]
        self.best_val_acc, self.seconds = meta["best_val_acc"], meta["seconds"]
        self._step, self._last_lr = meta["step"], meta["last_lr"]
        self.stopped_at, self._restored = meta["stopped_at"], meta["restored"]
        self._best_weights = list(state["best"]) if meta["has_best"] else None
        if self.early is not None and meta["early"] is not None:
            self.early.load_state_dict(meta["early"])

    def _check_state(self, meta: Mapping[str, Any]) -> None:
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"not a gridrun Keras trainer state (format "
                             f"{meta.get('format')!r}, expected {STATE_FORMAT!r})")
        saved = _with_defaults(meta["config"])
        if saved != self.config:
            diff = sorted(k for k in set(saved) | set(self.config)
                          if saved.get(k) != self.config.get(k))
            raise ValueError(f"the state was saved with another config (differs in "
                             f"{', '.join(diff)})")
        if meta["data"] != self.data.signature():
            raise ValueError(f"the state was trained on other data: {meta['data']}, this "
                             f"trainer has {self.data.signature()}")
        if meta["seed"] != self.seed:
            raise ValueError(f"the state is of seed {meta['seed']}, this trainer's is "
                             f"{self.seed}")

    def to_bytes(self) -> bytes:
        """:meth:`state_dict` as one ``.npz`` (no pickle: arrays, and the plain values as
        JSON)."""
        state = self.state_dict()
        arrays = {"meta": np.frombuffer(json.dumps(state["meta"]).encode(), np.uint8)}
        for part in ("model", "optimizer", "best"):
            arrays.update({f"{part}/{i:05d}": a for i, a in enumerate(state[part])})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, data) -> "Trainer":
        """A trainer continued from :meth:`to_bytes`."""
        state = _read_state(blob)
        trainer = cls(_with_defaults(state["meta"]["config"]), data,
                      seed=state["meta"]["seed"])
        trainer.load_state_dict(state)
        return trainer

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_bytes` to ``path`` atomically (temporary file, then replace)."""
        Location(os.fspath(path)).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike, data) -> "Trainer":
        with open(path, "rb") as f:
            return cls.from_bytes(f.read(), data)

    def model_bytes(self) -> bytes:
        """The model's weights as ``.npz`` bytes: what ``pretrained`` loads."""
        return model_bytes(self.model)


# ---------------------------------------------------------------- helpers

def check_config(config: Mapping[str, Any]) -> dict:
    """The config's values, checked against the registry
    (``gridrun.spec.techniques.check_config``, which also takes the active plug-ins' custom
    factors and models); ValueError for an unknown key, a missing key or a value the
    registry does not allow."""
    return plugins.check_config(config, "tensorflow")


def _with_defaults(config: Mapping[str, Any]) -> dict:
    return {**{n: techniques.get(n).default for n in IMPLEMENTED}, "framework": "tensorflow",
            **config}


def _check_shapes(variables, values, what: str) -> None:
    if len(variables) != len(values):
        raise ValueError(f"the state's {what} has {len(values)} arrays, this trainer "
                         f"{len(variables)}")
    for v, a in zip(variables, values):
        if tuple(v.shape) != tuple(np.shape(a)):
            raise ValueError(f"the state's {what} array {getattr(v, 'path', v.name)} has "
                             f"shape {np.shape(a)}, this trainer {tuple(v.shape)}")


def _read_state(blob: bytes) -> dict:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise ValueError(f"not a gridrun Keras trainer state: {e}") from None
    if "meta" not in files:
        raise ValueError("not a gridrun Keras trainer state: no meta entry")
    state = {"meta": json.loads(files.pop("meta").tobytes().decode())}
    for part in ("model", "optimizer", "best"):
        keys = sorted(k for k in files if k.startswith(f"{part}/"))
        state[part] = [files[k] for k in keys]
    return state
