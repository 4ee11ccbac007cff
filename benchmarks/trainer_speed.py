"""gridrun's trainers against a plain training loop: images per second on the same work.

PyTorch: ``gridrun.torch.Trainer.step()`` against a plain loop (shuffle, index the batch,
standardize, forward, cross-entropy, zero_grad, backward, SGD step) on the same model, with
the trainer's initial weights, the same data tensors, batch size, threads and optimizer
(SGD lr 0.05 momentum 0.9). Keras: ``gridrun.keras.Trainer.step()`` against ``model.fit``
of the same Keras model (the trainer's initial weights) on a plain tf.data pipeline
(from_tensor_slices, shuffle, batch, standardize, prefetch), SGD momentum 0.9.

Each framework runs in its own subprocess (TensorFlow fixes its thread pools on first use;
torch and TensorFlow would otherwise share the cores differently). After one untimed
warm-up epoch each, trainer and plain epochs alternate (A B B A ...); the table shows the
median images/s, and the median ratio of the side-by-side epochs. Two rows per side:

- "train pass": the training pass alone. For the trainer, the time of its training pass
  inside ``step()`` (its ``_train_epoch``, timed by a wrapper); for the plain loop, its
  loop; for ``fit``, from epoch begin to the start of validation (callbacks).
- "epoch + val": the whole epoch including the validation pass over the validation split
  (loss and accuracy), which the plain loops do too, in batches of the training batch size
  (for ``fit``: ``validation_data``; the whole ``fit`` call). The trainers' epochs never
  include the test evaluation (the epoch budget is one more than the epochs run).

The target is a trainer/plain ratio of at least 0.95. "GFLOP/s" is the training FLOPs per
image (2 x the multiply-adds of every conv and linear layer, counted with forward hooks on
the torch model, x3 for forward and backward; the Keras model is the same network) times
images/s, and "of peak" its fraction of this machine's float32 matmul peak (2048x2048,
best of --repeats, with the same threads). Above 100% means the framework's convolutions
do fewer operations than direct convolution (TensorFlow's do, on this model and CPU).

On a GPU, ``--device cuda`` runs the torch side there (the dataset resident on the GPU),
and ``--fast`` gives both loops the GPU fast path: channels-last layout, bfloat16 autocast
and, with ``--compile``, ``torch.compile`` (the trainer through its ``channels_last``,
``precision`` and ``compile`` techniques, the plain loop by hand); the peak is then the
bfloat16 matmul's.

    GRIDRUN_DATA_DIR=path/to/data python benchmarks/trainer_speed.py
    python benchmarks/trainer_speed.py --epochs 7 --threads 2 --out trainer_speed.json
    python benchmarks/trainer_speed.py --device cuda --backbone resnet20 --fast --frameworks torch
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from gridrun.spec import techniques
from gridrun.data import load_dataset
from gridrun.design.grid import resolve_config

TARGET = 0.95  # trainer images/s over the plain loop's
SEED = 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5,
                        help="timed epochs of each loop, alternating (default 5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of both frameworks (default 1)")
    parser.add_argument("--train-size", type=int, default=6000,
                        help="Fashion-MNIST training images (default 6000)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--backbone", default="simple_cnn",
                        choices=techniques.get("backbone").choices,
                        help="backbone (default simple_cnn)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="matmul-peak repeats, best taken (default 5)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="device of the torch side (default cpu)")
    parser.add_argument("--fast", action="store_true",
                        help="torch: channels-last and bfloat16 autocast in both loops")
    parser.add_argument("--compile", action="store_true",
                        help="torch: also torch.compile the model in both loops")
    parser.add_argument("--frameworks", default="torch,keras",
                        help="comma-separated: torch, keras (default both)")
    parser.add_argument("--only", choices=("torch", "keras"), default=None,
                        help="run one framework's section in this process (used internally)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser.parse_args()


def load(args: argparse.Namespace):
    return load_dataset("fashion_mnist", val_fraction=0.1, split_seed=0,
                        train_size=args.train_size)


def config(args: argparse.Namespace, framework: str) -> dict:
    # one epoch more than run: the last epoch's test evaluation never enters a timing
    speed = {}
    if framework == "torch" and args.fast:
        speed = {"channels_last": True, "precision": "bf16"}
    if framework == "torch" and args.compile:
        speed["compile"] = True
    return resolve_config({"framework": framework, "backbone": args.backbone},
                          {"epochs": args.epochs + 2, "batch_size": args.batch,
                           "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, **speed})


def alternate(a, b, epochs: int) -> tuple[list, list]:
    """One untimed warm-up call of each, then ``epochs`` timed calls of each in the order
    A B B A A B ...: drift in the machine's load falls on both."""
    a(), b()
    ta, tb = [], []
    for i in range(epochs):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        for fn in (first, second):
            (ta if fn is a else tb).append(fn())
    return ta, tb


