"""The GPU rows: trials packed onto one GPU, the Fashion-MNIST grid at full budget, and the
fast path's accuracy against the plain path's.

Needs a CUDA device and the Fashion-MNIST IDX files in $GRIDRUN_DATA_DIR; without a GPU it
says so, writes ``{"unmeasured": ...}`` with ``--out`` and exits 0 (``make bench`` shows the
rows as unmeasured). Three parts, each a ``gridrun launch`` of ``ablations/fashion.py``
(every trial to its last epoch, no ASHA, so the work is the same at every setting):

1. **packing**: the simple_cnn half of the grid (16 configurations x 2 seeds, ``--epochs``
   epochs) with 1, 2, 4 and 8 trials per GPU (``resources={"gpu": 1/k}``); grid throughput
   in trial-epochs per GPU-minute for each. Target: the best packing >= 3x one per GPU.
2. **full grid**: all of ``ablations/fashion.py`` (48 configurations x 2 seeds, 10 epochs,
   simple_cnn, resnet20 and vgg_small) at the best packing, on the fast path
   (``channels_last`` and ``precision="bf16"``). Target: under 10 minutes.
3. **accuracy**: the same grid on the plain path (float32, channels-first), and per
   backbone the mean test accuracy of both paths, with the seed standard deviation. Target:
   the fast path equal to the plain path within seed noise.

The images/s of the small ResNet against a plain loop on the GPU is
``benchmarks/trainer_speed.py --device cuda --backbone resnet20 [--fast]``.

    GRIDRUN_DATA_DIR=path/to/data python benchmarks/gpu.py --out gpu.json
    python benchmarks/gpu.py --parts packing --levels 1,4,8 --epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "ablations" / "fashion.py"
PACKING_TARGET = 3.0
FULL_GRID_MINUTES = 10.0
FAST = {"channels_last": True, "precision": "bf16"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="packing,full,accuracy",
                        help="comma-separated: packing, full, accuracy (default all)")
    parser.add_argument("--levels", default="1,2,4,8", help="trials per GPU (default 1,2,4,8)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs of the packing grid (default 3)")
    parser.add_argument("--cpus", type=float, default=1.0,
                        help="CPUs per trial (default 1)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser.parse_args()


def levels_of(text: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8]; SystemExit with one line for anything else.

        >>> levels_of("1, 4")
        [1, 4]
    """
    try:
        levels = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        levels = []
    if not levels or any(k < 1 for k in levels):
        raise SystemExit(f"--levels: positive integers separated by commas, got {text!r}")
    return levels


def throughput(trial_epochs: int, seconds: float, gpus: float = 1.0) -> float:
    """Trial-epochs per GPU-minute.

        >>> throughput(600, 120.0)
        300.0
    """
    return trial_epochs / (seconds / 60.0) / gpus


def packing_grid(ablation, *, per_gpu: int, epochs: int, cpus: float):
    """The simple_cnn half of the grid, every trial to ``epochs``, ``per_gpu`` per GPU."""
    factors = [f for f in ablation.factors if f.name != "backbone"]
    return dataclasses.replace(
        ablation, name=f"packing-{per_gpu}", factors=factors, scheduler=None,
        baseline=None, target=None,
        fixed={**ablation.fixed, "epochs": epochs, "backbone": "simple_cnn"},
        resources={"cpu": cpus, "gpu": 1.0 / per_gpu}, max_concurrent=None)


def full_grid(ablation, *, per_gpu: int, cpus: float, fast: bool):
    fixed = {**ablation.fixed, **(FAST if fast else {})}
    return dataclasses.replace(ablation, name=f"full-{'fast' if fast else 'plain'}",
                               fixed=fixed, scheduler=None,
                               resources={"cpu": cpus, "gpu": 1.0 / per_gpu})


