"""Every technique in the registry ACTS in the Keras trainer: not just accepted, but changing
what training does in the way it promises. Driven by the registry: a technique the registry
says tensorflow implements without an entry in ACTS fails
``test_every_technique_is_proven_to_act`` (the torch trainer's twin is
tests/torch/test_torch_techniques_act.py).

Each check runs the real Trainer on tiny synthetic data (class = a bright bar), one or two
epochs, on CPU; the operations' own properties are tested in test_keras_augment.py,
test_keras_models.py and test_keras_train.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from gridrun.spec import techniques  # noqa: E402
from gridrun.spec.rules import lr_at  # noqa: E402
from gridrun.data.testing import bars  # noqa: E402
from gridrun.design.grid import resolve_config  # noqa: E402
from gridrun.keras import Trainer  # noqa: E402
from gridrun.keras._augment import augment_batch  # noqa: E402
from gridrun.keras._models import build_model  # noqa: E402
from gridrun.keras._pretrained import save_weights  # noqa: E402
from gridrun.keras._split import base_variables  # noqa: E402

DATA = bars(n_train=256, n_val=128, n_test=128, size=16, channels=3, classes=4)
GRAY = bars(n_train=256, n_val=128, n_test=128, size=16, channels=1, classes=4)
SEED = tf.constant([0, 0], tf.int64)


def cfg(**kw):
    return resolve_config({"framework": "tensorflow", **kw},
                          {"epochs": kw.pop("epochs", 2), "batch_size": 32})


def trainer(data=DATA, seed=0, epochs=1, **kw):
    t = Trainer(resolve_config({"framework": "tensorflow", **kw},
                               {"epochs": max(epochs, 2), "batch_size": 32}), data, seed=seed)
    reports = [t.step() for _ in range(epochs)]
    return t, reports


def flat(model) -> np.ndarray:
    return np.concatenate([v.numpy().ravel() for v in model.trainable_weights])


def changes_training(name, value, data=DATA, epochs=1, **extra):
    """Training with the technique gives other weights than without it, same seed."""
    a, _ = trainer(data, epochs=epochs, **extra)
    b, _ = trainer(data, epochs=epochs, **{name: value, **extra})
    assert not np.array_equal(flat(a.model), flat(b.model)), f"{name}={value!r} did nothing"
    c, _ = trainer(data, epochs=epochs, **{name: value, **extra})
    assert np.array_equal(flat(b.model), flat(c.model)), f"{name}={value!r} is not seeded"


def batch(data=DATA, n=32):
    t = Trainer(cfg(), data, seed=0)
    return t.data.x_train[:n], t.data.y_train[:n], t.data.num_classes


def augments(name, value, *, keeps_labels=True, data=DATA, **extra):
    x, y, k = batch(data)
    x2, t2 = augment_batch(cfg(**{name: value, **extra}), x, y, SEED, k)
    assert x2.shape == x.shape and not np.array_equal(x2, x), f"{name}={value!r}: same pixels"
    if keeps_labels:
        assert np.array_equal(t2, y)
    changes_training(name, value, data, **extra)
    return x2, t2


# -- framework --------------------------------------------------------------------------------
def act_framework():
    with pytest.raises(ValueError, match="tensorflow trainer"):
        Trainer(resolve_config({"framework": "torch"}, {"epochs": 1}), DATA, seed=0)
    t, reports = trainer()
    assert t.config["framework"] == "tensorflow" and reports[0]["val_acc"] > 0.3


# -- input -----------------------------------------------------------------------------------
def act_normalize():
    x = batch()[0]
    seen = {m: Trainer(cfg(normalize=m), DATA, seed=0)._normalize(x).numpy()
            for m in ("none", "rescale", "standardize")}
    assert seen["none"].max() > 100 and seen["rescale"].max() <= 1.0
    assert np.allclose(seen["none"], seen["rescale"] * 255)
    t = Trainer(cfg(), DATA, seed=0)
    full = t._normalize(t.data.x_train).numpy()
    assert np.abs(full.mean(axis=(0, 1, 2))).max() < 1e-4  # standardized on the train split
    changes_training("normalize", "rescale")


# -- augmentation ----------------------------------------------------------------------------
def act_augmentation():
    augments("augmentation", True)


def act_augment_policy():
    std, _ = augments("augment_policy", "standard")
    strong, _ = augments("augment_policy", "strong")
    assert not np.array_equal(std, strong)


def act_crop():
    augments("crop", True)


def act_flip():
    x, y, k = batch()
    x2, y2 = augment_batch(cfg(flip=True), x, y, SEED, k)
    x, x2 = x.numpy(), x2.numpy()
    mirrored = [(x2[i] == x[i][:, ::-1]).all() and not (x2[i] == x[i]).all()
                for i in range(len(x))]
    unchanged = [(x2[i] == x[i]).all() for i in range(len(x))]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored)
    assert np.array_equal(y2, y)  # the labels are kept
    changes_training("flip", True)


def act_rotation():
    augments("rotation", 30.0)


def act_zoom():
    augments("zoom", 0.3)


def act_shear():
    augments("shear", 20.0)


def act_fill_mode():
    x, y, k = batch()
    out = {m: augment_batch(cfg(rotation=40.0, fill_mode=m), x, y, SEED, k)[0].numpy()
           for m in ("constant", "nearest", "reflect")}
    assert not np.array_equal(out["constant"], out["nearest"])
    assert not np.array_equal(out["nearest"], out["reflect"])
    changes_training("fill_mode", "nearest", rotation=40.0)


def act_brightness():
    augments("brightness", 0.5)


def act_contrast():
    augments("contrast", 0.5)


def act_saturation():
    augments("saturation", 0.5)
    with pytest.raises(ValueError, match="RGB"):
        x, y, k = batch(GRAY)
        augment_batch(cfg(saturation=0.5), x, y, SEED, k)


def act_hue():
    augments("hue", 0.2)


def act_erasing():
    augments("erasing", 1.0)


def _soft(name, alpha):
    x, y, k = batch()
    x2, t = augment_batch(cfg(**{name: alpha}), x, y, SEED, k)
    t = t.numpy()
    assert t.shape == (len(y), k) and np.allclose(t.sum(1), 1.0)
    assert ((t > 0).sum(1) <= 2).all() and (t >= 0).all()
    assert not np.array_equal(x2, x)
    changes_training(name, alpha)


def act_mixup():
    _soft("mixup", 0.4)


def act_cutmix():
    _soft("cutmix", 1.0)


# -- architecture ----------------------------------------------------------------------------
def _params(**kw):
    return Trainer(cfg(**kw), DATA, seed=0).params


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
    import keras

    t = Trainer(cfg(batchnorm=True), DATA, seed=0)
    layers = t.model._flatten_layers(include_self=False, recursive=True)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers)
    changes_training("batchnorm", True)


def act_dropout():
    model = build_model("simple_cnn", 3, 4, 16, False, 0.5)
    x = tf.random.uniform((8, 16, 16, 3), seed=1)
    a, b = model(x, training=True), model(x, training=True)
    assert not np.array_equal(a, b)  # training: units dropped at random
    assert np.array_equal(model(x, training=False), model(x, training=False))
    changes_training("dropout", 0.5)


# -- transfer ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A base trained on the grayscale bars, saved as a tensorflow run's keep_weights does."""
    t, _ = trainer(GRAY, epochs=1)
    path = tmp_path_factory.mktemp("w") / "bars.npz"
    save_weights(t.model, path)
    return path, [v.numpy().copy() for v in base_variables(t.model)]


