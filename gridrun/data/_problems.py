"""Data problems and their remedies, as pure numpy functions of labels (and images).

A trial induces its data problems on the TRAINING split only, with a numpy Generator the
trainer seeds; the validation and test splits stay as loaded (balanced, clean), so their
accuracies keep measuring the same thing in every configuration::

    rng = np.random.default_rng(trial_seed)
    keep = imbalance_indices(ds.y_train, 0.1, ds.num_classes, rng)
    x, y = ds.x_train[keep], ds.y_train[keep]
    y, flipped = noisy_labels(y, 0.2, ds.num_classes, rng)
    order = oversample_indices(y, ds.num_classes, rng)        # remedy: oversample
    weights = class_weights(y, ds.num_classes)                # remedy: loss weights

Nothing here modifies its inputs. Labels are int arrays of class indices ``0..C-1``.
"""

from __future__ import annotations

import numbers

import numpy as np

from gridrun.data import NORMALIZATIONS
from gridrun.data._dataset import DataError
from gridrun.data._split import take_per_class

__all__ = ["imbalance_indices", "noisy_labels", "class_weights", "oversample_indices",
           "trial_problems",
           "NORMALIZATIONS", "normalization_params", "normalize_images"]

# Images are reduced in chunks so that the statistics of a large training set never
# need a float64 copy of all of it (Fashion-MNIST would need ~380 MB).
_CHUNK = 4096


def trial_problems(cfg, y_train: np.ndarray, num_classes: int, seed: int):
    """One trial's view of the training split, as both trainers build it: (index, labels,
    class weights or None, labels flipped), or None when the trial has no imbalance, noise
    or remedy. ``index`` (int64) selects and repeats training examples (induced imbalance,
    then oversampling); ``labels`` are ALL of the split's labels with the induced noise;
    the draws come from the trial's ``seed`` alone, so both frameworks see the same data.

        >>> trial_problems({"imbalance": 1.0, "label_noise": 0.0, "imbalance_remedy": "none"},
        ...                np.arange(10) % 2, 2, seed=0) is None
        True
    """
    if cfg["imbalance"] >= 1.0 and cfg["label_noise"] == 0 \
            and cfg["imbalance_remedy"] == "none":
        return None
    rng = np.random.default_rng(np.random.SeedSequence(seed).generate_state(5)[3:])
    y = np.asarray(y_train)
    index = np.arange(len(y))
    if cfg["imbalance"] < 1.0:
        index = imbalance_indices(y, cfg["imbalance"], num_classes, rng)
    labels, flipped = y.copy(), 0
    if cfg["label_noise"] > 0:
        noisy, mask = noisy_labels(y[index], cfg["label_noise"], num_classes, rng)
        labels[index] = noisy
        flipped = int(mask.sum())
    weights = None
    if cfg["imbalance_remedy"] == "oversample":
        index = index[oversample_indices(labels[index], num_classes, rng)]
    elif cfg["imbalance_remedy"] == "class_weight":
        weights = class_weights(labels[index], num_classes)
    return np.asarray(index, dtype=np.int64), labels, weights, flipped


