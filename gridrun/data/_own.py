"""A dataset of the researcher's own: a function in the spec returning NumPy arrays, checked
once on the driver and made into the same ``RawData`` every loader gives.

    >>> import numpy as np
    >>> def tiny():
    ...     rng = np.random.default_rng(0)
    ...     x = rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8)
    ...     return x, np.arange(40) % 4, x[:8], np.arange(8) % 4
    >>> raw = own_raw(tiny)
    >>> raw.x_train.shape, raw.classes
    ((40, 6, 6, 3), ('0', '1', '2', '3'))
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from gridrun.data._dataset import DataError, RawData

__all__ = ["own_raw"]

KEYS = ("x_train", "y_train", "x_test", "y_test")


def own_raw(fn: Callable, name: str | None = None) -> RawData:
    """Call ``fn()`` and check what it returns: ``(x_train, y_train, x_test, y_test)`` or a
    dict with those keys (and optionally ``classes``). Images are N x H x W (one channel)
    or N x H x W x C, uint8 or floats in [0, 1] (scaled to 0-255); labels are integers from
    0. DataError naming the function and what is wrong."""
    if name is None:  # where it comes from; a spec file's own module is "spec"
        module = getattr(fn, "__module__", None) or "?"
        name = (f"{'spec' if module.startswith('_gridrun_spec_') else module}:"
                f"{getattr(fn, '__qualname__', fn)}")
    what = f"dataset function {name}"
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - the user's code: one line, not a traceback
        raise DataError(f"{what} raised {type(e).__name__}: {e}") from None
    classes = None
    if isinstance(out, Mapping):
        missing = [k for k in KEYS if k not in out]
        if missing:
            raise DataError(f"{what} returned a dict without {', '.join(missing)}")
        classes, out = out.get("classes"), [out[k] for k in KEYS]
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        raise DataError(f"{what} must return (x_train, y_train, x_test, y_test) NumPy arrays "
                        f"or a dict of them, got {type(out).__name__}")
    x_train, x_test = (_images(what, k, v) for k, v in (("x_train", out[0]), ("x_test", out[2])))
    y_train, y_test = (_labels(what, k, v) for k, v in (("y_train", out[1]), ("y_test", out[3])))
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise DataError(f"{what}: x_{split} holds {len(x)} images but y_{split} "
                            f"{len(y)} labels")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{what}: train images are {x_train.shape[1:]}, test images "
                        f"{x_test.shape[1:]}; both splits must share one shape")
    n = int(max(y_train.max(), y_test.max())) + 1
    if classes is None:
        classes = tuple(str(i) for i in range(n))
    classes = tuple(str(c) for c in classes)
    if len(classes) < n:
        raise DataError(f"{what}: labels go up to {n - 1} but classes names only "
                        f"{len(classes)}")
    return RawData(name, x_train, y_train, x_test, y_test, classes)


def _images(what: str, key: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or min(x.shape) == 0:
        raise DataError(f"{what}: {key} has shape {x.shape}; images are N x H x W or "
                        f"N x H x W x C, none of them empty")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
        raise DataError(f"{what}: {key} is {x.dtype}; give uint8 images (0-255) or finite "
                        f"floats in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise DataError(f"{what}: {key} holds floats in [{lo:g}, {hi:g}]; floats must be in "
                        f"[0, 1] (or give uint8 images)")
    return np.rint(x * 255).astype(np.uint8)


def _labels(what: str, key: str, y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) == 0:
        raise DataError(f"{what}: {key} must be a non-empty 1-D array of integer class "
                        f"labels, got {y.dtype} of shape {y.shape}")
    if y.min() < 0:
        raise DataError(f"{what}: {key} holds the label {int(y.min())}; labels count from 0")
    return y.astype(np.int64)
