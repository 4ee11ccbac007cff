"""The PyTorch trainer: models, on-device augmentation and the training loop of one trial.

Importing this package imports torch; ``import gridrun`` never imports it.

    >>> from gridrun.torch import train, build_model, count_parameters
    >>> model = build_model("simple_cnn", in_channels=1, num_classes=10, image_size=28,
    ...                     batchnorm=False, dropout=0.0)

``train`` runs one trial to the end; ``Trainer`` steps it one epoch at a time and saves and
restores it exactly, and ``prepare_data`` puts a dataset on the device once for the trainers
of several seeds (call ``set_threads`` first when driving trainers yourself).
"""

from gridrun.torch._data import DeviceData, prepare_data
from gridrun.torch._models import build_model, count_parameters
from gridrun.torch._own import check_model
from gridrun.torch._train import Trainer, set_threads, train

__all__ = ["train", "Trainer", "DeviceData", "prepare_data", "set_threads", "build_model",
           "count_parameters", "check_model"]
