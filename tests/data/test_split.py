"""Validation splits and training subsets: stratified, seeded, disjoint, reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridrun.data import DataError
from gridrun.data._load import RawData, split_raw
from gridrun.data._split import proportional_counts, stratified_split, stratified_subset

# Deliberately imbalanced: 5 classes with 7..400 examples, shuffled.
COUNTS = np.array([400, 7, 123, 58, 250])
Y = np.random.default_rng(0).permutation(np.repeat(np.arange(5), COUNTS))


def _raw(y=Y, n_test=10):
    # Each image's pixels encode its index, so we can check images stay with their labels.
    idx = np.arange(len(y))
    x = np.stack([idx % 256, idx // 256], axis=1).astype(np.uint8).reshape(-1, 1, 2, 1)
    x_test = np.zeros((n_test, 1, 2, 1), np.uint8)
    return RawData("toy", x, y.astype(np.int64), x_test, np.zeros(n_test, np.int64),
                   tuple("abcde"))


def _index_of(x):
    return x[:, 0, 0, 0].astype(int) + 256 * x[:, 0, 1, 0].astype(int)


@pytest.mark.parametrize("counts", [[400, 7, 123, 58, 250], [1, 1, 1], [10, 0, 3], [6000] * 10])
@pytest.mark.parametrize("total_fraction", [0.0, 0.1, 0.37, 0.5, 1.0])
def test_proportional_counts_sum_exactly_and_stay_within_one(counts, total_fraction):
    counts = np.array(counts)
    total = round(counts.sum() * total_fraction)
    got = proportional_counts(counts, total)
    assert got.sum() == total
    assert np.all(np.abs(got - counts * total / counts.sum()) < 1)
    assert np.all(got <= counts)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 123])
def test_validation_split_is_stratified_disjoint_and_complete(fraction, seed):
    kept, held = stratified_split(Y, fraction, seed)
    assert len(held) == round(len(Y) * fraction)
    assert np.intersect1d(kept, held).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(Y)))
    per_class = np.bincount(Y[held], minlength=5)
    assert np.all(np.abs(per_class - COUNTS * fraction) <= 1)


def test_split_is_deterministic_and_seed_dependent():
    a = stratified_split(Y, 0.2, seed=7)
    b = stratified_split(Y, 0.2, seed=7)
    c = stratified_split(Y, 0.2, seed=8)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_dataset_keeps_images_with_their_labels():
    ds = split_raw(_raw(), val_fraction=0.2, split_seed=3)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
        np.testing.assert_array_equal(y, Y[_index_of(x)])
    all_idx = np.concatenate([_index_of(ds.x_train), _index_of(ds.x_val)])
    assert sorted(all_idx) == list(range(len(Y)))  # disjoint and complete
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64


def test_same_arguments_give_identical_datasets():
    a = split_raw(_raw(), val_fraction=0.1, split_seed=5, train_size=200)
    b = split_raw(_raw(), val_fraction=0.1, split_seed=5, train_size=200)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("train_size", [5, 100, 700])
def test_train_size_takes_a_stratified_subset_and_leaves_validation_alone(train_size):
    full = split_raw(_raw(), val_fraction=0.1, split_seed=2)
    sub = split_raw(_raw(), val_fraction=0.1, split_seed=2, train_size=train_size)
    np.testing.assert_array_equal(sub.x_val, full.x_val)
    assert len(sub.y_train) == train_size
    assert set(_index_of(sub.x_train)) <= set(_index_of(full.x_train))
    available = np.bincount(full.y_train, minlength=5)
    share = available * train_size / available.sum()
    assert np.all(np.abs(np.bincount(sub.y_train, minlength=5) - share) < 1)


def test_train_size_larger_than_available_names_the_numbers():
    with pytest.raises(DataError, match=r"train_size=800 is more than the 754 training"):
        split_raw(_raw(), val_fraction=0.1, split_seed=0, train_size=800)
    assert len(stratified_subset(Y, len(Y), seed=0)) == len(Y)


def test_zero_val_fraction_keeps_everything_for_training():
    ds = split_raw(_raw(), val_fraction=0.0, split_seed=0)
    assert len(ds.y_train) == len(Y) and ds.x_val.shape == (0, 1, 2, 1)


def test_a_fraction_too_small_to_hold_one_example_is_an_error():
    with pytest.raises(DataError, match="leaves no validation example"):
        split_raw(_raw(), val_fraction=0.0001, split_seed=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"val_fraction": 1.0}, r"val_fraction=1.0 must be a number in \[0, 1\)"),
        ({"val_fraction": -0.1}, "val_fraction=-0.1"),
        ({"val_fraction": math.nan}, "val_fraction=nan"),
        ({"val_fraction": "0.1"}, "val_fraction='0.1'"),
        ({"val_fraction": True}, "val_fraction=True"),
        ({"split_seed": -1}, "split_seed=-1 must be a non-negative integer"),
        ({"split_seed": 1.5}, "split_seed=1.5"),
        ({"split_seed": True}, "split_seed=True"),
        ({"train_size": 0}, "train_size=0 must be a positive integer or None"),
        ({"train_size": 2.5}, "train_size=2.5"),
        ({"train_size": False}, "train_size=False"),
    ],
)
def test_bad_split_arguments_are_data_errors(kwargs, message):
    with pytest.raises(DataError, match=message):
        split_raw(_raw(), **kwargs)


def test_numpy_integers_are_accepted():
    ds = split_raw(_raw(), val_fraction=np.float64(0.1), split_seed=np.int64(1),
                   train_size=np.int32(50))
    assert len(ds.y_train) == 50
