"""The TensorFlow/Keras trainer: the same backbones, techniques, data splits, seeds and
metrics as ``gridrun.torch``, built with Keras 3 on the TensorFlow backend.

Importing this package imports TensorFlow (quietly: the C++ start-up messages it prints
while loading are dropped (and the CUDA probe's complaint on a machine without a GPU) unless ``GRIDRUN_TF_LOGS=1``); ``import gridrun`` never imports
it, and nothing here imports torch.

    >>> from gridrun.keras import Trainer, prepare_data, set_threads   # doctest: +SKIP
    >>> set_threads(1)                                                  # doctest: +SKIP
    >>> trainer = Trainer(config, prepare_data(dataset), seed=0)        # doctest: +SKIP

Every choice where Keras and PyTorch differ by default is made explicit and equal; the
list is in ``docs/frameworks.md``.
"""

from __future__ import annotations

import os

__all__ = ["train", "Trainer", "KerasData", "prepare_data", "set_threads", "release",
           "build_model", "count_parameters", "check_model"]


def _import_tensorflow():
    """Import TensorFlow with its load-time messages (oneDNN, CUDA stubs) dropped: they are
    written to the process's stderr before any logging setting applies."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    loud = os.environ.get("GRIDRUN_TF_LOGS") == "1"
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    if not loud:
        os.dup2(null, 2)
    try:
        import keras  # noqa: F401
        import tensorflow

        tensorflow.config.list_physical_devices()  # probes CUDA, noisily, without a GPU
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


_import_tensorflow()

import tensorflow as tf  # noqa: E402

if os.environ.get("GRIDRUN_TF_LOGS") != "1":  # e.g. retracing notes: not the user's concern
    tf.get_logger().setLevel("ERROR")

_LAZY = {"train": "_train", "Trainer": "_train", "KerasData": "_data",
         "prepare_data": "_data", "build_model": "_models", "count_parameters": "_models",
         "check_model": "_own"}


def __getattr__(name):
    # Submodules load on first use: ``gridrun.keras._models`` alone does not need the trainer.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"gridrun.keras.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'gridrun.keras' has no attribute {name!r}")


def set_threads(threads: int | None) -> None:
    """Bound TensorFlow's intra- and inter-op thread pools to ``threads`` (TensorFlow does
    not follow Ray's CPU allocation by itself). TensorFlow fixes its pools when it first
    runs an op: after that a different number cannot apply, and the pools keep the number
    they started with (a reused Ray actor always gets the same allocation). None: leave
    TensorFlow's choice."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    now = (tf.config.threading.get_intra_op_parallelism_threads(),
           tf.config.threading.get_inter_op_parallelism_threads())
    if now == (threads, threads):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime is initialized: its pools are fixed
        pass


def release() -> None:
    """Before a reused worker's next cell: drop cached programs beyond what the cache keeps.
    Trainers of finished cells are gone with the cell; their programs (model, optimizer,
    traced steps) stay cached, bounded by ``gridrun.keras._program.CACHE_BYTES``, so the
    next cell of the same structure starts without tracing. (``keras.backend.clear_session``
    would cost 0.25 s per cell and free nothing that the cache bound does not.)"""
    from gridrun.keras._program import detach_programs, trim_programs

    detach_programs()
    trim_programs()
