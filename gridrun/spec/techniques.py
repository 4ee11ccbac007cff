"""The registry of training techniques: the names a spec may use, and their allowed values.

This is the single source of truth a spec is validated against. The same strings name the
spec's factors, the columns of ``trials.parquet`` and the rows of a report.

    >>> get("optimizer").choices
    ('sgd', 'nesterov', 'adam', 'adamw', 'rmsprop')
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Technique", "TECHNIQUES", "get", "names", "check_value", "suggest", "same_level",
           "FIRST", "GROUPS", "FRAMEWORKS", "for_framework", "check_config"]


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
    group: str = "other"  # the catalogue section `gridrun techniques` lists it under
    frameworks: tuple = ("torch", "tensorflow")  # the trainers that implement it

    def allowed(self) -> str:
        """Human description of the allowed values, for error messages."""
        if self.kind == "bool":
            text = "True or False"
        elif self.kind == "str":
            text = "a non-empty string"
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


def _t(name, kind, default, description, group, **kw) -> Technique:
    return Technique(name, kind, default, description, group=group, **kw)


FRAMEWORKS = ("torch", "tensorflow")

_ALL = (
    # -- the trainer itself: a factor like any other, so an effect can be shown in both
    _t("framework", "choice", "torch",
       "The trainer: torch (PyTorch) or tensorflow (Keras 3 on TensorFlow). The same "
       "backbones, techniques, data and seeds in both; as a factor, the report shows each "
       "effect per framework.", "framework", choices=FRAMEWORKS),
    # -- input
    _t("normalize", "choice", "standardize",
       "Input scaling: none (raw 0-255 pixels), rescale ([0, 1]) or standardize (per-channel "
       "mean and std of the training images).", "input",
       choices=("none", "rescale", "standardize")),
    # -- augmentation (whole batches on the training device; label-safe unless noted)
    _t("augmentation", "bool", False,
       "Random crop (zero padding of 1/8 of the image side) and horizontal flip: the "
       "'standard' policy as one switch.", "augmentation"),
    _t("augment_policy", "choice", "none",
       "Named policy: none; standard (crop + flip); strong (standard, then rotation 15 deg, "
       "zoom 0.1, brightness and contrast 0.2, random erasing p 0.25).", "augmentation",
       choices=("none", "standard", "strong")),
    _t("crop", "bool", False,
       "Random crop alone (zero padding of 1/8 of the image side), no flip: label-safe "
       "where a mirror image is another class (digits, text).", "augmentation"),
    _t("flip", "bool", False, "Random horizontal flip alone (p 0.5); changes the meaning of "
       "digits and text.", "augmentation"),
    _t("rotation", "float", 0.0, "Random rotation, uniform in [-x, x] degrees.",
       "augmentation", minimum=0.0, maximum=180.0),
    _t("zoom", "float", 0.0, "Random zoom, scale uniform in [1-x, 1+x].", "augmentation",
       minimum=0.0, maximum=1.0, max_exclusive=True),
    _t("shear", "float", 0.0, "Random horizontal shear, uniform in [-x, x] degrees.",
       "augmentation", minimum=0.0, maximum=90.0, max_exclusive=True),
    _t("fill_mode", "choice", "constant",
       "What rotation, zoom and shear put where the image no longer covers: constant "
       "(black), nearest (edge pixels) or reflect.", "augmentation",
       choices=("constant", "nearest", "reflect")),
    _t("brightness", "float", 0.0, "Color jitter: brightness factor in [1-x, 1+x].",
       "augmentation", minimum=0.0, maximum=1.0),
    _t("contrast", "float", 0.0, "Color jitter: contrast factor in [1-x, 1+x].",
       "augmentation", minimum=0.0, maximum=1.0),
    _t("saturation", "float", 0.0, "Color jitter: saturation factor in [1-x, 1+x] (RGB "
       "images only).", "augmentation", minimum=0.0, maximum=1.0),
    _t("hue", "float", 0.0, "Color jitter: hue shift in [-x, x] of the color circle (RGB "
       "images only).", "augmentation", minimum=0.0, maximum=0.5),
    _t("erasing", "float", 0.0, "Random erasing (cutout): probability that an image gets "
       "a black rectangle of 2-33% of its area.", "augmentation", minimum=0.0, maximum=1.0),
    _t("mixup", "float", 0.0, "Mixup alpha (0: off): images and labels mixed with a "
       "Beta(alpha, alpha) weight; changes labels (soft targets).", "augmentation",
       minimum=0.0, maximum=10.0),
    _t("cutmix", "float", 0.0, "CutMix alpha (0: off): a box pasted from another image, "
       "labels mixed by its area; changes labels (soft targets).", "augmentation",
       minimum=0.0, maximum=10.0),
    # -- architecture
    _t("backbone", "choice", "simple_cnn",
       "simple_cnn (two conv-pool blocks), vgg (VGG-11/13/16 stacks, see depth), vgg_small "
       "(three conv-conv-pool stacks), resnet20 (CIFAR ResNet, He et al. 2016; depth "
       "20/32/44/56), resnet18 (ResNet-18 for small images).", "architecture",
       choices=("simple_cnn", "resnet20", "vgg_small", "vgg", "resnet18")),
    _t("depth", "int", None, "Backbone depth: vgg 11, 13 or 16 (default 11); resnet20 20, "
       "32, 44 or 56 (default 20); None for the others.", "architecture",
       minimum=1, maximum=1000, nullable=True),
    _t("width", "float", 1.0, "Channel multiplier of every convolution.", "architecture",
       minimum=0.0625, maximum=16.0),
    _t("activation", "choice", "relu", "Nonlinearity: relu, leaky_relu (slope 0.01) or elu.",
       "architecture", choices=("relu", "leaky_relu", "elu")),
    _t("pooling", "choice", "max", "Downsampling pools of simple_cnn and the vgg stacks: max "
       "or avg (the resnets downsample by stride).", "architecture", choices=("max", "avg")),
    _t("global_pool", "bool", False, "simple_cnn: global average pool before the classifier "
       "instead of flattening (vgg and resnets always pool globally).", "architecture"),
    _t("batchnorm", "bool", False, "Batch normalization after every convolution.",
       "architecture"),
    _t("dropout", "float", 0.0, "Dropout rate before the classifier layer(s).",
       "architecture", minimum=0.0, maximum=1.0, max_exclusive=True),
    # -- pretrained weights and fine-tuning
    _t("pretrained", "str", None, "Weights for the backbone's base (every layer before the "
       "classifier): a file or an http(s) URL, optionally ending in #sha256=<hex> "
       "(checked; URLs are downloaded once into the cache).", "transfer", nullable=True),
    _t("freeze_epochs", "int", 0, "Epochs the base is frozen at the start (only the "
       "classifier trains); then the whole net trains at lr x finetune_lr.", "transfer",
       minimum=0, maximum=100_000),
    _t("finetune_lr", "float", 1.0, "Learning-rate factor for the whole net once the base is "
       "unfrozen (e.g. 0.1).", "transfer", minimum=1e-6, maximum=1.0),
    # -- regularization
    _t("weight_decay", "float", 0.0, "L2 weight decay: coupled (added to the gradient) for "
       "sgd, nesterov, adam and rmsprop; decoupled for adamw.", "regularization",
       minimum=0.0, maximum=1.0),
    _t("l1", "float", 0.0, "L1 penalty on conv and linear weights, added to the loss.",
       "regularization", minimum=0.0, maximum=1.0),
    _t("label_smoothing", "float", 0.0, "Label smoothing of the training targets.",
       "regularization", minimum=0.0, maximum=1.0, max_exclusive=True),
    _t("early_stopping", "int", 0, "Patience in epochs (0: off): training stops when the "
       "monitored metric has not improved for this many epochs, and the best weights are "
       "restored; later epochs report the restored model.", "regularization",
       minimum=0, maximum=100_000),
    _t("early_stopping_monitor", "choice", "val_loss", "What early stopping watches.",
       "regularization", choices=("val_loss", "val_acc")),
    # -- optimization
    _t("optimizer", "choice", "sgd",
       "sgd (with momentum, see momentum), nesterov, adam, adamw (decoupled weight decay) "
       "or rmsprop.", "optimization", choices=("sgd", "nesterov", "adam", "adamw", "rmsprop")),
    _t("momentum", "float", 0.9, "Momentum of sgd and nesterov (0: plain SGD).",
       "optimization", minimum=0.0, maximum=1.0, max_exclusive=True),
    _t("lr", "float", None,
       "Learning rate; None uses the optimizer's default (sgd 0.05, nesterov 0.05, adam 0.001, "
       "adamw 0.001, rmsprop 0.001).", "optimization", minimum=1e-8, maximum=10.0,
       nullable=True),
    _t("lr_schedule", "choice", "constant",
       "constant, step (x lr_gamma every lr_step_epochs), exponential (x lr_gamma per epoch, "
       "lr_staircase), cosine (to 0), onecycle, cyclic.", "optimization",
       choices=("constant", "step", "exponential", "cosine", "onecycle", "cyclic")),
    _t("lr_step_epochs", "int", None, "Epochs between steps of the step schedule (None: a "
       "third of the epochs).", "optimization", minimum=1, maximum=100_000, nullable=True),
    _t("lr_gamma", "float", 0.1, "Decay factor of the step and exponential schedules.",
       "optimization", minimum=1e-6, maximum=1.0),
    _t("lr_staircase", "bool", True, "Exponential schedule: decay once per epoch (True) or "
       "continuously.", "optimization"),
    _t("warmup_epochs", "int", 0, "Linear learning-rate warm-up epochs before the schedule.",
       "optimization", minimum=0, maximum=100_000),
    _t("grad_clip", "float", 0.0, "Clip the gradients' global norm to this (0: off).",
       "optimization", minimum=0.0, maximum=1e6),
    _t("batch_size", "int", 128, "Training batch size.", "optimization", minimum=1,
       maximum=65_536),
    _t("epochs", "int", 10, "Training epochs (ASHA's maximum budget).", "optimization",
       minimum=1, maximum=100_000, factor=False),
    _t("shuffle", "bool", True, "Shuffle the training set every epoch (False: one fixed "
       "order).", "optimization"),
    # -- data problems (induced on the training split only; val and test stay as loaded)
    _t("imbalance", "float", 1.0, "Induced class imbalance: the rarest class keeps this "
       "fraction of its training examples, classes in between on an exponential profile "
       "(1: balanced).", "data", minimum=1e-4, maximum=1.0),
    _t("imbalance_remedy", "choice", "none", "none, oversample (rare classes repeated to the "
       "size of the largest) or class_weight (loss weights n / (K n_k)).", "data",
       choices=("none", "oversample", "class_weight")),
    _t("label_noise", "float", 0.0, "Induced label noise: this fraction of training labels "
       "changed to another class.", "data", minimum=0.0, maximum=1.0, max_exclusive=True),
    # -- speed: how the trainer computes, not what it learns (PyTorch's trainer only)
    _t("precision", "choice", "fp32",
       "Arithmetic of the forward pass: fp32, or bf16 (torch.autocast to bfloat16: weights, "
       "optimizer state and the loss stay float32). Faster where the device has bfloat16 "
       "units (recent GPUs); as a factor it shows whether accuracy holds.", "speed",
       choices=("fp32", "bf16"), frameworks=("torch",)),
    _t("channels_last", "bool", False,
       "Model weights and batches in channels-last (NHWC) memory layout: faster "
       "convolutions on GPUs with tensor cores (and max-pooling on CPU); the same numbers up "
       "to floating-point rounding.", "speed", frameworks=("torch",)),
    _t("compile", "bool", False,
       "torch.compile the model: fused kernels; the first epoch pays the compilation (tens "
       "of seconds); the same numbers up to floating-point rounding.", "speed",
       frameworks=("torch",)),
)

# The techniques of the first registry. Trial ids hash these always, and a technique added
# since only when a config sets it away from its default, so growing the registry never
# changes the id of an existing trial (runs made before can still be resumed and confirmed).
FIRST = ("augmentation", "crop", "batchnorm", "dropout", "optimizer", "lr", "weight_decay",
         "backbone", "epochs", "batch_size")
GROUPS = ("framework", "input", "augmentation", "architecture", "transfer", "regularization",
          "optimization", "data", "speed")

TECHNIQUES: dict[str, Technique] = {t.name: t for t in _ALL}


def for_framework(framework: str) -> list[str]:
    """The techniques the ``framework``'s trainer implements."""
    return [n for n, t in TECHNIQUES.items() if framework in t.frameworks]


