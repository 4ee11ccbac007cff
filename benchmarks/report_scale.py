"""How long `gridrun report` takes on a large run.

Builds a synthetic run of about 100,000 trials over the 8 techniques a spec can vary
(2^5 x 5 x 5 x 3 = 2,400 configurations x 42 seeds) with ASHA-style early stopping (20% of
trials stopped at epoch 2, 20% at 6, the rest run all 14 epochs: about 1,000,000 epoch
rows), writes it in the store's Parquet schema, then times (1) reading it back plus
``gridrun.analysis.analyze`` in-process and (2) the whole `gridrun report` command as a
user runs it (a fresh process: imports, read, analysis, rendering), also with --plots.

    python benchmarks/report_scale.py            # default sizes
    python benchmarks/report_scale.py --seeds 5  # smaller
    python benchmarks/report_scale.py --budget 14  # survivors-only comparison
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gridrun import store
from gridrun.analysis import analyze
from gridrun.analysis.testing import additive, synthetic_run

FACTORS = {
    "augmentation": [False, True], "batchnorm": [False, True], "optimizer": ["sgd", "adam"],
    "lr": [0.01, 0.1], "batch_size": [64, 128],
    "dropout": [0.0, 0.1, 0.2, 0.3, 0.5], "weight_decay": [0.0, 1e-5, 1e-4, 5e-4, 1e-3],
    "backbone": ["simple_cnn", "resnet20", "vgg_small"],
}
VALUE = additive(0.70, {"augmentation": {True: 0.04}, "batchnorm": {True: 0.03},
                        "optimizer": {"adam": 0.01}, "dropout": {0.3: 0.01, 0.5: -0.01},
                        "backbone": {"resnet20": 0.05, "vgg_small": 0.07}},
                 {("augmentation", "dropout"): {(True, 0.5): 0.02}})
EPOCHS = 14


def build(seeds: int, seed: int = 0):
    n = int(np.prod([len(v) for v in FACTORS.values()])) * seeds
    stop = np.random.default_rng(seed).choice([2, 6, EPOCHS], size=n, p=[0.2, 0.2, 0.6])
    return synthetic_run(FACTORS, value=VALUE, seeds=seeds, epochs=EPOCHS, noise=0.01,
                         seed_noise=0.005, slow=lambda lv: 0.01, stop=stop, seed=seed,
                         scheduler={"type": "asha", "grace_period": 2,
                                    "reduction_factor": 3}, name="scale")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=42)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--budget", type=int, default=None,
                    help=f"epoch to compare at (e.g. {EPOCHS}: survivors only)")
    ap.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = ap.parse_args()
    t0 = time.perf_counter()
    run = build(args.seeds)
    t_gen = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        schema = store.trials_schema(list(FACTORS))
        pq.write_table(pa.Table.from_pandas(run.trials[schema.names], schema=schema,
                                            preserve_index=False), d / "trials.parquet")
        pq.write_table(pa.Table.from_pandas(run.epochs[store.EPOCHS_SCHEMA.names],
                                            schema=store.EPOCHS_SCHEMA, preserve_index=False),
                       d / "epochs.parquet")
        (d / "run.json").write_text(json.dumps({"spec": run.spec, "complete": True}))
        t0 = time.perf_counter()
        trials = pq.read_table(d / "trials.parquet").to_pandas()
        epochs = pq.read_table(d / "epochs.parquet").to_pandas()
        spec = json.loads((d / "run.json").read_text())["spec"]
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        a = analyze(trials, epochs, spec, n_boot=args.n_boot, budget=args.budget)
        t_analyze = time.perf_counter() - t0
        cli = {label: _time_cli(d, extra) for label, extra in
               (("gridrun report", []),
                ("gridrun report --format latex", ["--format", "latex"]),
                ("gridrun report --plots", ["--plots"]))}
    print(f"run: {len(trials):,} trials x {len(FACTORS)} factors, {len(epochs):,} epoch rows,"
          f" {a.counts.n_configs:,} configurations, {a.counts.n_seeds} seeds "
          f"(generated in {t_gen:.1f} s)")
    n_phi = len(a.shapley.parts) if a.shapley else 0
    n_anova = len(a.variance.terms) if a.variance else 0
    print(f"tables: {len(a.main_effects)} main effects, {len(a.interactions)} interactions, "
          f"Shapley over {n_phi} factors, {n_anova} ANOVA terms, "
          f"{len(a.configs):,} configurations; budgets {a.budgets}")
    print(f"read parquet  {t_read:6.2f} s")
    print(f"analyze       {t_analyze:6.2f} s")
    print(f"total         {t_read + t_analyze:6.2f} s")
    for label, seconds in cli.items():
        print(f"{label:42s} {seconds:6.2f} s (whole command, fresh process)")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {"trials": len(trials), "epoch_rows": len(epochs), "read_seconds": t_read,
             "analyze_seconds": t_analyze, "cli_seconds": cli}, indent=2))


def _time_cli(run_dir: Path, extra: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gridrun.cli", "report", str(run_dir), *extra],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"gridrun report failed: {proc.stderr}")
    return seconds


if __name__ == "__main__":
    main()
