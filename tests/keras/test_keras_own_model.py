"""Models of the researcher's own in the Keras trainer: built from the trial's config, seeded
as the built-ins (a replica of simple_cnn trains to its very metrics), keyed by the factors
the builder reads, checkpointed like the built-ins, and checked with one-line errors."""

from __future__ import annotations

import random

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from gridrun.data.testing import bars  # noqa: E402
from gridrun.design.grid import resolve_config  # noqa: E402
from gridrun.keras import Trainer, check_model  # noqa: E402
from gridrun.keras._models import BN_EPSILON, BN_MOMENTUM  # noqa: E402
from gridrun.keras._program import Program, forget_programs  # noqa: E402
from gridrun.keras._own import OwnProgram  # noqa: E402
from gridrun.spec.plugins import Plugins, install  # noqa: E402

DATA = bars(n_train=256, n_val=96, n_test=64, size=8)
BUSY = {"dropout": 0.3, "batchnorm": True, "optimizer": "adam", "augment_policy": "strong",
        "mixup": 0.2}


def replica(config, input_shape, num_classes):
    """The built-in simple_cnn (relu, max pooling) in plain Keras, layer for layer, with
    its layer names and unseeded initializers."""
    c, h, w = input_shape
    bn, rate = config["batchnorm"], config["dropout"]
    inputs = keras.Input((h, w, c), name="input")
    x = inputs
    for i, channels in ((0, 32), (2, 64)):
        x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=not bn,
                                kernel_initializer="glorot_uniform", name=f"features.{i}.0")(x)
        if bn:
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                                name=f"features.{i}.1")(x)
        x = keras.layers.ReLU(name=f"features.{i}.{2 if bn else 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"features.{i + 1}")(x)
    x = keras.layers.Flatten(name="classifier.0")(x)
    if rate > 0:
        x = keras.layers.Dropout(rate, name="classifier.1")(x)
    x = keras.layers.ReLU(name="classifier.3")(keras.layers.Dense(128, name="classifier.2")(x))
    if rate > 0:
        x = keras.layers.Dropout(rate, name="classifier.4")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="classifier.5")(x))


def unnamed(config, input_shape, num_classes):
    """Keras' auto-names; one more hidden layer when the custom factor ``extra`` is set."""
    c, h, w = input_shape
    layers = [keras.Input((h, w, c)), keras.layers.Flatten(), keras.layers.Dense(16,
                                                                                   "relu")]
    if config["extra"]:
        layers.append(keras.layers.Dense(16, "relu"))
    layers += [keras.layers.Dropout(config["dropout"]), keras.layers.Dense(num_classes)]
    return keras.Sequential(layers)


_BUILT = []


def cached(config, input_shape, num_classes):
    """A builder that hands out one model object again and again."""
    if not _BUILT:
        _BUILT.append(unnamed(config, input_shape, num_classes))
    return _BUILT[0]


@pytest.fixture
def own():
    install(Plugins(models={"replica": {"tensorflow": replica},
                            "unnamed": {"tensorflow": unnamed},
                            "cached": {"tensorflow": cached}}, factors={"extra": "bool"}))
    yield
    install(None)
    forget_programs()


def config(epochs=2, **kw):
    return resolve_config({"framework": "tensorflow", **kw}, {"epochs": epochs,
                                                              "batch_size": 32})


def run(cfg, seed=0):
    t = Trainer(cfg, DATA, seed=seed)
    return [t.step() for _ in range(cfg["epochs"])]


def same(a, b):
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in a] == \
        [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in b]


@pytest.mark.parametrize("options", [{}, BUSY], ids=["default", "busy"])
def test_a_replica_of_simple_cnn_trains_to_its_metrics(own, options):
    built_in = run(config(**options), seed=4)
    mine = run(config(backbone="replica", **options), seed=4)
    assert same(built_in, mine)
    assert mine[0]["params"] == built_in[0]["params"]


def test_a_custom_factor_reaches_the_builder_and_the_program(own):
    plain = Trainer(config(backbone="unnamed", extra=False), DATA, seed=0)
    extra = Trainer(config(backbone="unnamed", extra=True), DATA, seed=0)
    assert extra.params == plain.params + 16 * 16 + 16
    assert extra._program is not plain._program  # not one program for both structures
    again = Trainer(config(backbone="unnamed", extra=False, lr=0.05), DATA, seed=1)
    assert again._program is plain._program  # seeds and unread settings share one


