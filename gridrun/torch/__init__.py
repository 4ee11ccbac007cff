"""The PyTorch trainer: models, on-device augmentation and the training loop of one trial.

Importing this package imports torch; ``import gridrun`` never imports it.

    >>> from gridrun.torch import train, build_model, count_parameters
    >>> model = build_model("simple_cnn", in_channels=1, num_classes=10, image_size=28,
    ...                     batchnorm=False, dropout=0.0)
"""

from gridrun.torch._models import build_model, count_parameters
from gridrun.torch._train import train

__all__ = ["train", "build_model", "count_parameters"]
