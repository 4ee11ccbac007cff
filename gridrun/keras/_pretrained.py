"""Pretrained weights for a Keras backbone's base: saving them as ``.npz`` and loading them.

    >>> save_weights(source_model, "cifar10-resnet20.npz")              # doctest: +SKIP
    >>> model = build_model("resnet20", 3, 5, 32, batchnorm=True, dropout=0.0)  # doctest: +SKIP
    >>> keys = load_pretrained(model, "cifar10-resnet20.npz#sha256=9f86d0...")  # doctest: +SKIP
    >>> set_base_trainable(model, False)                                # doctest: +SKIP

A weights file is an ``.npz`` (``numpy.savez``) mapping each variable's path
(``"stem.0/kernel"``, ``"stem.1/moving_mean"``) to its array: every weight of the model,
of which loading takes the base (:mod:`gridrun.keras._split`); the head was trained for
other classes. Sources are parsed, downloaded and cached as for the torch trainer
(:mod:`gridrun.data.weights`). Freezing is :func:`gridrun.keras._split.set_base_trainable`.
"""

from __future__ import annotations

import io
import os
import zipfile

import keras
import numpy as np

from gridrun.store.location import Location
from gridrun.data.weights import resolve_source, weights_cache_dir
from gridrun.keras._split import backbone_name, base_variables, head_name

__all__ = ["save_weights", "model_bytes", "load_pretrained", "weights_cache_dir",
           "resolve_source"]

_SHOW = 3  # mismatches of each kind named in an error message


# ---------------------------------------------------------------- saving

def model_bytes(model: keras.Model) -> bytes:
    """The ``.npz`` bytes of every weight of ``model``, keyed by variable path (batch-norm
    moving statistics included; dropout seed states, which are not weights, left out)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{v.path: np.asarray(v.numpy()) for v in model.weights})
    return buffer.getvalue()


def save_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Write :func:`model_bytes` to ``path`` atomically (a temporary file beside it, then
    renamed): an interrupted write leaves the previous file, never half a file."""
    Location(os.fspath(path)).write_bytes(model_bytes(model))


# ---------------------------------------------------------------- loading

def load_pretrained(model: keras.Model, source: str | os.PathLike, *,
                    cache_dir: str | os.PathLike | None = None) -> list[str]:
    """Copy the base weights of ``source`` into ``model``; return the paths loaded.

    ``source`` is a local path or an http(s) URL, either optionally ending in
    ``#sha256=<64 hex digits>``, which the file must match. A URL is downloaded once into
    ``cache_dir`` (default :func:`weights_cache_dir`) and reused from there.

    The file is an ``.npz`` :func:`save_weights` wrote. Its head entries are skipped; its
    base must be exactly the model's: the same paths (kernels, biases, batch-norm scales,
    shifts and moving statistics) with the same shapes, else ValueError naming the first
    mismatches, and the model is left unchanged. The model's head is left as it was.

    Raises ValueError for a bad hash, a failed download, a file that is not such an
    ``.npz`` (a PyTorch checkpoint among them) or one that does not fit;
    FileNotFoundError for a missing local file.
    """
    path = resolve_source(source, cache_dir=cache_dir)
    loaded = _read_npz(path)
    prefix = head_name(model) + "."
    base = {k: v for k, v in loaded.items() if not k.startswith(prefix)}
    variables = {v.path: v for v in base_variables(model)}
    shapes = [f"{k} (file {_shape(v.shape)}, model {_shape(variables[k].shape)})"
              for k, v in base.items() if k in variables
              and tuple(variables[k].shape) != tuple(v.shape)]
    unexpected = [k for k in base if k not in variables]
    missing = [k for k in variables if k not in base]
    problems = [f"{what}: {_first(keys)}" for what, keys in (
        ("other shapes", shapes), ("not in the model", unexpected),
        ("missing from the file", missing)) if keys]
    if problems:
        raise ValueError(f"pretrained weights do not fit backbone {backbone_name(model)}: "
                         + "; ".join(problems) + f" (from {path})")
    for key, variable in variables.items():
        variable.assign(base[key].astype(variable.dtype))
    return list(variables)


def _read_npz(path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` weights file; ValueError saying what it is otherwise."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        # torch.save writes a zip too, of a pickle and raw storages instead of .npy files
        if any(n.endswith("data.pkl") for n in names):
            raise ValueError(_torch_message(path))
    else:
        with open(path, "rb") as f:
            if f.read(1) == b"\x80":  # a pickle: torch.save's legacy format
                raise ValueError(_torch_message(path))
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"a single {type(npz).__name__}, not a mapping of names")
        with npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # noqa: BLE001 - numpy's zip, format and pickle errors alike
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"cannot read pretrained weights {path}: not an .npz of arrays "
                         f"({type(e).__name__}: {first_line})") from None
    if not arrays or not all(isinstance(v, np.ndarray) and v.dtype.kind in "fiub"
                             for v in arrays.values()):
        raise ValueError(f"cannot read pretrained weights {path}: not an .npz of numeric "
                         f"arrays")
    return arrays


def _torch_message(path) -> str:
    return (f"{path} is a PyTorch checkpoint; the tensorflow trainer reads .npz weights "
            f"written by a tensorflow run (keep_weights=True, then gridrun weights RUN "
            f"--out FILE)")


def _first(items: list[str]) -> str:
    more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"
