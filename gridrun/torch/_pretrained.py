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

import os
from collections.abc import Mapping

import torch
from torch import nn

# The source parsing, download and cache are framework-neutral and shared with the keras
# trainer; their names stay importable from here.
from gridrun.data.weights import resolve_source, weights_cache_dir
from gridrun.torch._checkpoint import write_state
from gridrun.torch._models import backbone_name, base_modules, base_parameters, head_name

__all__ = ["load_pretrained", "save_weights", "freeze_base", "set_base_eval", "base_frozen",
           "weights_cache_dir", "resolve_source"]

_SHOW = 3  # mismatches of each kind named in an error message


# ---------------------------------------------------------------- files

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
