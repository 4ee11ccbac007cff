"""The standard CIFAR-10 ablation, sized for a GPU cluster.

2 x 2 x 3 x 3 x 3 = 108 configurations x 3 seeds = 324 trials of up to 30 epochs; ASHA
stops the weakest at epochs 5 and 15. Four trials share each GPU. Run it on a cluster:
    gridrun launch ablations/standard.py --address ray://head:10001
"""

from gridrun import ASHA, Ablation, Factor

ablation = Ablation(
    name="standard",
    dataset="cifar10",
    factors=[
        Factor("augmentation", [False, True]),
        Factor("batchnorm", [False, True]),
        Factor("dropout", [0.0, 0.25, 0.5]),
        Factor("optimizer", ["sgd", "adam", "rmsprop"]),
        Factor("backbone", ["simple_cnn", "resnet20", "vgg_small"]),
    ],
    fixed={"epochs": 30, "batch_size": 128},
    seeds=3,
    scheduler=ASHA(grace_period=5, reduction_factor=3),
    resources={"cpu": 2, "gpu": 0.25},
)
