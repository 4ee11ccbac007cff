"""The CNN backbones of the technique registry as Keras 3 models, the same architectures as
the torch trainer's, layer for layer.

    >>> model = build_model("resnet20", in_channels=3, num_classes=10, image_size=32,
    ...                     batchnorm=True, dropout=0.0)
    >>> count_parameters(model)
    269722
    >>> model(np.zeros((2, 32, 32, 3), "float32"), training=False).shape
    TensorShape([2, 10])

Inputs are channels-last float32 ``(N, H, W, C)``; outputs are logits. Every backbone,
option, channel count and parameter count equals :mod:`gridrun.torch._models`'; the
numerical choices are the same too, named here as constants:

- kernels Glorot-uniform (:data:`KERNEL_INIT`), biases zero (:data:`BIAS_INIT`), no conv
  bias before a batch norm (its shift makes one redundant);
- ``BatchNormalization(momentum=0.9, epsilon=1e-5)`` (:data:`BN_MOMENTUM`,
  :data:`BN_EPSILON`): torch's momentum 0.1 weighs the new batch, Keras' 0.9 the old
  average, so they are the same update. (One difference remains: torch updates the running
  variance with the unbiased batch variance, Keras with the biased one; with N*H*W values
  per channel the factor n/(n-1) is negligible.)
- leaky_relu slope :data:`LEAKY_SLOPE` 0.01, elu alpha :data:`ELU_ALPHA` 1;
- 3x3 stride-1 convs ``'same'``; a stride-2 conv pads one pixel on every side and then
  convolves ``'valid'``, as torch's ``padding=1`` (Keras' ``'same'`` pads only after for
  even sizes, which shifts the sampling grid); 2x2 pools floor odd sizes, as torch.

Layer names are the torch module paths (``"stem.0"``, ``"blocks.3.conv1"``,
``"features.2.0.shortcut.0"``), so a variable's path maps onto its torch ``state_dict`` key:
``features.0.0/kernel`` is ``features.0.0.weight``; ``/bias``, ``/gamma``, ``/beta``,
``/moving_mean``, ``/moving_variance`` map to ``.bias``, ``.weight``, ``.bias``,
``.running_mean``, ``.running_var``. Layers torch has no module for are named after their
block or conv: ``"blocks.3.conv1.pad"``, ``"blocks.3.act1"``, ``"blocks.3.shortcut"``,
``"blocks.3.add"``, ``"blocks.3.act2"``. Explicit names keep paths the same in every process
and for every model built in one process (Keras' auto-names count up: ``conv2d_7``).

``seed`` makes a build deterministic whatever the global random state: each layer's
initializer, and each dropout layer's mask stream, is seeded from ``(seed, layer name)``.
The base/head split, parameter count and freezing (:mod:`gridrun.keras._split`) are
re-exported here.
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np

from gridrun.spec.model_options import (ACTIVATIONS, BACKBONES, DEPTHS, LEAKY_SLOPE, MIN_IMAGE_SIZE,
                                        POOLINGS, check_options)
# The base/head split, parameter count and freezing live beside the architectures; they
# are re-exported so that one module is the models' interface, as in gridrun.torch.
from gridrun.keras._split import (backbone_name, base_frozen, base_layers, base_variables,
                                  count_parameters, head_layer_names, head_layers, head_name,
                                  head_variables, set_base_trainable)

__all__ = ["build_model", "count_parameters", "head_name", "head_layer_names", "base_layers",
           "head_layers", "base_variables", "head_variables", "set_base_trainable",
           "base_frozen", "backbone_name", "MIN_IMAGE_SIZE", "BACKBONES", "ACTIVATIONS",
           "POOLINGS", "DEPTHS", "LEAKY_SLOPE", "ELU_ALPHA", "BN_MOMENTUM", "BN_EPSILON",
           "KERNEL_INIT", "BIAS_INIT"]

ELU_ALPHA = 1.0
BN_MOMENTUM = 0.9  # Keras' convention: the weight of the old moving average (torch: 0.1)
BN_EPSILON = 1e-5
KERNEL_INIT = keras.initializers.GlorotUniform  # called with each layer's own seed
BIAS_INIT = "zeros"

# Convolutions per stage of VGG-11/13/16 (Simonyan & Zisserman 2015, configs A, B, D).
_VGG_STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3)}
_VGG_CHANNELS = (64, 128, 256, 512, 512)


def build_model(backbone: str, in_channels: int, num_classes: int,
                image_size: int | tuple[int, int], batchnorm: bool, dropout: float, *,
                activation: str = "relu", pooling: str = "max", global_pool: bool = False,
                width: float = 1.0, depth: int | None = None, seed: int = 0) -> keras.Model:
    """A freshly initialised ``backbone`` for ``(H, W, in_channels)`` images, returning logits.

    The arguments and options are :func:`gridrun.torch._models.build_model`'s (see there
    for what each does), plus ``seed`` (an int >= 0): the same seed builds the same initial
    weights and dropout masks. The model has ``backbone_label`` (``"vgg (depth 11)"``).

    Raises ValueError for an unknown backbone or option value (naming the allowed values),
    a bad dropout rate or seed, or an image smaller than 8x8.
    """
    backbone, batchnorm, dropout, act, pool, global_pool, width, depth, (h, w) = \
        check_options("tensorflow", backbone, in_channels, num_classes, image_size, batchnorm,
                      dropout, activation, pooling, global_pool, width, depth)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    b = _Builder(batchnorm, dropout, act, pool, global_pool, width, int(seed))
    inputs = keras.Input((h, w, in_channels), name="input", dtype="float32")
    if backbone == "simple_cnn":
        outputs, label = _simple_cnn(b, inputs, num_classes), backbone
    elif backbone == "resnet20":
        outputs = _resnet20(b, inputs, num_classes, blocks_per_stage=(depth - 2) // 6)
        label = "resnet20" if depth == 20 else f"resnet20 (depth {depth})"
    elif backbone == "vgg_small":
        outputs, label = _vgg_small(b, inputs, num_classes), backbone
    elif backbone == "vgg":
        outputs, label = _vgg(b, inputs, num_classes, depth), f"vgg (depth {depth})"
    else:
        outputs, label = _resnet18(b, inputs, num_classes), backbone
    model = keras.Model(inputs, outputs, name=backbone)
    model.backbone_label = label
    return model


# ---------------------------------------------------------------- building blocks

def _layer_seed(seed: int, name: str) -> int:
    """A stable 31-bit seed for one layer: a layer's initial weights depend only on the
    model seed, its name and its shape, not on which other layers the options add."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class _SeededDropout(keras.layers.Dropout):
    """Dropout whose mask stream is seeded and whose state variable is named after the
    layer (``"classifier.1/seed_generator_state"``); Keras' own is auto-named
    ``seed_generator_<n>``, a counter that differs between models built in one process."""

    def __init__(self, rate: float, *, seed: int, name: str, **kwargs):
        super().__init__(0.0, seed=seed, name=name, **kwargs)  # 0: no auto-named generator
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(seed, name=name)

    def build(self, input_shape):  # overridden so that __init__ may still add state
        pass


