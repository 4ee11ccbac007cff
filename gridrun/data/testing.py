"""Tiny synthetic datasets for tests of the trainers (and of code built on them): a
separable problem that trains to high accuracy in an epoch or two on CPU.

    >>> ds = bars(n_train=32, n_val=8, n_test=8)
    >>> ds.image_shape, ds.num_classes
    ((8, 8, 1), 4)
"""

from __future__ import annotations

import numpy as np

from gridrun.data._dataset import Dataset

__all__ = ["bars"]


def bars(n_train=512, n_val=256, n_test=256, size=8, channels=1, classes=4, seed=0):
    """A separable problem: class k is a bright horizontal bar in band k of the image, on
    noise. Horizontal bars survive flips, and the bands are wider than the crop shift."""
    rng = np.random.default_rng(seed)
    band = size // classes

    def split(n):
        y = rng.integers(0, classes, n)
        x = rng.integers(0, 90, (n, size, size, channels), dtype=np.uint8)
        for k in range(classes):
            x[y == k, k * band:(k + 1) * band] = 220
        return x, y.astype(np.int64)

    (xt, yt), (xv, yv), (xs, ys) = split(n_train), split(n_val), split(n_test)
    return Dataset("bars", xt, yt, xv, yv, xs, ys, tuple(f"c{k}" for k in range(classes)))
