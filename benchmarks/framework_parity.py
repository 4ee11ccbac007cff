"""Framework parity: the same Fashion-MNIST grid in PyTorch and in Keras, compared.

Runs ``ablations/parity.py`` (framework x augmentation x batch norm x dropout x optimizer,
10 seeds, every trial to its 5th epoch; about 75 minutes on 2 cores) into runs/parity, or
reads a finished run with ``--run``, and checks the two trainers against each other. A
finished runs/parity of the same spec is read again; one with fewer seeds grows.

- for every configuration of the techniques, the mean test accuracy over seeds in torch and
  in tensorflow: the target is a difference below 1.5 points in every one;
- every main effect within each framework (the report's "Each effect per framework"): the
  target is the same sign in the other framework wherever a 95% interval excludes zero.

    GRIDRUN_DATA_DIR=path/to/data python benchmarks/framework_parity.py
    python benchmarks/framework_parity.py --run runs/parity --out parity.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

TARGET_POINTS = 1.5
SPEC = Path(__file__).resolve().parent.parent / "ablations" / "parity.py"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=None,
                        help="a finished run of ablations/parity.py to read instead of launching")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    parser.add_argument("--overwrite", action="store_true",
                        help="train the whole grid again instead of keeping runs/parity")
    return parser.parse_args()


def launch_parity(overwrite: bool) -> tuple[str, float | None]:
    """Run the grid into runs/parity: a finished run of the same spec is read as it is, a
    cut-off one is continued, and one with fewer seeds grows (its trials are kept)."""
    from gridrun.store.journal import is_complete, read_state, same_spec
    from gridrun.store.location import Location
    from gridrun import launch
    from gridrun.spec.ablation import load_spec

    spec, run_dir = load_spec(SPEC), Path("runs/parity")
    info, launched = read_state(Location(run_dir))
    if not overwrite and is_complete(info, launched) and same_spec(info["spec"],
                                                                   spec.to_dict()):
        return str(run_dir), None
    started = time.perf_counter()
    result = launch(spec, run_dir=run_dir, overwrite=overwrite)
    if result.interrupted:
        raise SystemExit(f"{run_dir}: interrupted; run the same command again to finish it")
    return str(result.run_dir), time.perf_counter() - started


def configurations(trials, factors) -> list[dict]:
    """Mean test accuracy per configuration and framework, and their difference."""
    techniques = [f for f in factors if f != "framework"]
    done = trials[trials.status == "completed"]
    mean = done.groupby(techniques + ["framework"], sort=False).test_acc.agg(["mean", "count"])
    rows = []
    for key, per in mean.groupby(level=techniques, sort=False):
        per = per.droplevel(techniques)
        torch_acc, tf_acc = per.loc["torch", "mean"], per.loc["tensorflow", "mean"]
        rows.append({**dict(zip(techniques, key if isinstance(key, tuple) else (key,))),
                     "torch": 100 * torch_acc, "tensorflow": 100 * tf_acc,
                     "diff": 100 * (tf_acc - torch_acc),
                     "seeds": int(per["count"].min())})
    return rows


def effects(run, metric: str) -> list[dict]:
    from gridrun.analysis._by_level import effects_by

    by = effects_by(run.trials, run.epochs, run.spec, "framework", metric=metric)
    rows = {}
    for fw, fx in by.items():
        for e in fx:
            row = rows.setdefault((e.factor, str(e.level)),
                                  {"factor": e.factor, "level": e.level})
            est = e.estimate
            row[fw] = {"effect": 100 * est.value, "ci_low": 100 * est.ci_low,
                       "ci_high": 100 * est.ci_high}
    out = []
    for row in rows.values():
        ests = [row[fw] for fw in ("torch", "tensorflow")]
        clear = [x for x in ests if x["ci_low"] > 0 or x["ci_high"] < 0]
        row["checked"] = bool(clear)
        row["same_sign"] = (ests[0]["effect"] > 0) == (ests[1]["effect"] > 0)
        row["met"] = row["same_sign"] or not clear
        out.append(row)
    return out


def main() -> None:
    args = parse_args()
    from gridrun.store.tables import read_run

    seconds = None
    run_dir = args.run
    if run_dir is None:
        run_dir, seconds = launch_parity(args.overwrite)
    run = read_run(run_dir)
    configs = configurations(run.trials, list(run.spec["factors"]))
    fx = effects(run, run.spec.get("metric", "val_acc"))
    worst = max(abs(r["diff"]) for r in configs)
    out = {"run": str(run_dir), "seconds": seconds, "configurations": configs,
           "effects": fx, "max_abs_diff_points": worst,
           "configs_within_target": sum(abs(r["diff"]) < TARGET_POINTS for r in configs),
           "target_points": TARGET_POINTS,
           "met": worst < TARGET_POINTS and all(r["met"] for r in fx)}
    techniques = [f for f in run.spec["factors"] if f != "framework"]
    print("test accuracy (%), mean over seeds, per configuration:")
    print(" | ".join(techniques) + " | torch | tensorflow | tf - torch")
    for r in configs:
        print(" | ".join(str(r[t]) for t in techniques)
              + f" | {r['torch']:.2f} | {r['tensorflow']:.2f} | {r['diff']:+.2f}")
    print(f"largest |difference|: {worst:.2f} points; {out['configs_within_target']} of "
          f"{len(configs)} configurations within {TARGET_POINTS} (target: all)")
    print("main effects per framework (val_acc points, 95% t-interval over seeds):")
    for r in fx:
        t, k = r["torch"], r["tensorflow"]
        print(f"  {r['factor']}={r['level']}: torch {t['effect']:+.2f} "
              f"[{t['ci_low']:+.2f}, {t['ci_high']:+.2f}], tensorflow {k['effect']:+.2f} "
              f"[{k['ci_low']:+.2f}, {k['ci_high']:+.2f}]: "
              + ("same sign" if r["same_sign"] else
                 "signs differ" + ("" if r["checked"] else " (no interval excludes zero)")))
    print("targets " + ("met" if out["met"] else "NOT met"))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2, default=str)


if __name__ == "__main__":
    main()
