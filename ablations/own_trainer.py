"""Your own training code in the grid: a denoising autoencoder on Fashion-MNIST, which is not
an image classifier. The trainer is a plain function that reports once per epoch (with its
state, so gridrun can checkpoint it) and continues from a checkpoint when given one; its
metric is its own (validation mean squared error, lower is better).

Two factors of its own (the bottleneck's width, the noise it learns to remove) beside two
built-in ones it reads (the optimizer, the batch size): 2^4 = 16 configurations x 3 seeds =
48 trials, screened by ASHA:
    gridrun launch ablations/own_trainer.py
"""

import io

import numpy as np
import torch
import torch.nn as nn

from gridrun import ASHA, Ablation, Factor


def autoencoder(pixels: int, bottleneck: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, 256), nn.ReLU(),
                         nn.Linear(256, bottleneck), nn.ReLU(), nn.Linear(bottleneck, 256),
                         nn.ReLU(), nn.Linear(256, pixels), nn.Sigmoid())


def denoise(config, data, seed, report, checkpoint=None):
    """config: the trial's settings; data: gridrun's Dataset (uint8 images, N x H x W x C);
    report(metrics, state) once per epoch; checkpoint: the last state, to continue from."""
    torch.manual_seed(seed)
    x_train = torch.tensor(data.x_train, dtype=torch.float32).flatten(1) / 255
    x_val = torch.tensor(data.x_val, dtype=torch.float32).flatten(1) / 255
    model = autoencoder(x_train.shape[1], config["bottleneck"])
    make = torch.optim.Adam if config["optimizer"] == "adam" else torch.optim.SGD
    opt = make(model.parameters(), lr=config["lr"] or (1e-3 if make is torch.optim.Adam
                                                       else 0.1))
    gen, start = torch.Generator().manual_seed(seed), 0
    if checkpoint is not None:  # continue exactly where the state was taken
        state = torch.load(io.BytesIO(checkpoint), weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        start = state["epoch"]
    for epoch in range(start, config["epochs"]):
        model.train()
        order, total = torch.randperm(len(x_train), generator=gen), 0.0
        for i in range(0, len(order), config["batch_size"]):
            clean = x_train[order[i:i + config["batch_size"]]]
            noisy = (clean + config["noise"] * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
            loss = nn.functional.mse_loss(model(noisy), clean)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(clean)
        model.eval()
        with torch.no_grad():
            noise = torch.randn(x_val.shape, generator=torch.Generator().manual_seed(0))
            val = nn.functional.mse_loss(model((x_val + config["noise"] * noise).clamp(0, 1)),
                                         x_val).item()
        buf = io.BytesIO()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                    "gen": gen.get_state(), "epoch": epoch + 1}, buf)
        report({"train_mse": total / len(x_train), "val_mse": val,
                "val_psnr": float(10 * np.log10(1 / val))}, buf.getvalue())


ablation = Ablation(
    name="own_trainer",
    dataset="fashion_mnist",
    trainer=denoise,
    metric="val_mse",
    mode="min",
    factors=[
        Factor("bottleneck", [16, 64], custom=True),
        Factor("noise", [0.2, 0.5], custom=True),
        Factor("optimizer", ["sgd", "adam"]),
        Factor("batch_size", [64, 128]),
    ],
    fixed={"epochs": 6},
    seeds=3,
    train_size=6000,
    scheduler=ASHA(grace_period=1, reduction_factor=3),
    resources={"cpu": 1},
)
