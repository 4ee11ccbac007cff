"""The registry's optimizers, with the default learning rates its description promises.

    >>> DEFAULT_LR["sgd"]
    0.05
"""

from __future__ import annotations

from typing import Iterable

import torch

__all__ = ["DEFAULT_LR", "resolve_lr", "make_optimizer"]

# lr None in a config means this. The registry's ``lr`` description states the same numbers
# (tests/torch check that the two agree).
DEFAULT_LR = {"sgd": 0.05, "adam": 0.001, "rmsprop": 0.001}


def resolve_lr(optimizer: str, lr: float | None) -> float:
    """``lr``, or the optimizer's default when ``lr`` is None."""
    if optimizer not in DEFAULT_LR:
        raise ValueError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(DEFAULT_LR)}")
    return DEFAULT_LR[optimizer] if lr is None else float(lr)


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """sgd (momentum 0.9), adam or rmsprop (PyTorch's other defaults). ``weight_decay`` is
    the coupled L2 penalty of PyTorch's optimizers, applied to every parameter."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(DEFAULT_LR)}")
