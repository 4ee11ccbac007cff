"""What gridrun adds around training: 40 short trials through ``gridrun launch`` and through
a minimal Ray Tune script with the same training and ``reuse_actors=True``.

Both sides train the same 40 configurations (digits, simple_cnn, 5 dropout rates x 4
learning rates x batch norm, one seed, ``--epochs`` epochs: about 2 s per trial), two at a
time, with gridrun's own ``Trainer`` stepping one epoch per ``tune.report``. The raw script
is what a user would write by hand: ``ray.init``, a grid search per factor, a Tuner, nothing
else (no checkpoints, no Parquet store, no journal, no progress, no report). Each side runs
in a fresh process (Ray start included), alternating raw, gridrun, raw, gridrun, ...; the figure
is the median of the wall-time ratios gridrun / raw over the pairs, and the per-trial
overhead (gridrun's wall time minus raw's, divided by the trials and multiplied by the
trials running at once). Target: ratio <= 1.10.

    python benchmarks/orchestration.py
    python benchmarks/orchestration.py --pairs 3 --out orchestration.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = 1.10
CONCURRENT = 2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2, help="raw/gridrun pairs (default 2)")
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs per trial (default 30: about 2 s on digits)")
    parser.add_argument("--side", choices=("raw", "gridrun"), default=None,
                        help=argparse.SUPPRESS)  # one side, in its own process
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser.parse_args()


def ablation(epochs: int):
    from gridrun import Ablation, Factor

    return Ablation(
        name="orchestration", dataset="digits",
        factors=[Factor("dropout", [0.0, 0.1, 0.2, 0.3, 0.4]),
                 Factor("lr", [0.01, 0.02, 0.05, 0.1]), Factor("batchnorm", [False, True])],
        fixed={"epochs": epochs}, seeds=1, max_concurrent=CONCURRENT, resources={"cpu": 1})


def run_gridrun(epochs: int) -> float:
    from gridrun import launch

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        launch(ablation(epochs), run_dir=f"{tmp}/run", show_progress=False)
        return time.perf_counter() - started


def _raw_trainable(config, data=None):
    from ray import tune

    from gridrun.torch import Trainer, set_threads

    set_threads(1)
    trainer = Trainer(config["config"], data, seed=0)
    while not trainer.done:
        m = trainer.step()
        tune.report({"val_acc": m["val_acc"], "epoch": m["epoch"]})


def run_raw(epochs: int) -> float:
    return raw_tune(lambda: ablation(epochs), CONCURRENT)


def factorial_space(configs: list[dict]) -> dict:
    """The configurations as a Tune user writes a full factorial: one ``tune.grid_search``
    per key whose value varies, the others as they are. Configurations that are not a full
    factorial stay one grid search over the whole list (which Tune deep-copies per trial).

    >>> space = factorial_space([{"a": a, "b": b, "e": 1} for a in (0, 1) for b in "xyz"])
    >>> space["a"], space["b"], space["e"]
    ({'grid_search': [0, 1]}, {'grid_search': ['x', 'y', 'z']}, 1)
    >>> factorial_space([{"a": 0, "b": "x"}, {"a": 1, "b": "y"}])
    {'grid_search': [{'a': 0, 'b': 'x'}, {'a': 1, 'b': 'y'}]}
    """
    from ray import tune

    levels = {k: [] for k in configs[0]}
    for c in configs:
        if c.keys() != levels.keys():
            return tune.grid_search(configs)
        for k, v in c.items():
            if v not in levels[k]:
                levels[k].append(v)
    if math.prod(len(v) for v in levels.values()) != len(configs):
        return tune.grid_search(configs)
    return {k: tune.grid_search(v) if len(v) > 1 else v[0] for k, v in levels.items()}


def raw_tune(make_ablation, concurrent: int) -> float:
    """Seconds to train the configurations of ``make_ablation()`` (made inside the timing)
    with raw Ray Tune, ``concurrent`` at a time: a grid search per factor (as a Tune user
    writes a factorial; ``factorial_space``), ``reuse_actors=True``. The same data as
    ``gridrun launch`` loads (its train_size included)."""
    import ray
    from ray import tune

    from gridrun.data import load_dataset
    from gridrun.design.grid import expand

    started = time.perf_counter()
    a = make_ablation()
    data = load_dataset(a.dataset, val_fraction=a.val_fraction, split_seed=0,
                        train_size=a.train_size)
    configs = [dict(t.config) for t in expand(a)]
    ray.init(num_cpus=concurrent, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(_raw_trainable, data=data),
                                    {"cpu": 1}),
                param_space={"config": factorial_space(configs)},
                tune_config=tune.TuneConfig(reuse_actors=True,
                                            max_concurrent_trials=concurrent),
                run_config=tune.RunConfig(storage_path=tmp, verbose=0))
            tuner.fit()
    finally:
        ray.shutdown()
    return time.perf_counter() - started


def side(name: str, epochs: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--side", name, "--epochs", str(epochs)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.side:
        print(run_raw(args.epochs) if args.side == "raw" else run_gridrun(args.epochs))
        return
    n = len(ablation(args.epochs).factors[0].levels) * 4 * 2
    raw, ours = [], []
    for _ in range(args.pairs):
        raw.append(side("raw", args.epochs))
        ours.append(side("gridrun", args.epochs))
    ratios = [g / r for g, r in zip(ours, raw)]
    ratio = statistics.median(ratios)
    per_trial = statistics.median((g - r) * CONCURRENT / n for g, r in zip(ours, raw))
    out = {"trials": n, "epochs": args.epochs, "concurrent": CONCURRENT,
           "raw_seconds": raw, "gridrun_seconds": ours, "ratios": ratios,
           "ratio": ratio, "overhead_seconds_per_trial": per_trial, "target": TARGET,
           "met": ratio <= TARGET}
    print(f"{n} trials x {args.epochs} epochs, {CONCURRENT} at a time, {args.pairs} pairs:")
    print(f"  raw Ray Tune: {statistics.median(raw):.1f} s (median); gridrun launch: "
          f"{statistics.median(ours):.1f} s")
    print(f"  ratio gridrun / raw: {ratio:.3f} (pairs: "
          f"{', '.join(f'{x:.3f}' for x in ratios)}; target <= {TARGET}): "
          f"{'met' if out['met'] else 'NOT met'}")
    print(f"  overhead per trial: {per_trial:+.2f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
