"""Every technique in the registry ACTS in the torch trainer: not just accepted, but changing
what training does in the way it promises. Driven by the registry: a technique added without
an entry in ACTS fails ``test_every_technique_is_proven_to_act``.

Each check runs the real Trainer on tiny synthetic data (class = a bright bar), one or two
epochs, on CPU; the operations' own properties are tested in test_augment_ops.py,
test_optim_schedules.py, test_model_options.py and tests/data/test_problems.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gridrun.spec import techniques
from gridrun.design.grid import resolve_config
from gridrun.torch import Trainer
from gridrun.torch._models import build_model
from gridrun.torch._optim import lr_at
from gridrun.torch._recipe import augment_batch

from gridrun.data.testing import bars

DATA = bars(n_train=256, n_val=128, n_test=128, size=16, channels=3, classes=4)
GRAY = bars(n_train=256, n_val=128, n_test=128, size=16, channels=1, classes=4)


def cfg(**kw):
    return resolve_config(kw, {"epochs": kw.pop("epochs", 2), "batch_size": 32})


def trainer(data=DATA, seed=0, epochs=1, **kw):
    t = Trainer(resolve_config(kw, {"epochs": max(epochs, 2), "batch_size": 32}), data,
                seed=seed, device="cpu")
    reports = [t.step() for _ in range(epochs)]
    return t, reports


def flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def changes_training(name, value, data=DATA, epochs=1, **extra):
    """Training with the technique gives other weights than without it, same seed."""
    a, _ = trainer(data, epochs=epochs, **extra)
    b, _ = trainer(data, epochs=epochs, **{name: value, **extra})
    assert not torch.equal(flat(a.model), flat(b.model)), f"{name}={value!r} did nothing"
    c, _ = trainer(data, epochs=epochs, **{name: value, **extra})
    assert torch.equal(flat(b.model), flat(c.model)), f"{name}={value!r} is not seeded"


def batch(data=DATA, n=32):
    t = Trainer(cfg(), data, seed=0, device="cpu")
    return t.data.x_train[:n], t.data.y_train[:n], t.data.num_classes


def augments(name, value, *, keeps_labels=True, data=DATA, **extra):
    x, y, k = batch(data)
    g = torch.Generator().manual_seed(0)
    x2, t2 = augment_batch(cfg(**{name: value, **extra}), x.clone(), y.clone(), g, k)
    assert x2.shape == x.shape and not torch.equal(x2, x), f"{name}={value!r}: same pixels"
    if keeps_labels:
        assert torch.equal(t2, y)
    changes_training(name, value, data, **extra)
    return x2, t2


# -- framework --------------------------------------------------------------------------------
def act_framework():
    with pytest.raises(ValueError, match="torch trainer"):
        Trainer(resolve_config({"framework": "tensorflow"}, {"epochs": 1}), DATA, seed=0)
    t, reports = trainer()
    assert t.config["framework"] == "torch" and reports[0]["val_acc"] > 0.3


# -- input -----------------------------------------------------------------------------------
def act_normalize():
    x = batch()[0]
    seen = {m: Trainer(cfg(normalize=m), DATA, seed=0, device="cpu").normalize(x)
            for m in ("none", "rescale", "standardize")}
    assert seen["none"].max() > 100 and seen["rescale"].max() <= 1.0
    assert torch.allclose(seen["none"], seen["rescale"] * 255)
    t = Trainer(cfg(), DATA, seed=0, device="cpu")
    full = t.normalize(t.data.x_train)
    assert full.mean(dim=(0, 2, 3)).abs().max() < 1e-4  # standardized on the train split
    changes_training("normalize", "rescale")


# -- augmentation ----------------------------------------------------------------------------
def act_augmentation():
    augments("augmentation", True)


def act_augment_policy():
    std, _ = augments("augment_policy", "standard")
    strong, _ = augments("augment_policy", "strong")
    assert not torch.equal(std, strong)


def act_crop():
    augments("crop", True)


def act_flip():
    x, y, k = batch()
    x2, y2 = augment_batch(cfg(flip=True), x.clone(), y.clone(),
                           torch.Generator().manual_seed(0), k)
    mirrored = [(x2[i] == x[i].flip(-1)).all() and not (x2[i] == x[i]).all()
                for i in range(len(x))]
    unchanged = [(x2[i] == x[i]).all() for i in range(len(x))]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored)
    assert torch.equal(y2, y)  # the labels are kept
    changes_training("flip", True)


def act_rotation():
    augments("rotation", 30.0)


def act_zoom():
    augments("zoom", 0.3)


def act_shear():
    augments("shear", 20.0)


def act_fill_mode():
    x, y, k = batch()
    out = {m: augment_batch(cfg(rotation=40.0, fill_mode=m), x.clone(), y,
                            torch.Generator().manual_seed(0), k)[0]
           for m in ("constant", "nearest", "reflect")}
    assert not torch.equal(out["constant"], out["nearest"])
    assert not torch.equal(out["nearest"], out["reflect"])
    changes_training("fill_mode", "nearest", rotation=40.0)


def act_brightness():
    augments("brightness", 0.5)


def act_contrast():
    augments("contrast", 0.5)


def act_saturation():
    augments("saturation", 0.5)
    with pytest.raises(ValueError, match="RGB"):
        x, y, k = batch(GRAY)
        augment_batch(cfg(saturation=0.5), x, y, torch.Generator().manual_seed(0), k)


def act_hue():
    augments("hue", 0.2)


def act_erasing():
    x2, _ = augments("erasing", 1.0)


def _soft(name, alpha):
    x, y, k = batch()
    x2, t = augment_batch(cfg(**{name: alpha}), x.clone(), y.clone(),
                          torch.Generator().manual_seed(0), k)
    assert t.shape == (len(y), k) and torch.allclose(t.sum(1), torch.ones(len(y)))
    assert ((t > 0).sum(1) <= 2).all() and (t >= 0).all()
    assert not torch.equal(x2, x)
    changes_training(name, alpha)


def act_mixup():
    _soft("mixup", 0.4)


def act_cutmix():
    _soft("cutmix", 1.0)


# -- architecture ----------------------------------------------------------------------------
def _params(**kw):
    return sum(p.numel() for p in Trainer(cfg(**kw), DATA, seed=0, device="cpu")
               .model.parameters())


def act_backbone():
    counts = {b: _params(backbone=b) for b in techniques.get("backbone").choices}
    assert len(set(counts.values())) == len(counts), counts


def act_depth():
    assert _params(backbone="vgg", depth=13) > _params(backbone="vgg", depth=11)
    assert _params(backbone="resnet20", depth=32) > _params(backbone="resnet20")


def act_width():
    assert _params(width=2.0) > 2 * _params()


def act_activation():
    changes_training("activation", "elu")


def act_pooling():
    changes_training("pooling", "avg")


def act_global_pool():
    assert _params(global_pool=True) < _params()
    changes_training("global_pool", True)


def act_batchnorm():
    t = Trainer(cfg(batchnorm=True), DATA, seed=0, device="cpu")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in t.model.modules())
    changes_training("batchnorm", True)


def act_dropout():
    model = build_model("simple_cnn", 3, 4, 16, False, 0.5)
    x = torch.rand(8, 3, 16, 16)
    model.train()
    assert not torch.equal(model(x), model(x))  # train mode: units dropped at random
    model.eval()
    assert torch.equal(model(x), model(x))  # eval mode: deterministic
    changes_training("dropout", 0.5)


# -- transfer ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A base trained on the grayscale bars, saved as gridrun's trainer saves models."""
    t, _ = trainer(GRAY, epochs=1)
    path = tmp_path_factory.mktemp("w") / "bars.pt"
    torch.save(t.model.state_dict(), path)
    return path, {k: v.clone() for k, v in t.model.state_dict().items()}


