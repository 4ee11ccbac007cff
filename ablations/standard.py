"""The standard CIFAR-10 ablation, sized for a GPU cluster.

Four on/off techniques (augmentation, batch normalization, label smoothing, weight decay) and
four with three levels (dropout rate, optimizer, backbone, learning-rate schedule):
2^4 x 3^4 = 1,296 configurations x 3 seeds = 3,888 trials of up to 30 epochs. ASHA never
stops the 216 anchor cells (a 2^(4-1) x 3^(4-1) fraction of resolution IV, so every level's
effect is clear of two-factor interactions) and screens the rest at epochs 5 and 15 within
half the grid's epochs; `gridrun plan ablations/standard.py` shows the array and the cost.
Four trials share each GPU. Run it on a cluster:
    gridrun launch ablations/standard.py --address ray://head:10001
"""

from gridrun import ASHA, Ablation, Factor

ablation = Ablation(
    name="standard",
    dataset="cifar10",
    factors=[
        Factor("augmentation", [False, True]),
        Factor("batchnorm", [False, True]),
        Factor("label_smoothing", [0.0, 0.1]),
        Factor("weight_decay", [0.0, 5e-4]),
        Factor("dropout", [0.0, 0.25, 0.5]),
        Factor("optimizer", ["sgd", "adam", "rmsprop"]),
        Factor("backbone", ["simple_cnn", "resnet20", "vgg_small"]),
        Factor("lr_schedule", ["constant", "step", "cosine"]),
    ],
    fixed={"epochs": 30, "batch_size": 128},
    seeds=3,
    scheduler=ASHA(grace_period=5, reduction_factor=3),
    resources={"cpu": 2, "gpu": 0.25},
)
