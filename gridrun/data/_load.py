"""``load_dataset``: read a dataset's official train/test sets, then make gridrun's splits.

Two steps, each usable alone: ``load_raw`` gets the official sets from disk (verifying,
and downloading if asked), ``split_raw`` carves the validation set and the optional
training subset out of the official training set. The test set is never touched by
either, so test accuracy always means the same thing.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from gridrun.data import DATASET_NAMES, FOLDER_PREFIX
from gridrun.data._cifar import read_cifar_archive, read_cifar_folder
from gridrun.data._dataset import DataError, Dataset, RawData, data_dir
from gridrun.data._files import RemoteFile, fetch
from gridrun.data._folder import load_image_folder
from gridrun.data._idx import read_idx_pair
from gridrun.data._sources import CLASSES, IDX_ROLES, SOURCES
from gridrun.data._split import stratified_split, stratified_subset

__all__ = ["load_dataset", "load_raw", "split_raw", "RawData"]

# digits ships without a test split; this fixed seed makes one, the same for every run
# and independent of split_seed, so test accuracy is comparable across all runs.
_DIGITS_TEST_FRACTION, _DIGITS_TEST_SEED = 0.2, 1797

Files = Mapping[str, RemoteFile]


def load_dataset(name: str, *, val_fraction: float = 0.1, split_seed: int = 0,
                 train_size: int | None = None, root: Path | None = None,
                 download: bool = True, image_size: int = 32) -> Dataset:
    """Load ``name`` with a seeded, stratified validation split of its training set.

    ``root`` defaults to ``data_dir()``. Missing files are downloaded (and verified)
    unless ``download=False``; present files are verified and used without the network.
    ``train_size`` keeps a stratified subset of what remains for training.

    ``name`` may also be ``"folder:<path>"``: the image folder at ``<path>`` (one
    subfolder per class), its images resized to ``image_size`` square; its test set is a
    fixed stratified fifth of the images (see ``load_image_folder``). ``root`` and
    ``download`` do not apply to folders, and ``image_size`` applies only to them.

    >>> ds = load_dataset("digits", val_fraction=0.1, split_seed=0)
    >>> ds.x_train.shape, ds.x_val.shape, ds.x_test.shape
    ((1294, 8, 8, 1), (144, 8, 8, 1), (359, 8, 8, 1))
    """
    _check_split_args(val_fraction, split_seed, train_size)  # before seconds of reading
    if callable(name):  # a spec's own dataset function
        from gridrun.data._own import own_raw

        raw = own_raw(name)
    else:
        raw = load_raw(name, root=data_dir() if root is None else Path(root),
                       download=download, image_size=image_size)
    return split_raw(raw, val_fraction=val_fraction, split_seed=split_seed, train_size=train_size)


def load_raw(name: str, *, root: Path, download: bool = True,
             files: Files | None = None, image_size: int = 32) -> RawData:
    """Official train/test sets of ``name`` under ``root``; ``files`` overrides ``SOURCES``.

    ``"folder:<path>"`` reads the image folder at ``<path>`` (``root``, ``download`` and
    ``files`` unused) with images resized to ``image_size``.

    >>> load_raw("mnist", root=Path("/data"), download=False).x_train.shape  # doctest: +SKIP
    (60000, 28, 28, 1)
    """
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        path = name[len(FOLDER_PREFIX):]
        if not path.strip():
            raise DataError(f"dataset {name!r} names no folder: write {FOLDER_PREFIX}<path>")

        return dataclasses.replace(load_image_folder(path, image_size), name=name)
    if name not in DATASET_NAMES:
        close = difflib.get_close_matches(str(name), DATASET_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}"
                        f" or {FOLDER_PREFIX}<path> (an image folder){hint}")
    files = SOURCES.get(name, {}) if files is None else files
    return _LOADERS[name](name, Path(root), download, files)


def split_raw(raw: RawData, *, val_fraction: float = 0.1, split_seed: int = 0,
              train_size: int | None = None) -> Dataset:
    """Make a ``Dataset`` from official sets: stratified validation split, optional subset.

    >>> split_raw(raw, val_fraction=0.1, split_seed=3, train_size=1000)  # doctest: +SKIP
    Dataset(name='mnist', train=1000, val=6000, test=10000, image_shape=(28, 28, 1), classes=10)
    """
    _check_split_args(val_fraction, split_seed, train_size)
    kept, held = stratified_split(raw.y_train, val_fraction, split_seed)
    if val_fraction > 0 and len(held) == 0:
        raise DataError(f"val_fraction={val_fraction} of {len(raw.y_train)} {raw.name} training "
                        f"examples leaves no validation example; use a larger fraction or 0")
    if train_size is not None:
        kept = kept[stratified_subset(raw.y_train[kept], train_size, split_seed)]
    # Later selection steps (induced class imbalance, label noise) act here, on `kept`,
    # through _split.take_per_class, and never on the validation or test sets.
    return Dataset(
        name=raw.name,
        x_train=raw.x_train[kept], y_train=raw.y_train[kept],
        x_val=raw.x_train[held], y_val=raw.y_train[held],
        x_test=raw.x_test, y_test=raw.y_test,
        classes=raw.classes,
    )


def _check_split_args(val_fraction, split_seed, train_size) -> None:
    if (isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real)
            or not 0 <= val_fraction < 1):
        raise DataError(f"val_fraction={val_fraction!r} must be a number in [0, 1), e.g. 0.1")
    if (isinstance(split_seed, bool) or not isinstance(split_seed, numbers.Integral)
            or split_seed < 0):
        raise DataError(f"split_seed={split_seed!r} must be a non-negative integer")
    if train_size is not None and (isinstance(train_size, bool)
                                   or not isinstance(train_size, numbers.Integral)
                                   or train_size < 1):
        raise DataError(f"train_size={train_size!r} must be a positive integer or None")


def _load_digits(name: str, root: Path, download: bool, files: Files) -> RawData:
    try:
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no network
    except ImportError:
        raise ImportError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    # Pixel values are 0..16; scale to the 0..255 range every other dataset uses.
    x = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[..., np.newaxis]
    y = bunch.target.astype(np.int64)
    train, test = stratified_split(y, _DIGITS_TEST_FRACTION, _DIGITS_TEST_SEED)
    return RawData(name, x[train], y[train], x[test], y[test], CLASSES[name])


def _load_idx(name: str, root: Path, download: bool, files: Files) -> RawData:
    # Fetch (and verify) all four files before reading any, so that a missing file is
    # reported before seconds are spent decompressing the others.
    paths = {role: fetch(files[role], root, download=download) for role in IDX_ROLES}
    x_train, y_train = read_idx_pair(paths["train_images"], paths["train_labels"])
    x_test, y_test = read_idx_pair(paths["test_images"], paths["test_labels"])
    classes = CLASSES[name]
    for role, y in (("train_labels", y_train), ("test_labels", y_test)):
        if y.max() >= len(classes):
            raise DataError(f"{paths[role]}: label {y.max()} found, but {name} has "
                            f"{len(classes)} classes; check which file is at this path")
    return RawData(name, x_train, y_train, x_test, y_test, classes)


def _load_cifar(name: str, root: Path, download: bool, files: Files) -> RawData:
    batches = tuple(m for m in files if m.startswith("data_batch_"))
    archive = files["archive"]
    folder = root / Path(files["test_batch"].path).parent
    if not (root / archive.path).exists() and folder.is_dir():
        for member in (*batches, "test_batch", "batches.meta"):
            fetch(files[member], root, download=False)
        return RawData(name, *read_cifar_folder(folder, batches))
    path = fetch(archive, root, download=download)
    return RawData(name, *read_cifar_archive(path, batches))


_LOADERS: Mapping[str, Callable[[str, Path, bool, Files], RawData]] = {
    "digits": _load_digits,
    "mnist": _load_idx,
    "fashion_mnist": _load_idx,
    "cifar10": _load_cifar,
}
