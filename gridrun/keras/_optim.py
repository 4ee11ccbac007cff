"""The Keras trainer's optimizers, loss and gradient rules, written out so that they are the
PyTorch trainer's equations, not Keras' look-alikes.

Keras' built-in optimizers differ from PyTorch's in small ways that add up over a grid:
Adam's epsilon (1e-7 vs 1e-8, and Keras adds it to the bias-corrected denominator in
another place), RMSprop's decay (0.9 vs 0.99), SGD momentum's formulation (the learning
rate inside or outside the buffer, which differs once the rate is scheduled) and weight
decay (Keras' ``weight_decay`` is always decoupled, PyTorch's is coupled except in
AdamW). :class:`Optimizer` implements PyTorch's update of each optimizer instead:

- sgd / nesterov: ``g += wd * w``; ``b = m * b + g``; nesterov ``g = g + m * b`` else ``g = b``;
  ``w -= lr * g`` (no momentum buffer when m = 0).
- adam: ``g += wd * w``; ``m1 = b1 m1 + (1 - b1) g``; ``m2 = b2 m2 + (1 - b2) g^2``;
  ``w -= lr / (1 - b1^t) * m1 / (sqrt(m2) / sqrt(1 - b2^t) + eps)``, b1 0.9, b2 0.999,
  eps 1e-8, ``t`` counted per variable.
- adamw: ``w *= 1 - lr * wd``, then adam without the coupled term.
- rmsprop: ``g += wd * w``; ``v = a v + (1 - a) g^2``; ``w -= lr * g / (sqrt(v) + eps)``,
  a 0.99, eps 1e-8.

Gradient clipping is PyTorch's ``clip_grad_norm_`` (scale ``max_norm / (norm + 1e-6)``
when below 1), applied before the optimizer adds weight decay, as there. The loss is
cross entropy on soft targets with PyTorch's label smoothing and class-weight semantics.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gridrun.spec.rules import DEFAULT_LR, OPTIMIZERS

__all__ = ["Optimizer", "soft_cross_entropy", "l1_penalty", "clip_by_global_norm",
           "ADAM_BETAS", "EPSILON", "RMSPROP_ALPHA"]

ADAM_BETAS = (0.9, 0.999)
EPSILON = 1e-8  # Adam, AdamW and RMSprop, as in PyTorch
RMSPROP_ALPHA = 0.99
CLIP_EPS = 1e-6


class Optimizer:
    """PyTorch's update of optimizer ``name`` over ``variables`` (a list of tf.Variable).

    Its state (momentum buffers, moments, per-variable step counts) is tf.Variables made
    up front for every variable, so a frozen base that starts training later gets fresh
    state then, as in PyTorch. ``weight_decay`` and ``momentum`` are variables too (set
    them with :meth:`configure`): one traced step serves every value; only whether they
    are zero changes the computation. :meth:`apply` runs inside a ``tf.function``.

        >>> opt = Optimizer("adam", model.trainable_variables)        # doctest: +SKIP
        >>> opt.configure(weight_decay=5e-4)                           # doctest: +SKIP
        >>> opt.apply(grads, variables, lr)                            # doctest: +SKIP
    """

    def __init__(self, name: str, variables, *, decay: bool = True, momentum: bool = True):
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(DEFAULT_LR)}")
        self.name, self.decay = name, bool(decay)
        self.uses_momentum = bool(momentum) and name in ("sgd", "nesterov")
        self.weight_decay = tf.Variable(0.0, trainable=False, name="weight_decay")
        self.momentum = tf.Variable(0.0, trainable=False, name="momentum")
        self.variables = list(variables)
        self._slots = {id(v): self._make_slots(v, i) for i, v in enumerate(self.variables)}

    def configure(self, *, weight_decay: float = 0.0, momentum: float = 0.9) -> None:
        """Set the hyperparameters (checked as PyTorch checks them)."""
        weight_decay, momentum = float(weight_decay), float(momentum)
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if weight_decay and not self.decay:
            raise ValueError("this optimizer was built without weight decay")
        if self.name in ("sgd", "nesterov"):
            if not 0 <= momentum < 1:
                raise ValueError(f"momentum must be in [0, 1), got {momentum}")
            if self.name == "nesterov" and momentum == 0:
                raise ValueError("nesterov needs momentum > 0")
            if momentum and not self.uses_momentum:
                raise ValueError("this optimizer was built without momentum")
        self.weight_decay.assign(weight_decay)
        self.momentum.assign(momentum)

    def _make_slots(self, v, i: int) -> dict:
        def zeros(tag):
            return tf.Variable(tf.zeros_like(v), trainable=False, name=f"{tag}_{i}")

        if self.name in ("sgd", "nesterov"):
            return {"buf": zeros("momentum")} if self.uses_momentum else {}
        if self.name == "rmsprop":
            return {"sq": zeros("square_avg")}
        return {"m1": zeros("exp_avg"), "m2": zeros("exp_avg_sq"),
                "t": tf.Variable(0.0, trainable=False, name=f"step_{i}")}

    def state(self) -> list[tf.Variable]:
        """Every state variable, in a fixed order (for checkpoints)."""
        return [s for v in self.variables for _, s in sorted(self._slots[id(v)].items())]

    def apply(self, grads, variables, lr) -> None:
        """One step over ``variables`` (a subset of the optimizer's) with their ``grads``."""
        wd, mom = self.weight_decay, self.momentum
        for g, v in zip(grads, variables):
            if g is None:
                continue
            s = self._slots[id(v)]
            if self.name == "adamw":
                if self.decay:
                    v.assign(v * (1.0 - lr * wd))
            elif self.decay:
                g = g + wd * v
            if self.name in ("sgd", "nesterov"):
                if self.uses_momentum:
                    buf = s["buf"]
                    buf.assign(mom * buf + g)
                    g = g + mom * buf if self.name == "nesterov" else buf
                v.assign_sub(lr * g)
            elif self.name == "rmsprop":
                sq = s["sq"]
                sq.assign(RMSPROP_ALPHA * sq + (1 - RMSPROP_ALPHA) * tf.square(g))
                v.assign_sub(lr * g / (tf.sqrt(sq) + EPSILON))
            else:  # adam, adamw
                b1, b2 = ADAM_BETAS
                t = s["t"]
                t.assign_add(1.0)
                s["m1"].assign(b1 * s["m1"] + (1 - b1) * g)
                s["m2"].assign(b2 * s["m2"] + (1 - b2) * tf.square(g))
                denom = tf.sqrt(s["m2"]) / tf.sqrt(1 - b2 ** t) + EPSILON
                v.assign_sub(lr / (1 - b1 ** t) * s["m1"] / denom)


def clip_by_global_norm(grads, max_norm: float):
    """PyTorch's ``clip_grad_norm_``: scale every gradient by ``max_norm / (norm + 1e-6)``
    when that is below 1 (``norm`` the L2 norm of all of them together)."""
    present = [g for g in grads if g is not None]
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in present]))
    coef = tf.minimum(max_norm / (norm + CLIP_EPS), 1.0)
    return [None if g is None else g * coef for g in grads]


