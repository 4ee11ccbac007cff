"""The PyTorch training loop of one trial: data on the device, model, optimizer, epochs.

    >>> from gridrun.design import resolve_config
    >>> config = resolve_config({"backbone": "simple_cnn"}, {"epochs": 2})
    >>> summary = train(config, data, seed=0, report=print)          # doctest: +SKIP

Reads top to bottom: check the config, put the whole dataset on the device, build the
model and optimizer, then a short loop that reports once per epoch. The test set is
evaluated exactly once, after the last epoch, and goes into the last report.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from gridrun import techniques
from gridrun.torch._augment import augment
from gridrun.torch._models import build_model, count_parameters
from gridrun.torch._optim import make_optimizer, resolve_lr

__all__ = ["train", "check_config", "IMPLEMENTED", "REPORT_KEYS", "EVAL_BATCH"]

# The techniques this trainer implements: a config must set each of them and nothing else.
IMPLEMENTED = ("augmentation", "batchnorm", "dropout", "optimizer", "lr", "weight_decay",
               "backbone", "epochs", "batch_size")
# Keys of every report; the last one adds "test_acc".
REPORT_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
               "epoch_seconds", "params")
EVAL_BATCH = 1024  # evaluation only; bounds memory, does not change the numbers


def train(config: Mapping[str, Any], data, *, seed: int,
          report: Callable[[dict], None], device: str | None = None,
          threads: int | None = None) -> dict:
    """Train one configuration on ``data`` and ``report`` metrics once per epoch.

    ``config`` maps every technique this trainer implements to its value (see
    ``gridrun.design.resolve_config``); unknown or missing keys raise ValueError. ``seed``
    fixes initialisation, data order and augmentation: the same seed gives identical metrics
    on CPU. ``device`` None means "cuda" when available, else "cpu"; ``threads`` sets
    ``torch.set_num_threads``. Each report holds epoch, train_loss, train_acc (over the
    epoch's training batches), val_loss, val_acc, lr, epoch_seconds (training plus
    validation) and params; the last adds test_acc. Returns the last report plus
    best_val_acc, best_epoch, seconds (total wall time) and device. A non-finite loss
    raises RuntimeError.
    """
    cfg = check_config(config)
    device = _pick_device(device)
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        torch.set_num_threads(threads)
    started = time.perf_counter()
    init_seed, order_seed, aug_seed = (int(s) for s in
                                       np.random.SeedSequence(seed).generate_state(3))
    # Separate streams: switching augmentation or dropout on leaves the data order alone.
    order_gen = torch.Generator().manual_seed(order_seed)
    aug_gen = torch.Generator().manual_seed(aug_seed)

    # ---------------------------------------------------------------- data
    x_train, y_train = _images(data.x_train, device), _labels(data.y_train, device)
    x_val, y_val = _images(data.x_val, device), _labels(data.y_val, device)
    x_test, y_test = _images(data.x_test, device), _labels(data.y_test, device)
    num_classes = int(data.num_classes)  # a gridrun.data.Dataset has checked its arrays
    var, mean = torch.var_mean(x_train, dim=(0, 2, 3), correction=0, keepdim=True)
    std = var.sqrt().clamp_min(1e-3)  # a constant channel becomes 0, not inf

    def standardize(x: torch.Tensor) -> torch.Tensor:
        return (x - mean) / std

    # ---------------------------------------------------------------- model
    torch.manual_seed(init_seed)  # init and dropout masks (seeds CUDA too)
    _, channels, height, width = x_train.shape
    model = build_model(cfg["backbone"], channels, num_classes, (height, width),
                        cfg["batchnorm"], cfg["dropout"]).to(device)
    params = count_parameters(model)
    lr = resolve_lr(cfg["optimizer"], cfg["lr"])
    optimizer = make_optimizer(cfg["optimizer"], model.parameters(), lr, cfg["weight_decay"])

    # ---------------------------------------------------------------- train
    n, batch_size, epochs = len(y_train), cfg["batch_size"], cfg["epochs"]
    best_val_acc, best_epoch = -1.0, 0
    for epoch in range(1, epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        order = torch.randperm(n, generator=order_gen).to(device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if cfg["augmentation"]:
                xb = augment(xb, aug_gen)  # on [0, 1] pixels, so the padding is black
            logits = model(standardize(xb))
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == yb).sum()
        train_loss, train_acc = loss_sum.item() / n, correct.item() / n
        val_loss, val_acc = _evaluate(model, x_val, y_val, standardize)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise RuntimeError(
                f"non-finite loss in epoch {epoch} (train_loss={train_loss}, "
                f"val_loss={val_loss}) with optimizer={cfg['optimizer']}, lr={lr:g}, "
                f"backbone={cfg['backbone']}, batchnorm={cfg['batchnorm']}; training "
                f"diverged, try a smaller lr")
        metrics = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                   "val_loss": val_loss, "val_acc": val_acc,
                   "lr": optimizer.param_groups[0]["lr"],
                   "epoch_seconds": time.perf_counter() - epoch_start, "params": params}
        if val_acc > best_val_acc:
            best_val_acc, best_epoch = val_acc, epoch
        if epoch == epochs:  # the only look at the test set
            metrics["test_acc"] = _evaluate(model, x_test, y_test, standardize)[1]
        # Under Ray Tune with ASHA this call may never return: nothing after it but the loop.
        report(dict(metrics))

    return {**metrics, "best_val_acc": best_val_acc, "best_epoch": best_epoch,
            "seconds": time.perf_counter() - started, "device": str(device)}


# ---------------------------------------------------------------- helpers

def check_config(config: Mapping[str, Any]) -> dict:
    """The config's values, checked against the registry; ValueError for an unknown key,
    a missing key or a value the registry does not allow."""
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping, got {type(config).__name__}")
    unknown = [k for k in config if k not in IMPLEMENTED]
    if unknown:
        k = unknown[0]
        raise ValueError(f"unknown config key(s) {', '.join(map(repr, unknown))}: the torch "
                         f"trainer implements {', '.join(IMPLEMENTED)}"
                         f"{techniques.suggest(k, IMPLEMENTED)}")
    missing = [k for k in IMPLEMENTED if k not in config]
    if missing:
        raise ValueError(f"config is missing {', '.join(map(repr, missing))}; "
                         f"gridrun.design.resolve_config fills in the registry defaults")
    checked = {}
    for name in IMPLEMENTED:
        try:
            checked[name] = techniques.check_value(techniques.get(name), config[name])
        except ValueError as err:
            raise ValueError(f"config[{name!r}]: {err}") from None
    return checked


def _pick_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch sees no CUDA device")
    return dev


def _images(x, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) numpy -> float (N, C, H, W) in [0, 1] on ``device``. The uint8 array
    is moved first: a quarter of the bytes of float32."""
    # np.require copies only a read-only or non-contiguous array (torch wants it writable).
    t = torch.from_numpy(np.require(x, requirements=["C", "W"])).to(device)
    return t.permute(0, 3, 1, 2).contiguous().float().div_(255)


def _labels(y, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)


@torch.inference_mode()
def _evaluate(model, x: torch.Tensor, y: torch.Tensor, standardize) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the whole split, in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, len(y), EVAL_BATCH):
        logits = model(standardize(x[start:start + EVAL_BATCH]))
        yb = y[start:start + EVAL_BATCH]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    return loss_sum.item() / len(y), correct.item() / len(y)
