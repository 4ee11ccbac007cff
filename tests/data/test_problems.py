"""Data problems and remedies: imbalance, label noise, class weights, oversampling, and
input normalization, each checked against known answers."""

from __future__ import annotations

import numpy as np
import pytest

import gridrun.data._problems as problems
from gridrun.data import (NORMALIZATIONS, DataError, class_weights, imbalance_indices, load_dataset,
                          noisy_labels, normalization_params, normalize_images, oversample_indices)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _balanced(num_classes, per_class, seed=0):
    """Labels with ``per_class`` examples of each class, in shuffled order."""
    return _rng(seed).permutation(np.repeat(np.arange(num_classes), per_class))


# ---------------------------------------------------------------- imbalance


@pytest.mark.parametrize("num_classes, per_class, ratio, expected", [
    (3, 100, 0.1, [100, 32, 10]),                  # 100 * 0.1 ** 0.5 = 31.6
    (5, 1000, 0.01, [1000, 316, 100, 32, 10]),
    (2, 50, 0.5, [50, 25]),
    (4, 50, 1e-4, [50, 2, 1, 1]),                  # 50 * 1e-4 ** (2/3) = 0.108 -> at least 1
])
def test_imbalance_keeps_the_exponential_profile(num_classes, per_class, ratio, expected):
    y = _balanced(num_classes, per_class)
    idx = imbalance_indices(y, ratio, num_classes, _rng())
    assert np.bincount(y[idx], minlength=num_classes).tolist() == expected


@pytest.mark.parametrize("ratio", [0.5, 0.2, 0.1, 0.05, 0.01])
def test_imbalance_largest_over_smallest_is_one_over_ratio(ratio):
    per_class = 2000
    y = _balanced(10, per_class)
    counts = np.bincount(y[imbalance_indices(y, ratio, 10, _rng())], minlength=10)
    assert counts[0] == per_class and counts[-1] == round(per_class * ratio)
    assert np.all(np.diff(counts) <= 0)  # class order is by label: head first
    # each count is within 0.5 of its exact value, so the ratio is within that rounding
    assert counts.max() / counts.min() == pytest.approx(1 / ratio, rel=0.5 / (per_class * ratio))


def test_imbalance_returns_sorted_unique_indices_of_each_class():
    y = _balanced(4, 30, seed=3)
    idx = imbalance_indices(y, 0.2, 4, _rng(1))
    assert idx.dtype == np.int64
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert idx.min() >= 0 and idx.max() < len(y)


def test_imbalance_of_one_keeps_everything():
    y = _balanced(3, 7)
    idx = imbalance_indices(y, 1.0, 3, _rng())
    np.testing.assert_array_equal(idx, np.arange(len(y)))
    assert idx.dtype == np.int64


def test_imbalance_chooses_examples_uniformly_at_random_within_a_class():
    y = np.repeat([0, 1], [10, 10])
    hits = np.zeros(len(y))
    draws = 2000
    rng = _rng(5)
    for _ in range(draws):
        hits[imbalance_indices(y, 0.5, 2, rng)] += 1
    assert np.all(hits[:10] == draws)  # the head class keeps all
    # each of class 1's 10 examples is kept with probability 1/2: 1000 +- 3 sigma (67)
    assert np.all(np.abs(hits[10:] - draws / 2) < 100), hits[10:]


def test_imbalance_is_reproducible_and_seeded():
    y = _balanced(5, 100)
    a = imbalance_indices(y, 0.1, 5, _rng(7))
    b = imbalance_indices(y, 0.1, 5, _rng(7))
    c = imbalance_indices(y, 0.1, 5, _rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_imbalance_leaves_an_absent_class_absent():
    y = np.repeat([0, 2], [20, 20])
    counts = np.bincount(y[imbalance_indices(y, 0.1, 3, _rng())], minlength=3)
    assert counts.tolist() == [20, 0, 2]


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, True, "0.1", float("nan")])
def test_imbalance_rejects_ratios_outside_zero_one(ratio):
    with pytest.raises(DataError, match="imbalance ratio"):
        imbalance_indices(_balanced(2, 5), ratio, 2, _rng())