def _base(model):
    return [v.numpy() for v in base_variables(model)]


def act_pretrained(weights):
    path, saved = weights
    t = Trainer(cfg(pretrained=str(path)), GRAY, seed=1)
    base = _base(t.model)
    assert base and all(np.array_equal(v, s) for v, s in zip(base, saved))
    fresh = _base(Trainer(cfg(), GRAY, seed=1).model)
    assert not all(np.array_equal(v, s) for v, s in zip(base, fresh))


def act_freeze_epochs(weights):
    path, saved = weights
    t = Trainer(cfg(pretrained=str(path), freeze_epochs=1, epochs=3), GRAY, seed=1)
    all0 = np.concatenate([v.numpy().ravel() for v in t.model.weights])
    t.step()  # frozen: the base is bit-identical (batch-norm statistics too), the head learned
    assert all(np.array_equal(v, s) for v, s in zip(_base(t.model), saved))
    assert not np.array_equal(np.concatenate([v.numpy().ravel() for v in t.model.weights]),
                              all0)
    t.step()  # released: the base trains too
    assert not all(np.array_equal(v, s) for v, s in zip(_base(t.model), saved))


def act_finetune_lr(weights):
    path, _ = weights
    t = Trainer(cfg(pretrained=str(path), freeze_epochs=1, finetune_lr=0.1, epochs=3), GRAY,
                seed=1)
    first, second = t.step(), t.step()
    assert first["lr"] == pytest.approx(0.05) and second["lr"] == pytest.approx(0.005)


