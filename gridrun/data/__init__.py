"""Datasets: names only at import time; loaders are imported when a dataset is loaded.

    >>> from gridrun.data import load_dataset
    >>> ds = load_dataset("digits", val_fraction=0.1, split_seed=0)
    >>> ds
    Dataset(name='digits', train=1294, val=144, test=359, image_shape=(8, 8, 1), classes=10)

``mnist`` and ``fashion_mnist`` are read from the original IDX ``.gz`` files, and
``cifar10`` from ``cifar-10-python.tar.gz``, under ``data_dir()`` (``$GRIDRUN_DATA_DIR``
or ``~/.cache/gridrun``): ``mnist/``, ``fashion-mnist/``, ``cifar10/``. Missing files
are downloaded and checked against their published checksums.

``load_dataset("folder:/path/to/root")`` reads a folder of images, one subfolder per
class (see ``load_image_folder``). The data problems a trial induces on its training
split (class imbalance, label noise) and their remedies (oversampling, class weights,
input normalization) are pure numpy functions: ``imbalance_indices``, ``noisy_labels``,
``oversample_indices``, ``class_weights``, ``normalization_params``, ``normalize_images``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10")
# A dataset name "folder:<path>" loads the image folder at <path>.
FOLDER_PREFIX = "folder:"
# Input scalings (the "normalize" technique); see normalization_params.
NORMALIZATIONS = ("none", "rescale", "standardize")

__all__ = ["DATASET_NAMES", "FOLDER_PREFIX", "NORMALIZATIONS", "Dataset", "DataError",
           "data_dir", "load_dataset", "load_image_folder", "imbalance_indices",
           "noisy_labels", "class_weights", "oversample_indices", "normalization_params",
           "normalize_images"]

if TYPE_CHECKING:
    from gridrun.data._dataset import DataError, Dataset, data_dir
    from gridrun.data._folder import load_image_folder
    from gridrun.data._load import load_dataset
    from gridrun.data._problems import (class_weights, imbalance_indices, normalization_params,
                                        normalize_images, noisy_labels, oversample_indices)

# `import gridrun` imports this package (the spec checks dataset names), so numpy and
# the readers load only when something below is first used.
_LAZY = {
    "Dataset": "gridrun.data._dataset",
    "DataError": "gridrun.data._dataset",
    "data_dir": "gridrun.data._dataset",
    "load_dataset": "gridrun.data._load",
    "load_image_folder": "gridrun.data._folder",
    "imbalance_indices": "gridrun.data._problems",
    "noisy_labels": "gridrun.data._problems",
    "class_weights": "gridrun.data._problems",
    "oversample_indices": "gridrun.data._problems",
    "normalization_params": "gridrun.data._problems",
    "normalize_images": "gridrun.data._problems",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
