"""Framework parity: the Fashion-MNIST grid of fashion.py (simple_cnn) trained by both
trainers, with ``framework`` as a factor, so the report shows every effect per framework.

2 frameworks x 2^4 techniques = 32 configurations x 10 seeds = 320 trials of 5 epochs on
12,000 training images, every trial to the full budget (about 75 minutes on 2 CPU cores).
Ten seeds, because the cells with batch norm and SGD vary by 1-4 points from seed to seed
in both frameworks: with five, two identical trainers would still differ by more than 1.5
points in some configuration about two times in three. A run made with fewer seeds grows:
launching this spec on it keeps its trials and trains only the new seeds.
Needs PyTorch and TensorFlow (pip install 'gridrun[torch,tensorflow]') and the Fashion-MNIST
IDX files in $GRIDRUN_DATA_DIR. ``python benchmarks/framework_parity.py`` runs it and checks
the two frameworks against each other.
"""

from gridrun import Ablation, Factor

ablation = Ablation(
    name="parity",
    dataset="fashion_mnist",
    factors=[
        Factor("framework", ["torch", "tensorflow"]),
        Factor("augmentation", [False, True]),
        Factor("batchnorm", [False, True]),
        Factor("dropout", [0.0, 0.3]),
        Factor("optimizer", ["sgd", "adam"]),
    ],
    fixed={"epochs": 5, "batch_size": 128},
    seeds=10,
    train_size=12_000,
    scheduler=None,
    resources={"cpu": 1},
)
