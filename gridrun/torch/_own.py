"""Models of the researcher's own in the PyTorch trainer: built by the spec's builder from
the trial's config, checked once on the driver before anything runs.

    >>> import torch.nn as nn
    >>> def tiny(config, input_shape, num_classes):
    ...     c, h, w = input_shape
    ...     return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))
    >>> sorted(check_model(tiny, {"dropout": 0.0}, (1, 8, 8), 10, "models['tiny']"))
    []
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from gridrun.spec.plugins import ReadLog, frozen_config

__all__ = ["build_own", "check_model"]


def build_own(builder: Callable, config: Mapping[str, Any], input_shape, num_classes: int,
              what: str) -> nn.Module:
    """``builder(config, input_shape, num_classes)``, which must return an ``nn.Module``."""
    model = builder(frozen_config(config), tuple(input_shape), int(num_classes))
    if not isinstance(model, nn.Module):
        raise ValueError(f"{what} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_model(builder: Callable, config: Mapping[str, Any], input_shape, num_classes: int,
                what: str) -> set[str]:
    """Build the model once and run a batch of two blank images through it: ValueError
    with one line when the builder raises, returns something else than an nn.Module, or
    the model's output is not (2, num_classes) logits. Returns the config keys the builder
    read. Torch's global random state is left as it was."""
    log = ReadLog(config)
    with torch.random.fork_rng(devices=[]):
        try:
            model = builder(log, tuple(input_shape), int(num_classes))
        except Exception as e:  # noqa: BLE001 - the user's code: one line
            raise ValueError(f"{what} raised {type(e).__name__}: {e}") from None
        if not isinstance(model, nn.Module):
            raise ValueError(f"{what} returned {type(model).__name__}, not a torch.nn.Module")
        model.eval()
        try:
            with torch.no_grad():
                out = model(torch.zeros((2, *input_shape)))
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{what}: its model fails on a batch of shape "
                             f"{(2, *input_shape)}: {type(e).__name__}: {e}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes) \
            or not out.is_floating_point():
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{what}: its model maps a batch of shape {(2, *input_shape)} to "
                         f"{shape}, not to logits of shape (2, {num_classes})")
    return log.read - {"framework"}