def test_a_build_depends_on_the_seed_only(own):
    first = Trainer(config(backbone="unnamed", extra=False, dropout=0.2), DATA, seed=2)
    weights = [v.numpy() for v in first.model.variables]
    keras.layers.Dense(3)  # Keras' name counters move on; the next build starts afresh
    state = random.getstate(), np.random.get_state()[1].tolist()
    forget_programs()
    second = Trainer(config(backbone="unnamed", extra=False, dropout=0.2), DATA, seed=2)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(weights, second.model.variables))
    assert (random.getstate(), np.random.get_state()[1].tolist()) == state
    other = Trainer(config(backbone="unnamed", extra=False, dropout=0.2), DATA, seed=3)
    assert not np.array_equal(weights[0], other.model.variables[0].numpy())


def test_a_checkpoint_of_a_custom_model_continues_exactly(own):
    cfg = config(backbone="unnamed", extra=True, **BUSY)
    straight = run(cfg, seed=3)
    t = Trainer(cfg, DATA, seed=3)
    first = t.step()
    again = Trainer.from_bytes(t.to_bytes(), DATA)
    assert again.epoch == 1 and again.config["extra"] is True
    assert same(straight, [first, again.step()])


def test_an_own_program_has_the_programs_attributes(own):
    built_in = Trainer(config(), DATA, seed=0)._program
    mine = Trainer(config(backbone="replica"), DATA, seed=0)._program
    assert type(built_in) is Program and isinstance(mine, OwnProgram)
    own_only = {"builder", "what", "input_shape", "read", "base_key", "key"}
    assert set(vars(mine)) - own_only == set(vars(built_in))


def test_pretrained_and_freezing_are_refused_for_a_custom_model(own):
    with pytest.raises(ValueError, match="freeze_epochs .*drop them"):
        Trainer(config(backbone="replica", freeze_epochs=1), DATA, seed=0)


def test_a_builder_must_build_a_new_model_each_time(own):
    with pytest.raises(ValueError, match=r"^models\['cached'\] returned the same model twice"):
        Trainer(config(backbone="cached", extra=False), DATA, seed=0)


def test_check_model_reports_the_keys_read(own):
    cfg = config(backbone="unnamed", extra=True)
    read = check_model(unnamed, cfg, (1, 8, 8), 4, "models['unnamed']")
    assert read == {"extra", "dropout"}
    assert check_model(replica, cfg, (1, 8, 8), 4, "m") == {"batchnorm", "dropout"}


def broken(config, input_shape, num_classes):
    raise RuntimeError("no such layer\nsecond line")


def not_a_model(config, input_shape, num_classes):
    return keras.layers.Dense(num_classes)


def too_many(config, input_shape, num_classes):
    return unnamed({**config, "extra": False}, input_shape, num_classes + 1)


def channels_first(config, input_shape, num_classes):
    inputs = keras.Input(input_shape)  # (C, H, W): not the trainer's layout
    return keras.Model(inputs, keras.layers.Dense(num_classes)(
        keras.layers.Flatten()(keras.layers.Conv2D(2, 3, padding="same")(inputs))))


@pytest.mark.parametrize("builder, message", [
    (broken, r"^models\['x'\] raised RuntimeError: no such layer second line$"),
    (not_a_model, r"^models\['x'\] returned Dense, not a keras.Model$"),
    (too_many, r"^models\['x'\]: its model maps a batch of shape \(2, 8, 8, 1\) \(NHWC\) to "
               r"\(2, 5\), not to float logits of shape \(2, 4\)$"),
    (channels_first, r"^models\['x'\]: its model fails on a batch of shape \(2, 8, 8, 1\) "
                     r"\(NHWC float32\): "),
])
def test_check_model_errors_are_one_line(own, builder, message):
    with pytest.raises(ValueError, match=message) as e:
        check_model(builder, config(extra=False), (1, 8, 8), 4, "models['x']")
    assert "\n" not in str(e.value)
