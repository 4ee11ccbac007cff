"""A model of the researcher's own in the PyTorch trainer: the custom path adds nothing of
its own (the built-in simple_cnn written out in plain torch trains to the same numbers), a
custom factor reaches the builder, checkpoints continue exactly, and a bad builder is one
line before anything runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from gridrun.spec.plugins import Plugins, install
from gridrun.torch import Trainer, check_model


def plain_simple_cnn(config, input_shape, num_classes):
    """gridrun's simple_cnn, layer by layer, with its Glorot-uniform initialisation."""
    c, h, w = input_shape
    model = nn.Sequential(
        nn.Sequential(nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.ReLU()), nn.MaxPool2d(2),
                      nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU()),
                      nn.MaxPool2d(2)),
        nn.Sequential(nn.Flatten(), nn.Dropout(config["dropout"]),
                      nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(),
                      nn.Dropout(config["dropout"]), nn.Linear(128, num_classes)))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def widening(config, input_shape, num_classes):
    width = 16 if config["wide"] else 4
    return nn.Sequential(nn.Conv2d(input_shape[0], width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


@pytest.fixture
def own():
    install(Plugins(models={"plain": {"torch": plain_simple_cnn},
                            "widening": {"torch": widening}}, factors={"wide": "bool"}))
    yield
    install(None)


def trained(config, data, epochs=2, seed=3):
    t = Trainer(config, data, seed=seed, device="cpu")
    return [{k: v for k, v in t.step().items() if k != "epoch_seconds"} for _ in range(epochs)]


def test_the_built_in_network_written_out_trains_to_the_same_numbers(own, data, config):
    builtin = trained(config(backbone="simple_cnn", dropout=0.25, epochs=2), data)
    mine = trained(config(backbone="plain", dropout=0.25, epochs=2), data)
    assert mine == builtin  # bit for bit: the same weights, data order and dropout draws


def test_a_custom_factor_reaches_the_builder(own, data, config):
    narrow = Trainer({**config(backbone="widening"), "wide": False}, data, seed=0)
    wide = Trainer({**config(backbone="widening"), "wide": True}, data, seed=0)
    assert wide.params > narrow.params
    assert wide.step()["epoch"] == 1


def test_a_checkpoint_of_a_custom_model_continues_exactly(own, data, config):
    cfg = {**config(backbone="widening", epochs=3), "wide": True}
    straight = trained(cfg, data, epochs=3)
    first = Trainer(cfg, data, seed=3, device="cpu")
    first.step()
    again = Trainer.from_bytes(first.to_bytes(), data, device="cpu")
    rest = [{k: v for k, v in again.step().items() if k != "epoch_seconds"} for _ in range(2)]
    assert rest == straight[1:]


def raising(config, input_shape, num_classes):
    raise KeyError("depth_mult")


def not_a_module(config, input_shape, num_classes):
    return "a network"


def seven_classes(config, input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * 64, 7))


@pytest.mark.parametrize("builder,message", [
    (raising, "models['x'] raised KeyError: 'depth_mult'"),
    (not_a_module, "models['x'] returned str, not a torch.nn.Module"),
    (seven_classes, "models['x']: its model maps a batch of shape (2, 1, 8, 8) to (2, 7), "
                    "not to logits of shape (2, 10)"),
])
def test_a_bad_builder_is_one_line(builder, message):
    with pytest.raises(ValueError) as err:
        check_model(builder, {"wide": True}, (1, 8, 8), 10, "models['x']")
    assert str(err.value) == message and "\n" not in str(err.value)


def test_check_model_says_what_the_builder_read_and_leaves_torch_s_random_state():
    before = torch.get_rng_state()
    read = check_model(widening, {"wide": True, "dropout": 0.0}, (1, 8, 8), 10, "m")
    assert read == {"wide"} and torch.equal(torch.get_rng_state(), before)
