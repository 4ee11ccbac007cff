"""Quickstart: four techniques on scikit-learn's 8x8 digits (bundled, fully offline).

2 x 2 x 2 x 2 = 16 configurations x 2 seeds = 32 trials; ASHA stops the weakest early.
Runs in a couple of minutes on a 2-core laptop:  gridrun launch ablations/quickstart.py
"""

from gridrun import ASHA, Ablation, Factor

ablation = Ablation(
    name="quickstart",
    dataset="digits",
    factors=[
        Factor("augmentation", [False, True]),
        Factor("batchnorm", [False, True]),
        Factor("dropout", [0.0, 0.3]),
        Factor("optimizer", ["sgd", "adam"]),
    ],
    fixed={"epochs": 12, "batch_size": 64},
    seeds=2,
    scheduler=ASHA(grace_period=3, reduction_factor=2),
    resources={"cpu": 1},
    metric="val_acc",
)