def test_labels_outside_the_classes_are_rejected():
    with pytest.raises(DataError, match="labels span 0..3, but num_classes=3"):
        imbalance_indices(np.array([0, 1, 3]), 0.5, 3, _rng())
    with pytest.raises(DataError, match="1-d integer"):
        noisy_labels(np.array([0.0, 1.0]), 0.5, 2, _rng())


# ---------------------------------------------------------------- label noise


@pytest.mark.parametrize("n, rate", [(1000, 0.25), (7, 0.3), (10, 0.25), (1000, 0.0125),
                                     (3, 0.99), (50, 0.5)])
def test_label_noise_flips_exactly_round_rate_n_labels_to_other_classes(n, rate):
    y = _rng(1).integers(0, 10, n)
    y_noisy, flipped = noisy_labels(y, rate, 10, _rng(2))
    assert flipped.dtype == bool and flipped.shape == (n,)
    assert y_noisy.dtype == np.int64
    assert flipped.sum() == round(rate * n)
    assert np.all(y_noisy[flipped] != y[flipped])
    np.testing.assert_array_equal(y_noisy[~flipped], y[~flipped])
    assert y_noisy.min() >= 0 and y_noisy.max() < 10


def test_label_noise_new_labels_cover_the_other_classes_uniformly():
    y = np.zeros(9000, np.int64)
    y_noisy, flipped = noisy_labels(y, 0.5, 10, _rng())
    counts = np.bincount(y_noisy[flipped], minlength=10)
    assert counts[0] == 0
    # 4500 flips over 9 classes: 500 each, sigma ~21
    assert np.all(np.abs(counts[1:] - 500) < 90), counts


def test_label_noise_chooses_the_flipped_examples_uniformly():
    hits = np.zeros(20)
    rng = _rng(3)
    for _ in range(400):
        hits += noisy_labels(np.arange(20) % 4, 0.25, 4, rng)[1]
    assert np.all(np.abs(hits - 100) < 40), hits  # each flipped with probability 1/4


def test_label_noise_of_zero_returns_a_copy_and_no_flips():
    y = np.array([2, 0, 1, 1])
    y_noisy, flipped = noisy_labels(y, 0.0, 3, _rng())
    np.testing.assert_array_equal(y_noisy, y)
    assert not flipped.any() and flipped.shape == (4,)
    y_noisy[0] = 0
    assert y[0] == 2  # a copy, not a view


def test_label_noise_is_reproducible_and_leaves_its_input_alone():
    y = _rng().integers(0, 5, 200)
    y.flags.writeable = False  # any in-place change would raise
    a = noisy_labels(y, 0.3, 5, _rng(4))
    b = noisy_labels(y, 0.3, 5, _rng(4))
    c = noisy_labels(y, 0.3, 5, _rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, True, None])
def test_label_noise_rejects_rates_outside_zero_one(rate):
    with pytest.raises(DataError, match="label noise rate"):
        noisy_labels(np.array([0, 1]), rate, 2, _rng())


def test_label_noise_needs_two_classes():
    with pytest.raises(DataError, match="at least 2 classes"):
        noisy_labels(np.zeros(10, np.int64), 0.5, 1, _rng())


# ---------------------------------------------------------------- class weights


def test_class_weights_known_values():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w.dtype == np.float32
    # n / (K n_k): 4 / (3 * 3), 4 / (3 * 1), and 0 for the empty class
    np.testing.assert_allclose(w, [4 / 9, 4 / 3, 0.0], rtol=1e-7)
    np.testing.assert_array_equal(class_weights(np.array([0, 1, 2, 0, 1, 2]), 3), [1, 1, 1])
    np.testing.assert_allclose(class_weights(np.array([1, 1, 1, 1, 0]), 2), [2.5, 0.625])


def test_class_weights_match_scikit_learn_balanced():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.repeat(np.arange(5), [400, 7, 123, 58, 250])
    expected = compute_class_weight("balanced", classes=np.arange(5), y=y)
    np.testing.assert_allclose(class_weights(y, 5), expected, rtol=1e-6)
    # weighted counts add back up to n: every example weighs 1 on average
    assert float(np.bincount(y) @ class_weights(y, 5)) == pytest.approx(len(y), rel=1e-6)


