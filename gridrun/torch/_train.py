"""The PyTorch training loop of one trial, steppable one epoch at a time and resumable.

    >>> from gridrun.design.grid import resolve_config
    >>> config = resolve_config({"backbone": "simple_cnn"}, {"epochs": 2})
    >>> summary = train(config, data, seed=0, report=print)          # doctest: +SKIP

or, driving the epochs yourself (several seeds sharing one copy of the data on the device):

    >>> shared = prepare_data(data)                                  # doctest: +SKIP
    >>> trainers = [Trainer(config, shared, seed=s) for s in range(3)]   # doctest: +SKIP
    >>> metrics = [t.step() for t in trainers]                       # doctest: +SKIP
    >>> trainers[0].save("seed0.pt")                                 # doctest: +SKIP
    >>> Trainer.load("seed0.pt", shared).epoch                       # doctest: +SKIP
    1

Reads top to bottom: ``train`` (a loop over a Trainer), then the Trainer: check the config,
take the data on the device (``_data.py``), build the model, optimizer and random streams of
one seed, then train one epoch per ``step``; its checkpoints (files in ``_checkpoint.py``);
then evaluation. The test set is evaluated exactly once, after the last epoch, and goes into
the last epoch's metrics. A trainer owns all of its randomness, so trainers stepped in any
interleaving in one process do not perturb each other, and a checkpoint continues exactly as
if never stopped.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from gridrun.spec import plugins, techniques
from gridrun.torch._checkpoint import (STATE_FORMAT, check_format, check_same, cpu_copy, read_state,
                                       write_state)
from gridrun.torch._data import prepare_data
from gridrun.torch._models import build_model, count_parameters
from gridrun.torch._own import build_own
from gridrun.torch._optim import (EarlyStopping, apply_lr, clip_gradients, lr_at, make_optimizer,
                                  resolve_lr)
from gridrun.torch._pretrained import freeze_base, load_pretrained
from gridrun.torch._recipe import augment_batch, batch_loss, normalizer, trial_data

__all__ = ["train", "Trainer", "set_threads", "check_config", "IMPLEMENTED", "REPORT_KEYS",
           "EVAL_BATCH"]

# The techniques this trainer implements: a config must set each of them and nothing else.
IMPLEMENTED = tuple(techniques.for_framework("torch"))
# Keys of every report; the last one adds "test_acc".
REPORT_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
               "epoch_seconds", "params")
EVAL_BATCH = 1024  # evaluation only; bounds memory, does not change the numbers
# On CPU the forward pass of an evaluation batch runs in chunks of EVAL_CHUNK images: a
# 1024-image batch's activations overflow the caches (simple_cnn on 28x28 evaluates 2-2.5x
# slower, resnet20 2.7x). Each image's logits do not depend on the chunk (bit for bit); the
# loss is still summed per EVAL_BATCH, so the reported numbers stay exactly as they were.
EVAL_CHUNK = 128


def train(config: Mapping[str, Any], data, *, seed: int,
          report: Callable[[dict], None], device: str | None = None,
          threads: int | None = None) -> dict:
    """Train one configuration on ``data`` and ``report`` metrics once per epoch.

    ``config`` maps every technique this trainer implements to its value (see
    ``gridrun.design.grid.resolve_config``); unknown or missing keys raise ValueError. ``data`` is
    a gridrun Dataset or a :class:`DeviceData`. ``seed`` fixes initialisation, data order,
    augmentation and dropout: the same seed gives identical metrics on CPU. ``device`` None
    means "cuda" when available, else "cpu"; ``threads`` sets ``torch.set_num_threads``.
    Each report holds epoch, train_loss, train_acc (over the epoch's training batches),
    val_loss, val_acc, lr, epoch_seconds (training plus validation) and params; the last
    adds test_acc. Returns the last report plus best_val_acc, best_epoch, seconds (total wall
    time) and device. A non-finite loss raises RuntimeError. A loop over :class:`Trainer`.
    """
    check_config(config)  # a bad config fails before anything changes in the process
    set_threads(threads)
    started = time.perf_counter()
    trainer = Trainer(config, data, seed=seed, device=device)
    while not trainer.done:
        metrics = trainer.step()
        # Under Ray Tune with ASHA this call may never return: nothing after it but the loop.
        report(dict(metrics))
    return {**metrics, "best_val_acc": trainer.best_val_acc, "best_epoch": trainer.best_epoch,
            "seconds": time.perf_counter() - started, "device": str(trainer.device)}


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)``; None leaves torch's setting alone.

        >>> set_threads(2); torch.get_num_threads()                   # doctest: +SKIP
        2
    """
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- model: one seed's trainer

class Trainer:
    """One seed of one configuration, trained one epoch per :meth:`step`, checkpointable.

    ``config`` and ``seed`` as for :func:`train`; ``data`` a Dataset or a shared
    :class:`DeviceData`. ``epoch`` counts the epochs done, ``epochs`` is the budget.

    The trainer owns all of its randomness: generators for data order and augmentation,
    and its own state of torch's global RNG (initialisation and dropout draw from it),
    swapped in only while it builds or trains. So trainers stepped in any interleaving in
    one process give the metrics each gives alone, and :meth:`state_dict` / :meth:`save`
    continue exactly where they stopped (bit-exactly on CPU; on CUDA as far as its kernels
    are deterministic).

        >>> trainer = Trainer(config, data, seed=0, device="cpu")       # doctest: +SKIP
        >>> while not trainer.done:                                     # doctest: +SKIP
        ...     metrics = trainer.step()
        >>> "test_acc" in metrics                                       # doctest: +SKIP
        True
    """

    def __init__(self, config: Mapping[str, Any], data, *, seed: int,
                 device: str | torch.device | None = None):
        self.config = check_config(config)
        self.data = prepare_data(data, device)
        self.device, self.seed, self.epochs = self.data.device, int(seed), self.config["epochs"]
        self.epoch, self.best_val_acc, self.best_epoch = 0, -1.0, 0
        self.seconds = 0.0  # wall time spent in step(), carried across checkpoints
        init_seed, order_seed, aug_seed = (int(s) for s in
                                           np.random.SeedSequence(seed).generate_state(3))
        # Separate streams: switching augmentation or dropout on leaves the data order alone.
        self._order_gen = torch.Generator().manual_seed(order_seed)
        self._aug_gen = torch.Generator().manual_seed(aug_seed)
        self._global_rng = _seeded_global_rng(init_seed, self.device)
        cfg, (channels, height, width) = self.config, self.data.image_shape
        own = plugins.active().builder(cfg["backbone"], "torch")  # the spec's own model
        with self._own_global_rng():
            if own is not None:
                self.model = build_own(own, cfg, (channels, height, width),
                                       self.data.num_classes,
                                       f"models[{cfg['backbone']!r}]").to(self.device)
            else:
                self.model = build_model(cfg["backbone"], channels, self.data.num_classes,
                                         (height, width), cfg["batchnorm"], cfg["dropout"],
                                         activation=cfg["activation"], pooling=cfg["pooling"],
                                         global_pool=cfg["global_pool"], width=cfg["width"],
                                         depth=cfg["depth"]).to(self.device)
        if cfg["pretrained"]:
            load_pretrained(self.model, cfg["pretrained"])
        # How the model computes (the registry's "speed" group): memory layout, compilation
        # and autocast. self.model stays the plain module: checkpoints and weights are its.
        self._channels_last = cfg["channels_last"]
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._net = torch.compile(self.model) if cfg["compile"] else self.model
        self._bf16 = cfg["precision"] == "bf16"
        self.params = count_parameters(self.model)
        self.lr = resolve_lr(cfg["optimizer"], cfg["lr"])
        self.optimizer = make_optimizer(cfg["optimizer"], self.model.parameters(), self.lr,
                                        cfg["weight_decay"], momentum=cfg["momentum"])
        self.train_data = trial_data(cfg, self.data, seed)  # None: the split as loaded
        self.normalize = normalizer(cfg, self.data)
        self._fixed_order = None
        if not cfg["shuffle"]:  # one order, drawn once, for every epoch
            self._fixed_order = torch.randperm(self._n_train, generator=self._order_gen)
        self.early = EarlyStopping(cfg["early_stopping"], cfg["early_stopping_monitor"]) \
            if cfg["early_stopping"] else None
        self.stopped_at = None  # the epoch early stopping ended training
        self._best_weights = None  # the weights early stopping restores
        self._restored = None  # the restored model's metrics, reported after stopping
        self._step = 0  # optimizer steps so far (the learning-rate schedule's clock)

    @property
    def _n_train(self) -> int:
        return len(self.train_data) if self.train_data is not None else len(self.data.y_train)

    @property
    def _steps_per_epoch(self) -> int:
        return -(-self._n_train // self.config["batch_size"])

    def _lr_now(self) -> float:
        """The learning rate for the next optimizer step: the schedule (with warm-up), times
        finetune_lr once a frozen base has been released."""
        cfg = self.config
        lr = self.lr
        if cfg["lr_schedule"] != "constant" or cfg["warmup_epochs"]:
            lr = lr_at(self._step, base_lr=self.lr, steps_per_epoch=self._steps_per_epoch,
                       epochs=self.epochs, schedule=cfg["lr_schedule"],
                       step_epochs=cfg["lr_step_epochs"], gamma=cfg["lr_gamma"],
                       staircase=cfg["lr_staircase"], warmup_epochs=cfg["warmup_epochs"])
        if cfg["freeze_epochs"] and self.epoch >= cfg["freeze_epochs"]:
            lr *= cfg["finetune_lr"]
        return lr

    @property
    def _scheduled(self) -> bool:
        cfg = self.config
        return (cfg["lr_schedule"] != "constant" or bool(cfg["warmup_epochs"])
                or bool(cfg["freeze_epochs"]))

    @property
    def done(self) -> bool:
        """True once all ``epochs`` are trained."""
        return self.epoch >= self.epochs

    @contextlib.contextmanager
    def _own_global_rng(self):
        """Swap this trainer's state of torch's global RNG in (CPU, and CUDA when it trains
        there) and the process's back afterwards: dropout has no generator argument."""
        cuda = self.device if self.device.type == "cuda" else None
        outer = torch.get_rng_state(), torch.cuda.get_rng_state(cuda) if cuda else None
        torch.set_rng_state(self._global_rng["cpu"])
        if cuda:
            torch.cuda.set_rng_state(self._global_rng["cuda"], cuda)
        try:
            yield
        finally:
            self._global_rng = {"cpu": torch.get_rng_state(),
                                "cuda": torch.cuda.get_rng_state(cuda) if cuda else None}
            torch.set_rng_state(outer[0])
            if cuda:
                torch.cuda.set_rng_state(outer[1], cuda)

    # ---------------------------------------------------------------- train

    def step(self) -> dict:
        """Train the next epoch and return its metrics: REPORT_KEYS, plus test_acc after the
        last epoch. RuntimeError when all epochs are done, or on a non-finite loss.

            >>> trainer.step()["epoch"]                                 # doctest: +SKIP
            1
        """
        if self.done:
            raise RuntimeError(f"all {self.epochs} epochs are trained; nothing left to step")
        start, epoch, data = time.perf_counter(), self.epoch + 1, self.data
        if self.stopped_at is not None:  # early stopping ended training: the restored model
            metrics = {**self._restored, "epoch": epoch, "early_stopped": True,
                       "epoch_seconds": time.perf_counter() - start}
            return self._finish_epoch(metrics, epoch, start)
        with self._own_global_rng():
            train_loss, train_acc = self._train_epoch()
        val_loss, val_acc = _evaluate(self.model, data.x_val, data.y_val, self._forward)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            cfg = self.config
            raise RuntimeError(
                f"non-finite loss in epoch {epoch} (train_loss={train_loss}, "
                f"val_loss={val_loss}) with optimizer={cfg['optimizer']}, lr={self.lr:g}, "
                f"backbone={cfg['backbone']}, batchnorm={cfg['batchnorm']}; training "
                f"diverged, try a smaller lr")
        metrics = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                   "val_loss": val_loss, "val_acc": val_acc,
                   "lr": self.optimizer.param_groups[0]["lr"],
                   "epoch_seconds": time.perf_counter() - start, "params": self.params}
        if self.early is not None:
            stop = self.early.update(epoch, metrics)
            if self.early.best_epoch == epoch:
                self._best_weights = {k: v.detach().clone()
                                      for k, v in self.model.state_dict().items()}
            if stop or epoch == self.epochs:
                metrics = self._stop_early(epoch, metrics)
        return self._finish_epoch(metrics, epoch, start)

    def _stop_early(self, epoch: int, metrics: dict) -> dict:
        """Early stopping ends training (or training reached its last epoch): restore the
        best weights; later epochs report the restored model. Returns this epoch's metrics,
        of the restored model when the weights changed."""
        data = self.data
        self.stopped_at = epoch
        if self.early.best_epoch == epoch:
            self._restored = {**metrics, "epoch_seconds": 0.0}
            return metrics
        self.model.load_state_dict(self._best_weights)
        val_loss, val_acc = _evaluate(self.model, data.x_val, data.y_val, self._forward)
        self._restored = {"train_loss": None, "train_acc": None, "val_loss": val_loss,
                          "val_acc": val_acc, "lr": 0.0, "params": self.params}
        return {**metrics, "val_loss": val_loss, "val_acc": val_acc,
                "restored_epoch": self.early.best_epoch}

    def _finish_epoch(self, metrics: dict, epoch: int, start: float) -> dict:
        data = self.data
        if metrics["val_acc"] > self.best_val_acc and self.stopped_at in (None, epoch) \
                and "restored_epoch" not in metrics:
            self.best_val_acc, self.best_epoch = metrics["val_acc"], epoch
        if epoch == self.epochs:  # the only look at the test set
            metrics["test_acc"] = _evaluate(self.model, data.x_test, data.y_test,
                                            self._forward)[1]
        self.epoch = epoch
        self.seconds += time.perf_counter() - start
        return metrics

    def _train_epoch(self) -> tuple[float, float]:
        """One pass over the training set in this seed's order: mean loss and accuracy."""
        data, model, optimizer, cfg = self.data, self.model, self.optimizer, self.config
        view, batch_size = self.train_data, cfg["batch_size"]
        n = self._n_train
        frozen = self.epoch < cfg["freeze_epochs"]
        if cfg["freeze_epochs"]:  # only then is there a base to (un)freeze
            freeze_base(model, frozen)
        model.train()
        if frozen:
            freeze_base(model, True)  # after train(): frozen batch norm keeps its statistics
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        order = self._fixed_order if self._fixed_order is not None else \
            torch.randperm(n, generator=self._order_gen)
        order = order.to(self.device)
        labels = data.y_train if view is None else view.labels
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if view is not None:
                idx = view.index[idx]
            xb, yb = data.x_train[idx], labels[idx]
            xb, targets = augment_batch(cfg, xb, yb, self._aug_gen, data.num_classes)
            if self._scheduled:
                apply_lr(optimizer, self._lr_now())
            logits = self._forward(xb)
            loss = batch_loss(cfg, logits, targets, model, None if view is None
                              else view.weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["grad_clip"]:
                clip_gradients(model, cfg["grad_clip"])
            optimizer.step()
            self._step += 1
            hard = targets if targets.dtype == torch.long else targets.argmax(1)
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == hard).sum()
        return loss_sum.item() / n, correct.item() / n

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's float32 logits for a batch of images as stored: normalized, in the
        trainer's memory layout, the forward pass under bfloat16 autocast with
        precision="bf16"."""
        x = self.normalize(x)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not self._bf16:
            return self._net(x)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            logits = self._net(x)
        return logits.float()

    # ---------------------------------------------------------------- checkpoint

    def state_dict(self) -> dict:
        """A snapshot (CPU copies) of everything needed to continue exactly: config, seed,
        the data's signature, epoch, best_val_acc, best_epoch, params, seconds, model,
        optimizer and every random state (data order, augmentation, torch's global RNG)."""
        rng = {"order": self._order_gen.get_state(), "augment": self._aug_gen.get_state(),
               "global_cpu": self._global_rng["cpu"], "global_cuda": self._global_rng["cuda"]}
        return cpu_copy({
            "format": STATE_FORMAT, "config": dict(self.config), "seed": self.seed,
            "data": self.data.signature(), "epoch": self.epoch,
            "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch,
            "params": self.params, "seconds": self.seconds, "rng": rng,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "step": self._step, "stopped_at": self.stopped_at,
            "early": self.early.state_dict() if self.early is not None else None,
            "best_weights": self._best_weights, "restored": self._restored})

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict` or a file :meth:`save` wrote).
        ValueError if it was saved with another config, seed or dataset."""
        self._check_state(state)
        state = cpu_copy(state)  # the optimizer would otherwise share the caller's tensors
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        rng = state["rng"]
        self._order_gen.set_state(rng["order"])
        self._aug_gen.set_state(rng["augment"])
        cuda = rng["global_cuda"] if self.device.type == "cuda" else None
        # A CPU checkpoint continued on CUDA keeps this trainer's seeded CUDA state.
        self._global_rng = {"cpu": rng["global_cpu"],
                            "cuda": self._global_rng["cuda"] if cuda is None else cuda}
        self.epoch, self.best_epoch = state["epoch"], state["best_epoch"]
        self.best_val_acc, self.seconds = state["best_val_acc"], state["seconds"]
        self._step = state.get("step", self.epoch * self._steps_per_epoch)
        self.stopped_at, self._restored = state.get("stopped_at"), state.get("restored")
        self._best_weights = state.get("best_weights")
        if self.early is not None and state.get("early") is not None:
            self.early.load_state_dict(state["early"])

    def _check_state(self, state: Mapping[str, Any]) -> None:
        check_format(state)
        check_same("config", self.config, _with_defaults(state["config"]))
        check_same("data", self.data.signature(), state["data"])
        if state["seed"] != self.seed:
            raise ValueError(f"the state is of seed {state['seed']}, this trainer's is "
                             f"{self.seed}")

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to ``path`` atomically (a temporary file beside it, then
        ``os.replace``): an interrupted save leaves the previous checkpoint intact.

            >>> trainer.save(tmp_path / "seed0.pt")                     # doctest: +SKIP
        """
        write_state(self.state_dict(), path)

    def model_bytes(self) -> bytes:
        """The model's weights (``state_dict``, CPU tensors) as ``torch.save`` bytes: what
        ``pretrained`` loads."""
        buf = io.BytesIO()
        torch.save(cpu_copy(self.model.state_dict()), buf)
        return buf.getvalue()

    def to_bytes(self) -> bytes:
        """:meth:`state_dict` as the bytes :meth:`save` would write, for storage that is not
        a local file (an object store)."""
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, data, *,
                   device: str | torch.device | None = None) -> "Trainer":
        """A trainer continued from :meth:`to_bytes` (or a file's bytes)."""
        return cls.load(io.BytesIO(blob), data, device=device)

    @classmethod
    def load(cls, path: str | os.PathLike, data, *,
             device: str | torch.device | None = None) -> "Trainer":
        """A trainer continued from a file :meth:`save` wrote; ``data`` as for Trainer.
        Read with ``torch.load(weights_only=True)``: the file holds only tensors and plain
        values.

            >>> trainer = Trainer.load("seed0.pt", shared)              # doctest: +SKIP
        """
        state = read_state(path)
        trainer = cls(_with_defaults(state["config"]), data, seed=state["seed"],
                      device=device)
        trainer.load_state_dict(state)
        return trainer


# ---------------------------------------------------------------- evaluate

@torch.inference_mode()
def _evaluate(model, x: torch.Tensor, y: torch.Tensor, forward) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the whole split, ``model`` in eval mode;
    ``forward`` maps a batch of images as stored to the model's logits."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, len(y), EVAL_BATCH):
        logits = _logits(forward, x[start:start + EVAL_BATCH])
        yb = y[start:start + EVAL_BATCH]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    return loss_sum.item() / len(y), correct.item() / len(y)


def _logits(forward, x: torch.Tensor) -> torch.Tensor:
    """``forward(x)``, on CPU computed EVAL_CHUNK images at a time (see there)."""
    if x.device.type != "cpu" or len(x) <= EVAL_CHUNK:
        return forward(x)
    return torch.cat([forward(x[i:i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])


# ---------------------------------------------------------------- helpers

def check_config(config: Mapping[str, Any]) -> dict:
    """The config's values, checked against the registry
    (``gridrun.spec.techniques.check_config``, which also takes the active plug-ins' custom
    factors and models); ValueError for an unknown key, a missing key or a value the
    registry does not allow."""
    return plugins.check_config(config, "torch")


def _with_defaults(config: Mapping[str, Any]) -> dict:
    """A config saved before the registry had some techniques, with their defaults."""
    return {**{n: techniques.get(n).default for n in IMPLEMENTED}, **config}


def _seeded_global_rng(seed: int, device: torch.device) -> dict:
    """torch's global RNG state (CPU, and CUDA on a CUDA device) as ``torch.manual_seed(seed)``
    leaves it, made without touching the process's own."""
    cpu = torch.Generator().manual_seed(seed).get_state()
    if device.type != "cuda":
        return {"cpu": cpu, "cuda": None}
    return {"cpu": cpu, "cuda": torch.Generator(device).manual_seed(seed).get_state()}
