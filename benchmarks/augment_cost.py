"""What the "strong" augmentation policy costs next to one training step of ResNet-20.

Times, on one batch of random 3x32x32 images (256 by default): the "strong" policy
(crop/flip, rotation/zoom, brightness/contrast jitter, random erasing), the "standard"
policy (crop/flip) for reference, and one training step of gridrun's ResNet-20 (forward,
cross-entropy, backward, SGD step), each with 1 torch thread and with all of the
machine's threads. Reports the median milliseconds per batch over the repeats after a
warm-up, and the ratio of the strong policy to the training step; the target is below 20%.

    python benchmarks/augment_cost.py
    python benchmarks/augment_cost.py --repeats 50 --out augment_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from gridrun.torch import build_model
from gridrun.torch._augment import apply_policy

TARGET = 0.20  # the strong policy should cost less than this fraction of a training step


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256, help="images per batch (default 256)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed repeats per measurement (default 20)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed repeats before timing (default 3)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser.parse_args()


def median_ms(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(threads: int, args: argparse.Namespace, device: torch.device) -> dict:
    """The three timings with ``threads`` torch threads, on a fresh batch and model."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    model = build_model("resnet20", 3, 10, 32, True, 0.0).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    strong = median_ms(lambda: apply_policy("strong", x, gen), args.repeats, args.warmup,
                       device)
    standard = median_ms(lambda: apply_policy("standard", x, gen), args.repeats, args.warmup,
                         device)
    train = median_ms(step, args.repeats, args.warmup, device)
    return {"threads": threads, "strong_ms": strong, "standard_ms": standard,
            "train_step_ms": train, "strong_ratio": strong / train,
            "standard_ratio": standard / train}


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    machine = os.cpu_count() or 1
    counts = [1] if machine == 1 or device.type == "cuda" else [1, machine]
    rows = [measure(t, args, device) for t in counts]

    print(f"batch {args.batch}x3x32x32 on {device}, median of {args.repeats} after "
          f"{args.warmup} warm-up; torch {torch.__version__}")
    print(f"{'threads':>7}  {'strong ms':>9}  {'standard ms':>11}  {'train step ms':>13}  "
          f"{'strong/step':>11}  {'standard/step':>13}")
    for r in rows:
        print(f"{r['threads']:>7}  {r['strong_ms']:>9.2f}  {r['standard_ms']:>11.2f}  "
              f"{r['train_step_ms']:>13.2f}  {r['strong_ratio']:>11.1%}  "
              f"{r['standard_ratio']:>13.1%}")
    met = all(r["strong_ratio"] < TARGET for r in rows)
    print(f"target strong < {TARGET:.0%} of a training step: {'met' if met else 'NOT met'}")

    if args.out:
        result = {"batch": args.batch, "image": [3, 32, 32], "device": str(device),
                  "repeats": args.repeats, "warmup": args.warmup, "torch": torch.__version__,
                  "cpu_count": machine, "platform": platform.platform(), "target": TARGET,
                  "target_met": met, "rows": rows}
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
