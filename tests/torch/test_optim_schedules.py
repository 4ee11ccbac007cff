"""Optimization and regularization building blocks of gridrun.torch._optim, on known answers:
optimizers, the learning-rate schedule, early stopping, L1 penalty, gradient clipping and the
soft-target cross entropy."""

from __future__ import annotations

import doctest
import json
import math

import pytest
import torch
import torch.nn.functional as F

from gridrun.torch import _optim
from gridrun.torch._optim import (DEFAULT_LR, EarlyStopping, apply_lr, clip_gradients,
                                  l1_penalty, lr_at, make_optimizer, resolve_lr,
                                  soft_cross_entropy)

approx = pytest.approx


def test_doctests():
    assert doctest.testmod(_optim, optionflags=doctest.ELLIPSIS).failed == 0


# ------------------------------------------------------------------------------ optimizers

def test_default_lrs_keep_the_old_names_and_add_the_new_ones():
    assert DEFAULT_LR == {"sgd": 0.05, "adam": 0.001, "rmsprop": 0.001,
                          "nesterov": 0.05, "adamw": 0.001}
    assert resolve_lr("nesterov", None) == 0.05 and resolve_lr("adamw", None) == 0.001
    assert resolve_lr("adamw", 0.02) == 0.02
    with pytest.raises(ValueError, match="unknown optimizer"):
        resolve_lr("lion", None)


