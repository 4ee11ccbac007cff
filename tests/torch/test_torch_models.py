"""Every registered backbone, with and without batch norm, on every supported input shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gridrun.spec import techniques
from gridrun.torch import build_model, count_parameters

BACKBONES = techniques.get("backbone").choices
SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3)]  # (H, W, C), as gridrun.data gives them
SHAPE_IDS = ["8x8x1", "28x28x1", "32x32x3"]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_forward_gives_one_logit_per_class(backbone, batchnorm, shape):
    h, w, c = shape
    model = build_model(backbone, c, 7, h, batchnorm, 0.0)
    out = model(torch.randn(5, c, h, w))
    assert out.shape == (5, 7)
    assert torch.isfinite(out).all()
    big = backbone in ("vgg", "resnet18")  # the ImageNet-sized families
    assert 10_000 < count_parameters(model) < (20_000_000 if big else 1_000_000)


@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_batchnorm_follows_every_conv_and_only_when_asked(backbone, batchnorm):
    model = build_model(backbone, 3, 10, 32, batchnorm, 0.0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == (len(convs) if batchnorm else 0)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_dropout_makes_training_mode_stochastic(backbone):
    torch.manual_seed(0)
    model = build_model(backbone, 1, 10, 28, batchnorm=False, dropout=0.5)
    x = torch.randn(8, 1, 28, 28)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_zero_dropout_means_no_dropout_layer(backbone):
    model = build_model(backbone, 1, 10, 28, batchnorm=False, dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(model.train()(x), model.eval()(x))


def test_resnet20_has_he_et_al_size():
    # 0.27M parameters in He et al. (2016), Table 6; option-A shortcuts have none.
    model = build_model("resnet20", 3, 10, 32, batchnorm=True, dropout=0.0)
    assert count_parameters(model) == 269_722


def test_count_parameters_skips_frozen_weights():
    model = build_model("simple_cnn", 1, 10, 8, batchnorm=False, dropout=0.0)
    total = count_parameters(model)
    model.classifier[-1].weight.requires_grad_(False)
    assert count_parameters(model) == total - 128 * 10


def test_non_square_images_work():
    for backbone in BACKBONES:
        model = build_model(backbone, 2, 3, (8, 12), batchnorm=True, dropout=0.1)
        assert model(torch.randn(2, 2, 8, 12)).shape == (2, 3)


def test_unknown_backbone_lists_the_registered_ones():
    with pytest.raises(ValueError, match="simple_cnn, resnet20, vgg_small.*did you mean 'resnet20'"):
        build_model("resnet2O", 3, 10, 32, batchnorm=False, dropout=0.0)


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="too small"):
        build_model("simple_cnn", 1, 10, 7, batchnorm=False, dropout=0.0)
    with pytest.raises(ValueError, match="out of range"):
        build_model("simple_cnn", 1, 10, 8, batchnorm=False, dropout=1.0)


def test_registry_description_names_every_backbone():
    description = techniques.get("backbone").description
    assert all(name in description for name in BACKBONES)
