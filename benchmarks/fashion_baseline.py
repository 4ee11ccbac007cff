"""The torch trainer's baseline on Fashion-MNIST: accuracy and seconds per epoch.

Trains one configuration (the registry defaults: simple_cnn, sgd lr 0.05 momentum 0.9,
batch 128, no augmentation, batch norm or dropout) on the full training split (90%; 10% is
held out for validation), printing validation accuracy and seconds per epoch, then the test
accuracy and the mean seconds per epoch. A two-conv CNN should reach about 90% test accuracy.

    GRIDRUN_DATA_DIR=path/to/data python benchmarks/fashion_baseline.py
    python benchmarks/fashion_baseline.py --epochs 3 --backbone resnet20 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

from gridrun.spec import techniques
from gridrun.data import load_dataset
from gridrun.design.grid import resolve_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    parser.add_argument("--backbone", default="simple_cnn",
                        choices=techniques.get("backbone").choices,
                        help="backbone to train (default simple_cnn)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default=None,
                        help="torch device, e.g. cpu or cuda (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from gridrun.torch import train  # imports torch; kept out of module import

    start = time.perf_counter()
    data = load_dataset("fashion_mnist", val_fraction=0.1, split_seed=0)
    print(f"data: {data.name} train {len(data.y_train)}, val {len(data.y_val)}, "
          f"test {len(data.y_test)}, image {data.image_shape} "
          f"({time.perf_counter() - start:.1f} s to load)")
    config = resolve_config({"backbone": args.backbone}, {"epochs": args.epochs})
    print("config:", json.dumps(config), f"seed={args.seed}")

    def report(m: dict) -> None:
        print(f"epoch {m['epoch']:3d}  train_loss {m['train_loss']:.4f}  "
              f"train_acc {m['train_acc']:.4f}  val_loss {m['val_loss']:.4f}  "
              f"val_acc {m['val_acc']:.4f}  lr {m['lr']:g}  {m['epoch_seconds']:.1f} s",
              flush=True)

    seconds = []
    summary = train(config, data, seed=args.seed, device=args.device, threads=args.threads,
                    report=lambda m: (seconds.append(m["epoch_seconds"]), report(m)))
    print(f"test_acc {summary['test_acc']:.4f}  best val_acc {summary['best_val_acc']:.4f} "
          f"(epoch {summary['best_epoch']})  params {summary['params']}  "
          f"device {summary['device']}")
    print(f"mean seconds/epoch {sum(seconds) / len(seconds):.2f}  "
          f"total {summary['seconds']:.1f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"backbone": args.backbone, "epochs": args.epochs,
                       "train_images": len(data.y_train), "test_acc": summary["test_acc"],
                       "best_val_acc": summary["best_val_acc"],
                       "seconds_per_epoch": sum(seconds) / len(seconds),
                       "seconds": summary["seconds"], "device": summary["device"]}, f,
                      indent=2)


if __name__ == "__main__":
    main()
