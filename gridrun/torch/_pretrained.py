"""Pretrained weights for a backbone's base, and freezing the base for fine-tuning.

    >>> save_weights(source_model, "cifar10-resnet20.pt")                # doctest: +SKIP
    >>> model = build_model("resnet20", 3, 5, 32, batchnorm=True, dropout=0.0)  # doctest: +SKIP
    >>> keys = load_pretrained(model, "cifar10-resnet20.pt#sha256=9f86d0...")   # doctest: +SKIP
    >>> freeze_base(model, True)                                         # doctest: +SKIP

The *base* is every layer before the classifier and the *head* the classifier layers
(:func:`gridrun.torch._models.head_name` says which submodule that is per backbone). A
pretrained file gives the base only: its head was trained for other classes.

Freezing rule: the base counts as frozen while none of its parameters requires a gradient.
Then its batch-norm layers are kept in eval mode (they normalise with their running
statistics and do not update them, as Keras does for a non-trainable BatchNormalization).
``model.train()`` puts them back in training mode, so call :func:`freeze_base` (or
:func:`set_base_eval`) again after every ``model.train()``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from gridrun.data._dataset import DataError
from gridrun.data._files import RemoteFile, _hash_file, _stream, fetch, is_url, split_source
from gridrun.torch._checkpoint import write_state
from gridrun.torch._models import backbone_name, base_modules, base_parameters, head_name

__all__ = ["load_pretrained", "save_weights", "freeze_base", "set_base_eval", "base_frozen",
           "weights_cache_dir", "resolve_source"]

_SHOW = 3  # mismatches of each kind named in an error message


# ---------------------------------------------------------------- files

def weights_cache_dir() -> Path:
    """Where downloaded weights are kept: ``$GRIDRUN_CACHE`` if set, else
    ``$XDG_CACHE_HOME/gridrun/weights``, else ``~/.cache/gridrun/weights``."""
    explicit = os.environ.get("GRIDRUN_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "gridrun" / "weights"
    return Path.home() / ".cache" / "gridrun" / "weights"


def resolve_source(source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
                   ) -> Path:
    """The verified local file of ``source`` (see :func:`load_pretrained`), downloading a
    URL into ``cache_dir`` unless it is there already."""
    location, digest = split_source(source)
    if is_url(location):
        return _cached_download(location, digest, cache_dir)
    if "://" in location:
        raise ValueError(f"{location}: only local paths and http(s) URLs are supported")
    path = Path(location).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file {path} not found")
    if digest is not None:
        actual = _hash_file(path, "sha256")
        if actual != digest:
            raise ValueError(f"{path} has sha256 {actual}, expected {digest}: not the "
                             f"weights the #sha256= names")
    return path


def _cached_download(url: str, digest: str | None, cache_dir) -> Path:
    """Download ``url`` once into the cache. With a digest the file is named by it and
    verified (on download and on reuse); without one it is named by the URL and trusted
    once downloaded."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else weights_cache_dir()
    stem = Path(urllib.parse.urlsplit(url).path).name or "weights"
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[-80:]
    if digest is not None:
        name = f"sha256-{digest}-{stem}"
        try:
            return fetch(RemoteFile(name, url, digest), root)
        except DataError as e:
            raise ValueError(f"pretrained weights: {e}") from None
    name = f"url-{hashlib.sha256(url.encode()).hexdigest()[:32]}-{stem}"
    path = root / name
    if path.is_file():
        return path
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{name}.", suffix=".part")
    except OSError as e:
        raise ValueError(f"cannot write the weights cache {root} ({e.strerror or e}); set "
                         f"GRIDRUN_CACHE to a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as out:
            _stream(url, out, "sha256")
        os.replace(tmp, path)
    except (OSError, http.client.HTTPException, ValueError) as e:  # URLError is an OSError
        raise ValueError(f"could not download pretrained weights {url} "
                         f"({getattr(e, 'reason', None) or e})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """``torch.save(model.state_dict(), path)``, written atomically (a temporary file
    beside ``path``, then renamed): a file :func:`load_pretrained` reads."""
    write_state(model.state_dict(), path)


# ---------------------------------------------------------------- loading

def load_pretrained(model: nn.Module, source: str | os.PathLike, *,
                    cache_dir: str | os.PathLike | None = None) -> list[str]:
    """Copy the base weights of ``source`` into ``model``; return the keys loaded.

    ``source`` is a local path or an http(s) URL, either optionally ending in
    ``#sha256=<64 hex digits>``, which the file must match. A URL is downloaded once into
    ``cache_dir`` (default :func:`weights_cache_dir`) and reused from there.

    The file is a ``torch.save``-d ``state_dict`` (:func:`save_weights`) or a gridrun
    trainer state (its ``"model"`` entry), read with ``weights_only=True``. Its head keys
    are skipped; its base must be exactly the model's: the same keys (parameters and
    batch-norm buffers) with the same shapes, else ValueError naming the first
    mismatches. The model's head is left as it was.

    Raises ValueError for a bad hash, an unreadable or unfitting file or a failed download,
    FileNotFoundError for a missing local file.
    """
    path = resolve_source(source, cache_dir=cache_dir)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle, zip and weights-only errors alike
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"cannot read pretrained weights {path}: not a torch.save file of "
                         f"tensors ({type(e).__name__}: {first_line})") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), Mapping):
        loaded = loaded["model"]
    if not isinstance(loaded, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise ValueError(f"{path} is not a state_dict (a mapping of names to tensors) nor a "
                         f"gridrun trainer state with one under 'model'")
    state = model.state_dict()
    prefix = head_name(model) + "."
    base = {k: v for k, v in loaded.items() if not k.startswith(prefix)}
    shapes = [f"{k} (file {_shape(v)}, model {_shape(state[k])})"
              for k, v in base.items() if k in state and state[k].shape != v.shape]
    unexpected = [k for k in base if k not in state]
    missing = [k for k in state if not k.startswith(prefix) and k not in base]
    problems = [f"{what}: {_first(keys)}" for what, keys in (
        ("other shapes", shapes), ("not in the model", unexpected),
        ("missing from the file", missing)) if keys]
    if problems:
        raise ValueError(f"pretrained weights do not fit backbone {backbone_name(model)}: "
                         + "; ".join(problems) + f" (from {path})")
    state.update(base)
    model.load_state_dict(state)
    return [k for k in state if k in base]


def _first(items: list[str]) -> str:
    more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


# ---------------------------------------------------------------- freezing

def base_frozen(model: nn.Module) -> bool:
    """Whether the base is frozen: it has parameters and none requires a gradient."""
    params = base_parameters(model)
    return bool(params) and not any(p.requires_grad for p in params)


def set_base_eval(model: nn.Module) -> bool:
    """If the base is frozen, put its batch-norm layers in eval mode, so that they neither
    use batch statistics nor update their running ones; call after ``model.train()``.
    Returns whether the base is frozen. (The base has no dropout; only batch norm behaves
    differently in training mode.)"""
    frozen = base_frozen(model)
    if frozen:
        for module in base_modules(model):
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    return frozen


def freeze_base(model: nn.Module, frozen: bool) -> None:
    """Freeze (``frozen=True``) or unfreeze the base: its parameters' ``requires_grad``,
    and its batch-norm layers' mode (eval while frozen, else the model's own mode).

    Optimizers skip parameters without a gradient, so build the optimizer over all
    parameters and zero gradients with ``set_to_none=True`` (the default). As
    ``model.train()`` switches batch norm back to training mode, call this (or
    :func:`set_base_eval`) after it while the base is frozen."""
    for p in base_parameters(model):
        p.requires_grad_(not frozen)
    if frozen:
        set_base_eval(model)
    else:
        for module in base_modules(model):
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train(model.training)
