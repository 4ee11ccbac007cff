"""The backbone options both trainers accept, and their checks: one place, so that a spec
means the same architecture in PyTorch and in Keras and a bad value gets the same message.

    >>> check_depth("vgg", None), check_width(2)
    (11, 2.0)
"""

from __future__ import annotations

import math

from gridrun.spec import techniques

__all__ = ["MIN_IMAGE_SIZE", "BACKBONES", "ACTIVATIONS", "POOLINGS", "DEPTHS", "LEAKY_SLOPE",
           "check_backbone", "check_choice", "check_width", "check_depth", "check_options"]

MIN_IMAGE_SIZE = 8
#: Every backbone the trainers build, in the order the registry lists them.
BACKBONES = ("simple_cnn", "resnet20", "vgg_small", "vgg", "resnet18")
#: Values of ``activation``: the non-linearity after every conv (and simple_cnn's dense layer).
ACTIVATIONS = ("relu", "leaky_relu", "elu")
#: Values of ``pooling``: the 2x2 downsampling pools of simple_cnn, vgg_small and vgg.
POOLINGS = ("max", "avg")
#: Values of ``depth`` per backbone (None always allowed: the first value here). A backbone
#: not listed takes only ``depth=None``.
DEPTHS = {"vgg": (11, 13, 16), "resnet20": (20, 32, 44, 56)}
LEAKY_SLOPE = 0.01


def check_backbone(backbone, framework: str) -> str:
    # The registry lists the backbones a spec may name; build_model also builds those not
    # (yet) registered. Unknown names get the registry's style of message.
    registered = techniques.get("backbone").choices
    known = tuple(registered) + tuple(b for b in BACKBONES if b not in registered)
    if isinstance(backbone, str) and backbone in BACKBONES:
        return backbone
    if isinstance(backbone, str) and backbone in known:
        raise ValueError(f"backbone {backbone!r} is registered but not implemented by the "
                         f"{framework} trainer; it implements {', '.join(BACKBONES)}")
    if not isinstance(backbone, str):
        raise ValueError(f"{backbone!r} is a {type(backbone).__name__}; allowed: "
                         f"{', '.join(known)}")
    raise ValueError(f"unknown level {backbone!r}; allowed: {', '.join(known)}"
                     f"{techniques.suggest(backbone, known)}")


def check_choice(what: str, value, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    hint = ""
    if isinstance(value, str):
        hint = (f" (did you mean '{value.lower()}'?)" if value.lower() in allowed
                else techniques.suggest(value, allowed))
    raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}{hint}")


def check_width(width) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) \
            or not math.isfinite(width) or width <= 0:
        raise ValueError(f"width must be a finite number > 0 (a channel multiplier), "
                         f"got {width!r}")
    return float(width)


def check_depth(backbone: str, depth) -> int | None:
    allowed = DEPTHS.get(backbone)
    if allowed is None:
        if depth is not None:
            raise ValueError(f"backbone {backbone!r} takes no depth; allowed: None (depth "
                             f"is for " + ", ".join(f"{b}: {', '.join(map(str, d))}"
                                                    for b, d in DEPTHS.items()) + ")")
        return None
    if depth is None:
        return allowed[0]
    if isinstance(depth, float) and depth.is_integer():
        depth = int(depth)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in allowed:
        raise ValueError(f"depth {depth!r} is not one of {backbone}'s; allowed: "
                         f"{', '.join(map(str, allowed))} or None")
    return depth


def check_options(framework: str, backbone, in_channels: int, num_classes: int, image_size,
                  batchnorm, dropout, activation, pooling, global_pool, width, depth) -> tuple:
    """Every argument of a trainer's ``build_model`` checked, as one tuple: (backbone,
    batchnorm, dropout, activation, pooling, global_pool, width, depth, (h, w)).
    ValueError names the bad value and what is allowed."""
    backbone = check_backbone(backbone, framework)
    batchnorm = techniques.check_value(techniques.get("batchnorm"), batchnorm)
    dropout = techniques.check_value(techniques.get("dropout"), dropout)
    act = check_choice("activation", activation, ACTIVATIONS)
    pool = check_choice("pooling", pooling, POOLINGS)
    if not isinstance(global_pool, bool):
        raise ValueError(f"global_pool must be True or False, got {global_pool!r}")
    width = check_width(width)
    depth = check_depth(backbone, depth)
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if min(h, w) < MIN_IMAGE_SIZE:
        raise ValueError(f"image size {h}x{w} is too small; backbones need at least "
                         f"{MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}")
    if in_channels < 1 or num_classes < 2:
        raise ValueError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels} "
                         f"and {num_classes}")
    return backbone, batchnorm, dropout, act, pool, global_pool, width, depth, (h, w)
