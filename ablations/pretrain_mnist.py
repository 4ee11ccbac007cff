"""Step 1 of the transfer example: a simple_cnn trained on MNIST whose final weights are kept
(keep_weights=True writes every completed trial's weights to runs/pretrain_mnist/weights/).

    gridrun launch ablations/pretrain_mnist.py
    gridrun weights runs/pretrain_mnist --out weights/mnist_simple_cnn.pt
    gridrun launch ablations/transfer.py

Needs the MNIST IDX files in $GRIDRUN_DATA_DIR. About a minute on one CPU core.
"""

from gridrun import Ablation, Factor

ablation = Ablation(
    name="pretrain_mnist",
    dataset="mnist",
    factors=[Factor("batchnorm", [True])],
    fixed={"epochs": 3, "batch_size": 128},
    seeds=1,
    train_size=12_000,
    keep_weights=True,
    resources={"cpu": 1},
)
