"""Seeded, stratified selection of examples: validation splits and training subsets.

Everything is built on one primitive, ``take_per_class``: pick a given number of
examples from each class. A stratified split asks it for counts proportional to the
class sizes (``proportional_counts``). Class-imbalance work plugs in here: an induced
imbalance ratio is just another way of choosing the per-class counts (for example a
geometric decay from the largest class to the smallest), fed to the same primitive, so
it stays seeded and reproducible in the same way.

All selections return sorted indices, so the chosen examples keep their official order
and the same arguments always give byte-identical arrays.
"""

from __future__ import annotations

import numpy as np

from gridrun.data._dataset import DataError

__all__ = ["proportional_counts", "take_per_class", "stratified_split", "stratified_subset"]

# Separate random streams per purpose, so changing e.g. train_size never moves which
# examples land in the validation set.
_VAL_STREAM, _SUBSET_STREAM = 0, 1


def proportional_counts(class_counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` across classes in proportion to ``class_counts``, summing exactly.

    Largest-remainder rounding in integer arithmetic: each class gets the floor of its
    exact share, and the leftover units go to the largest remainders (ties to the lower
    class index). So every class is within 1 of its exact share.

    >>> proportional_counts(np.array([5, 3, 2]), 5).tolist()
    [3, 1, 1]
    """
    class_counts = np.asarray(class_counts, dtype=np.int64)
    n = int(class_counts.sum())
    if not 0 <= total <= n:
        raise ValueError(f"cannot take {total} of {n} examples")
    if n == 0:
        return np.zeros_like(class_counts)
    base, remainder = np.divmod(class_counts * total, n)
    leftover = total - int(base.sum())
    order = np.argsort(-remainder, kind="stable")
    base[order[:leftover]] += 1
    return base


def take_per_class(y: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``counts[c]`` examples drawn at random from each class ``c``.

    >>> y = np.array([0, 1, 0, 1, 1])
    >>> idx = take_per_class(y, np.array([2, 1]), np.random.default_rng(0))
    >>> y[idx].tolist()
    [0, 0, 1]
    """
    chosen = []
    for c, k in enumerate(np.asarray(counts)):
        members = np.flatnonzero(y == c)
        if k > len(members):
            raise ValueError(f"class {c} has {len(members)} examples, cannot take {k}")
        chosen.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of ``y`` into ``(kept, held_out)``, holding out ``fraction`` per class.

    >>> kept, held = stratified_split(np.array([0] * 8 + [1] * 2), 0.5, seed=0)
    >>> len(held), int((np.array([0] * 8 + [1] * 2)[held] == 1).sum())
    (5, 1)
    """
    class_counts = np.bincount(y)
    held_total = int(round(len(y) * fraction))
    rng = np.random.default_rng([seed, _VAL_STREAM])
    held = take_per_class(y, proportional_counts(class_counts, held_total), rng)
    kept = np.setdiff1d(np.arange(len(y)), held, assume_unique=True)
    return kept, held


def stratified_subset(y: np.ndarray, size: int, seed: int, *,
                      what: str = "train_size") -> np.ndarray:
    """Sorted indices of a stratified subset of ``size`` examples of ``y``.

    >>> stratified_subset(np.array([0, 0, 0, 1, 1, 1]), 2, seed=0).size
    2
    """
    if size > len(y):
        raise DataError(f"{what}={size} is more than the {len(y)} training examples left "
                        f"after the validation split; use at most {len(y)}")
    rng = np.random.default_rng([seed, _SUBSET_STREAM])
    return take_per_class(y, proportional_counts(np.bincount(y), size), rng)
