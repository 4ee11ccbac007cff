"""Memory of a reused Ray worker over a 40-trial Keras grid: does it grow from trial to trial?

Launches a 40-configuration grid (5 dropout rates x 2 optimizers x batch norm x augmentation,
one seed, 3 epochs each, on the bundled digits) with framework="tensorflow" and one trial at
a time, so one Ray actor, reused, trains all 40 in turn. Every epoch row records the
resident memory of the process that trained it (``rss_mb`` in epochs.parquet). Reports
the worker's memory after the 5th and after the 40th trial (trials in the order they ran:
one at a time, in the design's order) and the growth between them; the target is at most
10%.

    python benchmarks/keras_memory.py
    python benchmarks/keras_memory.py --trials 40 --out keras_memory.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from gridrun import Ablation, Factor
from gridrun import launch

TARGET = 0.10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    parser.add_argument("--framework", default="tensorflow", choices=("tensorflow", "torch"),
                        help="the trainer (default tensorflow; torch for comparison)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser.parse_args()


def grid(epochs: int, framework: str) -> Ablation:
    return Ablation(
        name="keras_memory", dataset="digits", framework=framework,
        factors=[Factor("dropout", [0.0, 0.1, 0.2, 0.3, 0.4]),
                 Factor("optimizer", ["sgd", "adam"]),
                 Factor("batchnorm", [False, True]),
                 Factor("augmentation", [False, True])],
        fixed={"epochs": epochs}, seeds=1, max_concurrent=1, resources={"cpu": 1})


def main() -> None:
    args = parse_args()
    ablation = grid(args.epochs, args.framework)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = launch(ablation, run_dir=f"{tmp}/run", verbose=False)
        seconds = time.perf_counter() - started
        from gridrun.store.tables import read_run

        run = read_run(result.run_dir)
    from gridrun.design.grid import expand

    order = [t.trial_id for t in expand(ablation)]  # one at a time, in this order
    last = run.epochs.sort_values("epoch").groupby("trial_id").tail(1).set_index("trial_id")
    rss = [float(last.loc[tid, "rss_mb"]) for tid in order]
    n = len(rss)
    growth = rss[-1] / rss[4] - 1
    out = {"framework": args.framework, "trials": n, "epochs": args.epochs, "seconds": round(seconds, 1),
           "rss_mb_after_trial": {str(i + 1): round(v, 1) for i, v in enumerate(rss)},
           "rss_mb_trial_5": round(rss[4], 1), "rss_mb_trial_last": round(rss[-1], 1),
           "max_rss_mb_5_to_last": round(max(rss[4:]), 1), "growth": round(growth, 4),
           "target": TARGET, "met": growth <= TARGET}
    print(f"{args.framework} worker memory over {n} trials (one reused actor, {args.epochs} epochs "
          f"each, {seconds:.0f} s):")
    print(f"  after trial 5: {rss[4]:.0f} MiB; after trial {n}: {rss[-1]:.0f} MiB; "
          f"highest from 5 on: {max(rss[4:]):.0f} MiB")
    print(f"  growth 5 -> {n}: {growth:+.1%} (target <= {TARGET:.0%}): "
          f"{'met' if out['met'] else 'NOT met'}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