# -- regularization ---------------------------------------------------------------------------
def _norm(t, p=2):
    kernels = [v.numpy() for v in t.model.trainable_weights if v.path.endswith("kernel")]
    return float(sum((np.abs(k) ** p).sum() for k in kernels) ** (1 / p))


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
            assert not np.array_equal(finals[a], finals[b]), (a, b)


def act_momentum():
    changes_training("momentum", 0.0)


def act_lr():
    changes_training("lr", 0.2)


def _lr_after_epochs(epochs, **kw):
    t = Trainer(cfg(epochs=epochs, **kw), DATA, seed=0)
    return [t.step()["lr"] for _ in range(epochs)], t._steps_per_epoch


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
    assert got == pytest.approx([0.05, 0.005, 0.0005, 0.00005])


def act_lr_step_epochs():
    got, _ = _lr_after_epochs(4, lr_schedule="step", lr_step_epochs=2)
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
    start = flat(Trainer(cfg(), DATA, seed=0).model)
    free, _ = trainer()
    clipped, _ = trainer(grad_clip=1e-3)
    assert np.linalg.norm(flat(clipped.model) - start) < np.linalg.norm(flat(free.model) - start)


def act_batch_size():
    a, _ = trainer()
    b = Trainer(resolve_config({"framework": "tensorflow"}, {"epochs": 2, "batch_size": 64}),
                DATA, seed=0)
    b.step()
    assert a._step == math.ceil(256 / 32) and b._step == math.ceil(256 / 64)


def act_epochs():
    t = Trainer(cfg(epochs=3), DATA, seed=0)
    reports = [t.step() for _ in range(3)]
    assert t.done and "test_acc" in reports[-1] and "test_acc" not in reports[0]


def act_shuffle():
    t = Trainer(cfg(shuffle=False), DATA, seed=0)
    before = t._order.bit_generator.state
    t.step()
    t.step()
    assert t._order.bit_generator.state == before  # no new order drawn
    changes_training("shuffle", False, epochs=2)


# -- data problems ----------------------------------------------------------------------------
def _counts(t, k):
    labels = t._labels.numpy()
    return np.bincount(labels[t._index] if t._index is not None else labels, minlength=k)


def act_imbalance():
    t = Trainer(cfg(imbalance=0.1), GRAY, seed=0)
    full = np.bincount(GRAY.y_train, minlength=4)
    ratios = _counts(t, 4) / full
    assert ratios[0] == 1.0 and ratios[-1] == pytest.approx(0.1, abs=0.05)
    assert (np.diff(ratios) <= 0).all()
    assert len(t.data.y_val) == 128 and len(t.data.y_test) == 128  # val and test untouched
    changes_training("imbalance", 0.1, data=GRAY)


def act_imbalance_remedy():
    over = Trainer(cfg(imbalance=0.1, imbalance_remedy="oversample"), GRAY, seed=0)
    counts = _counts(over, 4)
    assert counts.min() == counts.max()
    weighted = Trainer(cfg(imbalance=0.1, imbalance_remedy="class_weight"), GRAY, seed=0)
    w = weighted.class_weights.numpy()
    assert w[-1] > w[0]  # the rare class weighs more
    changes_training("imbalance_remedy", "class_weight", data=GRAY, imbalance=0.1)


def act_label_noise():
    t = Trainer(cfg(label_noise=0.25), GRAY, seed=0)
    changed = int((t._labels.numpy() != GRAY.y_train).sum())
    assert changed == t.flipped == round(0.25 * len(GRAY.y_train))
    assert np.array_equal(t.data.y_val, GRAY.y_val)  # val and test untouched
    assert np.array_equal(t.data.y_test, GRAY.y_test)
    changes_training("label_noise", 0.25, data=GRAY)


ACTS = {name[len("act_"):]: fn for name, fn in dict(globals()).items()
        if name.startswith("act_")}
NEEDS_WEIGHTS = {"pretrained", "freeze_epochs", "finetune_lr"}


def test_every_technique_is_proven_to_act():
    missing = set(techniques.for_framework("tensorflow")) - set(ACTS)
    assert not missing, f"techniques without a test that they act: {sorted(missing)}"
    assert not set(ACTS) - set(techniques.names())


@pytest.mark.parametrize("name", sorted(set(ACTS) - NEEDS_WEIGHTS))
def test_technique_acts(name):
    ACTS[name]()


@pytest.mark.parametrize("name", sorted(NEEDS_WEIGHTS))
def test_transfer_technique_acts(name, weights):
    ACTS[name](weights)