def imbalance_indices(y: np.ndarray, ratio: float, num_classes: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Sorted int64 indices into ``y`` of an exponentially long-tailed subset.

    Class ``k`` (classes are ordered by label: class 0 is the head, class ``C-1`` the
    tail) keeps ``max(1, round(n_k * ratio ** (k / (C - 1))))`` of its ``n_k`` examples:
    class 0 keeps all, the last class keeps ``ratio`` of them, and the fractions in
    between fall geometrically. On a balanced ``y`` the largest class is therefore about
    ``1 / ratio`` times the smallest. Which examples a class keeps is drawn uniformly at
    random (without replacement) from ``rng``. A class with no example keeps none; every
    other class keeps at least one. ``ratio`` is in (0, 1]; 1 returns every index.

    >>> y = np.repeat(np.arange(3), 100)
    >>> np.bincount(y[imbalance_indices(y, 0.1, 3, np.random.default_rng(0))]).tolist()
    [100, 32, 10]
    """
    y = _labels(y, num_classes)
    if (isinstance(ratio, bool) or not isinstance(ratio, numbers.Real)
            or not 0 < ratio <= 1):
        raise DataError(f"imbalance ratio={ratio!r} must be a number in (0, 1], e.g. 0.1")
    if ratio == 1:
        return np.arange(len(y), dtype=np.int64)
    counts = np.bincount(y, minlength=num_classes)
    exponents = np.arange(num_classes) / max(num_classes - 1, 1)
    keep = np.floor(counts * float(ratio) ** exponents + 0.5).astype(np.int64)  # round half up
    keep = np.where(counts > 0, np.clip(keep, 1, counts), 0)
    return take_per_class(y, keep, rng).astype(np.int64, copy=False)


def noisy_labels(y: np.ndarray, rate: float, num_classes: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(y_noisy, flipped)``: exactly ``round(rate * n)`` labels changed to another class.

    The changed examples are chosen uniformly at random without replacement; each gets a
    new label drawn uniformly among the ``num_classes - 1`` classes other than its own,
    so a flipped label always differs from the original (symmetric label noise).
    ``flipped`` is the boolean mask of changed examples. ``rate`` is in [0, 1); 0 returns
    a copy of ``y`` and an all-False mask. ``round`` is Python's (half to even).

    >>> y_noisy, flipped = noisy_labels(np.zeros(10, np.int64), 0.3, 4, np.random.default_rng(0))
    >>> int(flipped.sum()), bool(np.all(y_noisy[flipped] != 0))
    (3, True)
    """
    y = _labels(y, num_classes)
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise DataError(f"label noise rate={rate!r} must be a number in [0, 1), e.g. 0.2")
    n = len(y)
    m = round(float(rate) * n)
    y_noisy = y.astype(np.int64, copy=True)
    flipped = np.zeros(n, dtype=bool)
    if m == 0:
        return y_noisy, flipped
    if num_classes < 2:
        raise DataError(f"label noise needs at least 2 classes, got num_classes={num_classes}")
    chosen = rng.choice(n, size=m, replace=False)
    # An offset 1..C-1 added modulo C lands uniformly on every class but the original.
    y_noisy[chosen] = (y[chosen] + rng.integers(1, num_classes, size=m)) % num_classes
    flipped[chosen] = True
    return y_noisy, flipped


def class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 loss weights ``n / (num_classes * n_k)`` per class (scikit-learn's "balanced").

    A class with no example in ``y`` gets weight 0 (no ValueError, unlike scikit-learn):
    it contributes no loss term anyway, and an induced imbalance or a small subset can
    legitimately empty a class.

    >>> class_weights(np.array([0, 0, 0, 1]), 3).tolist()
    [0.4444444477558136, 1.3333333730697632, 0.0]
    """
    y = _labels(y, num_classes)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes, dtype=np.float64)
    present = counts > 0
    weights[present] = len(y) / (num_classes * counts[present])
    return weights.astype(np.float32)


def oversample_indices(y: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Shuffled int64 indices into ``y`` in which every class has as many examples as the
    largest one.

    A class of ``n_k`` examples, to reach ``M``, is repeated ``M // n_k`` whole times plus
    ``M % n_k`` of its examples drawn at random without replacement, so every example
    appears ``M // n_k`` or ``M // n_k + 1`` times (all of them at least once). Classes
    absent from ``y`` stay absent. The result is shuffled by ``rng``.

    >>> idx = oversample_indices(np.array([0, 0, 0, 0, 1]), 2, np.random.default_rng(0))
    >>> np.bincount(np.array([0, 0, 0, 0, 1])[idx]).tolist()
    [4, 4]
    """
    y = _labels(y, num_classes)
    counts = np.bincount(y, minlength=num_classes)
    largest = int(counts.max()) if len(y) else 0
    parts = []
    for c in range(num_classes):
        members = np.flatnonzero(y == c)
        if len(members) == 0:
            continue
        whole, extra = divmod(largest, len(members))
        parts.append(np.tile(members, whole))
        parts.append(rng.choice(members, size=extra, replace=False))
    if not parts:
        return np.empty(0, dtype=np.int64)
    return rng.permutation(np.concatenate(parts)).astype(np.int64, copy=False)


def normalization_params(x: np.ndarray, mode: str) -> tuple[float, np.ndarray, np.ndarray]:
    """``(scale, mean, std)`` with ``normalized = (x * scale - mean) / std``.

    ``x`` is a training split's images, (N, H, W, C) channels-last: uint8 pixels (as a
    Dataset holds them; they are read as ``x / 255``) or floats already in [0, 1]. ``mean``
    and ``std`` are float32 of shape (C,), applying to the [0, 1] images:

    - ``"none"``: the raw 0..255 pixel values (scale 255, mean 0, std 1);
    - ``"rescale"``: [0, 1] (scale 1, mean 0, std 1);
    - ``"standardize"``: per-channel mean and population std (ddof 0) of the training
      images in [0, 1] (scale 1), std floored at 1e-3 so a constant channel gives 0, not
      inf. These are the numbers ``gridrun.torch`` ``prepare_data`` computes: the same
      float32 ``x / 255``, accumulated in float64, rounded to float32.

    >>> x = np.array([0, 255], np.uint8).reshape(2, 1, 1, 1)
    >>> normalization_params(x, "standardize")
    (1.0, array([0.5], dtype=float32), array([0.5], dtype=float32))
    """
    mode = _mode(mode)
    x = _images(x)
    channels = x.shape[-1]
    if mode != "standardize":
        scale = 255.0 if mode == "none" else 1.0
        return scale, np.zeros(channels, np.float32), np.ones(channels, np.float32)
    if len(x) == 0:
        raise DataError("standardize needs at least one training image to compute mean and std")
    count = x.size // channels
    total = np.zeros(channels, np.float64)
    for start in range(0, len(x), _CHUNK):
        total += _unit(x[start:start + _CHUNK]).sum(axis=(0, 1, 2), dtype=np.float64)
    mean = total / count
    squares = np.zeros(channels, np.float64)
    for start in range(0, len(x), _CHUNK):  # two passes: exact even when std << mean
        d = _unit(x[start:start + _CHUNK]).astype(np.float64) - mean
        squares += np.einsum("nhwc,nhwc->c", d, d)
    std = np.sqrt(squares / count).astype(np.float32)
    return 1.0, mean.astype(np.float32), np.maximum(std, np.float32(1e-3))


def normalize_images(x: np.ndarray, mode: str, mean: np.ndarray | None = None,
                     std: np.ndarray | None = None) -> np.ndarray:
    """float32 ``(x * scale - mean) / std`` of (N, H, W, C) images (uint8 or [0, 1] floats).

    ``mean``/``std`` default to :func:`normalization_params` of ``x`` itself; for the
    validation and test splits pass the TRAINING split's, so every split is scaled alike.
    The torch trainer does this on the device itself; this is the framework-free
    equivalent (e.g. for Keras or for checking).

    >>> normalize_images(np.array([0, 255], np.uint8).reshape(2, 1, 1, 1), "rescale").ravel()
    array([0., 1.], dtype=float32)
    """
    mode = _mode(mode)
    x = _images(x)
    scale, default_mean, default_std = normalization_params(x, mode)
    mean = default_mean if mean is None else np.asarray(mean, np.float32)
    std = default_std if std is None else np.asarray(std, np.float32)
    return ((_unit(x) * np.float32(scale) - mean) / std).astype(np.float32, copy=False)


def _labels(y, num_classes) -> np.ndarray:
    if (isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral)
            or num_classes < 1):
        raise DataError(f"num_classes={num_classes!r} must be a positive integer")
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise DataError(f"labels must be a 1-d integer array, got {y.dtype} {y.shape}")
    y = y.astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"labels span {y.min()}..{y.max()}, but num_classes={num_classes}")
    return y


def _mode(mode) -> str:
    if mode not in NORMALIZATIONS:
        raise DataError(f"normalization {mode!r} unknown: choose one of {', '.join(NORMALIZATIONS)}")
    return mode


def _images(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise DataError(f"images must be (N, H, W, C), got shape {x.shape}")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"images must be uint8 or float in [0, 1], got {x.dtype}")
    return x


def _unit(x: np.ndarray) -> np.ndarray:
    """Images as float32 in [0, 1]: uint8 divided by 255 in float32, as torch does."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)
    return x.astype(np.float32, copy=False)