class _ShortcutA(keras.layers.Layer):
    """The parameter-free CIFAR shortcut (He et al. 2016, option A): keep every
    ``stride``-th pixel, zero-pad ``extra`` channels, half before and the rest after."""

    def __init__(self, stride: int, extra: int, **kwargs):
        super().__init__(**kwargs)
        self.stride, self.extra = stride, extra

    def call(self, x):
        if self.stride > 1:
            x = x[:, ::self.stride, ::self.stride, :]
        half = self.extra // 2
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [half, self.extra - half]])

    def get_config(self):
        return {**super().get_config(), "stride": self.stride, "extra": self.extra}


class _Builder:
    """Creates the named, seeded layers of one model with its options."""

    def __init__(self, batchnorm, dropout, activation, pooling, global_pool, width, seed):
        self.batchnorm, self.dropout, self.activation = batchnorm, dropout, activation
        self.pooling, self.global_pool, self.width, self.seed = pooling, global_pool, width, seed

    def ch(self, channels: int) -> int:
        """``channels`` scaled by the width multiplier (exactly as torch's)."""
        return max(1, round(channels * self.width))

    def conv(self, x, name: str, channels: int, kernel: int = 3, stride: int = 1):
        bias = not self.batchnorm
        if stride > 1 and kernel > 1:  # torch's symmetric padding=1, then 'valid'
            x = keras.layers.ZeroPadding2D(kernel // 2, name=name + ".pad")(x)
        padding = "same" if stride == 1 else "valid"
        return keras.layers.Conv2D(
            channels, kernel, strides=stride, padding=padding, use_bias=bias, name=name,
            kernel_initializer=KERNEL_INIT(_layer_seed(self.seed, name)),
            bias_initializer=BIAS_INIT)(x)

    def dense(self, x, name: str, units: int):
        return keras.layers.Dense(
            units, name=name, kernel_initializer=KERNEL_INIT(_layer_seed(self.seed, name)),
            bias_initializer=BIAS_INIT)(x)

    def norm(self, x, name: str):
        if not self.batchnorm:
            return x
        return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                               name=name)(x)

    def act(self, x, name: str):
        if self.activation == "leaky_relu":
            return keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=name)(x)
        if self.activation == "elu":
            return keras.layers.ELU(alpha=ELU_ALPHA, name=name)(x)
        return keras.layers.ReLU(name=name)(x)

    def pool(self, x, name: str):
        pool = keras.layers.AveragePooling2D if self.pooling == "avg" \
            else keras.layers.MaxPooling2D
        return pool(2, name=name)(x)  # 'valid': odd sizes floor, as torch

    def drop(self, x, name: str):
        if self.dropout <= 0:  # as torch's nn.Identity: no layer at all
            return x
        return _SeededDropout(self.dropout, seed=_layer_seed(self.seed, name), name=name)(x)

    def conv_block(self, x, name: str, channels: int):
        """torch's ``_conv_block``: conv ``name.0``, batch norm ``name.1``, activation."""
        x = self.norm(self.conv(x, name + ".0", channels), name + ".1")
        return self.act(x, f"{name}.{2 if self.batchnorm else 1}")

    def residual(self, x, name: str, channels: int, stride: int, projection: bool):
        """A basic block: two 3x3 convs; the shortcut is option A (resnet20) or, where the
        shape changes, a strided 1x1 conv plus batch norm (``projection``, resnet18)."""
        cin = x.shape[-1]
        out = self.act(self.norm(self.conv(x, name + ".conv1", channels, stride=stride),
                                 name + ".norm1"), name + ".act1")
        out = self.norm(self.conv(out, name + ".conv2", channels), name + ".norm2")
        shortcut = x
        if projection and (stride != 1 or cin != channels):
            shortcut = self.conv(x, name + ".shortcut.0", channels, kernel=1, stride=stride)
            shortcut = self.norm(shortcut, name + ".shortcut.1")
        elif not projection and (stride > 1 or cin != channels):
            shortcut = _ShortcutA(stride, channels - cin, name=name + ".shortcut")(x)
        out = keras.layers.Add(name=name + ".add")([out, shortcut])
        return self.act(out, name + ".act2")

    def global_avg(self, x, name: str):
        return keras.layers.GlobalAveragePooling2D(name=name)(x)