def _base(model):
    from gridrun.torch._models import base_state_keys

    keys = set(base_state_keys(model))
    return {k: v for k, v in model.state_dict().items() if k in keys}


def act_pretrained(weights):
    path, saved = weights
    t = Trainer(cfg(pretrained=str(path)), GRAY, seed=1, device="cpu")
    base = _base(t.model)
    assert base and all(torch.equal(v, saved[k]) for k, v in base.items())
    fresh = Trainer(cfg(), GRAY, seed=1, device="cpu")
    assert not all(torch.equal(v, fresh.model.state_dict()[k]) for k, v in base.items())


def act_freeze_epochs(weights):
    path, saved = weights
    t = Trainer(cfg(pretrained=str(path), freeze_epochs=1, epochs=3), GRAY, seed=1,
                device="cpu")
    head0 = flat(t.model).clone()
    t.step()  # frozen: the base is bit-identical, the head learned
    assert all(torch.equal(v, saved[k]) for k, v in _base(t.model).items())
    assert not torch.equal(flat(t.model), head0)
    t.step()  # released: the base trains too
    assert not all(torch.equal(v, saved[k]) for k, v in _base(t.model).items())


def act_finetune_lr(weights):
    path, _ = weights
    t = Trainer(cfg(pretrained=str(path), freeze_epochs=1, finetune_lr=0.1, epochs=3), GRAY,
                seed=1, device="cpu")
    first, second = t.step(), t.step()
    assert first["lr"] == pytest.approx(0.05) and second["lr"] == pytest.approx(0.005)