def param(*values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


def steps(name, grads, *, lr, weight_decay=0.0, start=(1.0, 2.0), **kwargs):
    """The parameter after one optimizer step per gradient in ``grads``."""
    w = param(*start)
    opt = make_optimizer(name, [w], lr, weight_decay, **kwargs)
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return w.detach()


def test_existing_optimizers_keep_their_settings():
    w = [param(1.0)]
    sgd = make_optimizer("sgd", w, 0.1, 1e-4)
    assert type(sgd) is torch.optim.SGD
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["nesterov"] is False
    assert sgd.defaults["weight_decay"] == 1e-4 and sgd.defaults["lr"] == 0.1
    adam = make_optimizer("adam", w, 0.01, 1e-4)
    assert type(adam) is torch.optim.Adam and adam.defaults["betas"] == (0.9, 0.999)
    assert adam.defaults["weight_decay"] == 1e-4
    rms = make_optimizer("rmsprop", w, 0.01, 1e-4)
    assert type(rms) is torch.optim.RMSprop
    assert rms.defaults["alpha"] == 0.99 and rms.defaults["momentum"] == 0
    assert type(make_optimizer("adamw", w, 0.01, 1e-4)) is torch.optim.AdamW
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lion", w, 0.01, 0.0)


def test_sgd_without_momentum_is_plain_gradient_descent():
    g = [0.5, -1.0]
    assert steps("sgd", [g], lr=0.1, momentum=0.0).tolist() == approx([0.95, 2.1])
    assert steps("sgd", [g, g], lr=0.1, momentum=0.0).tolist() == approx([0.9, 2.2])


def test_sgd_default_momentum_is_0_9():
    # buffer: g, then 0.9 g + g = 1.9 g: two steps move by lr * 2.9 g
    w = steps("sgd", [[0.5, -1.0]] * 2, lr=0.1)
    assert w.tolist() == approx([1 - 0.29 * 0.5, 2 + 0.29])


def test_nesterov_differs_from_sgd_on_the_same_gradients():
    # nesterov steps along g + 0.9 * buffer: 1.9 g, then g + 0.9 * 1.9 g = 2.71 g
    g = [0.5, -1.0]
    nesterov = steps("nesterov", [g, g], lr=0.1)
    assert nesterov.tolist() == approx([1 - 0.461 * 0.5, 2 + 0.461])
    assert not torch.allclose(nesterov, steps("sgd", [g, g], lr=0.1))
    assert steps("nesterov", [g], lr=0.1, momentum=0.5).tolist() == approx([0.925, 2.15])
    with pytest.raises(ValueError, match="momentum > 0"):
        make_optimizer("nesterov", [param(1.0)], 0.1, 0.0, momentum=0.0)


def test_sgd_weight_decay_is_coupled():
    # g = 0 + wd * w: w - lr * wd * w
    w = steps("sgd", [[0.0, 0.0]], lr=0.1, weight_decay=0.1, momentum=0.0)
    assert w.tolist() == approx([0.99, 1.98])


def test_adamw_decouples_weight_decay_and_adam_couples_it():
    zero = [[0.0, 0.0]]
    start = (1.0, -2.0)
    # AdamW: w * (1 - lr * wd), and the adaptive step of a zero gradient is 0.
    adamw = steps("adamw", zero, lr=0.1, weight_decay=0.1, start=start)
    assert adamw.tolist() == approx([0.99, -1.98], abs=1e-12)
    # Adam: the gradient is wd * w, whose first adaptive step is lr * sign(w).
    adam = steps("adam", zero, lr=0.1, weight_decay=0.1, start=start)
    assert adam.tolist() == approx([0.9, -1.9], abs=1e-6)
    assert not torch.allclose(adam, adamw)
    # without weight decay neither moves on a zero gradient
    for name in ("adam", "adamw"):
        assert steps(name, zero, lr=0.1, start=start).tolist() == [1.0, -2.0]


def test_apply_lr_sets_every_group():
    a, b = param(1.0), param(2.0)
    opt = make_optimizer("sgd", [{"params": [a]}, {"params": [b], "lr": 0.5}], 0.1, 0.0,
                         momentum=0.0)
    apply_lr(opt, 0.3)
    assert [group["lr"] for group in opt.param_groups] == [0.3, 0.3]
    a.grad, b.grad = torch.tensor([1.0], dtype=torch.float64), torch.tensor([2.0],
                                                                            dtype=torch.float64)
    opt.step()
    assert (a.item(), b.item()) == approx((0.7, 1.4))
    with pytest.raises(ValueError):
        apply_lr(opt, -0.1)


# ------------------------------------------------------------------------- LR schedule

def lrs(steps_, **kwargs):
    return [lr_at(s, **kwargs) for s in steps_]


def test_constant():
    kw = dict(base_lr=0.1, steps_per_epoch=10, epochs=3)
    assert lrs([0, 7, 29, 100], **kw) == [0.1] * 4
    assert lr_at(0, **kw) == lr_at(0, schedule="constant", **kw)


def test_step_at_epoch_boundaries():
    # epochs 6: step_epochs defaults to 6 // 3 = 2, i.e. 20 steps
    kw = dict(base_lr=0.1, steps_per_epoch=10, epochs=6, schedule="step")
    assert lrs([0, 19, 20, 39, 40, 59], **kw) == approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    kw.update(step_epochs=1, gamma=0.5)
    assert lrs([9, 10, 25, 30], **kw) == approx([0.1, 0.05, 0.025, 0.0125])
    # epochs 2: step_epochs defaults to max(1, 0) = 1
    assert lrs([9, 10], base_lr=1.0, steps_per_epoch=10, epochs=2,
               schedule="step") == approx([1.0, 0.1])
    # min_lr is a floor
    assert lr_at(20, base_lr=0.1, steps_per_epoch=10, epochs=3, schedule="step",
                 step_epochs=1, min_lr=0.005) == approx(0.005)


def test_exponential_staircase_versus_continuous():
    kw = dict(base_lr=1.0, steps_per_epoch=4, epochs=3, schedule="exponential", gamma=0.5)
    assert lrs([0, 3, 4, 6, 8], **kw) == approx([1.0, 1.0, 0.5, 0.5, 0.25])
    assert lrs([0, 2, 4, 6, 8], staircase=False, **kw) == approx(
        [1.0, 0.70710678, 0.5, 0.35355339, 0.25])


def test_cosine_from_base_to_min():
    kw = dict(base_lr=0.1, steps_per_epoch=10, epochs=4, schedule="cosine", min_lr=0.02)
    # 40 steps: midpoint (0.1 + 0.02) / 2 at step 20, a quarter in: 0.02 + 0.08 * 0.85355
    assert lrs([0, 10, 20, 40, 55], **kw) == approx([0.1, 0.08828427, 0.06, 0.02, 0.02])
    values = lrs(range(41), **kw)
    assert all(a > b for a, b in zip(values, values[1:]))


def test_warmup_then_the_schedule_over_the_remaining_steps():
    # 5 epochs of 10 steps, 1 warm-up epoch: 10 warm-up steps, then cosine over 40
    kw = dict(base_lr=0.1, steps_per_epoch=10, epochs=5, schedule="cosine", warmup_epochs=1)
    assert lrs([0, 4, 9, 10, 30, 50], **kw) == approx([0.01, 0.05, 0.1, 0.1, 0.05, 0.0])
    # constant with 2 warm-up epochs of 3 steps
    kw = dict(base_lr=0.1, steps_per_epoch=3, epochs=4, warmup_epochs=2)
    assert lrs([0, 5, 6, 11], **kw) == approx([0.1 / 6, 0.1, 0.1, 0.1])
    # step counts its epochs from the end of the warm-up
    kw = dict(base_lr=0.1, steps_per_epoch=10, epochs=5, schedule="step", step_epochs=2,
              warmup_epochs=1)
    assert lrs([29, 30], **kw) == approx([0.1, 0.01])
    # fractional warm-up epochs: round(0.5 * 10) = 5 steps
    assert lr_at(0, base_lr=0.1, steps_per_epoch=10, epochs=2,
                 warmup_epochs=0.5) == approx(0.02)


def test_onecycle_peaks_at_30_percent():
    kw = dict(base_lr=0.1, steps_per_epoch=10, epochs=10, schedule="onecycle")
    # 100 steps: 0.1 / 25 at the start, peak at step 30, cosine half-way down at step 65
    assert lrs([0, 15, 30, 65, 100], **kw) == approx([0.004, 0.052, 0.1, 0.050005, 1e-5])
    values = lrs(range(100), **kw)
    assert max(range(100), key=values.__getitem__) == 30


def test_cyclic_triangle_with_a_period_of_two_epochs():
    kw = dict(base_lr=0.1, steps_per_epoch=5, epochs=4, schedule="cyclic")
    assert lrs([0, 2, 5, 7, 10, 15, 20], **kw) == approx(
        [0.01, 0.046, 0.1, 0.064, 0.01, 0.1, 0.01])


@pytest.mark.parametrize("bad", [
    dict(schedule="linear"), dict(step=-1), dict(step=1.5), dict(base_lr=0.0),
    dict(steps_per_epoch=0), dict(epochs=0), dict(schedule="step", step_epochs=0),
    dict(gamma=0.0), dict(gamma=1.5), dict(warmup_epochs=-1), dict(warmup_epochs=4),
    dict(min_lr=0.2), dict(min_lr=-0.1)])
def test_bad_schedule_arguments_raise(bad):
    kw = dict(step=0, base_lr=0.1, steps_per_epoch=10, epochs=3)
    kw.update(bad)
    with pytest.raises(ValueError):
        lr_at(kw.pop("step"), **kw)


def test_every_schedule_accepts_its_defaults_and_warmup_spanning_the_run():
    for schedule in _optim.SCHEDULES:
        assert lr_at(5, base_lr=0.1, steps_per_epoch=10, epochs=3, schedule=schedule) > 0
        assert lr_at(29, base_lr=0.1, steps_per_epoch=10, epochs=3, schedule=schedule,
                     warmup_epochs=3) == approx(0.1)


# ---------------------------------------------------------------------- early stopping

def run_stopper(stopper, monitor, values, start=1):
    return [stopper.update(e, {monitor: v, "other": 0.0}) for e, v in enumerate(values, start)]


def test_early_stopping_on_a_loss():
    stopper = EarlyStopping(2)
    decisions = run_stopper(stopper, "val_loss", [1.0, 0.8, 0.85, 0.7, 0.75, 0.72])
    assert decisions == [False] * 5 + [True]
    assert (stopper.best_epoch, stopper.best_value) == (4, 0.7)


def test_early_stopping_on_an_accuracy():
    stopper = EarlyStopping(3, monitor="val_acc")
    decisions = run_stopper(stopper, "val_acc", [0.5, 0.6, 0.6, 0.65, 0.64, 0.63, 0.62])
    assert decisions == [False] * 6 + [True]  # a tie at epoch 3 is no improvement
    assert (stopper.best_epoch, stopper.best_value) == (4, 0.65)


def test_the_monitor_sets_the_direction():
    rising = [0.1, 0.2, 0.3, 0.4]
    for monitor in ("val_loss", "train_loss"):
        stopper = EarlyStopping(2, monitor=monitor)
        assert run_stopper(stopper, monitor, rising) == [False, False, True, True]
        assert stopper.best_epoch == 1
    for monitor in ("val_acc", "train_acc"):
        stopper = EarlyStopping(2, monitor=monitor)
        assert run_stopper(stopper, monitor, rising) == [False] * 4
        assert stopper.best_epoch == 4


def test_min_delta_and_nan():
    stopper = EarlyStopping(1, min_delta=0.1)
    assert run_stopper(stopper, "val_loss", [1.0, 0.95]) == [False, True]
    assert stopper.best_epoch == 1
    assert run_stopper(EarlyStopping(1), "val_loss", [1.0, 0.95]) == [False, False]
    stopper = EarlyStopping(1)
    assert run_stopper(stopper, "val_loss", [float("nan"), 2.0, float("nan")]) == [
        True, False, True]
    assert (stopper.best_epoch, stopper.best_value) == (2, 2.0)


def test_early_stopping_state_round_trips_through_a_checkpoint():
    values = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7]
    whole = run_stopper(EarlyStopping(3), "val_loss", values)
    first = EarlyStopping(3)
    head = run_stopper(first, "val_loss", values[:3])
    state = json.loads(json.dumps(first.state_dict()))  # plain values only
    second = EarlyStopping(3)
    second.load_state_dict(state)
    assert head + run_stopper(second, "val_loss", values[3:], start=4) == whole
    assert whole == [False] * 4 + [True, False]
    assert second.best_epoch == 6
    with pytest.raises(ValueError, match="settings differ"):
        EarlyStopping(2).load_state_dict(state)