def timed_train_pass(trainer) -> list:
    """Wrap ``trainer._train_epoch`` (the training pass ``step()`` runs) to record its
    seconds; returns the list the wrapper appends to."""
    seconds, inner = [], trainer._train_epoch

    def wrapper():
        start = time.perf_counter()
        out = inner()
        seconds.append(time.perf_counter() - start)
        return out

    trainer._train_epoch = wrapper
    return seconds


def rows_of(side: str, n: int, trainer: list[tuple], plain: list[tuple]) -> list[dict]:
    """Table rows from (train-pass seconds, epoch seconds) pairs of each loop. The ratio is
    the median of the ratios of the i-th epochs of each, which ran side by side: the
    machine's speed drifts by more than the difference measured."""
    rows = []
    for k, what in enumerate(("train pass", "epoch + val")):
        p = n / statistics.median(t[k] for t in plain)
        g = n / statistics.median(t[k] for t in trainer)
        ratio = statistics.median(a[k] / b[k] for a, b in zip(plain, trainer))
        rows.append({"row": f"{side} plain, {what}", "images_s": p, "ratio": None,
                     "seconds": [t[k] for t in plain]})
        rows.append({"row": f"{side} trainer, {what}", "images_s": g, "ratio": ratio,
                     "target": TARGET, "met": ratio >= TARGET,
                     "seconds": [t[k] for t in trainer]})
    return rows


# ---------------------------------------------------------------- torch

