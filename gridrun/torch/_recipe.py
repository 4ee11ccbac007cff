"""One trial's recipe around the training loop: its view of the training data (induced
imbalance, label noise, oversampling, the input normalization), its augmentation pipeline
and its loss. Each part follows one configuration and draws only from the trainer's own
generators, and only when its technique is on: a configuration that uses none of them
trains exactly as before they existed.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from gridrun.data._problems import trial_problems
from gridrun.torch._augment import (apply_policy, augment, color_jitter, crop_padding, cutmix,
                                    mixup, random_affine, random_crop, random_erasing,
                                    random_flip)
from gridrun.torch._optim import l1_penalty, soft_cross_entropy

__all__ = ["TrialData", "trial_data", "normalizer", "augment_batch", "batch_loss"]


class TrialData:
    """The training split as this trial sees it: ``index`` (positions in the shared
    training tensors, after induced imbalance and oversampling), ``labels`` (all of the
    shared split's labels, with induced noise), ``weights`` (class weights of the loss, or
    None) and how many labels the noise changed."""

    def __init__(self, index: torch.Tensor, labels: torch.Tensor, weights, flipped: int):
        self.index, self.labels, self.weights, self.flipped = index, labels, weights, flipped

    def __len__(self) -> int:
        return len(self.index)


def trial_data(cfg: Mapping[str, Any], data, seed: int) -> TrialData | None:
    """The trial's training data, or None when it is the shared split as loaded (no
    imbalance, noise or remedy: the common case costs nothing)."""
    view = trial_problems(cfg, data.y_train.cpu().numpy(), data.num_classes, seed)
    if view is None:
        return None
    index, labels, weights, flipped = view
    if weights is not None:
        weights = torch.as_tensor(weights, device=data.device)
    return TrialData(torch.as_tensor(index, device=data.device),
                     torch.as_tensor(labels, device=data.device), weights, flipped)


def normalizer(cfg: Mapping[str, Any], data) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the model sees of [0, 1] pixels: standardized (the default), as they are, or
    raw 0-255 values."""
    mode = cfg["normalize"]
    if mode == "standardize":
        return data.standardize
    if mode == "rescale":
        return lambda x: x
    return lambda x: x * 255.0


_JITTER = ("brightness", "contrast", "saturation", "hue")


def augment_batch(cfg: Mapping[str, Any], x: torch.Tensor, y: torch.Tensor,
                  gen: torch.Generator, num_classes: int):
    """The configuration's augmentations on one batch of [0, 1] pixels: (images, targets),
    targets being the int64 labels, or soft labels (N, K) when mixup or cutmix mixed them.
    Order: crop/flip (augmentation, crop, flip), the named policy, affine, color, erasing,
    then label mixing."""
    if cfg["augmentation"]:
        x = augment(x, gen)  # on [0, 1] pixels, so the padding is black
    elif cfg["crop"]:
        x = random_crop(x, crop_padding(*x.shape[-2:]), gen)
    if cfg["augment_policy"] != "none":
        x = apply_policy(cfg["augment_policy"], x, gen, fill=cfg["fill_mode"])
    if cfg["flip"]:
        x = random_flip(x, gen)
    if cfg["rotation"] or cfg["zoom"] or cfg["shear"]:
        x = random_affine(x, gen, rotation=cfg["rotation"], zoom=cfg["zoom"],
                          shear=cfg["shear"], fill=cfg["fill_mode"])
    if any(cfg[k] for k in _JITTER):
        x = color_jitter(x, gen, **{k: cfg[k] for k in _JITTER})
    if cfg["erasing"]:
        x = random_erasing(x, gen, p=cfg["erasing"])
    mix, cut = cfg["mixup"], cfg["cutmix"]
    if mix and cut:  # both on: one or the other per batch, even odds
        use_mix = bool(torch.rand(1, generator=gen).item() < 0.5)
        mix, cut = (mix, 0.0) if use_mix else (0.0, cut)
    if mix:
        return mixup(x, y, gen, mix, num_classes=num_classes)
    if cut:
        return cutmix(x, y, gen, cut, num_classes=num_classes)
    return x, y


def batch_loss(cfg: Mapping[str, Any], logits: torch.Tensor, targets: torch.Tensor,
               model: torch.nn.Module, weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy (soft targets, label smoothing, class weights when asked) plus the L1
    term. The plain case is exactly ``F.cross_entropy``."""
    smooth = cfg["label_smoothing"]
    if targets.dtype == torch.long and not smooth and weights is None:
        loss = F.cross_entropy(logits, targets)
    else:
        loss = soft_cross_entropy(logits, targets, label_smoothing=smooth, weight=weights)
    if cfg["l1"]:
        loss = loss + cfg["l1"] * l1_penalty(model)
    return loss
