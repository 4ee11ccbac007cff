"""Whole-batch augmentation in TensorFlow, with the torch trainer's semantics.

The functions of ``gridrun.torch._augment`` on channels-last (N, H, W, C) float32 batches
of [0, 1] pixels, built from whole-batch tensor ops (no per-image loop), so they run eagerly,
under ``tf.function`` and inside ``tf.data.Dataset.map``:

* :func:`augment`: random crop (zero padding of 1/8 of the side) then horizontal flip;
* :func:`random_affine`: per-image rotation, zoom and x-shear in one bilinear resampling;
* :func:`color_jitter`: per-image brightness, contrast, saturation and hue;
* :func:`random_erasing`: per-image cutout of one random rectangle;
* :func:`mixup` and :func:`cutmix`: per-batch mixing of images *and labels*;
* :func:`apply_policy` and :func:`augment_batch`: the named policies and a trial's recipe.

Randomness is stateless: every random function takes ``seed``, a shape-[2] integer tensor,
and draws only through ``tf.random.stateless_*`` ops, so the same seed gives the same output
(the trainer derives it from trial seed, epoch and batch, which makes augmentation exactly
reproducible and resumable). A composite splits its seed into one sub-seed per step, so
switching one step on or off leaves the other steps' numbers alone. The ``*_at`` functions
apply given per-image parameters with no randomness; tests check them against torch's.

    >>> x = tf.zeros([4, 8, 8, 1])
    >>> augment(x, tf.constant([0, 1])).shape
    TensorShape([4, 8, 8, 1])
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import tensorflow as tf

from gridrun.keras._augment_color import check_range, color_jitter, jitter_at
from gridrun.keras._augment_mix import cutmix, mixup, sample_beta

__all__ = ["augment", "random_crop", "random_flip", "crop_at", "flip_where", "crop_padding",
           "random_affine", "affine_at", "FILLS", "color_jitter", "jitter_at",
           "random_erasing", "erase_at", "ERASE_AREA", "ERASE_RATIO", "mixup", "cutmix",
           "sample_beta", "POLICIES", "apply_policy", "augment_batch"]

# ``fill`` of random_affine -> ImageProjectiveTransformV3's fill_mode (torch's padding
# modes zeros, border and reflection; both reflect about the outer pixel edge).
FILLS = {"constant": "CONSTANT", "nearest": "NEAREST", "reflect": "REFLECT"}
ERASE_AREA = (0.02, 0.33)  # random_erasing: rectangle area, fraction of the image
ERASE_RATIO = (0.3, 3.3)   # random_erasing: rectangle height / width, before fitting
POLICIES = ("none", "standard", "strong")
_JITTER = ("brightness", "contrast", "saturation", "hue")


def _seeds(seed, num: int) -> list[tf.Tensor]:
    """``num`` independent sub-seeds of ``seed``. The split depends on the seed's dtype;
    casting first makes an int32 and an int64 seed of the same values agree."""
    seed = tf.cast(seed, tf.int64)
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=num))


def crop_padding(height: int, width: int) -> tuple[int, int]:
    """Zero padding (rows, columns) of the random crop: 1/8 of each side, at least 1."""
    return max(1, height // 8), max(1, width // 8)


def augment(x: tf.Tensor, seed) -> tf.Tensor:
    """Random crop with zero padding, then random horizontal flip, of an (N, H, W, C) batch."""
    crop_seed, flip_seed = _seeds(seed, 2)
    x = random_crop(x, crop_padding(x.shape[1], x.shape[2]), crop_seed)
    return random_flip(x, flip_seed)


def random_crop(x: tf.Tensor, pad: tuple[int, int], seed) -> tf.Tensor:
    """Each image shifted by its own random offset in [-pad, pad] (rows and columns
    independently), with zeros shifted in."""
    u = tf.random.stateless_uniform([tf.shape(x)[0], 2], seed)
    dy = tf.floor(u[:, 0] * (2 * pad[0] + 1))
    dx = tf.floor(u[:, 1] * (2 * pad[1] + 1))
    return crop_at(x, pad, tf.cast(dy, tf.int32), tf.cast(dx, tf.int32))


def crop_at(x: tf.Tensor, pad: tuple[int, int], dy, dx) -> tf.Tensor:
    """Zero-pad by ``pad`` and cut the (H, W) window whose top-left corner is (dy[i], dx[i])
    for image i. Pixel (r, c) lands at (r + pad[0] - dy[i], c + pad[1] - dx[i])."""
    h, w = x.shape[1], x.shape[2]
    padded = tf.pad(x, [[0, 0], [pad[0], pad[0]], [pad[1], pad[1]], [0, 0]])
    # Two batched gathers (rows, then columns) with per-image index vectors.
    rows = tf.cast(dy, tf.int32)[:, None] + tf.range(h)[None, :]
    padded = tf.gather(padded, rows, axis=1, batch_dims=1)
    cols = tf.cast(dx, tf.int32)[:, None] + tf.range(w)[None, :]
    return tf.gather(padded, cols, axis=2, batch_dims=1)


def random_flip(x: tf.Tensor, seed) -> tf.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    return flip_where(x, tf.random.stateless_uniform([tf.shape(x)[0]], seed) < 0.5)


def flip_where(x: tf.Tensor, mask) -> tf.Tensor:
    """Images with ``mask[i]`` True mirrored left-right, the others unchanged."""
    return tf.where(tf.reshape(mask, [-1, 1, 1, 1]), tf.reverse(x, axis=[2]), x)


# ---------------------------------------------------------------- affine

def random_affine(x: tf.Tensor, seed, *, rotation: float = 0.0, zoom: float = 0.0,
                  shear: float = 0.0, fill: str = "constant") -> tf.Tensor:
    """Each image rotated, zoomed and x-sheared by its own random amounts.

    Per image: rotation uniform in [-rotation, rotation] degrees, scale uniform in
    [1 - zoom, 1 + zoom] (above 1 enlarges the content) and shear uniform in
    [-shear, shear] degrees, all about the image centre (see :func:`affine_at`). ``fill``
    is what the area the transformed image no longer covers gets: ``"constant"`` zeros,
    ``"nearest"`` the nearest edge pixel, ``"reflect"`` the image mirrored at its edges.

    Returns ``x`` itself when all three ranges are 0. Raises ValueError for an unknown
    ``fill`` or a range outside 0 <= rotation <= 180, 0 <= zoom < 1, 0 <= shear < 90.
    """
    _check_fill(fill)
    check_range("rotation", rotation, 180.0, closed=True)
    check_range("zoom", zoom, 1.0, closed=False)
    check_range("shear", shear, 90.0, closed=False)
    if rotation == 0 and zoom == 0 and shear == 0:
        return x
    u = tf.random.stateless_uniform([tf.shape(x)[0], 3], seed, -1.0, 1.0, dtype=tf.float64)
    return affine_at(x, u[:, 0] * rotation, 1 + u[:, 1] * zoom, u[:, 2] * shear, fill)


def affine_at(x: tf.Tensor, rotation, scale, shear, fill: str = "constant") -> tf.Tensor:
    """Image i resampled under its own affine map, with no randomness.

    The map, in pixel units about the image centre with x to the right and y down, is
    ``R(rotation[i]) @ Shear(shear[i]) @ scale[i]``: scale first, then x-shear
    ``[[1, tan(shear)], [0, 1]]``, then a rotation that turns the content clockwise on
    screen for positive degrees. Bilinear sampling with pixel centres at integer
    coordinates (torch's ``align_corners=False``); ``fill`` as in :func:`random_affine`.
    The matrices are built in float64; the op itself takes float32 transforms.

        >>> x = tf.random.uniform([2, 9, 9, 1])
        >>> affine_at(x, tf.constant([90.0, 0.0]), tf.ones([2]), tf.zeros([2])).shape
        TensorShape([2, 9, 9, 1])
    """
    _check_fill(fill)
    h, w = x.shape[1], x.shape[2]
    deg = math.pi / 180
    rot = tf.cast(rotation, tf.float64) * deg
    tan = tf.tan(tf.cast(shear, tf.float64) * deg)
    s = tf.cast(scale, tf.float64)
    cos, sin = tf.cos(rot), tf.sin(rot)
    # Forward map M = R @ Sh @ sI; the op wants the inverse (output -> input point).
    m00, m01, m10, m11 = cos * s, (cos * tan - sin) * s, sin * s, (sin * tan + cos) * s
    det = m00 * m11 - m01 * m10
    i00, i01, i10, i11 = m11 / det, -m01 / det, -m10 / det, m00 / det
    # About the centre ((w - 1) / 2, (h - 1) / 2) in pixel-index coordinates:
    # input = c + inv @ (output - c).
    cx, cy = (w - 1) / 2, (h - 1) / 2
    zero = tf.zeros_like(det)
    transforms = tf.stack([i00, i01, cx - i00 * cx - i01 * cy,
                           i10, i11, cy - i10 * cx - i11 * cy, zero, zero], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=tf.cast(transforms, tf.float32),
        output_shape=tf.shape(x)[1:3], fill_value=tf.constant(0.0, tf.float32),
        interpolation="BILINEAR", fill_mode=FILLS[fill])
    return tf.ensure_shape(out, x.shape)


def _check_fill(fill: str) -> None:
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)}")


# ---------------------------------------------------------------- erasing

def random_erasing(x: tf.Tensor, seed, *, p: float) -> tf.Tensor:
    """With probability ``p``, each image gets one random rectangle set to 0 (cutout).

    The rectangle's area is uniform in :data:`ERASE_AREA` (fractions of the image) and its
    height/width ratio log-uniform in :data:`ERASE_RATIO`; the sides are rounded to whole
    pixels and fitted so that the rectangle lies inside the image and its pixel area stays
    within :data:`ERASE_AREA` (fitting can push the ratio out of its range on small or very
    oblong images). Its position is uniform over the places where it fits. All channels are
    erased. Returns ``x`` itself when ``p`` is 0. Raises ValueError unless 0 <= p <= 1.
    """
    check_range("p", p, 1.0, closed=True)
    if p == 0:
        return x
    h, w = x.shape[1], x.shape[2]
    u = tf.random.stateless_uniform([tf.shape(x)[0], 5], seed, dtype=tf.float64)
    lo, hi = ERASE_AREA
    area = (lo + (hi - lo) * u[:, 1]) * h * w
    log_lo, log_hi = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
    ratio = tf.exp(log_lo + (log_hi - log_lo) * u[:, 2])
    eh = tf.clip_by_value(tf.round(tf.sqrt(area * ratio)), 1.0, h)
    # Width from the area left for this height, kept within the area bounds and the image.
    ew = tf.round(area / eh)
    ew = tf.minimum(tf.maximum(ew, tf.math.ceil(lo * h * w / eh)), tf.floor(hi * h * w / eh))
    ew = tf.clip_by_value(ew, 1.0, w)
    top = tf.floor(u[:, 3] * (h - eh + 1))
    left = tf.floor(u[:, 4] * (w - ew + 1))
    erase = u[:, 0] < p
    eh, ew = tf.where(erase, eh, 0.0), tf.where(erase, ew, 0.0)
    return erase_at(x, *(tf.cast(t, tf.int32) for t in (top, left, eh, ew)))


def erase_at(x: tf.Tensor, top, left, height, width) -> tf.Tensor:
    """Image i with rows [top[i], top[i] + height[i]) x columns [left[i], left[i] + width[i])
    set to 0 in every channel; height or width 0 leaves the image unchanged."""
    top, left, height, width = (tf.cast(t, tf.int32)[:, None] for t in (top, left, height,
                                                                        width))
    rows = tf.range(tf.shape(x)[1])[None, :]
    cols = tf.range(tf.shape(x)[2])[None, :]
    in_rows = (rows >= top) & (rows < top + height)   # (N, H)
    in_cols = (cols >= left) & (cols < left + width)  # (N, W)
    mask = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    return tf.where(mask, tf.zeros_like(x), x)


# ---------------------------------------------------------------- policies and recipe

def apply_policy(name: str, x: tf.Tensor, seed, *, fill: str = "constant") -> tf.Tensor:
    """The named label-keeping augmentation pipeline of :data:`POLICIES` on a batch.

    ``"none"`` returns ``x``; ``"standard"`` is :func:`augment` (crop and flip);
    ``"strong"`` is :func:`augment`, then :func:`random_affine` (rotation 15 degrees,
    zoom 0.1, ``fill``), then :func:`color_jitter` (brightness 0.2, contrast 0.2), then
    :func:`random_erasing` (p 0.25). Raises ValueError for an unknown name or fill.

        >>> apply_policy("strong", tf.zeros([2, 8, 8, 3]), tf.constant([0, 0])).shape
        TensorShape([2, 8, 8, 3])
    """
    if name not in POLICIES:
        raise ValueError(f"unknown augmentation policy {name!r}; choose one of "
                         f"{', '.join(POLICIES)}")
    _check_fill(fill)
    if name == "none":
        return x
    crop_seed, affine_seed, jitter_seed, erase_seed = _seeds(seed, 4)
    x = augment(x, crop_seed)
    if name == "standard":
        return x
    x = random_affine(x, affine_seed, rotation=15.0, zoom=0.1, fill=fill)
    x = color_jitter(x, jitter_seed, brightness=0.2, contrast=0.2)
    return random_erasing(x, erase_seed, p=0.25)


def augment_batch(cfg: Mapping[str, Any], x: tf.Tensor, y: tf.Tensor, seed,
                  num_classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The configuration's augmentations on one batch of [0, 1] pixels: (images, targets).

    The torch recipe's order: crop/flip (augmentation, crop), the named policy, flip,
    affine, color, erasing, then label mixing; with both mixup and cutmix on, each batch
    gets one or the other at even odds. ``cfg`` maps technique names to values and decides
    which ops are built, so this works inside ``tf.data.Dataset.map``. Targets are ``y``
    as it is when neither mixup nor cutmix is on, else (N, num_classes) float32 soft labels
    (a static type per configuration, whatever a batch drew).

        >>> from gridrun.design.grid import resolve_config
        >>> cfg = resolve_config({"augment_policy": "strong", "mixup": 0.2}, {})
        >>> x, t = augment_batch(cfg, tf.zeros([4, 8, 8, 1]), tf.range(4), [0, 7], 10)
        >>> t.shape
        TensorShape([4, 10])
    """
    # One sub-seed per step, whether or not the step is on.
    crop, policy, flip, affine, jitter, erase, choice, mixing = _seeds(seed, 8)
    if cfg["augmentation"]:
        x = augment(x, crop)  # on [0, 1] pixels, so the padding is black
    elif cfg["crop"]:
        x = random_crop(x, crop_padding(x.shape[1], x.shape[2]), crop)
    if cfg["augment_policy"] != "none":
        x = apply_policy(cfg["augment_policy"], x, policy, fill=cfg["fill_mode"])
    if cfg["flip"]:
        x = random_flip(x, flip)
    if cfg["rotation"] or cfg["zoom"] or cfg["shear"]:
        x = random_affine(x, affine, rotation=cfg["rotation"], zoom=cfg["zoom"],
                          shear=cfg["shear"], fill=cfg["fill_mode"])
    if any(cfg[k] for k in _JITTER):
        x = color_jitter(x, jitter, **{k: cfg[k] for k in _JITTER})
    if cfg["erasing"]:
        x = random_erasing(x, erase, p=cfg["erasing"])
    mix, cut = cfg["mixup"], cfg["cutmix"]
    if mix and cut:  # both on: one or the other per batch, even odds
        use_mix = tf.random.stateless_uniform([], choice) < 0.5
        return tf.cond(use_mix, lambda: mixup(x, y, mixing, mix, num_classes=num_classes),
                       lambda: cutmix(x, y, mixing, cut, num_classes=num_classes))
    if mix:
        return mixup(x, y, mixing, mix, num_classes=num_classes)
    if cut:
        return cutmix(x, y, mixing, cut, num_classes=num_classes)
    return x, y
