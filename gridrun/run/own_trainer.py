"""A trainer of the researcher's own behind the interface the built-in trainers offer the
cell trainable: ``OwnTrainer(config, data, seed=)``, ``step()``, ``epoch``, ``done``,
``seconds``, ``to_bytes()`` / ``from_bytes()``. So the spec's trainer gets what a built-in
one gets: seeds in lockstep, ASHA at rungs, checkpoints, retries, resume.

The spec's trainer is either a class (``__init__(config, data, seed)``, ``step() -> dict``,
``state() -> bytes``, ``load(state)``) or a function ``train(config, data, seed, report,
checkpoint=None)`` that calls ``report(metrics, state)`` once per epoch; the function runs
in a thread of its own that waits inside ``report`` until the next epoch is asked for.

    >>> class Count:
    ...     def __init__(self, config, data, seed): self.n = seed
    ...     def step(self): self.n += 1; return {"val_n": float(self.n)}
    ...     def state(self): return str(self.n).encode()
    ...     def load(self, state): self.n = int(state)
    >>> from gridrun.spec.plugins import Plugins, install
    >>> install(Plugins(trainer=Count))
    >>> t = OwnTrainer({"epochs": 3}, None, seed=10)
    >>> t.step()["val_n"], OwnTrainer.from_bytes(t.to_bytes(), None).step()["val_n"]
    (11.0, 12.0)
    >>> install(None)
"""

from __future__ import annotations

import json
import math
import queue
import struct
import sys
import threading
import time
from typing import Any, Mapping

from gridrun.spec import plugins

__all__ = ["OwnTrainer", "Trainer", "train", "set_threads", "prepare_data", "release"]

_FORMAT = "gridrun-own-trainer-1"


class OwnTrainer:
    """One seed of one configuration, trained by the spec's own trainer."""

    def __init__(self, config: Mapping[str, Any], data, *, seed: int, _state: bytes | None = None):
        self.config, self.seed = dict(config), int(seed)
        self.epochs = int(self.config["epochs"])
        self.epoch, self.seconds = 0, 0.0
        own = plugins.active().trainer
        if own is None:
            raise RuntimeError("no trainer of the spec's own is installed in this process")
        view = plugins.frozen_config(self.config)
        self._name = plugins.describe(own)
        if isinstance(own, type):
            self._impl = _guarded(self._name, lambda: own(view, data, self.seed))
            if _state is not None:
                _guarded(self._name, lambda: self._impl.load(_state))
        else:
            self._impl = _FunctionTrainer(own, view, data, self.seed, _state)

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    def step(self) -> dict:
        """The next epoch's metrics, as the trainer returned them, plus "epoch" and
        "epoch_seconds". ValueError when they are not a dict of numbers."""
        if self.done:
            raise RuntimeError(f"all {self.epochs} epochs are trained; nothing left to step")
        start = time.perf_counter()
        metrics = _guarded(self._name, self._impl.step)
        took = time.perf_counter() - start
        if not isinstance(metrics, Mapping) or not all(
                isinstance(k, str) and _number(v) for k, v in metrics.items()):
            raise ValueError(f"trainer {self._name}: step() must return a dict of metric name "
                             f"-> number, got {metrics!r}"[:300])
        self.epoch += 1
        self.seconds += took
        return {**{k: float(v) for k, v in metrics.items()}, "epoch": self.epoch,
                "epoch_seconds": took}

    def to_bytes(self) -> bytes:
        """The trainer's own state with gridrun's bookkeeping (epoch, seconds, seed) in front."""
        state = self._impl.state()
        if not isinstance(state, (bytes, bytearray)):
            raise ValueError(f"trainer {self._name}: state() must return bytes, got "
                             f"{type(state).__name__}")
        head = json.dumps({"format": _FORMAT, "epoch": self.epoch, "seconds": self.seconds,
                           "seed": self.seed, "config": self.config}, default=str).encode()
        return struct.pack(">Q", len(head)) + head + bytes(state)

    @classmethod
    def from_bytes(cls, blob: bytes, data) -> "OwnTrainer":
        (n,) = struct.unpack(">Q", blob[:8])
        head = json.loads(blob[8:8 + n])
        if head.get("format") != _FORMAT:
            raise ValueError(f"not a checkpoint of a trainer of the spec's own ({head!r:.80})")
        trainer = cls(head["config"], data, seed=head["seed"], _state=blob[8 + n:])
        trainer.epoch, trainer.seconds = head["epoch"], head["seconds"]
        return trainer

    def model_bytes(self) -> bytes:
        """What ``keep_weights`` saves: the trainer's own state."""
        return bytes(self._impl.state())

    def close(self) -> None:
        if isinstance(self._impl, _FunctionTrainer):
            self._impl.close()


