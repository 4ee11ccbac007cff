"""The Keras backbones are the torch backbones: the same layers, names, shapes, parameter
counts and outputs; deterministic builds; the base/head split and freezing."""

from __future__ import annotations

import math

import numpy as np
import pytest

import keras  # conftest has skipped this directory without TensorFlow
import tensorflow as tf

from gridrun.keras._models import (BACKBONES, BN_EPSILON, BN_MOMENTUM, backbone_name,
                                   base_frozen, base_variables, build_model,
                                   count_parameters, head_layer_names, head_variables,
                                   set_base_trainable)

# vgg and resnet18 have ~10M parameters at width 1; a quarter keeps most tests fast.
SMALL = {"vgg": {"width": 0.25}, "resnet18": {"width": 0.25}}
INPUTS = [(28, 1), (32, 3), (8, 1)]
OPTIONS = [dict(activation="leaky_relu"), dict(activation="elu"), dict(pooling="avg"),
           dict(global_pool=True), dict(width=0.5)]
DEPTH_CASES = [("vgg", 13), ("vgg", 16), ("resnet20", 32)]
_TORCH_NAMES = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
                "moving_mean": "running_mean", "moving_variance": "running_var"}


def torch_models():
    return pytest.importorskip("torch"), pytest.importorskip("gridrun.torch._models")


def torch_key(path: str) -> str:
    """The torch state_dict key of a Keras variable path: layers carry torch's names."""
    layer, var = path.split("/")
    return f"{layer}.{_TORCH_NAMES[var]}"


def torch_layout(array: np.ndarray) -> np.ndarray:
    """A Keras kernel in torch's layout: HWIO -> OIHW for convs, (in, out) -> (out, in)."""
    return array.transpose(3, 2, 0, 1) if array.ndim == 4 else array.T


def both(backbone, c, size, batchnorm, classes=10, dropout=0.0, **options):
    _, tm = torch_models()
    return (build_model(backbone, c, classes, size, batchnorm, dropout, **options),
            tm.build_model(backbone, c, classes, size, batchnorm, dropout, **options))


# ---------------------------------------------------------------- same architecture

