"""Your own model in the grid: a small network of one's own on Fashion-MNIST, with two of its
components ablated as factors of their own (a squeeze-and-excitation gate, a residual skip)
beside two built-in techniques (batch normalization, which the builder reads, and label
smoothing, which the trainer applies to any model).

2^4 = 16 configurations x 3 seeds = 48 trials of up to 8 epochs, screened by ASHA:
    gridrun launch ablations/own_model.py
"""

import torch
import torch.nn as nn

from gridrun import ASHA, Ablation, Factor


class Gate(nn.Module):
    """Squeeze-and-excitation: each channel scaled by a weight learned from all channels."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(),
                                nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class Block(nn.Module):
    """conv-(BN)-ReLU-conv-(BN), optionally gated, optionally added to its input."""

    def __init__(self, channels: int, batchnorm: bool, se_block: bool, residual: bool):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(channels)) if batchnorm else nn.Identity
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), norm(),
                                  nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  norm())
        self.gate = Gate(channels) if se_block else nn.Identity()
        self.residual = residual

    def forward(self, x):
        out = self.gate(self.body(x))
        return torch.relu(out + x if self.residual else out)


def own_cnn(config, input_shape, num_classes):
    """The builder: the trial's config (read-only), (channels, height, width), classes."""
    channels = 32
    return nn.Sequential(
        nn.Conv2d(input_shape[0], channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        Block(channels, config["batchnorm"], config["se_block"], config["residual"]),
        nn.MaxPool2d(2),
        Block(channels, config["batchnorm"], config["se_block"], config["residual"]),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


ablation = Ablation(
    name="own_model",
    dataset="fashion_mnist",
    models={"own_cnn": own_cnn},
    factors=[
        Factor("se_block", [False, True], custom=True),
        Factor("residual", [False, True], custom=True),
        Factor("batchnorm", [False, True]),
        Factor("label_smoothing", [0.0, 0.1]),
    ],
    fixed={"backbone": "own_cnn", "epochs": 8, "optimizer": "adam", "batch_size": 128},
    seeds=3,
    train_size=6000,
    scheduler=ASHA(grace_period=1, reduction_factor=3),
    resources={"cpu": 1},
)
