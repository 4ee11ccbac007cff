"""Datasets: names only at import time; loaders are imported when a dataset is loaded."""

DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10")