def torch_section(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    from gridrun.torch import Trainer, prepare_data

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = prepare_data(load(args), device)
    x, y, n = data.x_train, data.y_train, len(data.y_train)
    trainer = Trainer(config(args, "torch"), data, seed=SEED, device=device)
    model = copy.deepcopy(trainer.model)  # same structure, layout and initial weights
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    net = torch.compile(model) if args.compile else model
    gen = torch.Generator().manual_seed(SEED)
    train_seconds = timed_train_pass(trainer)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward(xb):
        xb = data.standardize(xb)
        if not args.fast:
            return net(xb)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return net(xb.contiguous(memory_format=torch.channels_last)).float()

    @torch.inference_mode()
    def validate() -> None:
        model.eval()
        loss = torch.zeros((), device=device)
        hits = torch.zeros((), dtype=torch.long, device=device)
        for s in range(0, len(data.y_val), args.batch):
            logits = forward(data.x_val[s:s + args.batch])
            yb = data.y_val[s:s + args.batch]
            loss += F.cross_entropy(logits, yb, reduction="sum")
            hits += (logits.argmax(1) == yb).sum()
        loss.item(), hits.item()

    def plain() -> tuple[float, float]:
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        for s in range(0, n, args.batch):
            idx = order[s:s + args.batch]
            loss = F.cross_entropy(forward(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()
        mid = time.perf_counter()
        validate()
        return mid - start, time.perf_counter() - start

    def gridrun_step() -> tuple[float, float]:
        start = time.perf_counter()
        trainer.step()
        return train_seconds[-1], time.perf_counter() - start

    tr, pl = alternate(gridrun_step, plain, args.epochs)
    flops = training_flops(copy.deepcopy(trainer.model).float().cpu(), data.image_shape)
    dtype = torch.bfloat16 if args.fast else torch.float32
    if device.type == "cuda":
        peaks = {str(args.threads): matmul_peak(args.threads, args.repeats, device=device,
                                                dtype=dtype, size=8192)}
    else:
        peaks = {t: matmul_peak(t, args.repeats, dtype=dtype)
                 for t in sorted({1, args.threads, os.cpu_count() or 1})}
    side = "torch" if device.type == "cpu" else f"torch {device.type}"
    return {"rows": rows_of(side + (" fast" if args.fast else ""), n, tr, pl),
            "flops_per_image": flops, "peak_flops": peaks, "torch": torch.__version__,
            "train_images": n, "val_images": len(data.y_val),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or "cpu"}


def training_flops(model, image_shape) -> float:
    """Training FLOPs per image: 2 x the multiply-adds of every conv and linear layer, three
    times (forward, gradient of the weights, gradient of the input), except the input
    gradient of the first layer, which backward never computes. Pools, activations and
    the optimizer are left out (a few percent)."""
    import torch

    macs = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k = module.in_channels // module.groups * module.kernel_size[0] \
                * module.kernel_size[1]
            macs.append(output[0].numel() * k)
        elif isinstance(module, torch.nn.Linear):
            macs.append(module.in_features * module.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, *image_shape))
    finally:
        for h in handles:
            h.remove()
    return 2.0 * (3 * sum(macs) - macs[0])


def matmul_peak(threads: int, repeats: int, size: int = 2048, device="cpu",
                dtype=None) -> float:
    """Best FLOP/s of a ``size`` x ``size`` matmul (float32 unless ``dtype``) with
    ``threads`` torch threads, on ``device``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    dtype = dtype or torch.float32
    a = torch.rand(size, size, device=device).to(dtype)
    b = torch.rand(size, size, device=device).to(dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    a @ b  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    torch.set_num_threads(before)
    return 2.0 * size ** 3 / best


# ---------------------------------------------------------------- keras

def keras_section(args: argparse.Namespace) -> dict:
    import gridrun.keras as gk

    gk.set_threads(args.threads)  # before TensorFlow runs any op: its pools are fixed then
    import keras
    import tensorflow as tf

    from gridrun.keras import Trainer, prepare_data
    from gridrun.keras._models import build_model

    data = prepare_data(load(args))
    n = int(data.y_train.shape[0])
    trainer = Trainer(config(args, "tensorflow"), data, seed=SEED)
    h, w, c = data.image_shape
    model = build_model(args.backbone, c, data.num_classes, (h, w), False, 0.0)
    model.set_weights(trainer.model.get_weights())
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # the trainer reports accuracy too

    def standardize(xb, yb):
        return (xb - data.mean) / data.std, yb

    train = (tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
             .shuffle(n, seed=SEED).batch(args.batch).map(standardize)
             .prefetch(tf.data.AUTOTUNE))
    val = (tf.data.Dataset.from_tensor_slices((data.x_val, data.y_val))
           .batch(args.batch).map(standardize).prefetch(tf.data.AUTOTUNE))
    marks = _EpochMarks(keras)
    train_seconds = timed_train_pass(trainer)

    def fit() -> tuple[float, float]:
        start = time.perf_counter()
        model.fit(train, validation_data=val, epochs=1, verbose=0, callbacks=[marks])
        return marks.train_seconds, time.perf_counter() - start

    def gridrun_step() -> tuple[float, float]:
        start = time.perf_counter()
        trainer.step()
        return train_seconds[-1], time.perf_counter() - start

    tr, pl = alternate(gridrun_step, fit, args.epochs)
    return {"rows": rows_of("keras", n, tr, pl), "tensorflow": tf.__version__,
            "keras": keras.__version__}


def _EpochMarks(keras):
    """A callback timing fit's training pass: epoch begin to the start of validation."""
    class EpochMarks(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_test_begin(self, logs=None):
            self.train_seconds = time.perf_counter() - self._start

    return EpochMarks()


# ---------------------------------------------------------------- main

def run_section(name: str, args: argparse.Namespace) -> dict:
    """One framework's section in a fresh process; its JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, f"{name}.json")
        cmd = [sys.executable, __file__, "--only", name, "--out", out,
               "--epochs", str(args.epochs), "--threads", str(args.threads),
               "--train-size", str(args.train_size), "--batch", str(args.batch),
               "--backbone", args.backbone, "--repeats", str(args.repeats),
               "--device", args.device, *(["--fast"] if args.fast else []),
               *(["--compile"] if args.compile else [])]
        subprocess.run(cmd, check=True)
        with open(out) as f:
            return json.load(f)


def add_flops(rows: list[dict], flops: float, peak: float) -> None:
    for r in rows:
        r["gflops_s"] = flops * r["images_s"] / 1e9
        r["of_peak"] = flops * r["images_s"] / peak


def print_table(result: dict) -> None:
    a = result["args"]
    print(f"{a['backbone']} on Fashion-MNIST ({a['device']}: {result['device_name']}"
          f"{', fast path' if a['fast'] else ''}): {result['train_images']} training, "
          f"{result['val_images']} validation images, batch {a['batch']}, "
          f"{a['threads']} thread(s); median of {a['epochs']} alternating epochs after a "
          f"warm-up; torch {result['torch']}, tensorflow {result.get('tensorflow')}")
    print(f"{'row':<30} {'images/s':>9} {'ratio to plain':>14} {'target':>7} {'met':>4} "
          f"{'GFLOP/s':>8} {'of peak':>8}")
    for r in result["rows"]:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3f}"
        target = "" if r["ratio"] is None else f">={r['target']}"
        met = "" if r["ratio"] is None else ("yes" if r["met"] else "NO")
        print(f"{r['row']:<30} {r['images_s']:>9.0f} {ratio:>14} {target:>7} {met:>4} "
              f"{r['gflops_s']:>8.2f} {r['of_peak']:>8.1%}")
    peaks = ", ".join(f"{t} thread(s) {p / 1e9:.1f}" for t, p in result["peak_flops"].items())
    dtype = "bfloat16" if a["fast"] else "float32"
    print(f"training FLOPs per image {result['flops_per_image'] / 1e6:.1f} M; {dtype} matmul "
          f"peak (GFLOP/s): {peaks}")


def main() -> None:
    args = parse_args()
    if args.only:
        section = torch_section if args.only == "torch" else keras_section
        result = section(args)
        with open(args.out, "w") as f:
            json.dump(result, f)
        return
    wanted = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    if not wanted or set(wanted) - {"torch", "keras"}:
        raise SystemExit(f"--frameworks: torch, keras or both, got {args.frameworks!r}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device here")
    torch_part = run_section("torch", args)  # always: its model gives the FLOPs and peak
    keras_part = run_section("keras", args) if "keras" in wanted else {"rows": []}
    peak = torch_part["peak_flops"][str(args.threads)]
    rows = torch_part["rows"] + keras_part["rows"]
    add_flops(rows, torch_part["flops_per_image"], peak)
    result = {"args": {k: v for k, v in vars(args).items() if k not in ("only", "out")},
              **{k: v for k, v in torch_part.items() if k != "rows"},
              **{k: v for k, v in keras_part.items() if k != "rows"},
              "rows": rows, "target": TARGET, "cpu_count": os.cpu_count(),
              "platform": platform.platform(),
              "target_met": all(r["met"] for r in rows if r["ratio"] is not None)}
    print_table(result)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
