"""The CNN backbones named in the technique registry, for inputs from 8x8 to 32x32 pixels.

    >>> model = build_model("resnet20", in_channels=3, num_classes=10, image_size=32,
    ...                     batchnorm=True, dropout=0.0)
    >>> count_parameters(model)
    269722

Every backbone takes ``batchnorm`` (BatchNorm2d after every convolution, else nothing) and
``dropout`` (the rate before the classifier layer(s); 0 means no dropout layer at all).
Weights start Glorot-uniform with zero biases, as in Keras.

The keyword options ``activation``, ``pooling``, ``global_pool``, ``width`` and ``depth``
(see :func:`build_model`) change the architecture; with their defaults every backbone is
built exactly as before they existed: the same modules, created in the same order, so the
same seed gives bit-identical initial weights and the same ``state_dict`` keys.

Every model splits into a *base* (feature extractor) and a *head* (the classifier layers,
which depend on the number of classes): :func:`head_name`, :func:`base_parameters`,
:func:`head_parameters`, :func:`base_state_keys` and :func:`head_state_keys` know where the
split lies for each backbone. The models also expose ``model.features`` and
``model.classifier``; for resnet20 and vgg_small these are views (properties) over their
registered ``stem``/``blocks``/``head`` submodules, which keep their names so that old
checkpoints still load.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from gridrun.spec.model_options import (ACTIVATIONS, BACKBONES, DEPTHS, LEAKY_SLOPE, MIN_IMAGE_SIZE,
                                        POOLINGS, check_options)

__all__ = ["build_model", "count_parameters", "MIN_IMAGE_SIZE", "BACKBONES", "ACTIVATIONS",
           "POOLINGS", "DEPTHS", "head_name", "base_parameters", "head_parameters",
           "base_state_keys", "head_state_keys", "backbone_name"]


def build_model(backbone: str, in_channels: int, num_classes: int,
                image_size: int | tuple[int, int], batchnorm: bool,
                dropout: float, *, activation: str = "relu", pooling: str = "max",
                global_pool: bool = False, width: float = 1.0,
                depth: int | None = None) -> nn.Module:
    """A freshly initialised ``backbone`` for ``(in_channels, H, W)`` images.

    ``image_size`` is the side of a square image or ``(H, W)``.

    Backbones: ``simple_cnn``, ``resnet20``, ``vgg_small``, ``vgg`` (VGG-11/13/16 adapted to
    small images) and ``resnet18`` (ResNet-18 with a CIFAR-style stem).

    Options (keyword-only; the defaults give the original architectures):

    - ``activation``: ``"relu"``, ``"leaky_relu"`` (negative slope 0.01) or ``"elu"``
      (alpha 1): every non-linearity of the backbone, including residual blocks and
      simple_cnn's hidden dense layer.
    - ``pooling``: ``"max"`` or ``"avg"``: the 2x2 downsampling pools of simple_cnn,
      vgg_small and vgg. The resnets downsample by strided convolutions and have no such
      pools, so for them it has no effect. (The final global pool is always an average.)
    - ``global_pool``: simple_cnn only: True replaces flattening the last feature maps into
      the dense layer by a global average pool, so the dense layer sees one value per
      channel (far fewer parameters, independent of the image size). resnet20, vgg_small,
      vgg and resnet18 always global-average-pool: True is their only behaviour, and the
      option has no effect on them.
    - ``width``: a number > 0 multiplying every convolution's channel count:
      ``max(1, round(channels * width))``. Dense hidden layers (simple_cnn's 128 units)
      keep their size.
    - ``depth``: for ``vgg`` the VGG variant, 11, 13 or 16 (None: 11); for ``resnet20`` the
      total depth 6n+2 with n blocks per stage, 20, 32, 44 or 56 (None: 20). Every other
      backbone takes only None.

    Raises ValueError for an unknown backbone or option value (naming the allowed values),
    a bad dropout rate or an image smaller than 8x8.
    """
    backbone, batchnorm, dropout, act, pool, global_pool, width, depth, (h, w) = \
        check_options("torch", backbone, in_channels, num_classes, image_size, batchnorm,
                      dropout, activation, pooling, global_pool, width, depth)
    opts = _Options(act, pool, global_pool, width)
    size = (h, w)
    if backbone == "simple_cnn":
        model = SimpleCNN(in_channels, num_classes, size, batchnorm, dropout, opts)
    elif backbone == "resnet20":
        model = ResNet20(in_channels, num_classes, size, batchnorm, dropout, opts,
                         blocks_per_stage=(depth - 2) // 6)
    elif backbone == "vgg_small":
        model = VGGSmall(in_channels, num_classes, size, batchnorm, dropout, opts)
    elif backbone == "vgg":
        model = VGG(in_channels, num_classes, size, batchnorm, dropout, opts, depth)
    else:
        model = ResNet18(in_channels, num_classes, size, batchnorm, dropout, opts)
    _init_like_keras(model)
    return model


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters (the ``params`` column of a report)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- base and head

def head_name(model: nn.Module) -> str:
    """The name of ``model``'s head submodule: ``"classifier"`` for simple_cnn, vgg and
    resnet18, ``"head"`` for resnet20 and vgg_small. Everything else is the base. A model
    not built here is split at a child named ``classifier``, else ``head``."""
    name = getattr(type(model), "HEAD", None)
    if name is None:
        children = dict(model.named_children())
        name = next((n for n in ("classifier", "head") if n in children), None)
        if name is None:
            raise ValueError(f"cannot tell the head of a {type(model).__name__}: it has no "
                             f"child module named 'classifier' or 'head'")
    return name


def _in_head(model: nn.Module) -> Callable[[str], bool]:
    prefix = head_name(model) + "."
    return lambda key: key.startswith(prefix)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The head's parameters, in ``model.parameters()`` order."""
    in_head = _in_head(model)
    return [p for k, p in model.named_parameters() if in_head(k)]


def base_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter not in the head, in ``model.parameters()`` order."""
    in_head = _in_head(model)
    return [p for k, p in model.named_parameters() if not in_head(k)]


def head_state_keys(model: nn.Module) -> list[str]:
    """The head's ``state_dict`` keys, in ``state_dict`` order."""
    in_head = _in_head(model)
    return [k for k in model.state_dict() if in_head(k)]


def base_state_keys(model: nn.Module) -> list[str]:
    """The base's ``state_dict`` keys (parameters and batch-norm buffers), in order."""
    in_head = _in_head(model)
    return [k for k in model.state_dict() if not in_head(k)]


def base_modules(model: nn.Module) -> Iterator[nn.Module]:
    """Every submodule of the base (the modules outside the head), each once."""
    head = getattr(model, head_name(model))
    in_head = {id(m) for m in head.modules()}
    for module in model.modules():
        if module is not model and id(module) not in in_head:
            yield module


def backbone_name(model: nn.Module) -> str:
    """The backbone a model was built as (``"vgg-13"`` for vgg with depth 13), or its
    class name for a model not built here."""
    return getattr(model, "backbone_label", None) or getattr(type(model), "BACKBONE", None) \
        or type(model).__name__


# ---------------------------------------------------------------- building blocks

class _Options:
    """The architecture options one model is built with."""

    def __init__(self, activation: str = "relu", pooling: str = "max",
                 global_pool: bool = False, width: float = 1.0):
        self.activation, self.pooling = activation, pooling
        self.global_pool, self.width = global_pool, width

    def ch(self, channels: int) -> int:
        """``channels`` scaled by the width multiplier."""
        return max(1, round(channels * self.width))

    def act(self) -> nn.Module:
        """A fresh activation module (in place, like the original ``nn.ReLU(inplace=True)``)."""
        if self.activation == "leaky_relu":
            return nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        if self.activation == "elu":
            return nn.ELU(inplace=True)
        return nn.ReLU(inplace=True)

    def act_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The activation as a function, for blocks written with ``torch.nn.functional``."""
        return _ACT_FNS[self.activation]

    def pool(self) -> nn.Module:
        return nn.AvgPool2d(2) if self.pooling == "avg" else nn.MaxPool2d(2)


_ACT_FNS = {"relu": F.relu, "leaky_relu": functools.partial(F.leaky_relu,
                                                              negative_slope=LEAKY_SLOPE),
            "elu": F.elu}
_DEFAULT = _Options()


def _init_like_keras(model: nn.Module) -> None:
    """Glorot-uniform weights and zero biases: Keras' defaults, so that a grid run in either
    framework starts its backbones from the same distribution. (PyTorch's own default is a
    smaller uniform init, which starves deep plain stacks such as vgg_small without batch
    norm of signal.) Batch norm keeps scale 1, shift 0 in both."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _conv_block(cin: int, cout: int, batchnorm: bool,
                opts: _Options = _DEFAULT) -> nn.Sequential:
    """3x3 'same' convolution, optional batch norm, activation. No conv bias before a BN:
    BN's shift makes it redundant."""
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(opts.act())
    return nn.Sequential(*layers)


def _dropout(rate: float) -> nn.Module:
    return nn.Dropout(rate) if rate > 0 else nn.Identity()


def _norm(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()


# ---------------------------------------------------------------- simple_cnn

class SimpleCNN(nn.Module):
    """conv(32)-relu-pool, conv(64)-relu-pool, dropout, linear(128)-relu, dropout, linear.

    'Same' padding keeps 8x8 inputs usable (8 -> 4 -> 2). With ``global_pool`` the base
    ends in a global average pool and the dense layer sees the 64 channels instead of the
    flattened maps. Base: ``features``; head: ``classifier``."""

    BACKBONE, HEAD = "simple_cnn", "classifier"

    def __init__(self, in_channels, num_classes, size, batchnorm, dropout,
                 opts: _Options = _DEFAULT):
        super().__init__()
        c1, c2 = opts.ch(32), opts.ch(64)
        layers = [_conv_block(in_channels, c1, batchnorm, opts), opts.pool(),
                  _conv_block(c1, c2, batchnorm, opts), opts.pool()]
        if opts.global_pool:
            layers.append(nn.AdaptiveAvgPool2d(1))  # parameter-free: base keys unchanged
            flat = c2
        else:
            flat = c2 * (size[0] // 4) * (size[1] // 4)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), _dropout(dropout), nn.Linear(flat, 128), opts.act(),
            _dropout(dropout), nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ---------------------------------------------------------------- resnet20

class _BasicBlock(nn.Module):
    """Two 3x3 convs with a parameter-free shortcut (He et al. 2016, CIFAR option A:
    stride-2 subsampling and zero-padded extra channels)."""

    def __init__(self, cin: int, cout: int, stride: int, batchnorm: bool,
                 act: Callable[[torch.Tensor], torch.Tensor] = F.relu):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not batchnorm)
        self.norm1 = _norm(cout, batchnorm)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=not batchnorm)
        self.norm2 = _norm(cout, batchnorm)
        self.stride, self.extra = stride, cout - cin
        self.act = act  # a plain function, not a submodule: the module tree is unchanged

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra:
            half = self.extra // 2
            shortcut = F.pad(shortcut, (0, 0, 0, 0, half, self.extra - half))
        return self.act(out + shortcut)


class ResNet20(nn.Module):
    """CIFAR ResNet-20: a 3x3 stem, 3 stages of 3 basic blocks (16/32/64 channels, the
    last two stages halve the spatial size), global average pool, dropout, linear.
    ``blocks_per_stage`` n gives ResNet-(6n+2). Base: ``stem`` and ``blocks``; head:
    ``head`` (global pool, dropout, linear)."""

    BACKBONE, HEAD = "resnet20", "head"

    def __init__(self, in_channels, num_classes, size, batchnorm, dropout,
                 opts: _Options = _DEFAULT, blocks_per_stage: int = 3):
        super().__init__()
        c0 = opts.ch(16)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c0, 3, padding=1, bias=not batchnorm),
                                  _norm(c0, batchnorm), opts.act())
        blocks, cin = [], c0
        for stage, cout in enumerate((opts.ch(16), opts.ch(32), opts.ch(64))):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(_BasicBlock(cin, cout, stride, batchnorm, opts.act_fn()))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), _dropout(dropout),
                                  nn.Linear(cin, num_classes))
        depth = 6 * blocks_per_stage + 2
        self.backbone_label = "resnet20" if depth == 20 else f"resnet20 (depth {depth})"

    @property
    def features(self) -> nn.Module:
        """The base, ``stem`` then ``blocks``, as one module (a view; not registered)."""
        return nn.Sequential(self.stem, self.blocks)

    @property
    def classifier(self) -> nn.Module:
        """The head (``head``): global average pool, dropout, linear."""
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# ---------------------------------------------------------------- vgg_small

class VGGSmall(nn.Module):
    """Three conv-conv-pool stacks (32/64/128 channels), global average pool, dropout,
    linear. A stack skips its pool when that would leave less than 2x2 (8x8 inputs:
    8 -> 4 -> 2 -> 2). Base: ``features``; head: ``head``."""

    BACKBONE, HEAD = "vgg_small", "head"

    def __init__(self, in_channels, num_classes, size, batchnorm, dropout,
                 opts: _Options = _DEFAULT):
        super().__init__()
        layers, cin, (h, w) = [], in_channels, size
        for cout in (opts.ch(32), opts.ch(64), opts.ch(128)):
            layers += [_conv_block(cin, cout, batchnorm, opts),
                       _conv_block(cout, cout, batchnorm, opts)]
            if min(h, w) // 2 >= 2:
                layers.append(opts.pool())
                h, w = h // 2, w // 2
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), _dropout(dropout),
                                  nn.Linear(cin, num_classes))

    @property
    def classifier(self) -> nn.Module:
        """The head (``head``): global average pool, dropout, linear."""
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ---------------------------------------------------------------- vgg

# Convolutions per stage of VGG-11/13/16 (Simonyan & Zisserman 2015, configs A, B, D).
_VGG_STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3)}
_VGG_CHANNELS = (64, 128, 256, 512, 512)


class VGG(nn.Module):
    """VGG-11/13/16 for small images: the five stages of 3x3 convs (64/128/256/512/512
    channels, 1-3 convs each as in the paper), each followed by a 2x2 pool unless that
    would leave less than 2x2 (32x32: 32 -> 16 -> 8 -> 4 -> 2 -> 2; 8x8 pools only twice),
    then a global average pool. The ImageNet classifier (two 4096-unit dense layers) is
    replaced, as usual for CIFAR-sized inputs, by dropout and one linear layer.

    Base: ``features`` (ending in the global pool, so it gives one vector per image);
    head: ``classifier``."""

    BACKBONE, HEAD = "vgg", "classifier"

    def __init__(self, in_channels, num_classes, size, batchnorm, dropout,
                 opts: _Options = _DEFAULT, depth: int = 11):
        super().__init__()
        layers, cin, (h, w) = [], in_channels, size
        for convs, channels in zip(_VGG_STAGES[depth], _VGG_CHANNELS):
            cout = opts.ch(channels)
            for _ in range(convs):
                layers.append(_conv_block(cin, cout, batchnorm, opts))
                cin = cout
            if min(h, w) // 2 >= 2:
                layers.append(opts.pool())
                h, w = h // 2, w // 2
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(_dropout(dropout), nn.Linear(cin, num_classes))
        self.backbone_label = f"vgg (depth {depth})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ---------------------------------------------------------------- resnet18

class _ProjectionBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) whose shortcut is the identity when the shape is
    kept, else a strided 1x1 convolution (plus batch norm when ``batchnorm``): option B of
    He et al. (2016)."""

    def __init__(self, cin: int, cout: int, stride: int, batchnorm: bool,
                 act: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not batchnorm)
        self.norm1 = _norm(cout, batchnorm)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=not batchnorm)
        self.norm2 = _norm(cout, batchnorm)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=not batchnorm),
                _norm(cout, batchnorm))
        else:
            self.shortcut = nn.Identity()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016) for small images: a 3x3 stride-1 stem without max-pool,
    four stages of two basic blocks (64/128/256/512 channels; the last three halve the
    spatial size), projection shortcuts where the shape changes, global average pool,
    dropout, linear.

    Base: ``features`` (stem, ``layer1``-``layer4`` as its items 0-4, global pool);
    head: ``classifier``."""

    BACKBONE, HEAD = "resnet18", "classifier"

    def __init__(self, in_channels, num_classes, size, batchnorm, dropout,
                 opts: _Options = _DEFAULT):
        super().__init__()
        c0 = opts.ch(64)
        layers = [nn.Sequential(nn.Conv2d(in_channels, c0, 3, padding=1, bias=not batchnorm),
                                _norm(c0, batchnorm), opts.act())]
        cin = c0
        for stage, channels in enumerate((64, 128, 256, 512)):
            cout, blocks = opts.ch(channels), []
            for i in range(2):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(_ProjectionBlock(cin, cout, stride, batchnorm, opts.act_fn()))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(_dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
