"""The dataset on the device: prepared once, shared read-only by every seed of a configuration.

    >>> shared = prepare_data(load_dataset("digits"), "cpu")           # doctest: +SKIP
    >>> shared.image_shape, shared.num_classes                          # doctest: +SKIP
    ((1, 8, 8), 10)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gridrun.data._fingerprint import prepared_once

__all__ = ["DeviceData", "prepare_data", "pick_device"]


@dataclass(frozen=True, eq=False)
class DeviceData:
    """A Dataset's splits on one device: images float (N, C, H, W) in [0, 1], labels int64,
    and the per-channel mean and std of the training images (shape (1, C, 1, 1)).

    Read-only, so the trainers of every seed of a configuration share one (Fashion-MNIST is
    ~170 MB as float32). Build it with :func:`prepare_data`.
    """

    name: str
    device: torch.device
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.x_train.shape[1:])

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def signature(self) -> dict:
        """What a checkpoint records of the data it was trained on, to refuse other data."""
        return {"name": self.name, "image_shape": self.image_shape,
                "num_classes": self.num_classes,
                "sizes": (len(self.y_train), len(self.y_val), len(self.y_test))}


def prepare_data(data, device: str | torch.device | None = None) -> DeviceData:
    """``data`` (a gridrun Dataset) on ``device``, once, for any number of trainers.

    ``device`` None means "cuda" when available, else "cpu". A DeviceData is returned as it
    is (ValueError if ``device`` names another device). A reused Ray worker gets the same
    dataset for every cell as a new object: the last one prepared is kept and handed out
    again when the arrays are the same (one copy on the device per worker, not one per
    cell).

        >>> shared = prepare_data(load_dataset("digits"))               # doctest: +SKIP
        >>> prepare_data(shared) is shared                              # doctest: +SKIP
        True
    """
    if isinstance(data, DeviceData):
        if device is not None and torch.device(device) != data.device:
            raise ValueError(f"device {str(device)!r} requested, but the data is on "
                             f"{str(data.device)!r}")
        return data
    device = pick_device(device)
    return prepared_once("torch", data, lambda: _prepare(data, device), device)


def _prepare(data, device: torch.device) -> DeviceData:
    x_train = _images(data.x_train, device)
    var, mean = torch.var_mean(x_train, dim=(0, 2, 3), correction=0, keepdim=True)
    std = var.sqrt().clamp_min(1e-3)  # a constant channel becomes 0, not inf
    return DeviceData(
        name=str(getattr(data, "name", "")), device=device,
        x_train=x_train, y_train=_labels(data.y_train, device),
        x_val=_images(data.x_val, device), y_val=_labels(data.y_val, device),
        x_test=_images(data.x_test, device), y_test=_labels(data.y_test, device),
        num_classes=int(data.num_classes),  # a gridrun.data.Dataset has checked its arrays
        mean=mean, std=std)


def pick_device(device: str | torch.device | None) -> torch.device:
    """``device``, or "cuda" when available else "cpu" for None; ValueError for CUDA
    without a CUDA device."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but torch sees no CUDA device")
    return dev


def _images(x, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) numpy -> float (N, C, H, W) in [0, 1] on ``device``. The uint8 array
    is moved first: a quarter of the bytes of float32."""
    # np.require copies only a read-only or non-contiguous array (torch wants it writable).
    t = torch.from_numpy(np.require(x, requirements=["C", "W"])).to(device)
    return t.permute(0, 3, 1, 2).contiguous().float().div_(255)


def _labels(y, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