# -- regularization ---------------------------------------------------------------------------
def _norm(t, p=2):
    return float(sum(w.detach().abs().pow(p).sum() for n, w in t.model.named_parameters()
                     if n.endswith("weight")) ** (1 / p))


def act_weight_decay():
    plain, _ = trainer(epochs=2)
    decayed, _ = trainer(epochs=2, weight_decay=0.05)
    assert _norm(decayed) < _norm(plain)


def act_l1():
    plain, _ = trainer(epochs=2)
    sparse, _ = trainer(epochs=2, l1=1e-3)
    assert _norm(sparse, 1) < _norm(plain, 1)


def act_label_smoothing():
    _, plain = trainer(epochs=2)
    _, smooth = trainer(epochs=2, label_smoothing=0.3)
    assert smooth[-1]["train_loss"] > plain[-1]["train_loss"]


def _early(monitor):
    t, reports = trainer(epochs=12, early_stopping=1, early_stopping_monitor=monitor,
                         lr=0.2, data=GRAY)
    reports += [t.step() for _ in range(12 - len(reports))] if not t.done else []
    trained = [r for r in reports if not r.get("early_stopped")]
    values = [r[monitor] for r in trained]
    better = (lambda a, b: a < b) if monitor == "val_loss" else (lambda a, b: a > b)
    # the first epoch with `patience` (1) epochs without improvement ends training
    best, best_i, stop = values[0], 0, None
    for i, v in enumerate(values[1:], 1):
        if better(v, best):
            best, best_i = v, i
        elif i - best_i >= 1:
            stop = i
            break
    assert stop is not None, "the scenario must trigger early stopping"
    assert t.stopped_at == stop + 1 and len(trained) == stop + 1
    restored = reports[stop + 1]  # the first epoch after stopping reports the restored model
    assert restored["early_stopped"] and restored["train_loss"] is None
    assert restored[monitor] == pytest.approx(trained[best_i][monitor])
    return t


def act_early_stopping():
    _early("val_loss")


def act_early_stopping_monitor():
    _early("val_acc")


# -- optimization -----------------------------------------------------------------------------
def act_optimizer():
    finals = {o: flat(trainer(optimizer=o, lr=0.01, weight_decay=0.01)[0].model)
              for o in techniques.get("optimizer").choices}
    names = list(finals)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.equal(finals[a], finals[b]), (a, b)


def act_momentum():
    changes_training("momentum", 0.0)


def act_lr():
    changes_training("lr", 0.2)


def _lr_after_epochs(epochs, **kw):
    t = Trainer(cfg(epochs=epochs, **kw), DATA, seed=0, device="cpu")
    out = []
    for _ in range(epochs):
        t.step()
        out.append(t.optimizer.param_groups[0]["lr"])
    return out, t._steps_per_epoch


def _expected(epochs, spe, **kw):
    c = cfg(epochs=epochs, **kw)
    return [lr_at(spe * e - 1, base_lr=0.05, steps_per_epoch=spe, epochs=epochs,
                  schedule=c["lr_schedule"], step_epochs=c["lr_step_epochs"],
                  gamma=c["lr_gamma"], staircase=c["lr_staircase"],
                  warmup_epochs=c["warmup_epochs"]) for e in range(1, epochs + 1)]