# ---------------------------------------------------------------- backbones

def _simple_cnn(b: _Builder, x, num_classes: int):
    """conv(32)-pool, conv(64)-pool [global pool], flatten, dropout, dense(128), dropout,
    dense. Base ``features``, head ``classifier``."""
    x = b.pool(b.conv_block(x, "features.0", b.ch(32)), "features.1")
    x = b.pool(b.conv_block(x, "features.2", b.ch(64)), "features.3")
    if b.global_pool:
        x = b.global_avg(x, "features.4")
    # NHWC flattening orders the values differently from torch's NCHW: a permutation of
    # the dense layer's rows, the same function class.
    x = keras.layers.Flatten(name="classifier.0")(x)
    x = b.act(b.dense(b.drop(x, "classifier.1"), "classifier.2", 128), "classifier.3")
    return b.dense(b.drop(x, "classifier.4"), "classifier.5", num_classes)


def _resnet20(b: _Builder, x, num_classes: int, blocks_per_stage: int):
    """CIFAR ResNet-(6n+2): stem, 3 stages of n option-A blocks (16/32/64 channels), global
    pool, dropout, dense. Base ``stem`` and ``blocks``, head ``head``."""
    x = b.act(b.norm(b.conv(x, "stem.0", b.ch(16)), "stem.1"), "stem.2")
    i = 0
    for stage, channels in enumerate((16, 32, 64)):
        for k in range(blocks_per_stage):
            stride = 2 if stage > 0 and k == 0 else 1
            x = b.residual(x, f"blocks.{i}", b.ch(channels), stride, projection=False)
            i += 1
    x = b.drop(b.global_avg(x, "head.0"), "head.2")
    return b.dense(x, "head.3", num_classes)


def _pooled_stages(b: _Builder, x, stages, name: str = "features"):
    """Conv blocks per stage, each stage followed by a 2x2 pool unless that would leave
    less than 2x2 (so 8x8 inputs still fit)."""
    i = 0
    for convs, channels in stages:
        for _ in range(convs):
            x = b.conv_block(x, f"{name}.{i}", b.ch(channels))
            i += 1
        if min(x.shape[1], x.shape[2]) // 2 >= 2:
            x = b.pool(x, f"{name}.{i}")
            i += 1
    return x, i


def _vgg_small(b: _Builder, x, num_classes: int):
    """Three conv-conv-pool stacks (32/64/128), global pool, dropout, dense. Base
    ``features``, head ``head``."""
    x, _ = _pooled_stages(b, x, ((2, 32), (2, 64), (2, 128)))
    x = b.drop(b.global_avg(x, "head.0"), "head.2")
    return b.dense(x, "head.3", num_classes)


def _vgg(b: _Builder, x, num_classes: int, depth: int):
    """VGG-11/13/16's five conv stages for small images, global pool, dropout, dense. Base
    ``features`` (ending in the global pool), head ``classifier``."""
    x, i = _pooled_stages(b, x, zip(_VGG_STAGES[depth], _VGG_CHANNELS))
    x = b.drop(b.global_avg(x, f"features.{i}"), "classifier.0")
    return b.dense(x, "classifier.1", num_classes)


def _resnet18(b: _Builder, x, num_classes: int):
    """ResNet-18 with a 3x3 stride-1 stem: four stages of two projection-shortcut blocks
    (64/128/256/512), global pool, dropout, dense. Base ``features``, head ``classifier``."""
    x = b.act(b.norm(b.conv(x, "features.0.0", b.ch(64)), "features.0.1"), "features.0.2")
    for stage, channels in enumerate((64, 128, 256, 512)):
        for k in range(2):
            stride = 2 if stage > 0 and k == 0 else 1
            x = b.residual(x, f"features.{stage + 1}.{k}", b.ch(channels), stride,
                           projection=True)
    x = b.drop(b.global_avg(x, "features.5"), "classifier.0")
    return b.dense(x, "classifier.1", num_classes)
