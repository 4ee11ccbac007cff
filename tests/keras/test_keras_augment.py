"""The TensorFlow batch augmentations: each op acts as documented, a seed fixes its output,
the recipe runs inside tf.data and tf.function, and the ``*_at`` functions agree with the
torch trainer's on the same inputs and parameters."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gridrun.design.grid import resolve_config
from gridrun.keras._augment import (ERASE_AREA, affine_at, apply_policy, augment, augment_batch,
                                    color_jitter, crop_at, crop_padding, cutmix, erase_at,
                                    flip_where, jitter_at, mixup, random_affine, random_crop,
                                    random_erasing, random_flip, sample_beta)


def seed(i: int) -> tf.Tensor:
    return tf.constant([i, 17], tf.int64)


def images(n: int = 16, h: int = 32, w: int = 32, c: int = 3, s: int = 0) -> np.ndarray:
    """Random pixels in [0.1, 0.9]: no symmetry, no zeros, room for brightness either way."""
    return np.random.default_rng(s).uniform(0.1, 0.9, (n, h, w, c)).astype(np.float32)


def one_pixel(h: int, w: int, row: int, col: int) -> tf.Tensor:
    x = np.zeros((1, h, w, 1), np.float32)
    x[0, row, col] = 1.0
    return tf.constant(x)


def bright(out) -> list[list[int]]:
    """(row, col) of the pixels above 1/2 of a one-image, one-channel batch."""
    return np.argwhere(np.asarray(out)[0, :, :, 0] > 0.5).tolist()


def config(**levels):
    return resolve_config(levels, {})


# Every random op, as (name, function of (x, seed)).
OPS = {
    "crop": lambda x, s: random_crop(x, (4, 4), s),
    "flip": random_flip,
    "augment": augment,
    "rotation": lambda x, s: random_affine(x, s, rotation=30),
    "zoom": lambda x, s: random_affine(x, s, zoom=0.3),
    "shear": lambda x, s: random_affine(x, s, shear=30),
    "affine_reflect": lambda x, s: random_affine(x, s, rotation=20, zoom=0.2, shear=10,
                                                 fill="reflect"),
    "brightness": lambda x, s: color_jitter(x, s, brightness=0.5),
    "contrast": lambda x, s: color_jitter(x, s, contrast=0.5),
    "saturation": lambda x, s: color_jitter(x, s, saturation=0.5),
    "hue": lambda x, s: color_jitter(x, s, hue=0.2),
    "erasing": lambda x, s: random_erasing(x, s, p=1.0),
    "strong": lambda x, s: apply_policy("strong", x, s),
    "mixup": lambda x, s: mixup(x, tf.range(16), s, 1.0, num_classes=16)[0],
    "cutmix": lambda x, s: cutmix(x, tf.range(16), s, 1.0, num_classes=16)[0],
}


# ---------------------------------------------------------------- every op

@pytest.mark.parametrize("name", OPS)
def test_op_changes_pixels_and_keeps_shape_dtype_and_range(name):
    x = tf.constant(images())
    out = OPS[name](x, seed(0))
    assert out.shape == x.shape and out.dtype == tf.float32
    changed = np.any((out != x).numpy().reshape(16, -1), axis=1)
    assert changed.mean() >= 0.25  # flip: each image with probability 1/2
    assert tf.reduce_min(out) >= 0 and tf.reduce_max(out) <= 1


@pytest.mark.parametrize("name", OPS)
def test_same_seed_same_output_other_seed_other_output(name):
    x = tf.constant(images())
    out = OPS[name](x, seed(3))
    np.testing.assert_array_equal(OPS[name](x, seed(3)), out)
    np.testing.assert_array_equal(OPS[name](x, tf.constant([3, 17], tf.int32)), out)
    assert not np.array_equal(OPS[name](x, seed(4)), out)


@pytest.mark.parametrize("call, channels", [
    (lambda x, s: random_affine(x, s), 3),
    (lambda x, s: random_affine(x, s, rotation=0, zoom=0.0, shear=0, fill="reflect"), 3),
    (lambda x, s: color_jitter(x, s), 3),
    (lambda x, s: color_jitter(x, s), 1),  # no saturation or hue: any channel count
    (lambda x, s: random_erasing(x, s, p=0), 3),
    (lambda x, s: apply_policy("none", x, s), 3),
])
def test_zero_strength_returns_the_input(call, channels):
    x = tf.constant(images(c=channels))
    assert call(x, seed(0)) is x


@pytest.mark.parametrize("call", [
    lambda x: random_affine(x, seed(0), rotation=181),
    lambda x: random_affine(x, seed(0), zoom=1.0),
    lambda x: random_affine(x, seed(0), shear=-5),
    lambda x: random_affine(x, seed(0), rotation=10, fill="wrap"),
    lambda x: color_jitter(x, seed(0), hue=0.6),
    lambda x: random_erasing(x, seed(0), p=float("nan")),
    lambda x: apply_policy("weak", x, seed(0)),
    lambda x: mixup(x, tf.range(16), seed(0), 0.0, num_classes=16),
])
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call(tf.constant(images()))


@pytest.mark.parametrize("kwargs", [{"saturation": 0.2}, {"hue": 0.1}])
def test_saturation_and_hue_need_rgb(kwargs):
    with pytest.raises(ValueError, match="RGB"):
        color_jitter(tf.constant(images(c=1)), seed(0), **kwargs)


# ---------------------------------------------------------------- crop and flip

def test_padding_is_an_eighth_of_the_side_and_at_least_one():
    assert crop_padding(32, 32) == (4, 4) and crop_padding(28, 28) == (3, 3)
    assert crop_padding(8, 8) == (1, 1) and crop_padding(4, 16) == (1, 2)


@pytest.mark.parametrize("dy, dx", [(0, 0), (0, 2), (1, 1), (2, 0)])
def test_crop_moves_content_by_the_offset(dy, dx):
    out = crop_at(one_pixel(8, 8, 3, 4), (1, 1), tf.constant([dy]), tf.constant([dx]))
    assert bright(out) == [[3 + 1 - dy, 4 + 1 - dx]] and tf.reduce_sum(out) == 1


def test_crop_shifts_in_black_and_drops_what_leaves_the_frame():
    out = crop_at(tf.ones([1, 8, 8, 2]), (1, 1), tf.constant([0]), tf.constant([2]))
    assert tf.reduce_all(out[:, 0] == 0) and tf.reduce_all(out[:, :, -1] == 0)
    assert tf.reduce_sum(out) == 2 * 7 * 7


def test_random_crop_shifts_each_image_within_the_padding():
    n = 256
    out = random_crop(tf.tile(one_pixel(9, 9, 4, 4), [n, 1, 1, 1]), (2, 2), seed(0))
    pos = np.argwhere(out.numpy()[..., 0] > 0.5)
    assert len(pos) == n  # a centre pixel never leaves the frame
    shifts = {(r - 4, c - 4) for _, r, c in pos}
    assert shifts == {(a, b) for a in range(-2, 3) for b in range(-2, 3)}


def test_flip_mirrors_only_the_masked_images():
    x = tf.constant(images(4))
    out = flip_where(x, tf.constant([True, False, True, False]))
    np.testing.assert_array_equal(out[0], x[0, :, ::-1])
    np.testing.assert_array_equal(out[1], x[1])


# ---------------------------------------------------------------- affine

def test_rotation_turns_content_clockwise_about_the_centre():
    x = one_pixel(9, 9, 4, 7)  # 3 pixels right of the centre (4, 4)
    assert bright(affine_at(x, [90.0], [1.0], [0.0])) == [[7, 4]]  # 3 pixels below it
    assert bright(affine_at(x, [180.0], [1.0], [0.0])) == [[4, 1]]


def test_shear_and_zoom_move_pixels_as_documented():
    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, 2, 4] = x[0, 7, 4] = 1.0  # 2 above and 3 below the centre column
    assert bright(affine_at(tf.constant(x), [0.0], [1.0], [45.0])) == [[2, 2], [7, 7]]
    assert bright(affine_at(one_pixel(9, 9, 4, 6), [0.0], [1.5], [0.0])) == [[4, 7]]
    out = affine_at(tf.ones([1, 16, 16, 1]), [0.0], [0.8], [0.0])  # zoom out: black border
    assert tf.reduce_max(out[0, 0]) < 0.5 and float(out[0, 8, 8, 0]) == pytest.approx(1.0)


# ---------------------------------------------------------------- colour and erasing

def test_brightness_scales_each_image_by_one_factor_in_range():
    x = tf.constant(0.5 * images(256, 8, 8))  # 0.45 * 1.4 < 1: no clamping
    out = color_jitter(x, seed(1), brightness=0.4)
    ratio = tf.reduce_sum(out, [1, 2, 3]) / tf.reduce_sum(x, [1, 2, 3])
    assert tf.reduce_min(ratio) >= 0.6 - 1e-5 and tf.reduce_max(ratio) <= 1.4 + 1e-5
    assert tf.reduce_min(ratio) < 0.7 and tf.reduce_max(ratio) > 1.3
    np.testing.assert_allclose(out, x * ratio[:, None, None, None], atol=1e-5)


def erased_sides(x: np.ndarray, out: np.ndarray) -> list[tuple[int, int] | None]:
    """Per image, (height, width) of its one zeroed rectangle in every channel, or None."""
    sides = []
    for xi, oi in zip(x, np.asarray(out)):
        zero = oi == 0
        assert (zero == zero[..., :1]).all() and (oi[~zero] == xi[~zero]).all()
        rows, cols = np.flatnonzero(zero[..., 0].any(1)), np.flatnonzero(zero[..., 0].any(0))
        if len(rows) == 0:
            sides.append(None)
            continue
        assert zero[..., 0].sum() == len(rows) * len(cols)  # a full rectangle
        assert rows[-1] - rows[0] + 1 == len(rows) and cols[-1] - cols[0] + 1 == len(cols)
        sides.append((len(rows), len(cols)))
    return sides


@pytest.mark.parametrize("h, w", [(32, 32), (28, 28), (8, 8), (7, 13)])
def test_erasing_zeroes_one_rectangle_of_the_allowed_area(h, w):
    x = images(256, h, w)
    sides = erased_sides(x, random_erasing(tf.constant(x), seed(0), p=1.0))
    areas = np.array([a * b / (h * w) for a, b in sides])  # fails on None: all erased
    assert areas.min() >= ERASE_AREA[0] and areas.max() <= ERASE_AREA[1]
    assert areas.max() - areas.min() > 0.15 and len(set(sides)) > 10


def test_erasing_probability_is_per_image():
    x = images(2000, 16, 16, 1)
    sides = erased_sides(x, random_erasing(tf.constant(x), seed(0), p=0.3))
    assert 0.25 < np.mean([s is not None for s in sides]) < 0.35


# ---------------------------------------------------------------- mixup and cutmix

def identity_images(n: int) -> tf.Tensor:
    """Image i is 1 at pixel (0, i) and 0 elsewhere: a mixed image tells its sources."""
    return tf.eye(n)[:, None, :, None]


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_mixup_mixes_images_and_labels_with_the_same_weights(alpha):
    n = 32
    mixed, soft = mixup(identity_images(n), tf.range(n, dtype=tf.int64), seed(2), alpha,
                        num_classes=n)
    assert soft.shape == (n, n) and soft.dtype == tf.float32
    np.testing.assert_allclose(soft, mixed[:, 0, :, 0], atol=1e-6)
    np.testing.assert_allclose(tf.reduce_sum(soft, 1), np.ones(n), atol=1e-6)
    assert (np.sum(soft.numpy() > 0, 0) <= 2).all()  # a permutation: each image used <= 2x


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("s", range(4))
def test_cutmix_label_weight_is_the_exact_pasted_pixel_fraction(alpha, s):
    n, h, w = 16, 12, 20
    x = tf.tile(tf.range(1.0, n + 1)[:, None, None, None], [1, h, w, 2])  # image i is i + 1
    mixed, soft = cutmix(x, tf.range(n), seed(s), alpha, num_classes=n)
    np.testing.assert_allclose(tf.reduce_sum(soft, 1), np.ones(n), atol=1e-6)
    own = tf.reduce_mean(tf.cast(mixed == x, tf.float32), [1, 2, 3])
    partnered = tf.gather(tf.linalg.diag_part(soft), tf.where(own < 1)[:, 0])
    np.testing.assert_allclose(partnered, tf.boolean_mask(own, own < 1), atol=1e-6)


def test_beta_draws_follow_alpha():
    small = np.array([sample_beta(seed(i), 0.2) for i in range(300)])
    large = np.array([sample_beta(seed(i), 8.0) for i in range(300)])
    assert ((small > 0) & (small < 1)).all() and 0.4 < small.mean() < 0.6
    assert ((small < 0.1) | (small > 0.9)).mean() > 0.5  # U-shaped
    assert (np.abs(large - 0.5) < 0.2).mean() > 0.8      # peaked at 1/2


# ---------------------------------------------------------------- recipe

def test_recipe_with_nothing_on_returns_its_inputs():
    x, y = tf.constant(images()), tf.range(16)
    out, targets = augment_batch(config(), x, y, seed(0), 16)
    assert out is x and targets is y


@pytest.mark.parametrize("levels, soft", [
    ({"augmentation": True, "rotation": 10.0, "brightness": 0.2, "erasing": 0.5}, False),
    ({"augment_policy": "strong", "fill_mode": "reflect"}, False),
    ({"crop": True, "flip": True, "mixup": 0.4}, True),
    ({"cutmix": 1.0, "shear": 10.0}, True),
    ({"augment_policy": "standard", "mixup": 0.2, "cutmix": 1.0}, True),
])
def test_recipe_runs_in_tf_data_and_tf_function_as_eagerly(levels, soft):
    cfg, x, y = config(**levels), images(20, 12, 12), np.arange(20) % 10
    eager = [augment_batch(cfg, tf.constant(x[i:i + 8]), tf.constant(y[i:i + 8]),
                           tf.constant([5, i]), 10) for i in (0, 8, 16)]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).enumerate().map(
        lambda i, b: augment_batch(cfg, b[0], b[1], tf.stack([5, tf.cast(8 * i, tf.int32)]),
                                   10))
    graph = tf.function(lambda a, b, s: augment_batch(cfg, a, b, s, 10))
    for (ex, et), (dx, dt), i in zip(eager, ds, (0, 8, 16)):
        gx, gt = graph(tf.constant(x[i:i + 8]), tf.constant(y[i:i + 8]), tf.constant([5, i]))
        assert dx.shape == ex.shape == (min(8, 20 - i), 12, 12, 3)
        assert (et.dtype, et.shape.rank) == ((tf.float32, 2) if soft else (tf.int64, 1))
        for out, t in ((dx, dt), (gx, gt)):
            np.testing.assert_allclose(out, ex, atol=1e-6)
            np.testing.assert_allclose(t, et, atol=1e-6)
        assert not np.array_equal(ex, x[i:i + 8])
        if soft:
            np.testing.assert_allclose(tf.reduce_sum(et, 1), np.ones(len(et)), atol=1e-6)


def test_recipe_with_mixup_and_cutmix_uses_both_over_batches():
    cfg, x = config(mixup=1.0, cutmix=1.0), tf.constant(images(16, 8, 8, 1))
    kinds = set()
    for i in range(20):
        out, _ = augment_batch(cfg, x, tf.range(16), seed(i), 16)
        # Cutmix keeps some pixels exactly; mixup blends (almost) all of them.
        kinds.add(bool(tf.reduce_mean(tf.cast(out == x, tf.float32)) > 0.3))
    assert kinds == {True, False}


# ---------------------------------------------------------------- torch equivalence

def nchw(x):
    import torch
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))


def nhwc(t) -> np.ndarray:
    return t.numpy().transpose(0, 2, 3, 1)


@pytest.fixture
def torch_augment():
    pytest.importorskip("torch")
    from gridrun.torch import _augment
    return _augment


def test_crop_flip_and_erase_at_match_torch(torch_augment):
    import torch
    x, rng = images(32, 10, 14), np.random.default_rng(1)
    dy, dx = rng.integers(0, 5, 32), rng.integers(0, 7, 32)
    np.testing.assert_array_equal(
        crop_at(tf.constant(x), (2, 3), dy, dx),
        nhwc(torch_augment.crop_at(nchw(x), (2, 3), torch.from_numpy(dy), torch.from_numpy(dx))))
    mask = rng.uniform(size=32) < 0.5
    np.testing.assert_array_equal(flip_where(tf.constant(x), mask),
                                  nhwc(torch_augment.flip_where(nchw(x), torch.from_numpy(mask))))
    box = [rng.integers(0, m, 32) for m in (10, 14, 6, 8)]
    np.testing.assert_array_equal(
        erase_at(tf.constant(x), *box),
        nhwc(torch_augment.erase_at(nchw(x), *(torch.from_numpy(b) for b in box))))


@pytest.mark.parametrize("fill", ["constant", "nearest", "reflect"])
@pytest.mark.parametrize("h, w", [(9, 9), (16, 12), (28, 28)])
def test_affine_at_matches_torch(torch_augment, fill, h, w):
    x, rng = images(32, h, w), np.random.default_rng(2)
    rot, scale, shear = rng.uniform(-180, 180, 32), rng.uniform(0.5, 1.5, 32), \
        rng.uniform(-60, 60, 32)
    import torch
    ours = affine_at(tf.constant(x), rot, scale, shear, fill)
    theirs = torch_augment.affine_at(nchw(x), *(torch.from_numpy(a) for a in
                                                (rot, scale, shear)), fill)
    np.testing.assert_allclose(ours, nhwc(theirs), atol=1e-4)


@pytest.mark.parametrize("steps, channels", [
    (("brightness",), 1), (("contrast",), 1), (("brightness", "contrast"), 1),
    (("brightness",), 3), (("contrast",), 3), (("saturation",), 3), (("hue",), 3),
    (("brightness", "contrast", "saturation", "hue"), 3)])
def test_jitter_at_matches_torch(torch_augment, steps, channels):
    import torch
    x, rng = images(32, 6, 7, channels), np.random.default_rng(3)
    ranges = {"brightness": (0, 2), "contrast": (0, 2), "saturation": (0, 2),
              "hue": (-0.5, 0.5)}
    factors = {k: rng.uniform(*ranges[k], 32).astype(np.float32) for k in steps}
    ours = jitter_at(tf.constant(x), **{k: tf.constant(v) for k, v in factors.items()})
    theirs = torch_augment.jitter_at(nchw(x), **{k: torch.from_numpy(v)
                                                 for k, v in factors.items()})
    np.testing.assert_allclose(ours, nhwc(theirs), atol=1e-4)
