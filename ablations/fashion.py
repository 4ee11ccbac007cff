"""Fashion-MNIST: the quickstart's techniques plus the backbone.

2 x 2 x 2 x 2 x 3 = 48 configurations x 2 seeds = 96 trials. Sized for a workstation or a
small cluster (a simple_cnn epoch on 12,000 images takes a few seconds on one CPU core;
resnet20 and vgg_small are several times slower). Needs the Fashion-MNIST IDX files in
$GRIDRUN_DATA_DIR (downloaded and checksummed on first use when the network allows).
"""

from gridrun import ASHA, Ablation, Factor

ablation = Ablation(
    name="fashion",
    dataset="fashion_mnist",
    factors=[
        Factor("augmentation", [False, True]),
        Factor("batchnorm", [False, True]),
        Factor("dropout", [0.0, 0.3]),
        Factor("optimizer", ["sgd", "adam"]),
        Factor("backbone", ["simple_cnn", "resnet20", "vgg_small"]),
    ],
    fixed={"epochs": 10, "batch_size": 128},
    seeds=2,
    train_size=12_000,
    scheduler=ASHA(grace_period=2, reduction_factor=3),
    resources={"cpu": 1},
)
