"""Quickstart in TensorFlow/Keras: the same grid as quickstart.py, trained by the Keras
trainer (pip install 'gridrun[tensorflow]'). Six techniques on scikit-learn's 8x8 digits.

2^6 = 64 configurations x 3 seeds = 192 trials of up to 12 epochs. With ASHA, gridrun runs
a balanced 16-configuration fraction of the grid (the anchors) to the end with every seed and
estimates every effect from it; ASHA screens the other 48 and stops the weakest early.
About 40% of the epochs of training every trial:

    gridrun launch ablations/quickstart_tensorflow.py
"""

from gridrun import ASHA, Ablation, Factor

ablation = Ablation(
    name="quickstart_tensorflow",
    dataset="digits",
    framework="tensorflow",
    factors=[
        Factor("crop", [False, True]),  # no flips: a mirrored 2 is not a 2
        Factor("batchnorm", [False, True]),
        Factor("dropout", [0.0, 0.3]),
        Factor("optimizer", ["sgd", "adam"]),
        Factor("weight_decay", [0.0, 5e-4]),
        Factor("batch_size", [64, 128]),
    ],
    fixed={"epochs": 12},
    seeds=3,
    val_fraction=0.3,  # 539 validation images: less noise in each trial's accuracy
    scheduler=ASHA(grace_period=1, reduction_factor=3),
    resources={"cpu": 1},
    metric="val_acc",
)