def assert_same_layout(km, tmodel):
    """Every torch state_dict entry has a Keras variable of the same name and shape."""
    kshapes = {torch_key(v.path): tuple(torch_layout(np.zeros(v.shape)).shape)
               for v in km.weights}
    tshapes = {k: tuple(v.shape) for k, v in tmodel.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    assert kshapes == tshapes


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_has_torchs_layers_and_parameter_count(backbone, batchnorm):
    _, tm = torch_models()
    for size, c in INPUTS:
        km, tmodel = both(backbone, c, size, batchnorm)
        assert count_parameters(km) == tm.count_parameters(tmodel) > 0
        assert_same_layout(km, tmodel)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_option_builds_torchs_architecture(backbone, options):
    _, tm = torch_models()
    options = {**SMALL.get(backbone, {}), **options}
    for batchnorm in (False, True):
        for size, c in INPUTS:
            km, tmodel = both(backbone, c, size, batchnorm, **options)
            assert count_parameters(km) == tm.count_parameters(tmodel)
            assert_same_layout(km, tmodel)


@pytest.mark.parametrize("backbone, depth", DEPTH_CASES)
def test_every_depth_builds_torchs_architecture(backbone, depth):
    _, tm = torch_models()
    for batchnorm in (False, True):
        for size, c in INPUTS:
            km, tmodel = both(backbone, c, size, batchnorm, depth=depth,
                              **SMALL.get(backbone, {}))
            assert count_parameters(km) == tm.count_parameters(tmodel)
            assert_same_layout(km, tmodel)
            assert backbone_name(km) == tm.backbone_name(tmodel) == f"{backbone} (depth {depth})"


def test_the_readme_count_and_labels():
    assert count_parameters(build_model("resnet20", 3, 10, 32, True, 0.0)) == 269722
    assert backbone_name(build_model("resnet20", 1, 10, 8, True, 0.0)) == "resnet20"
    assert backbone_name(build_model("vgg", 1, 10, 8, True, 0.0, width=0.25)) == \
        "vgg (depth 11)"


def copy_torch_weights(tmodel, km):
    """Load a torch model's state into the Keras model, transposing kernels; simple_cnn's
    first dense layer gets its rows reordered from torch's CHW flattening to HWC."""
    state = {k: v.detach().numpy() for k, v in tmodel.state_dict().items()}
    for v in km.weights:
        value = state[torch_key(v.path)]
        value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
        layer = v.path.split("/")[0]
        if layer == "classifier.2" and v.path.endswith("kernel") and km.name == "simple_cnn":
            c, (_, h, w, _) = tmodel.features[2][0].out_channels, km.inputs[0].shape
            hh, ww = h // 4, w // 4
            if value.shape[0] == c * hh * ww:  # not after a global pool
                order = np.arange(c * hh * ww).reshape(c, hh, ww).transpose(1, 2, 0).ravel()
                value = value[order]
        v.assign(value)


@pytest.mark.parametrize("backbone, size, options", [
    ("simple_cnn", 28, {}), ("simple_cnn", (9, 11), {}), ("simple_cnn", 8, {"global_pool": True}),
    ("resnet20", 32, {}), ("resnet20", (9, 11), {"activation": "elu"}),
    ("vgg_small", 8, {"pooling": "avg"}), ("vgg", 32, {"width": 0.25}),
    ("resnet18", (9, 11), {"width": 0.25, "activation": "leaky_relu"}),
])
def test_logits_equal_torchs_for_the_same_weights(backbone, size, options):
    torch, _ = torch_models()
    c = 3
    km, tmodel = both(backbone, c, size, True, **options)
    with torch.no_grad():  # batch-norm statistics far from 0 and 1, so they matter
        for name, buf in tmodel.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.5)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
        for p in tmodel.parameters():
            p.add_(0.05 * torch.randn_like(p))
    copy_torch_weights(tmodel, km)
    h, w = (size, size) if isinstance(size, int) else size
    x = np.random.default_rng(0).normal(size=(4, h, w, c)).astype("float32")
    tmodel.eval()
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    got = np.asarray(km(x, training=False))
    assert got.shape == (4, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    tmodel.train()  # batch statistics: both normalise with the biased batch variance
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(np.asarray(km(x, training=True)), expected, rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("kwargs", [
    dict(backbone="resnet19"), dict(backbone=3), dict(activation="ReLU"),
    dict(pooling="min"), dict(global_pool=1), dict(width=0), dict(width=float("nan")),
    dict(depth=18), dict(backbone="simple_cnn", depth=11), dict(image_size=7),
    dict(image_size=(8, 7)), dict(num_classes=1), dict(dropout=1.0), dict(batchnorm="yes"),
])
def test_bad_arguments_get_torchs_messages(kwargs):
    _, tm = torch_models()
    args = dict(backbone="vgg", in_channels=1, num_classes=10, image_size=8, batchnorm=False,
                dropout=0.0)
    args.update(kwargs)
    with pytest.raises(ValueError) as torch_error:
        tm.build_model(**args)
    with pytest.raises(ValueError) as keras_error:
        build_model(**args)
    assert str(keras_error.value) == str(torch_error.value)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_a_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match=f"seed must be an integer >= 0, got {seed!r}"):
        build_model("simple_cnn", 1, 10, 8, False, 0.0, seed=seed)


# ---------------------------------------------------------------- numerics and determinism

def weights(model):
    return {v.path: np.asarray(v.numpy()) for v in model.weights}


def test_the_same_seed_builds_the_same_weights_and_dropout_masks():
    tf.random.set_seed(123)  # global state must not matter
    a = build_model("simple_cnn", 1, 10, 8, True, 0.5, seed=7)
    tf.random.set_seed(456)
    keras.utils.set_random_seed(9)
    b = build_model("simple_cnn", 1, 10, 8, True, 0.5, seed=7)
    c = build_model("simple_cnn", 1, 10, 8, True, 0.5, seed=8)
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert wa.keys() == wb.keys() == wc.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    kernels = [k for k in wa if k.endswith("kernel")]
    assert all(not np.array_equal(wa[k], wc[k]) for k in kernels)
    x = np.ones((8, 8, 8, 1), "float32")
    first_a, first_b = np.asarray(a(x, training=True)), np.asarray(b(x, training=True))
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(first_a, np.asarray(c(x, training=True)))
    # the mask stream moves on from step to step, the same way in both
    second_a, second_b = np.asarray(a(x, training=True)), np.asarray(b(x, training=True))
    np.testing.assert_array_equal(second_a, second_b)
    assert not np.array_equal(first_a, second_a)


def test_options_that_add_layers_leave_the_other_layers_initial_weights():
    plain = weights(build_model("resnet20", 1, 10, 8, False, 0.0, seed=3))
    more = weights(build_model("resnet20", 1, 10, 8, False, 0.5, seed=3))
    assert plain.keys() == more.keys()
    assert all(np.array_equal(plain[k], more[k]) for k in plain)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_kernels_are_glorot_uniform_and_biases_zero(backbone):
    model = build_model(backbone, 3, 10, 8, False, 0.0, **SMALL.get(backbone, {}))
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        k = np.asarray(kernel.numpy())
        receptive = int(np.prod(k.shape[:-2]))
        bound = math.sqrt(6 / (receptive * (k.shape[-2] + k.shape[-1])))
        assert np.abs(k).max() <= bound
        if k.size > 200:  # uniform over the whole range, not a narrower init
            assert np.abs(k).max() > 0.9 * bound
        assert layer.bias is not None and not np.asarray(layer.bias.numpy()).any()


def test_batch_norm_is_torchs_and_convs_before_it_have_no_bias():
    model = build_model("resnet18", 1, 10, 8, True, 0.0, width=0.25)
    norms = [lay for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization)]
    assert norms and all(n.momentum == BN_MOMENTUM == 0.9 and n.epsilon == BN_EPSILON == 1e-5
                         for n in norms)
    convs = [lay for lay in model.layers if isinstance(lay, keras.layers.Conv2D)]
    assert convs and all(conv.bias is None for conv in convs)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_logits_have_one_column_per_class_inside_a_tf_function(backbone):
    model = build_model(backbone, 1, 7, 8, True, 0.3, **SMALL.get(backbone, {}))
    step = tf.function(lambda x, training: model(x, training=training), jit_compile=False)
    x = tf.random.stateless_normal((5, 8, 8, 1), seed=(1, 2))
    for training in (True, False):
        assert step(x, training).shape == (5, 7)