def _guarded(name: str, call):
    """The trainer's own errors as a RuntimeError naming it: the cell trainable then records
    that seed as an error and goes on with the others, as for a built-in trainer."""
    try:
        return call()
    except (RuntimeError, ValueError):
        raise
    except Exception as e:  # noqa: BLE001 - the researcher's code
        raise RuntimeError(f"trainer {name} raised {type(e).__name__}: {e}") from e


def _number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) \
        or (isinstance(v, float) and math.isnan(v))


class _Stopped(BaseException):
    """Raised inside the trainer's thread when gridrun no longer needs it (the cell ended)."""


class _FunctionTrainer:
    """A trainer function stepped one epoch at a time: it runs in its own thread, which
    waits inside ``report`` until ``step`` asks for the next epoch."""

    def __init__(self, fn, config, data, seed: int, checkpoint: bytes | None):
        self._fn, self._args = fn, (config, data, seed)
        self._checkpoint, self._state = checkpoint, checkpoint
        self._out: queue.Queue = queue.Queue(maxsize=1)
        self._go = threading.Semaphore(0)
        self._stop, self._thread = False, None

    def _report(self, metrics=None, state=None, **more):
        if self._stop:
            raise _Stopped()
        self._out.put(("epoch", {**(metrics or {}), **more}, state))
        self._go.acquire()  # until the next epoch is asked for, or close()
        if self._stop:
            raise _Stopped()

    def _run(self) -> None:
        try:
            self._fn(*self._args, report=self._report, checkpoint=self._checkpoint)
            self._out.put(("end", None, None))
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._out.put(("error", e, None))

    def step(self) -> dict:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="gridrun-own-trainer")
            self._thread.start()
        else:
            self._go.release()
        kind, metrics, state = self._out.get()
        name = plugins.describe(self._fn)
        if kind == "error":
            raise RuntimeError(f"trainer {name} raised {type(metrics).__name__}: {metrics}")
        if kind == "end":
            raise RuntimeError(f"trainer {name} returned before reporting every epoch")
        if state is not None:
            self._state = state
        return metrics

    def state(self) -> bytes:
        if self._state is None:
            raise ValueError(f"trainer {plugins.describe(self._fn)} reported no state: call "
                             f"report(metrics, state) with the bytes to continue from")
        return self._state

    def close(self) -> None:
        self._stop = True
        self._go.release()


# The module interface the cell trainable (and plan's calibration) use of a trainer package.
def train(config: Mapping[str, Any], data, *, seed: int, report) -> dict:
    """One trial to the end, reporting each epoch (as ``gridrun.torch.train``)."""
    trainer = OwnTrainer(config, data, seed=seed)
    try:
        while not trainer.done:
            metrics = trainer.step()
            report(dict(metrics))
    finally:
        trainer.close()
    return metrics

def set_threads(threads: int | None) -> None:
    """A trainer of one's own may use torch: give it the trial's threads, as gridrun.torch."""
    if threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def prepare_data(data):
    """The dataset as loaded (NumPy arrays): the trainer does with it what it needs."""
    return data


def release() -> None:
    """Nothing to release between cells."""

Trainer = OwnTrainer  # the name the cell trainable asks a trainer package for
