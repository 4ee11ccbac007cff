"""Step 2 of the transfer example: MNIST features on Fashion-MNIST. Scratch vs pretrained,
crossed with how long the base stays frozen: 0 (fine-tune everything from the start), 2
(the classifier first, then everything at 0.1x the learning rate) and 6 (frozen throughout:
only the classifier learns, a linear probe of the features; from scratch that is a probe of
random features).

    gridrun launch ablations/pretrain_mnist.py
    gridrun weights runs/pretrain_mnist --out weights/mnist_simple_cnn.pt
    gridrun launch ablations/transfer.py

2 x 3 = 6 configurations x 3 seeds = 18 trials on 3,000 Fashion-MNIST training images, a
few minutes on 2 CPU cores. Small training sets are where pretraining pays.
"""

from gridrun import Ablation, Factor

WEIGHTS = "weights/mnist_simple_cnn.pt"  # relative to the directory gridrun runs in

ablation = Ablation(
    name="transfer",
    dataset="fashion_mnist",
    factors=[
        Factor("pretrained", [None, WEIGHTS]),
        Factor("freeze_epochs", [0, 2, 6]),
    ],
    fixed={"epochs": 6, "batch_size": 128, "batchnorm": True, "finetune_lr": 0.1},
    seeds=3,
    train_size=3_000,
    resources={"cpu": 1},
)
