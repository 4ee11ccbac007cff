"""The registry of training techniques: the names a spec may use, and their allowed values.

This is the single source of truth a spec is validated against. The same strings name the
spec's factors, the columns of ``trials.parquet`` and the rows of a report.

    >>> get("optimizer").choices
    ('sgd', 'adam', 'rmsprop')
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Technique", "TECHNIQUES", "get", "names", "check_value", "suggest", "same_level"]


@dataclass(frozen=True)
class Technique:
    """One technique: its kind of value, its default, and what a spec may set it to."""

    name: str
    kind: str  # "bool" | "choice" | "float" | "int"
    default: Any
    description: str
    choices: tuple = ()
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # exclusive when max_exclusive
    max_exclusive: bool = False
    nullable: bool = False  # None is allowed (means "the framework's default")
    factor: bool = True  # may be varied as a factor (False: fixed-only, e.g. epochs)

    def allowed(self) -> str:
        """Human description of the allowed values, for error messages."""
        if self.kind == "bool":
            text = "True or False"
        elif self.kind == "choice":
            text = ", ".join(map(str, self.choices))
        else:
            lo = "-inf" if self.minimum is None else _fmt(self.minimum)
            hi = "inf" if self.maximum is None else _fmt(self.maximum)
            close = ")" if self.max_exclusive or self.maximum is None else "]"
            text = f"{'an integer' if self.kind == 'int' else 'a number'} in [{lo}, {hi}{close}"
        return text + (" or None" if self.nullable else "")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


_ALL = (
    Technique("augmentation", "bool", False,
              "Random crop (zero padding of 1/8 of the image side) and horizontal flip, "
              "applied to whole batches on the training device."),
    Technique("crop", "bool", False,
              "Random crop alone (zero padding of 1/8 of the image side), no flip: label-safe "
              "where a mirror image is another class (digits, text). Redundant with "
              "augmentation, which crops too."),
    Technique("batchnorm", "bool", False, "Batch normalization after every convolution."),
    Technique("dropout", "float", 0.0, "Dropout rate before the classifier layer(s).",
              minimum=0.0, maximum=1.0, max_exclusive=True),
    Technique("optimizer", "choice", "sgd",
              "sgd (momentum 0.9), adam or rmsprop.", choices=("sgd", "adam", "rmsprop")),
    Technique("lr", "float", None,
              "Learning rate; None uses the optimizer's default (sgd 0.05, adam 0.001, "
              "rmsprop 0.001).", minimum=1e-8, maximum=10.0, nullable=True),
    Technique("weight_decay", "float", 0.0, "L2 weight decay strength.",
              minimum=0.0, maximum=1.0),
    Technique("backbone", "choice", "simple_cnn",
              "simple_cnn (two conv-pool blocks), resnet20 (residual blocks, He et al. 2016), "
              "vgg_small (VGG-style conv-conv-pool stacks).",
              choices=("simple_cnn", "resnet20", "vgg_small")),
    Technique("epochs", "int", 10, "Training epochs (ASHA's maximum budget).",
              minimum=1, maximum=100_000, factor=False),
    Technique("batch_size", "int", 128, "Training batch size.", minimum=1, maximum=65_536),
)

TECHNIQUES: dict[str, Technique] = {t.name: t for t in _ALL}


def names() -> list[str]:
    """Every registered technique name, in registry order."""
    return list(TECHNIQUES)


def suggest(word: str, options) -> str:
    """' (did you mean 'x'?)' for the closest option, or '' when nothing is close."""
    opts = [str(o) for o in options]
    close = difflib.get_close_matches(str(word), opts, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def get(name: str) -> Technique:
    """The technique called ``name``; ValueError listing the valid names otherwise."""
    try:
        return TECHNIQUES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown technique {name!r}; allowed: {', '.join(TECHNIQUES)}"
                         f"{suggest(name, TECHNIQUES)}") from None


def check_value(technique: Technique, value: Any) -> Any:
    """Return ``value`` normalised for ``technique`` (ints become floats for float
    techniques), or raise ValueError saying what is allowed."""
    t = technique
    if value is None:
        if t.nullable:
            return None
        raise ValueError(f"None is not allowed; allowed: {t.allowed()}")
    if t.kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{value!r} is a {type(value).__name__}; allowed: {t.allowed()}")
    if t.kind == "choice":
        if isinstance(value, str) and value in t.choices:
            return value
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is a {type(value).__name__}; allowed: {t.allowed()}")
        raise ValueError(f"unknown level {value!r}; allowed: {t.allowed()}"
                         f"{suggest(value, t.choices)}")
    # numeric kinds; bool is an int subclass but never a number here
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is a {type(value).__name__}; allowed: {t.allowed()}")
    if t.kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{value!r} is not an integer; allowed: {t.allowed()}")
            value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not finite; allowed: {t.allowed()}")
    too_low = t.minimum is not None and value < t.minimum
    too_high = t.maximum is not None and (value >= t.maximum if t.max_exclusive
                                          else value > t.maximum)
    if too_low or too_high:
        raise ValueError(f"{value!r} is out of range; allowed: {t.allowed()}")
    return value


def same_level(a: Any, b: Any) -> bool:
    """Whether two level values are the same level: equal and of the same kind, where a
    bool is never a number but an int equals the float it denotes (0 and 0.0).

    >>> same_level(0, 0.0), same_level(True, 1), same_level("sgd", "sgd")
    (True, False, True)
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b
