"""Measured seconds per epoch for ``gridrun plan --calibrate``: one short training run per
backbone on the driver, with the spec's own trainer and data.

    >>> from gridrun import load_spec
    >>> calibrate(load_spec("ablations/quickstart.py"))   # doctest: +SKIP
    {'simple_cnn': 3.1}
"""

from __future__ import annotations

import dataclasses

from gridrun.data import load_dataset
from gridrun.design.grid import design_points, resolve_config
from gridrun.run.trainable import trainer_module
from gridrun.spec import plugins

__all__ = ["calibrate"]


def calibrate(ablation, *, epochs: int = 2, max_examples: int = 2048) -> dict:
    """Measured seconds per epoch for each backbone in the spec: one short training run
    per backbone on up to ``max_examples`` training images, timed by the trainer's own
    ``epoch_seconds`` of the last epoch (the first pays one-off setup), then scaled to
    the full training size."""
    plugins.install(ablation.plugins)  # a backbone or trainer of the spec's own
    data = load_dataset(ablation.plugins.dataset or ablation.dataset,
                        val_fraction=ablation.val_fraction,
                        train_size=ablation.train_size, image_size=ablation.image_size or 32)
    n = len(data.y_train)
    small = dataclasses.replace(data, x_train=data.x_train[:max_examples],
                                y_train=data.y_train[:max_examples])
    backbones = {p.get("backbone", ablation.fixed.get("backbone", "simple_cnn"))
                 for p in design_points(ablation)}
    out = {}
    for backbone in sorted(backbones):
        config = resolve_config({**ablation.baseline, "backbone": backbone},
                                {**ablation.config_fixed, "epochs": epochs})
        reports = []
        trainer = trainer_module(config["framework"])  # the baseline's framework
        trainer.set_threads(max(1, int(ablation.resources["cpu"])))
        trainer.train(config, small, seed=0, report=reports.append)
        out[backbone] = reports[-1]["epoch_seconds"] * n / min(n, max_examples)
    return out
