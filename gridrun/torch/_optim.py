"""Optimization and regularization building blocks of the PyTorch trainer: the registry's
optimizers, an L1 penalty, gradient clipping and a cross entropy for soft targets. The
framework-neutral rules (default learning rates, the schedule, early stopping) live in
``gridrun.spec.rules`` and are re-exported here.

    >>> DEFAULT_LR["sgd"]
    0.05
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F

from gridrun.spec.rules import (DEFAULT_LR, OPTIMIZERS, SCHEDULES, EarlyStopping, lr_at, resolve_lr)

__all__ = ["DEFAULT_LR", "OPTIMIZERS", "SCHEDULES", "resolve_lr", "make_optimizer",
           "lr_at", "apply_lr", "EarlyStopping", "l1_penalty", "clip_gradients",
           "soft_cross_entropy"]

# ------------------------------------------------------------------------------ optimizers

def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float,
                   weight_decay: float, *, momentum: float = 0.9) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``params``:

    - ``"sgd"``: ``torch.optim.SGD`` with ``momentum`` (default 0.9; 0 is plain gradient
      descent, ``w - lr * g``);
    - ``"nesterov"``: ``torch.optim.SGD`` with ``nesterov=True`` and ``momentum`` (> 0);
    - ``"adam"``: ``torch.optim.Adam``, PyTorch's other defaults;
    - ``"adamw"``: ``torch.optim.AdamW``, PyTorch's other defaults;
    - ``"rmsprop"``: ``torch.optim.RMSprop``, PyTorch's other defaults (its momentum 0).

    ``momentum`` is read only by sgd and nesterov. ``weight_decay`` applies to every
    parameter: for sgd, nesterov, adam and rmsprop it is the COUPLED L2 penalty (``wd * w``
    is added to the gradient, so adam and rmsprop rescale it adaptively); for adamw it is
    DECOUPLED (``w <- w - lr * wd * w`` besides the adaptive step, even where the gradient
    is zero).
    """
    lr, weight_decay, momentum = float(lr), float(weight_decay), float(momentum)
    if not lr >= 0 or not weight_decay >= 0:
        raise ValueError(f"lr and weight_decay must be >= 0, got {lr}, {weight_decay}")
    if name in ("sgd", "nesterov"):
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if name == "nesterov" and momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=name == "nesterov")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(DEFAULT_LR)}")


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group of ``optimizer`` to ``lr``."""
    lr = float(lr)
    if not lr >= 0 or math.isinf(lr):
        raise ValueError(f"lr must be finite and >= 0, got {lr}")
    for group in optimizer.param_groups:
        group["lr"] = lr



# ---------------------------------------------------------------------- regularization

_WEIGHTED = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)


def l1_penalty(model: torch.nn.Module) -> torch.Tensor:
    """``sum |w|`` over the ``weight`` of every convolution (Conv1d/2d/3d and transposed)
    and Linear layer of ``model``: no biases, no BatchNorm (or other normalization) scale
    or shift. A differentiable 0-d tensor (0 for a model without such layers); the loss
    term is ``l1 * l1_penalty(model)``."""
    weights = [m.weight for m in model.modules()
               if isinstance(m, _WEIGHTED) and m.weight is not None]
    if not weights:
        p = next(model.parameters(), None)
        return torch.zeros((), device=None if p is None else p.device)
    return torch.stack([w.abs().sum() for w in weights]).sum()


def clip_gradients(model: torch.nn.Module, max_norm: float | None) -> torch.Tensor:
    """Clip the gradients of ``model`` to total L2 norm ``max_norm`` with
    ``torch.nn.utils.clip_grad_norm_`` when ``max_norm > 0``; 0 or None clips nothing.
    Returns the total L2 norm of the gradients before clipping (a 0-d tensor)."""
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm is not None and float(max_norm) < 0:
        raise ValueError(f"max_norm must be >= 0 (0: no clipping), got {max_norm}")
    if not params:
        return torch.zeros(())
    if max_norm:
        return torch.nn.utils.clip_grad_norm_(params, float(max_norm))
    return torch.nn.utils.get_total_norm([p.grad for p in params])


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                       label_smoothing: float = 0.0,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross entropy of ``logits`` (N, K) against integer class ``targets`` (N,) or
    soft targets (N, K) (class probabilities, e.g. from mixup or cutmix).

    Integer targets: exactly ``F.cross_entropy(logits, targets, weight=weight,
    label_smoothing=label_smoothing)``. Soft targets ``t`` follow the same semantics:
    smoothed ``s = (1 - eps) * t + eps / K``; with class weights ``w`` (K,),
    ``loss = sum_i sum_k s_ik w_k (-log p_ik) / sum_i sum_k t_ik w_k`` (the per-sample
    weight ``sum_k t_ik w_k`` is PyTorch's ``w[y_i]`` for one-hot ``t``); without weights,
    ``loss = mean_i sum_k s_ik (-log p_ik)``. So one-hot soft targets give the same loss
    as their integer labels, with or without smoothing and weights.
    """
    eps = float(label_smoothing)
    if not 0 <= eps <= 1:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, K), got shape {tuple(logits.shape)}")
    k = logits.shape[1]
    if weight is not None and tuple(weight.shape) != (k,):
        raise ValueError(f"weight must have shape ({k},), got {tuple(weight.shape)}")
    if not targets.is_floating_point():
        return F.cross_entropy(logits, targets.long(), weight=weight, label_smoothing=eps)
    if targets.shape != logits.shape:
        raise ValueError(f"soft targets must have the logits' shape {tuple(logits.shape)}, "
                         f"got {tuple(targets.shape)}")
    targets = targets.to(logits.dtype)
    nll = -F.log_softmax(logits, dim=1)
    smoothed = (1 - eps) * targets + eps / k if eps else targets
    if weight is None:
        return (smoothed * nll).sum(1).mean()
    weight = weight.to(logits.dtype)
    return (smoothed * weight * nll).sum() / (targets * weight).sum()
