"""The real MNIST and Fashion-MNIST files, checked against their published facts.

Needs the official files under $GRIDRUN_DATA_DIR (CI sets it to the shared offline
copy); skipped otherwise. Never downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from gridrun.data import load_dataset
from gridrun.data._load import load_raw
from gridrun.data._sources import SOURCES

# Per-class label counts from the data README (train, test).
COUNTS = {
    "mnist": ([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
              [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    "fashion_mnist": ([6000] * 10, [1000] * 10),
}
# Well-known first labels of the official files: MNIST's first training digit is a 5 and
# its first test digit a 7; Fashion-MNIST's first training and test items are ankle boots.
FIRST_LABELS = {"mnist": (5, 7), "fashion_mnist": (9, 9)}


def _root_with(name: str) -> Path:
    env = os.environ.get("GRIDRUN_DATA_DIR")
    if not env:
        pytest.skip("GRIDRUN_DATA_DIR is not set; point it at a folder with the real files")
    missing = [f.path for f in SOURCES[name].values() if not (Path(env) / f.path).exists()]
    if missing:
        pytest.skip(f"real {name} files absent under GRIDRUN_DATA_DIR={env}: {missing[0]}")
    return Path(env)


@pytest.fixture(scope="module", params=["mnist", "fashion_mnist"])
def real(request):
    name = request.param
    _root_with(name)
    return load_dataset(name, download=False)


def test_shapes_and_dtypes(real):
    assert (len(real.y_train), len(real.y_val), len(real.y_test)) == (54000, 6000, 10000)
    assert real.x_train.shape == (54000, 28, 28, 1) and real.x_test.shape == (10000, 28, 28, 1)
    assert real.x_train.dtype == np.uint8 and real.y_train.dtype == np.int64
    assert real.num_classes == 10 and real.x_train.max() == 255 and real.x_train.min() == 0


def test_label_counts_match_the_published_ones(real):
    train_counts, test_counts = COUNTS[real.name]
    assert np.bincount(real.y_test).tolist() == test_counts
    together = np.bincount(real.y_train) + np.bincount(real.y_val)
    assert together.tolist() == train_counts
    # Stratified: each class gives 10% (within one example) to validation.
    assert np.all(np.abs(np.bincount(real.y_val) - np.array(train_counts) * 0.1) <= 1)


def test_fashion_class_names(real):
    if real.name == "fashion_mnist":
        assert real.classes[0] == "T-shirt/top" and real.classes[9] == "Ankle boot"
    else:
        assert real.classes == tuple("0123456789")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_official_order_and_first_labels(name):
    raw = load_raw(name, root=_root_with(name), download=False)
    assert (raw.y_train[0], raw.y_test[0]) == FIRST_LABELS[name]
    assert raw.x_train.shape == (60000, 28, 28, 1)


def test_train_size_on_real_data():
    _root_with("fashion_mnist")
    ds = load_dataset("fashion_mnist", train_size=1000, split_seed=1, download=False)
    assert np.bincount(ds.y_train).tolist() == [100] * 10
    assert len(ds.y_val) == 6000
