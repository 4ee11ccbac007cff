"""Trainer states as files: atomic writes, weights-only reads, and the checks that a state
fits the trainer it is loaded into.

    >>> write_state(trainer.state_dict(), "seed0.pt")                  # doctest: +SKIP
    >>> read_state("seed0.pt")["epoch"]                                 # doctest: +SKIP
    3
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Mapping

import torch

__all__ = ["STATE_FORMAT", "write_state", "read_state", "check_format", "check_same",
           "cpu_copy"]

STATE_FORMAT = 1  # of Trainer.state_dict(); bump when its contents change


def write_state(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then ``os.replace``: an interrupted
    write leaves the previous file intact, never a half-written one."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".",
                               prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def read_state(path: str | os.PathLike) -> dict:
    """A state ``write_state`` wrote, tensors on the CPU. A state holds only tensors and
    plain values, so it loads with ``weights_only=True``: reading runs no pickled code."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    check_format(state)
    return state


def check_format(state: Any) -> None:
    """ValueError unless ``state`` is a trainer state of this STATE_FORMAT."""
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"not a gridrun torch Trainer state of format {STATE_FORMAT} "
                         f"(found {found!r})")


def check_same(what: str, here: Mapping[str, Any], there: Mapping[str, Any]) -> None:
    """ValueError naming every key where a state's ``there`` differs from ``here``."""
    diff = [k for k in {**here, **there} if here.get(k, "-") != there.get(k, "-")]
    if diff:
        raise ValueError(f"the state was saved with another {what}: " + ", ".join(
            f"{k}={there.get(k, '-')!r} there, {here.get(k, '-')!r} here" for k in diff))


def cpu_copy(obj: Any) -> Any:
    """``obj`` with every tensor copied to the CPU, through dicts, lists and tuples: a
    snapshot that later training steps cannot change."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        out = type(obj)((k, cpu_copy(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # a module state dict's versions, for load_state_dict
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj
