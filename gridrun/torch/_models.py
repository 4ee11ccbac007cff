"""The CNN backbones named in the technique registry, for inputs from 8x8 to 32x32 pixels.

    >>> model = build_model("resnet20", in_channels=3, num_classes=10, image_size=32,
    ...                     batchnorm=True, dropout=0.0)
    >>> count_parameters(model)
    269722

Every backbone takes ``batchnorm`` (BatchNorm2d after every convolution, else nothing) and
``dropout`` (the rate before the classifier layer(s); 0 means no dropout layer at all).
Weights start Glorot-uniform with zero biases, as in Keras.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gridrun import techniques

__all__ = ["build_model", "count_parameters", "MIN_IMAGE_SIZE"]

MIN_IMAGE_SIZE = 8


def build_model(backbone: str, in_channels: int, num_classes: int,
                image_size: int | tuple[int, int], batchnorm: bool,
                dropout: float) -> nn.Module:
    """A freshly initialised ``backbone`` for ``(in_channels, H, W)`` images.

    ``image_size`` is the side of a square image or ``(H, W)``. Raises ValueError for an
    unknown backbone, a bad dropout rate or an image smaller than 8x8.
    """
    backbone = techniques.check_value(techniques.get("backbone"), backbone)
    batchnorm = techniques.check_value(techniques.get("batchnorm"), batchnorm)
    dropout = techniques.check_value(techniques.get("dropout"), dropout)
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if min(h, w) < MIN_IMAGE_SIZE:
        raise ValueError(f"image size {h}x{w} is too small; backbones need at least "
                         f"{MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}")
    if in_channels < 1 or num_classes < 2:
        raise ValueError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels} "
                         f"and {num_classes}")
    build = {"simple_cnn": SimpleCNN, "resnet20": ResNet20, "vgg_small": VGGSmall}[backbone]
    model = build(in_channels, num_classes, (h, w), batchnorm, dropout)
    _init_like_keras(model)
    return model


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters (the ``params`` column of a report)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- building blocks

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


def _conv_block(cin: int, cout: int, batchnorm: bool) -> nn.Sequential:
    """3x3 'same' convolution, optional batch norm, ReLU. No conv bias before a BN: BN's
    shift makes it redundant."""
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _dropout(rate: float) -> nn.Module:
    return nn.Dropout(rate) if rate > 0 else nn.Identity()


def _norm(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()


# ---------------------------------------------------------------- simple_cnn

class SimpleCNN(nn.Module):
    """conv(32)-relu-pool, conv(64)-relu-pool, dropout, linear(128)-relu, dropout, linear.

    'Same' padding keeps 8x8 inputs usable (8 -> 4 -> 2)."""

    def __init__(self, in_channels, num_classes, size, batchnorm, dropout):
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(in_channels, 32, batchnorm), nn.MaxPool2d(2),
            _conv_block(32, 64, batchnorm), nn.MaxPool2d(2),
        )
        flat = 64 * (size[0] // 4) * (size[1] // 4)
        self.classifier = nn.Sequential(
            nn.Flatten(), _dropout(dropout), nn.Linear(flat, 128), nn.ReLU(inplace=True),
            _dropout(dropout), nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ---------------------------------------------------------------- resnet20

class _BasicBlock(nn.Module):
    """Two 3x3 convs with a parameter-free shortcut (He et al. 2016, CIFAR option A:
    stride-2 subsampling and zero-padded extra channels)."""

    def __init__(self, cin: int, cout: int, stride: int, batchnorm: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not batchnorm)
        self.norm1 = _norm(cout, batchnorm)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=not batchnorm)
        self.norm2 = _norm(cout, batchnorm)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra:
            half = self.extra // 2
            shortcut = F.pad(shortcut, (0, 0, 0, 0, half, self.extra - half))
        return F.relu(out + shortcut)


class ResNet20(nn.Module):
    """CIFAR ResNet-20: a 3x3 stem, 3 stages of 3 basic blocks (16/32/64 channels, the
    last two stages halve the spatial size), global average pool, dropout, linear."""

    def __init__(self, in_channels, num_classes, size, batchnorm, dropout):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=not batchnorm),
                                  _norm(16, batchnorm), nn.ReLU(inplace=True))
        blocks, cin = [], 16
        for stage, cout in enumerate((16, 32, 64)):
            for i in range(3):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(_BasicBlock(cin, cout, stride, batchnorm))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), _dropout(dropout),
                                  nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# ---------------------------------------------------------------- vgg_small

class VGGSmall(nn.Module):
    """Three conv-conv-pool stacks (32/64/128 channels), global average pool, dropout,
    linear. A stack skips its pool when that would leave less than 2x2 (8x8 inputs:
    8 -> 4 -> 2 -> 2)."""

    def __init__(self, in_channels, num_classes, size, batchnorm, dropout):
        super().__init__()
        layers, cin, (h, w) = [], in_channels, size
        for cout in (32, 64, 128):
            layers += [_conv_block(cin, cout, batchnorm), _conv_block(cout, cout, batchnorm)]
            if min(h, w) // 2 >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), _dropout(dropout),
                                  nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