def act_lr_schedule():
    for schedule in techniques.get("lr_schedule").choices:
        got, spe = _lr_after_epochs(4, lr_schedule=schedule)
        assert got == pytest.approx(_expected(4, spe, lr_schedule=schedule)), schedule
    got, _ = _lr_after_epochs(4, lr_schedule="step", lr_step_epochs=1)
    assert got == pytest.approx([0.05, 0.005, 0.0005, 0.00005])  # x0.1 each epoch
    got, _ = _lr_after_epochs(2, lr_schedule="cosine")
    assert got[-1] < 0.05 * 0.01  # annealed to (nearly) zero at the end


def act_lr_step_epochs():
    got, _ = _lr_after_epochs(4, lr_schedule="step", lr_step_epochs=2)
    # the lr of each epoch's last step: x0.1 after every second epoch
    assert got == pytest.approx([0.05, 0.05, 0.005, 0.005])


def act_lr_gamma():
    got, _ = _lr_after_epochs(3, lr_schedule="exponential", lr_gamma=0.5)
    assert got == pytest.approx([0.05, 0.025, 0.0125])


def act_lr_staircase():
    stair, _ = _lr_after_epochs(2, lr_schedule="exponential", lr_gamma=0.5)
    smooth, spe = _lr_after_epochs(2, lr_schedule="exponential", lr_gamma=0.5,
                                   lr_staircase=False)
    assert stair[0] == pytest.approx(0.05)
    assert smooth[0] == pytest.approx(0.05 * 0.5 ** ((spe - 1) / spe))


def act_warmup_epochs():
    got, spe = _lr_after_epochs(3, warmup_epochs=2)
    assert got[0] == pytest.approx(0.05 * spe / (2 * spe)) and got[2] == pytest.approx(0.05)


def act_grad_clip():
    start = flat(Trainer(cfg(), DATA, seed=0, device="cpu").model)
    free, _ = trainer()
    clipped, _ = trainer(grad_clip=1e-3)
    assert (flat(clipped.model) - start).norm() < (flat(free.model) - start).norm()


def act_batch_size():
    a, _ = trainer()
    b = Trainer(resolve_config({}, {"epochs": 2, "batch_size": 64}), DATA, seed=0,
                device="cpu")
    b.step()
    assert a._step == math.ceil(256 / 32) and b._step == math.ceil(256 / 64)


def act_epochs():
    t = Trainer(cfg(epochs=3), DATA, seed=0, device="cpu")
    reports = [t.step() for _ in range(3)]
    assert t.done and "test_acc" in reports[-1] and "test_acc" not in reports[0]


def act_shuffle():
    t = Trainer(cfg(shuffle=False), DATA, seed=0, device="cpu")
    before = t._order_gen.get_state()
    t.step()
    t.step()
    assert torch.equal(t._order_gen.get_state(), before)  # no new order drawn
    # the fixed order is the first epoch's: training differs from the second epoch on
    changes_training("shuffle", False, epochs=2)


# -- data problems ----------------------------------------------------------------------------
def _counts(view, data, k):
    labels = view.labels[view.index].numpy() if view is not None else data.y_train.numpy()
    return np.bincount(labels, minlength=k)


def act_imbalance():
    t = Trainer(cfg(imbalance=0.1), GRAY, seed=0, device="cpu")
    full = np.bincount(t.data.y_train.numpy(), minlength=4)
    counts = _counts(t.train_data, t.data, 4)
    ratios = counts / full
    assert ratios[0] == 1.0 and ratios[-1] == pytest.approx(0.1, abs=0.05)
    assert (np.diff(ratios) <= 0).all()
    assert len(t.data.y_val) == 128 and len(t.data.y_test) == 128  # val and test untouched
    changes_training("imbalance", 0.1, data=GRAY)


def act_imbalance_remedy():
    over = Trainer(cfg(imbalance=0.1, imbalance_remedy="oversample"), GRAY, seed=0,
                   device="cpu")
    counts = _counts(over.train_data, over.data, 4)
    assert counts.min() == counts.max()
    weighted = Trainer(cfg(imbalance=0.1, imbalance_remedy="class_weight"), GRAY, seed=0,
                       device="cpu")
    w = weighted.train_data.weights.numpy()
    assert w[-1] > w[0]  # the rare class weighs more
    changes_training("imbalance_remedy", "class_weight", data=GRAY, imbalance=0.1)


