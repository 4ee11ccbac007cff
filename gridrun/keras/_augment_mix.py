"""Mixup and CutMix on channels-last batches: per-batch mixing of images *and labels*.

The same semantics as ``gridrun.torch._augment.mixup`` and ``cutmix``, with stateless
randomness: ``seed`` is a shape-[2] integer tensor and the same seed gives the same batch.
Both return the mixed (N, H, W, C) images and soft labels, (N, num_classes) float32 rows
that sum to 1.

    >>> x, y = tf.random.uniform([8, 4, 4, 1]), tf.range(8)
    >>> images, soft = mixup(x, y, tf.constant([0, 1]), 0.4, num_classes=10)
    >>> soft.shape
    TensorShape([8, 10])
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["sample_beta", "mixup", "cutmix", "cutmix_at", "soft_labels"]


def sample_beta(seed, alpha: float) -> tf.Tensor:
    """One float64 draw from Beta(alpha, alpha), determined by ``seed``.

    Beta as ``g1 / (g1 + g2)`` of two stateless Gamma(alpha) draws (TensorFlow has no
    stateless Beta). Raises ValueError unless alpha > 0.
    """
    if not alpha > 0 or math.isinf(alpha):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    g = tf.random.stateless_gamma([2], seed, alpha=alpha, dtype=tf.float64)
    # Both gammas can underflow to 0 for a tiny alpha; 1/2 is then the symmetric answer.
    total = g[0] + g[1]
    return tf.where(total > 0, g[0] / tf.where(total > 0, total, 1.0), 0.5)


def mixup(x: tf.Tensor, y: tf.Tensor, seed, alpha: float, *,
          num_classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Each image blended with a random partner from the batch, and its label likewise.

    ``lam ~ Beta(alpha, alpha)`` once per batch (:func:`sample_beta`) and the partners are a
    random permutation ``perm``; returns ``lam * x + (1 - lam) * x[perm]`` and the soft
    labels ``lam * onehot(y) + (1 - lam) * onehot(y[perm])``. ``y`` holds int32 or int64
    class indices in [0, num_classes). Raises ValueError unless alpha > 0.
    """
    beta_seed, perm_seed = _split(seed)
    lam = sample_beta(beta_seed, alpha)
    perm = _permutation(x, perm_seed)
    lam = tf.cast(lam, x.dtype)
    mixed = lam * x + (1 - lam) * tf.gather(x, perm)
    return mixed, soft_labels(y, perm, lam, num_classes)


def cutmix(x: tf.Tensor, y: tf.Tensor, seed, alpha: float, *,
           num_classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Each image gets a box pasted from a random partner, and a label mixed by area.

    ``lam ~ Beta(alpha, alpha)`` once per batch (:func:`sample_beta`); one box per batch,
    with sides ``round(H * sqrt(1 - lam))`` and ``round(W * sqrt(1 - lam))`` (area fraction
    1 - lam up to rounding; halves round to even, as Python's ``round``) at a uniform
    position fully inside the image, is copied from ``x[perm]``, ``perm`` a random
    permutation. The soft labels weight the partner's class by the exact pasted pixel
    fraction and the image's own class by the rest. Raises ValueError unless alpha > 0.
    """
    h, w = x.shape[1], x.shape[2]
    beta_seed, perm_seed, box_seed = _split(seed, 3)
    lam = sample_beta(beta_seed, alpha)
    perm = _permutation(x, perm_seed)
    side = tf.sqrt(1 - lam)
    bh, bw = tf.round(h * side), tf.round(w * side)
    u = tf.random.stateless_uniform([2], box_seed, dtype=tf.float64)
    top, left = tf.floor(u[0] * (h - bh + 1)), tf.floor(u[1] * (w - bw + 1))
    mixed = cutmix_at(x, perm, *(tf.cast(t, tf.int32) for t in (top, left, bh, bw)))
    kept = 1 - (bh * bw) / (h * w)
    return mixed, soft_labels(y, perm, tf.cast(kept, tf.float32), num_classes)


def cutmix_at(x: tf.Tensor, perm: tf.Tensor, top, left, height, width) -> tf.Tensor:
    """``x`` with rows [top, top + height) x columns [left, left + width) of every image
    taken from ``x[perm]``: the same box for the whole batch, no randomness."""
    rows = tf.range(tf.shape(x)[1])
    cols = tf.range(tf.shape(x)[2])
    in_rows = (rows >= top) & (rows < top + height)
    in_cols = (cols >= left) & (cols < left + width)
    box = in_rows[:, None, None] & in_cols[None, :, None]  # (H, W, 1), broadcast on N, C
    return tf.where(box[None], tf.gather(x, perm), x)


def soft_labels(y: tf.Tensor, perm: tf.Tensor, lam, num_classes: int) -> tf.Tensor:
    """``lam * onehot(y) + (1 - lam) * onehot(y[perm])`` as (N, num_classes) float32."""
    if y.shape.rank != 1 or not y.dtype.is_integer:
        raise ValueError(f"y must be a 1-D integer label vector, got {y.dtype.name} of shape "
                         f"{tuple(y.shape)}")
    onehot = tf.one_hot(y, num_classes, dtype=tf.float32)
    return lam * onehot + (1 - lam) * tf.gather(onehot, perm)


def _permutation(x: tf.Tensor, seed) -> tf.Tensor:
    return tf.random.experimental.stateless_shuffle(tf.range(tf.shape(x)[0]), seed)


def _split(seed, num: int = 2) -> list[tf.Tensor]:
    # As int64: the split depends on the seed's dtype, and [1, 2] should mean one thing.
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=num))