def check_config(config, framework: str) -> dict:
    """A trainer's config checked against the registry: every technique ``framework``
    implements, each with an allowed value, and nothing else; the framework must be
    ``framework``. Returns the values normalised; ValueError for an unknown key (with a
    suggestion), a missing key or a value the registry does not allow."""
    from collections.abc import Mapping

    implemented = for_framework(framework)
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping, got {type(config).__name__}")
    # A technique another framework implements may be present at its default (configs come
    # from resolve_config, which fills in the whole registry): it asks for nothing here.
    elsewhere = [k for k in config if k in TECHNIQUES and k not in implemented]
    for k in elsewhere:
        if not same_level(config[k], TECHNIQUES[k].default):
            raise ValueError(f"{k!r} is not implemented by the {framework} trainer (it is by: "
                             f"{', '.join(TECHNIQUES[k].frameworks)})")
    config = {k: v for k, v in config.items() if k not in elsewhere}
    unknown = [k for k in config if k not in implemented]
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(map(repr, unknown))}: the "
                         f"{framework} trainer implements {', '.join(implemented)}"
                         f"{suggest(unknown[0], implemented)}")
    missing = [k for k in implemented if k not in config]
    if missing:
        raise ValueError(f"config is missing {', '.join(map(repr, missing))}; "
                         f"gridrun.design.grid.resolve_config fills in the registry defaults")
    checked = {}
    for name in implemented:
        try:
            checked[name] = check_value(get(name), config[name])
        except ValueError as err:
            raise ValueError(f"config[{name!r}]: {err}") from None
    if checked["framework"] != framework:
        raise ValueError(f"config['framework'] is {checked['framework']!r}; this is the "
                         f"{framework} trainer")
    return checked


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
        raise ValueError(f"unknown technique {name!r}{suggest(name, TECHNIQUES)}; "
                         f"gridrun techniques lists the {len(TECHNIQUES)} a spec may use") \
            from None


def check_value(technique: Technique, value: Any) -> Any:
    """Return ``value`` normalised for ``technique`` (ints become floats for float
    techniques), or raise ValueError saying what is allowed."""
    t = technique
    if value is None:
        if t.nullable:
            return None
        raise ValueError(f"None is not allowed; allowed: {t.allowed()}")
    if t.kind == "str":
        if isinstance(value, str) and value.strip():
            return value
        raise ValueError(f"{value!r} is not a non-empty string; allowed: {t.allowed()}")
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
