"""Training rules both trainers follow, free of any framework: the optimizers' default
learning rates, the learning-rate schedule of every step, and early stopping. The PyTorch and
the Keras trainer call these same functions, so a schedule or a stopping decision cannot
differ between them.

    >>> DEFAULT_LR["sgd"]
    0.05
    >>> lr_at(5, base_lr=0.1, steps_per_epoch=10, epochs=2, schedule="cosine")
    0.0853...
"""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["DEFAULT_LR", "OPTIMIZERS", "SCHEDULES", "resolve_lr", "lr_at", "EarlyStopping"]

DEFAULT_LR = {"sgd": 0.05, "adam": 0.001, "rmsprop": 0.001, "nesterov": 0.05, "adamw": 0.001}
OPTIMIZERS = tuple(DEFAULT_LR)

SCHEDULES = ("constant", "step", "exponential", "cosine", "onecycle", "cyclic")


def resolve_lr(optimizer: str, lr: float | None) -> float:
    """``lr``, or the optimizer's default when ``lr`` is None."""
    if optimizer not in DEFAULT_LR:
        raise ValueError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(DEFAULT_LR)}")
    return DEFAULT_LR[optimizer] if lr is None else float(lr)


# ------------------------------------------------------------------------- LR schedule

def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def lr_at(step: int, *, base_lr: float, steps_per_epoch: int, epochs: int,
          schedule: str = "constant", step_epochs: int | None = None, gamma: float = 0.1,
          staircase: bool = True, warmup_epochs: float = 0, min_lr: float = 0.0) -> float:
    """The learning rate of optimizer step ``step`` (counted from 0) of a run of ``epochs``
    epochs of ``steps_per_epoch`` steps (``T = epochs * steps_per_epoch`` steps in all).

    Warm-up: ``W = round(warmup_epochs * steps_per_epoch)`` steps (``W <= T``); for
    ``step < W`` the rate is ``base_lr * (step + 1) / W`` (so step 0 gets ``base_lr / W``
    and step ``W - 1`` gets ``base_lr``). The schedule then runs over the remaining
    ``N = T - W`` steps, with ``t = step - W`` counted from 0 and ``e = t / steps_per_epoch``
    the (fractional) epochs since the warm-up:

    - ``"constant"``: ``base_lr``.
    - ``"step"``: ``max(min_lr, base_lr * gamma ** (t // (step_epochs * steps_per_epoch)))``:
      times ``gamma`` every ``step_epochs`` epochs (default ``max(1, epochs // 3)``).
    - ``"exponential"``: ``max(min_lr, base_lr * gamma ** floor(e))`` with
      ``staircase=True`` (once per whole epoch), ``max(min_lr, base_lr * gamma ** e)``
      with ``staircase=False`` (every step).
    - ``"cosine"``: ``min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2`` with
      ``p = min(t / N, 1)``: ``base_lr`` at ``t = 0``, ``(base_lr + min_lr) / 2`` at
      ``t = N / 2``, ``min_lr`` from ``t = N`` on (PyTorch's CosineAnnealingLR with
      ``T_max = N``).
    - ``"onecycle"``: with ``p = min(t / N, 1)``, ``lo = base_lr / 25``, ``end = base_lr / 1e4``:
      ``lo + (base_lr - lo) * p / 0.3`` for ``p <= 0.3`` (linear up, peak ``base_lr`` at 30%
      of the steps), else ``end + (base_lr - end) * (1 + cos(pi * (p - 0.3) / 0.7)) / 2``
      (cosine down to ``end`` at ``t = N``).
    - ``"cyclic"``: triangular between ``lo = base_lr / 10`` and ``base_lr`` with a period of
      2 epochs: with ``c = (e / 2) mod 1``, ``lo + (base_lr - lo) * (1 - |2c - 1|)``:
      ``lo`` at even epochs, ``base_lr`` at odd epochs (of ``e``), linear in between.

    Which arguments each schedule reads: ``step_epochs`` only step; ``gamma`` step and
    exponential; ``staircase`` only exponential; ``min_lr`` is cosine's end and a floor
    for step and exponential, ignored by constant, onecycle and cyclic. Steps at or past
    ``T`` are allowed (cosine and onecycle stay at their end values). Raises ValueError for
    an unknown schedule or a bad argument: ``step < 0``, ``base_lr <= 0``,
    ``steps_per_epoch < 1``, ``epochs < 1``, ``step_epochs < 1``, ``gamma`` outside (0, 1],
    ``warmup_epochs < 0`` or ``W > T``, ``min_lr`` outside [0, base_lr].
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    if not _is_int(step) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if not _is_int(steps_per_epoch) or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be an int >= 1, got {steps_per_epoch!r}")
    if not _is_int(epochs) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    base_lr, gamma, min_lr = float(base_lr), float(gamma), float(min_lr)
    if not (base_lr > 0 and math.isfinite(base_lr)):
        raise ValueError(f"base_lr must be finite and > 0, got {base_lr}")
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if not 0 <= min_lr <= base_lr:
        raise ValueError(f"min_lr must be in [0, base_lr={base_lr}], got {min_lr}")
    if step_epochs is None:
        step_epochs = max(1, epochs // 3)
    elif not _is_int(step_epochs) or step_epochs < 1:
        raise ValueError(f"step_epochs must be an int >= 1, got {step_epochs!r}")
    total = epochs * steps_per_epoch
    if not (warmup_epochs >= 0 and math.isfinite(warmup_epochs)):
        raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs!r}")
    warmup = round(warmup_epochs * steps_per_epoch)
    if warmup > total:
        raise ValueError(f"warmup_epochs={warmup_epochs} is longer than the run's "
                         f"{epochs} epochs")

    if step < warmup:
        return base_lr * (step + 1) / warmup
    t, n = step - warmup, total - warmup
    e = t / steps_per_epoch
    p = 1.0 if n == 0 else min(t / n, 1.0)
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return max(min_lr, base_lr * gamma ** (t // (step_epochs * steps_per_epoch)))
    if schedule == "exponential":
        return max(min_lr, base_lr * gamma ** (t // steps_per_epoch if staircase else e))
    if schedule == "cosine":
        return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * p)) / 2
    if schedule == "onecycle":
        lo, end = base_lr / 25, base_lr / 1e4
        if p <= 0.3:
            return lo + (base_lr - lo) * p / 0.3
        return end + (base_lr - end) * (1 + math.cos(math.pi * (p - 0.3) / 0.7)) / 2
    # cyclic
    lo = base_lr / 10
    c = (e / 2) % 1.0
    return lo + (base_lr - lo) * (1 - abs(2 * c - 1))


# ---------------------------------------------------------------------- early stopping

_MODES = {"val_loss": "min", "train_loss": "min", "val_acc": "max", "train_acc": "max"}


class EarlyStopping:
    """Stop a run once ``patience`` epochs in a row have not improved ``monitor``.

    ``monitor`` is one of val_loss, train_loss (lower is better) or val_acc, train_acc
    (higher is better). An epoch improves when its value beats the best so far by more
    than ``min_delta`` (``value < best - min_delta``, or ``>`` / ``+`` for accuracies); the
    first finite value always does; NaN never does. ``update(epoch, metrics)`` returns True
    (stop now) once ``patience`` epochs have passed since the best one: with patience 2 and
    the best at epoch 3, epochs 4 and 5 not improving, it returns True at epoch 5.

        >>> stopper = EarlyStopping(2)
        >>> [stopper.update(e, {"val_loss": v}) for e, v in enumerate([3, 2, 2.5, 2.1], 1)]
        [False, False, False, True]
        >>> stopper.best_epoch, stopper.best_value
        (2, 2.0)
    """

    def __init__(self, patience: int, monitor: str = "val_loss", min_delta: float = 0.0):
        if not _is_int(patience) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        if monitor not in _MODES:
            raise ValueError(f"unknown monitor {monitor!r}; allowed: {', '.join(_MODES)}")
        min_delta = float(min_delta)
        if not min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience, self.monitor, self.min_delta = patience, monitor, min_delta
        self.mode = _MODES[monitor]
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.wait = 0  # epochs since the best one

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        if self.mode == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def update(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        """Record ``metrics[monitor]`` of ``epoch``; True when training should stop now."""
        if self.monitor not in metrics:
            raise KeyError(f"metrics lack the monitored {self.monitor!r}: {sorted(metrics)}")
        value = float(metrics[self.monitor])
        if self._improves(value):
            self.best_epoch, self.best_value, self.wait = int(epoch), value, 0
        else:
            self.wait += 1
        return self.wait >= self.patience and self.wait > 0

    def state_dict(self) -> dict:
        """Plain values (ints, floats, str, None) for a checkpoint."""
        return {"patience": self.patience, "monitor": self.monitor,
                "min_delta": self.min_delta, "best_epoch": self.best_epoch,
                "best_value": self.best_value, "wait": self.wait}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state_dict()``; the settings must be the same as this one's."""
        settings = {"patience": self.patience, "monitor": self.monitor,
                    "min_delta": self.min_delta}
        saved = {k: state[k] for k in settings}
        if saved != settings:
            raise ValueError(f"early-stopping settings differ: saved {saved}, now {settings}")
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        self.best_value = None if state["best_value"] is None else float(state["best_value"])
        self.wait = int(state["wait"])