def run(ablation) -> dict:
    """Launch ``ablation`` into a temporary folder: wall seconds, trial-epochs, trials."""
    import pandas as pd

    from gridrun import launch

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = launch(ablation, run_dir=f"{tmp}/run", show_progress=False)
        seconds = time.perf_counter() - started
        folder = Path(str(result.run_dir))
        epochs = len(pd.read_parquet(folder / "epochs.parquet"))
        trials = pd.read_parquet(folder / "trials.parquet")
    return {"seconds": seconds, "trial_epochs": epochs, "errors": int(result.errors),
            "trials": trials}


def accuracy_rows(plain, fast) -> list[dict]:
    """Per backbone: mean and seed std of test accuracy (points) on each path."""
    rows = []
    for backbone in sorted(set(plain.backbone)):
        p = 100 * plain[plain.backbone == backbone].test_acc
        f = 100 * fast[fast.backbone == backbone].test_acc
        rows.append({"backbone": backbone, "plain": float(p.mean()), "fast": float(f.mean()),
                     "diff": float(f.mean() - p.mean()),
                     "plain_std": float(p.std()), "fast_std": float(f.std()),
                     "n": int(min(len(p), len(f)))})
    return rows


def main() -> None:
    args = parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"packing", "full", "accuracy"}:
        raise SystemExit(f"--parts: packing, full, accuracy, got {args.parts!r}")
    levels = levels_of(args.levels)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device here: the GPU rows are unmeasured")
        if args.out:
            Path(args.out).write_text(json.dumps({"unmeasured": "no CUDA device"}))
        return
    from gridrun.spec.ablation import load_spec

    base = load_spec(SPEC)
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    best = max(levels)
    if "packing" in parts:
        rows = []
        for k in levels:
            r = run(packing_grid(base, per_gpu=k, epochs=args.epochs, cpus=args.cpus))
            rows.append({"per_gpu": k, "seconds": r["seconds"],
                         "trial_epochs": r["trial_epochs"], "errors": r["errors"],
                         "per_gpu_minute": throughput(r["trial_epochs"], r["seconds"])})
            print(f"packing {k}/GPU: {r['seconds']:.1f} s, {r['trial_epochs']} trial-epochs, "
                  f"{rows[-1]['per_gpu_minute']:.0f} trial-epochs per GPU-minute", flush=True)
        one = next((r["per_gpu_minute"] for r in rows if r["per_gpu"] == 1), None)
        for r in rows:
            r["vs_one"] = r["per_gpu_minute"] / one if one else None
        best = max(rows, key=lambda r: r["per_gpu_minute"])["per_gpu"]
        gain = max(r["vs_one"] or 0 for r in rows)
        out["packing"] = {"rows": rows, "best": best, "gain": gain,
                          "target": PACKING_TARGET, "met": gain >= PACKING_TARGET}
    results = {}
    for fast in ([True] if "full" in parts else []) + ([False] if "accuracy" in parts else []):
        r = run(full_grid(base, per_gpu=best, cpus=args.cpus, fast=fast))
        results[fast] = r
        print(f"full grid, {'fast' if fast else 'plain'} path, {best}/GPU: "
              f"{r['seconds'] / 60:.1f} min, {r['trial_epochs']} trial-epochs, "
              f"{r['errors']} errors", flush=True)
    if True in results:
        minutes = results[True]["seconds"] / 60
        out["full"] = {"minutes": minutes, "per_gpu": best,
                       "trial_epochs": results[True]["trial_epochs"],
                       "target": FULL_GRID_MINUTES, "met": minutes < FULL_GRID_MINUTES}
    if True in results and False in results:
        rows = accuracy_rows(results[False]["trials"], results[True]["trials"])
        out["accuracy"] = rows
        for r in rows:
            noise = statistics.mean([r["plain_std"], r["fast_std"]])
            print(f"{r['backbone']}: plain {r['plain']:.2f}, fast {r['fast']:.2f} "
                  f"(diff {r['diff']:+.2f}; seed std {noise:.2f}, n {r['n']})")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
