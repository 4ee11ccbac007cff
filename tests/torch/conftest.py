"""Fixtures for the torch trainer tests: tiny synthetic datasets and resolved configs.

Test modules here are named test_torch_*.py: tests/ has no __init__.py, so basenames must be
unique across the whole test tree (and a package named ``torch`` would shadow PyTorch).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch trainer tests need PyTorch installed")

from gridrun.data import Dataset  # noqa: E402
from gridrun.design import resolve_config  # noqa: E402


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


@pytest.fixture(scope="session")
def data():
    return bars()


@pytest.fixture
def make_data():
    return bars


@pytest.fixture
def config():
    """A factory: the registry defaults with small epochs and batch size, then overrides."""
    def make(**levels):
        return resolve_config(levels, {"epochs": 2, "batch_size": 64})
    return make