def test_early_stopping_rejects_bad_settings_and_missing_metrics():
    with pytest.raises(ValueError):
        EarlyStopping(2, monitor="test_acc")
    with pytest.raises(ValueError):
        EarlyStopping(-1)
    with pytest.raises(ValueError):
        EarlyStopping(2, min_delta=-0.1)
    with pytest.raises(KeyError):
        EarlyStopping(2).update(1, {"val_acc": 0.5})


# ---------------------------------------------------------------------- regularization

def test_l1_penalty_sums_conv_and_linear_weights_only():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(8, 3))
    conv, bn, _, linear = model
    with torch.no_grad():
        conv.weight.fill_(-0.5)   # 18 weights: 9
        conv.bias.fill_(10.0)
        bn.weight.fill_(7.0)
        bn.bias.fill_(3.0)
        linear.weight.fill_(0.25)  # 24 weights: 6
        linear.bias.fill_(100.0)
    penalty = l1_penalty(model)
    assert penalty.shape == () and penalty.item() == approx(15.0)
    penalty.backward()
    assert torch.equal(conv.weight.grad, torch.full_like(conv.weight, -1.0))
    assert torch.equal(linear.weight.grad, torch.ones_like(linear.weight))
    assert conv.bias.grad is None and bn.weight.grad is None and linear.bias.grad is None
    assert l1_penalty(torch.nn.Sequential(torch.nn.BatchNorm1d(3))).item() == 0.0