def test_class_weights_of_an_empty_class_is_zero_not_an_error():
    w = class_weights(np.array([0, 0, 3]), 4)
    np.testing.assert_allclose(w, [0.375, 0.0, 0.0, 0.75])


# ---------------------------------------------------------------- oversampling


def test_oversampling_equalizes_counts_and_keeps_every_example():
    counts = [50, 7, 20, 1]
    y = _rng(2).permutation(np.repeat(np.arange(4), counts))
    idx = oversample_indices(y, 4, _rng())
    assert idx.dtype == np.int64
    assert np.bincount(y[idx], minlength=4).tolist() == [50, 50, 50, 50]
    times = np.bincount(idx, minlength=len(y))
    assert np.all(times >= 1)  # every original example is kept
    for c, n in enumerate(counts):
        # whole copies plus a draw without replacement: 50 // n or 50 // n + 1 times
        assert set(times[y == c]) <= {50 // n, 50 // n + 1}
        assert times[y == c].sum() == 50
    assert not np.all(np.diff(idx) >= 0)  # shuffled, not grouped or sorted


def test_oversampling_shuffles_across_classes():
    y = np.repeat([0, 1], [100, 10])
    labels = y[oversample_indices(y, 2, _rng())]
    # a shuffled sequence of 100 zeros and 100 ones switches class about 100 times
    assert np.count_nonzero(np.diff(labels)) > 50


def test_oversampling_of_balanced_labels_is_a_permutation():
    y = _balanced(3, 6)
    idx = oversample_indices(y, 3, _rng())
    np.testing.assert_array_equal(np.sort(idx), np.arange(len(y)))
    assert not np.array_equal(idx, np.arange(len(y)))


def test_oversampling_leaves_absent_classes_absent_and_is_seeded():
    y = np.array([0, 0, 0, 0, 2])
    idx = oversample_indices(y, 3, _rng(1))
    assert np.bincount(y[idx], minlength=3).tolist() == [4, 0, 4]
    np.testing.assert_array_equal(idx, oversample_indices(y, 3, _rng(1)))
    y = _rng().permutation(np.repeat([0, 1], [30, 4]))
    assert not np.array_equal(oversample_indices(y, 2, _rng(1)), oversample_indices(y, 2, _rng(2)))


# ---------------------------------------------------------------- callers: training only


def test_a_trial_pipeline_touches_only_the_training_split():
    ds = load_dataset("digits", val_fraction=0.1, split_seed=0)
    before = {k: getattr(ds, k).copy() for k in ("x_train", "y_train", "x_val", "y_val",
                                                  "x_test", "y_test")}
    for k in before:
        getattr(ds, k).flags.writeable = False  # an in-place change anywhere would raise
    rng = _rng(11)
    keep = imbalance_indices(ds.y_train, 0.1, ds.num_classes, rng)
    x, y = ds.x_train[keep], ds.y_train[keep]
    y, flipped = noisy_labels(y, 0.2, ds.num_classes, rng)
    order = oversample_indices(y, ds.num_classes, rng)
    weights = class_weights(y, ds.num_classes)
    scale, mean, std = normalization_params(x, "standardize")
    x_train, y_train = x[order], y[order]

    counts = np.bincount(ds.y_train[keep], minlength=10)
    assert counts.max() / counts.min() == pytest.approx(10, rel=0.1)
    assert flipped.sum() == round(0.2 * len(keep))
    assert len(set(np.bincount(y_train, minlength=10))) == 1  # oversampled to balance
    assert weights.shape == (10,) and mean.shape == std.shape == (1,)
    assert len(x_train) == len(y_train) > len(keep)
    for k, arr in before.items():  # nothing loaded has changed, val and test least of all
        np.testing.assert_array_equal(getattr(ds, k), arr)
    # val and test stay balanced and clean
    assert np.bincount(ds.y_val).min() >= 14 and np.bincount(ds.y_test).min() >= 35


# ---------------------------------------------------------------- normalization


def test_normalization_modes_match_the_technique_choices():
    from gridrun.spec.techniques import TECHNIQUES

    assert NORMALIZATIONS == ("none", "rescale", "standardize")
    assert tuple(TECHNIQUES["normalize"].choices) == NORMALIZATIONS


@pytest.mark.parametrize("mode, scale", [("none", 255.0), ("rescale", 1.0)])
def test_none_and_rescale_params_are_exact(mode, scale):
    x = _rng().integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    s, mean, std = normalization_params(x, mode)
    assert s == scale
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_array_equal(mean, [0, 0, 0])
    np.testing.assert_array_equal(std, [1, 1, 1])
    out = normalize_images(x, mode)
    assert out.dtype == np.float32
    expected = x.astype(np.float64) if mode == "none" else x / 255.0
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


def test_standardize_known_answer():
    x = np.array([0, 255, 0, 255], np.uint8).reshape(4, 1, 1, 1)
    scale, mean, std = normalization_params(x, "standardize")
    assert scale == 1.0 and mean.tolist() == [0.5] and std.tolist() == [0.5]
    x = np.stack([np.full((2, 2), 51), np.full((2, 2), 204)]).astype(np.uint8)[..., None]
    _, mean, std = normalization_params(x, "standardize")  # 0.2 and 0.8: mean .5, std .3
    np.testing.assert_allclose(mean, [0.5], rtol=1e-6)
    np.testing.assert_allclose(std, [0.3], rtol=1e-6)


def _torch_stats(x):
    from gridrun.data import Dataset
    from gridrun.torch._data import prepare_data

    y = np.zeros(len(x), np.int64)
    shared = prepare_data(Dataset("t", x, y, x[:1], y[:1], x[:1], y[:1], ("a",)), "cpu")
    return shared.mean.numpy().ravel(), shared.std.numpy().ravel()


@pytest.mark.parametrize("shape", [(6, 4, 4, 1), (40, 9, 7, 3), (300, 28, 28, 1)])
def test_standardize_matches_the_torch_trainer(shape, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(problems, "_CHUNK", 7)  # several chunks, with a ragged last one
    x = _rng(len(shape) + shape[0]).integers(0, 256, shape, dtype=np.uint8)
    x[..., 0] //= 5  # channels with different statistics
    if shape[-1] == 3:
        x[..., 2] = 77  # a constant channel: std floored at 1e-3, as torch does
    scale, mean, std = normalization_params(x, "standardize")
    t_mean, t_std = _torch_stats(x)
    assert scale == 1.0 and mean.shape == std.shape == (shape[-1],)
    np.testing.assert_allclose(mean, t_mean, rtol=1e-6)
    np.testing.assert_allclose(std, t_std, rtol=1e-6)
    if shape[-1] == 3:
        assert std[2] == np.float32(1e-3)


def test_standardize_matches_the_torch_trainer_on_digits():
    pytest.importorskip("torch")
    ds = load_dataset("digits")
    _, mean, std = normalization_params(ds.x_train, "standardize")
    t_mean, t_std = _torch_stats(ds.x_train)
    np.testing.assert_allclose(mean, t_mean, rtol=1e-6)
    np.testing.assert_allclose(std, t_std, rtol=1e-6)


def test_standardize_accepts_unit_floats_and_normalizes_to_zero_mean_unit_std():
    x = _rng(9).integers(0, 256, (30, 5, 5, 3), dtype=np.uint8)
    from_uint8 = normalization_params(x, "standardize")
    from_float = normalization_params(x / 255.0, "standardize")
    np.testing.assert_allclose(from_float[1], from_uint8[1], rtol=1e-6)
    np.testing.assert_allclose(from_float[2], from_uint8[2], rtol=1e-6)
    z = normalize_images(x, "standardize").astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1, rtol=1e-5)
    # val/test are scaled with the TRAINING split's numbers, not their own
    other = _rng(10).integers(0, 128, (4, 5, 5, 3), dtype=np.uint8)
    _, mean, std = from_uint8
    np.testing.assert_allclose(normalize_images(other, "standardize", mean, std),
                               (other / 255.0 - mean) / std, rtol=1e-5, atol=1e-6)


def test_normalization_rejects_unknown_modes_and_bad_shapes():
    x = np.zeros((2, 3, 3, 1), np.uint8)
    with pytest.raises(DataError, match="none, rescale, standardize"):
        normalization_params(x, "minmax")
    with pytest.raises(DataError, match=r"\(N, H, W, C\)"):
        normalization_params(x[0], "rescale")
