"""A Keras backbone's base and head, its parameter count, and freezing its base.

    >>> model = build_model("resnet20", 1, 10, 8, batchnorm=True, dropout=0.0)  # doctest: +SKIP
    >>> head_layer_names(model)                                         # doctest: +SKIP
    ['head.0', 'head.3']
    >>> set_base_trainable(model, False); base_frozen(model)            # doctest: +SKIP
    True

The split is torch's (:mod:`gridrun.torch._models`): the *head* is the classifier layers,
named ``classifier.*`` (simple_cnn, vgg, resnet18) or ``head.*`` (resnet20, vgg_small);
everything else is the *base*.

Freezing rule, the same as torch's ``freeze_base``: a frozen base's kernels, biases and
batch-norm scales and shifts get no updates, and its batch-norm layers normalise with their
moving statistics and do not update them. In Keras both follow from ``layer.trainable =
False``: a non-trainable BatchNormalization runs in inference mode even when called with
``training=True``. Unlike torch, nothing resets it on the next training step.
"""

from __future__ import annotations

import keras

__all__ = ["count_parameters", "head_name", "head_layer_names", "base_layers", "head_layers",
           "base_variables", "head_variables", "set_base_trainable", "base_frozen",
           "backbone_name"]

# Variables torch counts as parameters; a BatchNormalization's moving mean and variance are
# torch buffers (and a dropout's seed state has no torch counterpart).
_PARAMETER_ATTRS = ("kernel", "bias", "gamma", "beta")


def count_parameters(model: keras.Model) -> int:
    """The number of parameters torch's ``count_parameters`` gives for the same backbone
    (the ``params`` column of a report): kernels, biases and batch-norm scales and shifts,
    frozen or not; batch-norm moving statistics are not parameters.

        >>> count_parameters(build_model("simple_cnn", 1, 10, 28, False, 0.0))  # doctest: +SKIP
        421642
    """
    total = 0
    for layer in model.layers:
        for attr in _PARAMETER_ATTRS:
            variable = getattr(layer, attr, None)
            if isinstance(variable, keras.Variable):
                total += int(variable.numpy().size)
    return total


def head_name(model: keras.Model) -> str:
    """``"classifier"`` or ``"head"``: the name prefix of ``model``'s head layers."""
    names = [layer.name for layer in model.layers]
    for head in ("classifier", "head"):
        if any(n.startswith(head + ".") for n in names):
            return head
    raise ValueError(f"cannot tell the head of model {model.name!r}: it has no layer named "
                     f"'classifier.*' or 'head.*'")


def _in_head(model: keras.Model):
    prefix = head_name(model) + "."
    return lambda name: name.startswith(prefix)


def head_layers(model: keras.Model) -> list[keras.Layer]:
    """The head's layers (those named ``classifier.*`` or ``head.*``), in model order."""
    in_head = _in_head(model)
    return [layer for layer in model.layers if in_head(layer.name)]


def base_layers(model: keras.Model) -> list[keras.Layer]:
    """Every layer not in the head (the input layer included), in model order."""
    in_head = _in_head(model)
    return [layer for layer in model.layers if not in_head(layer.name)]


def head_layer_names(model: keras.Model) -> list[str]:
    """The names of the head's layers."""
    return [layer.name for layer in head_layers(model)]


def head_variables(model: keras.Model) -> list[keras.Variable]:
    """The head's weights (kernels and biases; no dropout seed state)."""
    return [v for layer in head_layers(model) for v in layer.weights]


def base_variables(model: keras.Model) -> list[keras.Variable]:
    """The base's weights: kernels, biases, batch-norm scales, shifts and moving statistics
    (torch's ``base_state_keys``), in model order. A saved base is these by ``v.path``."""
    return [v for layer in base_layers(model) for v in layer.weights]


def set_base_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze (``trainable=False``) or unfreeze the base: its layers' ``trainable`` flag.

    A frozen base drops out of ``model.trainable_variables`` and its batch norm runs in
    inference mode. Keras reads the flag when a ``tf.function`` is traced: after changing
    it, trace the training step again (a new ``tf.function``)."""
    if not isinstance(trainable, bool):
        raise ValueError(f"trainable must be True or False, got {trainable!r}")
    for layer in base_layers(model):
        layer.trainable = trainable


def base_frozen(model: keras.Model) -> bool:
    """Whether the base is frozen: it has weights and none of its layers is trainable."""
    layers = [layer for layer in base_layers(model) if layer.weights]
    return bool(layers) and not any(layer.trainable for layer in layers)


def backbone_name(model: keras.Model) -> str:
    """The backbone a model was built as (``"vgg (depth 13)"``), else the model's name."""
    return getattr(model, "backbone_label", None) or model.name