def test_clip_gradients_caps_the_norm_and_returns_the_norm_before():
    def model_with_grads():
        model = torch.nn.Linear(2, 1)
        model.weight.grad = torch.tensor([[3.0, 4.0]])
        model.bias.grad = torch.tensor([12.0])  # total norm 13
        return model

    model = model_with_grads()
    assert clip_gradients(model, 1.3).item() == approx(13.0)
    assert model.weight.grad[0].tolist() == approx([0.3, 0.4], rel=1e-5)
    assert model.bias.grad.tolist() == approx([1.2], rel=1e-5)
    for off in (0, None, 100.0):
        model = model_with_grads()
        assert clip_gradients(model, off).item() == approx(13.0)
        assert model.weight.grad.tolist() == [[3.0, 4.0]] and model.bias.grad.tolist() == [12.0]
    with pytest.raises(ValueError):
        clip_gradients(model, -1.0)


# --------------------------------------------------------------------- cross entropy

@pytest.fixture
def logits_labels():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 4, generator=gen, dtype=torch.float64) * 2
    labels = torch.tensor([0, 1, 2, 3, 3, 1, 0, 2])
    return logits, labels


WEIGHT = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("weight", [None, WEIGHT], ids=["unweighted", "weighted"])
def test_matches_pytorch_for_hard_and_one_hot_targets(logits_labels, eps, weight):
    logits, labels = logits_labels
    expected = F.cross_entropy(logits, labels, weight=weight, label_smoothing=eps)
    assert soft_cross_entropy(logits, labels, eps, weight=weight).item() == approx(
        expected.item(), rel=1e-12)
    one_hot = F.one_hot(labels, 4).double()
    assert soft_cross_entropy(logits, one_hot, eps, weight=weight).item() == approx(
        expected.item(), rel=1e-12)