def test_variable_paths_are_the_same_for_every_model_built():
    paths = [[v.path for v in build_model("resnet20", 1, 10, 8, True, 0.5).variables]
             for _ in range(2)]
    assert paths[0] == paths[1]
    assert "stem.0/kernel" in paths[0] and "head.2/seed_generator_state" in paths[0]
    assert not [p for p in paths[0] if "_1" in p or p.startswith("seed_generator")]


# ---------------------------------------------------------------- base and head

@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_head_is_torchs_head(backbone):
    _, tm = torch_models()
    km, tmodel = both(backbone, 1, 8, True, dropout=0.5, **SMALL.get(backbone, {}))
    assert {torch_key(v.path) for v in head_variables(km)} == \
        {k for k in tm.head_state_keys(tmodel)}
    assert {torch_key(v.path) for v in base_variables(km)} == \
        {k for k in tm.base_state_keys(tmodel) if not k.endswith("num_batches_tracked")}
    assert all(n.startswith(tm.head_name(tmodel) + ".") for n in head_layer_names(km))


def test_a_frozen_base_neither_trains_nor_updates_its_batch_norm():
    model = build_model("resnet20", 1, 10, 8, True, 0.0)
    head = {v.path for v in head_variables(model)}
    set_base_trainable(model, False)
    assert base_frozen(model)
    assert {v.path for v in model.trainable_variables} == head
    before = weights(model)
    x = tf.random.stateless_normal((8, 8, 8, 1), seed=(3, 4)) * 3 + 2
    model(x, training=True)
    after = weights(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert count_parameters(model) == 269434  # frozen parameters still count
    set_base_trainable(model, True)
    assert not base_frozen(model)
    assert len(model.trainable_variables) > len(head)
    model(x, training=True)
    moved = weights(model)
    assert not np.array_equal(moved["stem.1/moving_mean"], before["stem.1/moving_mean"])


def test_set_base_trainable_takes_a_bool():
    with pytest.raises(ValueError, match="trainable must be True or False, got 0"):
        set_base_trainable(build_model("simple_cnn", 1, 10, 8, False, 0.0), 0)
