"""Per-image colour jitter of channels-last batches: brightness, contrast, saturation, hue.

The same operations, order and ranges as ``gridrun.torch._augment.color_jitter``, on
(N, H, W, C) float32 batches of [0, 1] pixels, with stateless randomness: the same
``seed`` (a shape-[2] integer tensor) gives the same output.

    >>> x = tf.fill([4, 8, 8, 3], 0.5)
    >>> color_jitter(x, tf.constant([1, 2]), brightness=0.2, hue=0.1).shape
    TensorShape([4, 8, 8, 3])
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["color_jitter", "jitter_at", "check_range"]

_GRAY = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights of R, G, B


def check_range(name: str, value: float, limit: float, *, closed: bool) -> None:
    """ValueError unless 0 <= value <= limit (closed) or 0 <= value < limit."""
    ok = 0 <= value <= limit if closed else 0 <= value < limit
    if not ok:  # also catches NaN
        bound = "<=" if closed else "<"
        raise ValueError(f"{name} must satisfy 0 <= {name} {bound} {limit:g}, got {value!r}")


def color_jitter(x: tf.Tensor, seed, *, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0) -> tf.Tensor:
    """Each image's brightness, contrast, saturation and hue changed by its own factors.

    Per image, in this fixed order, each step clamped to [0, 1]: multiply by a brightness
    factor uniform in [1 - brightness, 1 + brightness]; blend with the image's mean gray by
    a contrast factor uniform in [1 - contrast, 1 + contrast]; blend with the image's
    grayscale by a saturation factor uniform in [1 - saturation, 1 + saturation]; shift the
    hue by uniform [-hue, hue] turns of the colour circle (through HSV, see
    :func:`jitter_at`). Brightness, contrast and saturation must lie in [0, 1] and hue in
    [0, 0.5].

    Returns ``x`` itself when all four are 0. Raises ValueError for a value out of range, or
    for saturation or hue on a batch without exactly 3 (RGB) channels.
    """
    for name, value, limit in (("brightness", brightness, 1.0), ("contrast", contrast, 1.0),
                               ("saturation", saturation, 1.0), ("hue", hue, 0.5)):
        check_range(name, value, limit, closed=True)
    if saturation or hue:
        _need_rgb(x)
    if brightness == 0 and contrast == 0 and saturation == 0 and hue == 0:
        return x
    u = tf.random.stateless_uniform([tf.shape(x)[0], 4], seed, -1.0, 1.0)
    # A zero strength skips its step, as in torch (no op is even built for it).
    return jitter_at(x, 1 + u[:, 0] * brightness if brightness else None,
                     1 + u[:, 1] * contrast if contrast else None,
                     1 + u[:, 2] * saturation if saturation else None,
                     u[:, 3] * hue if hue else None)


def jitter_at(x: tf.Tensor, brightness=None, contrast=None, saturation=None,
              hue=None) -> tf.Tensor:
    """Image i's colours changed by the given per-image factors, with no randomness.

    ``brightness[i]`` multiplies; ``contrast[i]`` and ``saturation[i]`` blend with the
    image's mean gray and its grayscale (factor 1 keeps the image, 0 gives the gray); and
    ``hue[i]`` is added to the HSV hue in turns (0.5 = complementary colours). None skips a
    step. Gray is the BT.601 luma of RGB images and the channel mean otherwise. Each step
    is clamped to [0, 1].

        >>> jitter_at(tf.ones([1, 2, 2, 1]), brightness=tf.constant([0.5]))[0, 0, 0, 0]
        <tf.Tensor: shape=(), dtype=float32, numpy=0.5>
    """
    def per_image(f) -> tf.Tensor:
        return tf.reshape(tf.cast(f, x.dtype), [-1, 1, 1, 1])

    if brightness is not None:
        x = tf.clip_by_value(x * per_image(brightness), 0.0, 1.0)
    if contrast is not None:
        mean = tf.reduce_mean(_gray(x), axis=[1, 2, 3], keepdims=True)
        x = _blend(x, mean, per_image(contrast))
    if saturation is not None:
        _need_rgb(x)
        x = _blend(x, _gray(x), per_image(saturation))
    if hue is not None:
        _need_rgb(x)
        h, s, v = _rgb_to_hsv(x)
        x = _hsv_to_rgb(tf.math.floormod(h + per_image(hue)[..., 0], 1.0), s, v)
    return x


def _need_rgb(x: tf.Tensor) -> None:
    if x.shape[-1] != 3:
        raise ValueError(f"saturation and hue need RGB images (3 channels), got "
                         f"{x.shape[-1]} channel(s)")


def _gray(x: tf.Tensor) -> tf.Tensor:
    """(N, H, W, 1) grayscale: BT.601 luma for 3 channels, the channel mean otherwise."""
    if x.shape[-1] == 3:
        return tf.reduce_sum(x * tf.constant(_GRAY, x.dtype), axis=-1, keepdims=True)
    return tf.reduce_mean(x, axis=-1, keepdims=True)


def _blend(x: tf.Tensor, other: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """``factor * x + (1 - factor) * other``, clamped to [0, 1]."""
    return tf.clip_by_value(factor * x + (1 - factor) * other, 0.0, 1.0)


def _rgb_to_hsv(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(N, H, W, 3) RGB -> hue in turns [0, 1), saturation, value, each (N, H, W).

    Not ``tf.image.rgb_to_hsv``: this is torch's formula step for step, so both trainers
    shift hues identically (ties of the largest channel go to R, then G).
    """
    r, g, b = tf.unstack(x, axis=-1)
    value = tf.reduce_max(x, axis=-1)
    delta = value - tf.reduce_min(x, axis=-1)
    positive = delta > 0
    safe = tf.where(positive, delta, tf.ones_like(delta))
    hue = tf.where(r == value, tf.math.floormod((g - b) / safe, 6.0),
                   tf.where(g == value, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = tf.where(positive, hue / 6.0, tf.zeros_like(hue))
    lit = value > 0
    sat = tf.where(lit, delta / tf.where(lit, value, tf.ones_like(value)),
                   tf.zeros_like(value))
    return hue, sat, value


def _hsv_to_rgb(hue: tf.Tensor, sat: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
    """Hue in turns, saturation, value, each (N, H, W) -> (N, H, W, 3) RGB.

    The branch-free form: channel n (5 for R, 3 for G, 1 for B) is
    ``v - v * s * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 * hue) mod 6``.
    """
    n = tf.constant([5.0, 3.0, 1.0], hue.dtype)
    k = tf.math.floormod(n + 6.0 * hue[..., None], 6.0)
    ramp = tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0)
    return value[..., None] - value[..., None] * sat[..., None] * ramp