def test_known_values():
    logits = torch.tensor([[math.log(3.0), 0.0]])  # p = (0.75, 0.25)
    assert soft_cross_entropy(logits, torch.tensor([0])).item() == approx(0.2876821)
    assert soft_cross_entropy(logits, torch.tensor([[0.5, 0.5]])).item() == approx(0.8369882)
    # eps 0.5 on (1, 0): (0.75, 0.25)
    assert soft_cross_entropy(logits, torch.tensor([[1.0, 0.0]]), 0.5).item() == approx(
        0.5623351)
    assert soft_cross_entropy(logits, torch.tensor([0]), 0.5).item() == approx(0.5623351)
    # weighted soft targets: sum(s * w * nll) / sum(t * w)
    w = torch.tensor([1.0, 3.0])
    t = torch.tensor([[0.5, 0.5]])
    assert soft_cross_entropy(logits, t, weight=w).item() == approx(
        (0.5 * 0.2876821 + 1.5 * 1.3862944) / 2.0)


def test_mixup_targets_mix_the_two_losses(logits_labels):
    logits, labels = logits_labels
    other, lam = labels.flip(0), 0.3
    mixed = lam * F.one_hot(labels, 4).double() + (1 - lam) * F.one_hot(other, 4).double()
    for eps in (0.0, 0.2):
        expected = (lam * F.cross_entropy(logits, labels, label_smoothing=eps)
                    + (1 - lam) * F.cross_entropy(logits, other, label_smoothing=eps))
        assert soft_cross_entropy(logits, mixed, eps).item() == approx(expected.item())


def test_soft_gradient_is_softmax_minus_smoothed_targets(logits_labels):
    logits, labels = logits_labels
    logits = logits.clone().requires_grad_()
    targets = torch.softmax(torch.randn(8, 4, dtype=torch.float64), 1)
    soft_cross_entropy(logits, targets, 0.2).backward()
    smoothed = 0.8 * targets + 0.05
    expected = (torch.softmax(logits.detach(), 1) - smoothed) / 8
    assert torch.allclose(logits.grad, expected, atol=1e-12)


def test_soft_cross_entropy_rejects_bad_arguments(logits_labels):
    logits, labels = logits_labels
    with pytest.raises(ValueError):
        soft_cross_entropy(logits, torch.zeros(8, 3, dtype=torch.float64))
    with pytest.raises(ValueError):
        soft_cross_entropy(logits, labels, 1.5)
    with pytest.raises(ValueError):
        soft_cross_entropy(logits, labels, weight=torch.ones(3, dtype=torch.float64))