def l1_penalty(model: keras.Model) -> tf.Tensor:
    """``sum |w|`` over the kernels of every convolution and dense layer: no biases, no
    batch-norm scale or shift (PyTorch's ``l1_penalty``)."""
    kernels = [layer.kernel for layer in _layers(model)
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    if not kernels:
        return tf.zeros(())
    return tf.add_n([tf.reduce_sum(tf.abs(k)) for k in kernels])


def _layers(model):
    """Every layer inside ``model``, nested models and layers included."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)]


def soft_cross_entropy(logits: tf.Tensor, targets: tf.Tensor, *, label_smoothing: float = 0.0,
                       weights: tf.Tensor | None = None) -> tf.Tensor:
    """Mean cross entropy of ``logits`` (N, K) against soft ``targets`` (N, K), with
    PyTorch's semantics: smoothed ``s = (1 - eps) t + eps / K``; without weights
    ``mean_i sum_k s_ik (-log p_ik)``; with class weights ``w`` (K,),
    ``sum_ik s_ik w_k (-log p_ik) / sum_ik t_ik w_k``. One-hot targets give exactly
    ``F.cross_entropy`` of their integer labels."""
    k = logits.shape[-1]
    nll = -tf.nn.log_softmax(logits, axis=1)
    if isinstance(label_smoothing, (int, float)) and not label_smoothing:
        smoothed = targets
    else:  # a value or a variable; 0 gives the targets exactly
        smoothed = (1 - label_smoothing) * targets + label_smoothing / k
    if weights is None:
        return tf.reduce_mean(tf.reduce_sum(smoothed * nll, axis=1))
    return tf.reduce_sum(smoothed * weights * nll) / tf.reduce_sum(targets * weights)


def as_float_weights(weights) -> tf.Tensor | None:
    """Class weights (numpy or None) as a float32 tensor."""
    return None if weights is None else tf.constant(np.asarray(weights, np.float32))