def act_label_noise():
    t = Trainer(cfg(label_noise=0.25), GRAY, seed=0, device="cpu")
    view = t.train_data
    changed = (view.labels != t.data.y_train).sum().item()
    assert changed == view.flipped == round(0.25 * len(t.data.y_train))
    assert torch.equal(t.data.y_val, torch.as_tensor(GRAY.y_val))  # val and test untouched
    assert torch.equal(t.data.y_test, torch.as_tensor(GRAY.y_test))
    changes_training("label_noise", 0.25, data=GRAY)


# -- speed: how the model computes, not what it learns ---------------------------------------
def first_conv_io(t):
    """(input, output) of the model's first convolution in its next training step."""
    conv = next(m for m in t.model.modules() if isinstance(m, torch.nn.Conv2d))
    seen = {}
    def hook(module, inputs, output):
        seen.setdefault("io", (inputs[0], output))

    handle = conv.register_forward_hook(hook)
    try:
        t.step()
    finally:
        handle.remove()
    return seen["io"]


def learns_like_plain(t, plain, *, atol):
    """Same seed, same batches: the weights after training equal plain fp32 training's up to
    rounding (``atol``), stay float32, and the checkpoint holds the plain module's keys."""
    assert all(p.dtype == torch.float32 for p in t.model.parameters())
    diff = (flat(t.model) - flat(plain.model)).abs().max().item()
    assert diff < atol, f"weights differ from plain training by {diff}"
    assert set(t.state_dict()["model"]) == set(plain.state_dict()["model"])


def act_channels_last():
    t = Trainer(cfg(channels_last=True), DATA, seed=0, device="cpu")
    x, _ = first_conv_io(t)
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    weight = next(p for p in t.model.parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    plain, _ = trainer()
    learns_like_plain(t, plain, atol=1e-4)
    again = Trainer.from_bytes(t.to_bytes(), DATA, device="cpu")  # the layout survives
    assert next(p for p in again.model.parameters() if p.dim() == 4 and p.shape[1] > 1) \
        .is_contiguous(memory_format=torch.channels_last)


def act_precision():
    t = Trainer(cfg(precision="bf16"), DATA, seed=0, device="cpu")
    x, out = first_conv_io(t)
    assert x.dtype == torch.float32 and out.dtype == torch.bfloat16
    plain, _ = trainer()
    # bfloat16 keeps 8 bits of mantissa: close to fp32 training, not equal to it
    learns_like_plain(t, plain, atol=0.05)
    assert not torch.equal(flat(t.model), flat(plain.model))
    b, reports = trainer(precision="bf16")
    assert math.isfinite(reports[0]["train_loss"]) and reports[0]["val_acc"] > 0.3
    c, _ = trainer(precision="bf16")
    assert torch.equal(flat(b.model), flat(c.model)), "bf16 training is not seeded"


def act_compile():
    # Compiling costs tens of seconds on CPU: one trainer, checked every way at once.
    t, reports = trainer(compile=True)
    assert t._net is not t.model and isinstance(t._net, torch.nn.Module)
    plain, plain_reports = trainer()
    learns_like_plain(t, plain, atol=1e-4)
    assert reports[0]["val_acc"] == pytest.approx(plain_reports[0]["val_acc"], abs=0.02)
    again = Trainer.from_bytes(t.to_bytes(), DATA, device="cpu")
    assert torch.equal(flat(again.model), flat(t.model))


ACTS = {name[len("act_"):]: fn for name, fn in dict(globals()).items()
        if name.startswith("act_")}
NEEDS_WEIGHTS = {"pretrained", "freeze_epochs", "finetune_lr"}


def test_every_technique_is_proven_to_act():
    missing = set(techniques.for_framework("torch")) - set(ACTS)
    assert not missing, f"techniques without a test that they act: {sorted(missing)}"
    assert not set(ACTS) - set(techniques.names())


@pytest.mark.parametrize("name", sorted(set(ACTS) - NEEDS_WEIGHTS))
def test_technique_acts(name):
    ACTS[name]()


@pytest.mark.parametrize("name", sorted(NEEDS_WEIGHTS))
def test_transfer_technique_acts(name, weights):
    ACTS[name](weights)
