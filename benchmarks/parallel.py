"""Parallel efficiency here: the quickstart with 1 and with 2 trials at a time.

Runs ``ablations/quickstart.py`` (or ``--spec``) through ``gridrun launch`` twice per
repeat, with ``max_concurrent`` 1 and 2, each in a fresh process, alternating. Reports the
wall time of each, the speed-up (1 at a time / 2 at a time, median over repeats), the
trial-epochs per second, and the machine's CPU utilisation while each ran (all cores, as
a share of their capacity). Target: a speed-up of 1.7 or more on 2 cores.

Where the time goes (measured on 2 cores): the quickstart's trials keep both cores busy
(workers use 1.94 of them; a finished trial's slot is refilled within ~10 ms), but every
launch also pays a fixed, serial cost of about 6-7 s: starting Ray (``ray.init`` 2-3 s),
the first trial's worker (about 1.7 s after ``fit`` starts) and stopping Ray
(``ray.shutdown`` 1.1-1.4 s, waiting for its processes to exit). That caps the quickstart
(a ~35 s launch) near 1.6x. ``--no-asha`` runs the same grid with every trial to the end
(2.4x the epochs), where the same fixed cost weighs less.

    python benchmarks/parallel.py
    python benchmarks/parallel.py --no-asha
    python benchmarks/parallel.py --spec ablations/quickstart_tensorflow.py --out p.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TARGET = 1.7
ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "ablations" / "quickstart.py"))
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs (default 1)")
    parser.add_argument("--no-asha", action="store_true",
                        help="every trial to its last epoch (scheduler=None): the same work "
                             "without the quickstart's short ASHA trials")
    parser.add_argument("--concurrent", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser.parse_args()


def one(spec: str, concurrent: int, no_asha: bool) -> dict:
    """In its own process: launch the spec with ``concurrent`` trials at a time."""
    import pandas as pd

    from gridrun import launch
    from gridrun.spec.ablation import load_spec

    ablation = dataclasses.replace(load_spec(spec), max_concurrent=concurrent)
    if no_asha:
        ablation = dataclasses.replace(ablation, scheduler=None)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = launch(ablation, run_dir=f"{tmp}/run", show_progress=False)
        seconds = time.perf_counter() - started
        epochs = len(pd.read_parquet(Path(str(result.run_dir)) / "epochs.parquet"))
    return {"seconds": seconds, "trial_epochs": epochs}


def measured(spec: str, concurrent: int, no_asha: bool) -> dict:
    import psutil

    samples, done = [], threading.Event()

    def sample():
        psutil.cpu_percent(None)
        while not done.wait(0.5):
            samples.append(psutil.cpu_percent(None))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out = subprocess.run([sys.executable, __file__, "--spec", spec, "--concurrent",
                          str(concurrent), *(["--no-asha"] if no_asha else [])],
                         capture_output=True, text=True, check=True)
    done.set()
    thread.join()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_utilisation"] = statistics.mean(samples) / 100 if samples else None
    return result


def main() -> None:
    args = parse_args()
    if args.concurrent:
        print(json.dumps(one(args.spec, args.concurrent, args.no_asha)))
        return
    runs = {1: [], 2: []}
    for _ in range(args.repeats):
        for k in (1, 2):
            runs[k].append(measured(args.spec, k, args.no_asha))
    speedups = [a["seconds"] / b["seconds"] for a, b in zip(runs[1], runs[2])]
    # With ASHA the two runs need not train the same epochs (promotions depend on the order
    # results arrive): the speed-up in trial-epochs per second is the work-neutral one.
    rates = [(b["trial_epochs"] / b["seconds"]) / (a["trial_epochs"] / a["seconds"])
             for a, b in zip(runs[1], runs[2])]
    out = {"spec": Path(args.spec).name, "asha": not args.no_asha, "runs": runs, "speedup": statistics.median(speedups),
           "throughput_speedup": statistics.median(rates),
           "target": TARGET, "met": statistics.median(speedups) >= TARGET}
    print(f"{Path(args.spec).name}{' without ASHA' if args.no_asha else ''}, "
          f"{args.repeats} repeat(s):")
    for k, rs in runs.items():
        s = statistics.median(r["seconds"] for r in rs)
        e = rs[0]["trial_epochs"]
        cpu = statistics.median(r["cpu_utilisation"] or 0 for r in rs)
        print(f"  {k} at a time: {s:.1f} s, {e / s:.1f} trial-epochs/s, CPU utilisation "
              f"{cpu:.0%}")
    print(f"  speed-up 1 -> 2: {out['speedup']:.2f}x (target >= {TARGET}): "
          f"{'met' if out['met'] else 'NOT met'}; in trial-epochs per second: "
          f"{out['throughput_speedup']:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
