"""Which remedy for class imbalance works: Fashion-MNIST with the training split made
long-tailed (the rarest class keeps 5% of its images, classes in between on an exponential
profile; validation and test stay balanced), crossed with the remedies.

2 x 3 = 6 configurations x 3 seeds = 18 trials, a few minutes on 2 CPU cores.
"""

from gridrun import Ablation, Factor

ablation = Ablation(
    name="imbalance",
    dataset="fashion_mnist",
    factors=[
        Factor("imbalance", [1.0, 0.05]),
        Factor("imbalance_remedy", ["none", "oversample", "class_weight"]),
    ],
    fixed={"epochs": 5, "batch_size": 128, "batchnorm": True},
    seeds=3,
    train_size=6_000,
    resources={"cpu": 1},
)
