"""The dataset as TensorFlow tensors: prepared once, shared read-only by every seed of a
configuration, and the per-epoch ``tf.data`` pipeline that feeds one trainer.

    >>> shared = prepare_data(load_dataset("digits"))                  # doctest: +SKIP
    >>> shared.image_shape, shared.num_classes                          # doctest: +SKIP
    ((8, 8, 1), 10)

Images are float32 (N, H, W, C) in [0, 1], channels-last (TensorFlow's layout on CPU); the
per-channel mean and std are the training images' (population std, clamped at 1e-3), the
same numbers the PyTorch trainer standardizes with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from gridrun.data._fingerprint import prepared_once

__all__ = ["KerasData", "prepare_data", "epoch_batches"]


@dataclass(frozen=True, eq=False)
class KerasData:
    """A Dataset's splits as tensors: images float32 (N, H, W, C) in [0, 1], labels int32,
    and the per-channel mean and std of the training images (shape (1, 1, 1, C))."""

    name: str
    x_train: tf.Tensor
    y_train: tf.Tensor
    x_val: tf.Tensor
    y_val: tf.Tensor
    x_test: tf.Tensor
    y_test: tf.Tensor
    num_classes: int
    mean: tf.Tensor
    std: tf.Tensor
    y_train_numpy: np.ndarray  # for the trial's data problems (numpy draws)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C)."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def device(self) -> str:
        return "cpu" if not tf.config.list_logical_devices("GPU") else "gpu"

    def signature(self) -> dict:
        """What a checkpoint records of the data it was trained on, to refuse other data."""
        h, w, c = self.image_shape
        return {"name": self.name, "image_shape": [c, h, w], "num_classes": self.num_classes,
                "sizes": [len(self.y_train_numpy), int(self.y_val.shape[0]),
                          int(self.y_test.shape[0])]}


def prepare_data(data) -> KerasData:
    """``data`` (a gridrun Dataset) as tensors, once, for any number of trainers; a
    KerasData is returned as it is. A reused Ray worker gets the same dataset for every
    cell as a new object: the last one prepared is kept and handed out again when the
    arrays are the same (one copy of the float tensors per worker, not one per cell)."""
    if isinstance(data, KerasData):
        return data
    return prepared_once("keras", data, lambda: _prepare(data))


def _prepare(data) -> KerasData:
    pixels = np.asarray(data.x_train, dtype=np.float32) / np.float32(255)
    # accumulated in float64: float32 sums over millions of pixels drift by ~1e-4
    mean = pixels.mean(axis=(0, 1, 2), keepdims=True, dtype=np.float64)
    std = np.maximum(pixels.std(axis=(0, 1, 2), keepdims=True, dtype=np.float64), 1e-3)
    x_train = tf.convert_to_tensor(pixels)
    mean, std = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)
    y = np.asarray(data.y_train, dtype=np.int64)
    return KerasData(
        name=str(getattr(data, "name", "")), x_train=x_train, y_train=_labels(y),
        x_val=_images(data.x_val), y_val=_labels(data.y_val),
        x_test=_images(data.x_test), y_test=_labels(data.y_test),
        num_classes=int(data.num_classes), mean=mean, std=std, y_train_numpy=y)


def epoch_batches(x: tf.Tensor, labels: tf.Tensor, order: tf.Variable, batch_size: int,
                  augment, *, threads: int | None = None) -> tf.data.Dataset:
    """An epoch's batches, ``(i, images, targets)``: batch ``i`` holds the training
    examples ``order[i * batch_size:(i + 1) * batch_size]`` (the last batch may be
    smaller), gathered from the shared tensors and passed through
    ``augment(i, images, labels)`` (whole-batch ops), prefetched while the previous batch
    trains.

    ``order`` is a variable the trainer sets before each epoch: the pipeline is built (and
    its functions traced) once per trainer, and every pass over it reads the order of the
    epoch at hand. ``i`` seeds augmentation, so an epoch's draws do not depend on how the
    pipeline is scheduled."""
    n = int(order.shape[0])

    def gather(i):
        idx = order[i * batch_size:tf.minimum((i + 1) * batch_size, n)]
        return augment(i, tf.gather(x, idx), tf.gather(labels, idx))

    ds = tf.data.Dataset.range(-(-n // batch_size)).map(gather).prefetch(1)
    options = tf.data.Options()
    options.deterministic = True
    if threads:
        options.threading.private_threadpool_size = max(1, int(threads))
    return ds.with_options(options)


def _images(x) -> tf.Tensor:
    """uint8 (N, H, W, C) -> float32 in [0, 1]: the same values as the PyTorch trainer's."""
    return tf.convert_to_tensor(np.asarray(x, dtype=np.float32) / np.float32(255))


def _labels(y) -> tf.Tensor:
    return tf.convert_to_tensor(np.asarray(y, dtype=np.int32))
