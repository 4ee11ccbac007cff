"""Does early stopping change the ablation table? One grid on real Fashion-MNIST, three ways.

1. truth:   every trial to the full budget (``scheduler=None``), main effects with 95% CIs;
2. vanilla: Ray Tune's own ASHAScheduler on single trials (configuration x seed), each
            effect from every trial's last reported value (what a plain Tune user gets);
3. gridrun: gridrun's ablation-aware ASHA (anchors, cells, stratified promotion,
            confirmation), the effects as ``gridrun report`` prints them.

For each: trial-epochs (and their share of the truth's), wall time, sign agreement on every
effect whose truth interval excludes zero, Spearman rho of effect sizes with the truth, and
the largest absolute error (points of accuracy). Prints one table and writes JSON.

    GRIDRUN_DATA_DIR=... python benchmarks/asha_agreement.py            # 6 two-level factors
    python benchmarks/asha_agreement.py --factors 4 --out runs/bench4   # a smaller grid
    python benchmarks/asha_agreement.py --techniques crop,batchnorm,dropout,optimizer,\
        weight_decay,batch_size --out runs/bench_qs    # the quickstart's six techniques
    python benchmarks/asha_agreement.py --techniques augmentation,batchnorm,dropout,\
        optimizer,weight_decay,batch_size,label_smoothing,lr_schedule --eta 4 \
        --out runs/bench_8    # 8 factors: the anchors are a resolution V quarter
    python benchmarks/asha_agreement.py --train-size 12000 --out runs/bench_12k
        # the 6 factors with less seed noise (about 2 h on 2 cores)
    python benchmarks/asha_agreement.py --techniques augmentation,batchnorm,dropout,\
        optimizer,weight_decay,batch_size,lr_schedule --epochs 16 --train-size 12000 \
        --eta 8 --budget 0.25 --out runs/bench_7x12k
        # 7 factors within a quarter of the truth's epochs (the truth alone is about 4.5 h)
    python benchmarks/asha_agreement.py --techniques augmentation,optimizer:3,dropout:3,\
        batch_size:3,weight_decay:3 --train-size 6000 --out runs/bench_asha_mixed
        # one two-level and four three-level factors (NAME:3): the anchors are a 3^(4-1)
        # fraction crossed with augmentation, a third of the grid (the truth is about 2 h)

Each arm's run folder is kept under --out and reused when present (delete it to re-run).
The summaries of the grids the README quotes are in benchmarks/results/. ``--truth-from``
compares new arms with the truth of such a summary instead of training the truth again:

    python benchmarks/asha_agreement.py --techniques augmentation,batchnorm,dropout,\
        optimizer,weight_decay,batch_size,lr_schedule --epochs 16 --train-size 12000 \
        --eta 8 --budget 0.25 --truth-from benchmarks/results/asha_7x12k.json --arms vanilla
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from gridrun import ASHA, Ablation, Factor

FACTORS = [Factor("augmentation", [False, True]), Factor("batchnorm", [False, True]),
           Factor("dropout", [0.0, 0.3]), Factor("optimizer", ["sgd", "adam"]),
           Factor("weight_decay", [0.0, 5e-4]), Factor("batch_size", [128, 256]),
           Factor("lr", [None, 0.01]), Factor("crop", [False, True]),
           Factor("label_smoothing", [0.0, 0.1]), Factor("lr_schedule", ["constant", "cosine"])]
# The eighth factor is crop, not backbone: a vgg_small cell costs 2.3x a simple_cnn cell,
# which puts the 8-factor truth run (6,144 trial-epochs) out of reach of a 2-core machine.
# augmentation crops too, so crop acts only without it: a strong two-factor interaction.
# lr=0.01 runs Adam at ten times its default rate and SGD at a fifth of its own, which makes
# lr x optimizer x batchnorm a 6.7-point three-factor interaction on Fashion-MNIST. The last
# two, label smoothing and a cosine schedule, are for 8-factor grids without those two.


# Three-level versions, named NAME:3 in --techniques: two steps from the baseline each, so
# that every level's contrast with the baseline is measured.
THREE = [Factor("optimizer", ["sgd", "adam", "rmsprop"]), Factor("dropout", [0.0, 0.25, 0.5]),
         Factor("batch_size", [64, 128, 256]), Factor("weight_decay", [0.0, 5e-4, 5e-3]),
         Factor("lr_schedule", ["constant", "step", "cosine"])]


def chosen(args) -> list:
    """The grid's factors: the first --factors of FACTORS, or those --techniques names
    (NAME:3 for the three-level version of NAME)."""
    if not args.techniques:
        return FACTORS[:args.factors]
    by_name = {f.name: f for f in FACTORS} | {f"{f.name}:3": f for f in THREE}
    names = args.techniques.split(",")
    unknown = [n for n in names if n not in by_name]
    if unknown or len(names) < 4:
        sys.exit(f"--techniques: {', '.join(unknown) or 'fewer than 4'}; choose 4 or more "
                 f"of {', '.join(by_name)}")
    return [by_name[n] for n in names]


def _label(f) -> str:
    """A factor in the run's name: its own name, with its level count past two."""
    return f.name + (str(len(f.levels)) if len(f.levels) > 2 else "")


def ablation(args, scheduler):
    factors = chosen(args)
    fixed = {"epochs": args.epochs}
    if "batch_size" not in {f.name for f in factors}:
        fixed["batch_size"] = 128
    name = (f"asha_bench_{args.factors}" if not args.techniques
            else "asha_bench_" + "_".join(_label(f) for f in factors))
    return Ablation(name=name, dataset="fashion_mnist",
                    factors=factors, fixed=fixed, seeds=args.seeds,
                    train_size=args.train_size, val_fraction=args.val_fraction,
                    scheduler=scheduler, resources={"cpu": 1})


def run_gridrun(a, out: Path) -> dict:
    from gridrun import launch

    done = (out / "run.json").is_file() and json.loads((out / "run.json").read_text())["complete"]
    if not done:  # a run cut off earlier is resumed: its finished trials are kept
        t0 = time.perf_counter()
        try:
            interrupted = launch(a, run_dir=out, show_progress=False).interrupted
        finally:  # every session's time counts, an interrupted one's too
            wall = out / "wall.json"
            before = json.loads(wall.read_text())["seconds"] if wall.is_file() else 0.0
            wall.write_text(json.dumps({"seconds": before + time.perf_counter() - t0}))
        if interrupted:
            sys.exit(f"{out}: interrupted; run the same command again to finish it")
    return _effects_from_store(out)


def _effects_from_store(out: Path) -> dict:
    from gridrun.analysis import analyze
    from gridrun.store.tables import read_run

    run = read_run(out)
    an = analyze(run.trials, run.epochs, run.spec, n_boot=500)
    return {"effects": {_key(e.factor, e.level):
                        (e.estimate.value, e.estimate.ci_low, e.estimate.ci_high)
                        for e in an.main_effects},
            "trial_epochs": int(run.trials["epochs_run"].sum()),
            "seconds": json.loads((out / "wall.json").read_text())["seconds"],
            "basis": an.basis}


def _key(factor: str, level) -> str:
    """An effect's name in every arm's "effects": the factor and the level it moves to."""
    return f"{factor}={level}"


def run_vanilla(a, out: Path) -> dict:
    """Ray Tune's ASHAScheduler over single trials, with gridrun's trainer and data."""
    path = out / "vanilla.json"
    if path.is_file():
        return json.loads(path.read_text())
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from gridrun.data import load_dataset
    from gridrun.design.grid import expand

    data = load_dataset(a.dataset, val_fraction=a.val_fraction, split_seed=0,
                        train_size=a.train_size)
    trials = expand(a)

    def trainable(config, data=None):
        from gridrun.torch import train

        train(config["t"]["config"], data, seed=config["t"]["seed"], threads=1,
              report=lambda m: tune.report({"epoch": m["epoch"], "val_acc": m["val_acc"]}))

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the legacy reporter honours verbose=0
    t0 = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        grid = [{"levels": dict(t.levels), "config": dict(t.config), "seed": t.seed}
                for t in trials]
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(trainable, data=data), {"cpu": 1}),
            param_space={"t": tune.grid_search(grid)},
            tune_config=tune.TuneConfig(
                metric="val_acc", mode="max", reuse_actors=True,
                scheduler=ASHAScheduler(time_attr="epoch", max_t=a.epochs,
                                        grace_period=a.scheduler.grace_period,
                                        reduction_factor=a.scheduler.reduction_factor)),
            run_config=tune.RunConfig(storage_path=str((out / "tune").resolve()), verbose=0))
        results = tuner.fit()
    finally:
        ray.shutdown()
    rows = []
    for r in results:  # the last report of each trial (one per epoch): its epoch and val_acc
        rows.append((r.config["t"]["levels"], float(r.metrics["val_acc"]),
                     int(r.metrics["epoch"])))
    effects = {}
    for f in a.factors:
        base = f.levels[0]
        for lv in f.levels[1:]:
            hi = [v for lvls, v, _ in rows if lvls[f.name] == lv]
            lo = [v for lvls, v, _ in rows if lvls[f.name] == base]
            effects[_key(f.name, lv)] = (np.mean(hi) - np.mean(lo), math.nan, math.nan)
    result = {"effects": effects, "trial_epochs": int(sum(n for *_, n in rows)),
              "seconds": time.perf_counter() - t0, "basis": "last reported value"}
    path.write_text(json.dumps(result))
    return result


def _at_level(t, factor: str, level):
    """Which trials of ``t`` run ``factor`` at ``level`` (None is stored as NaN)."""
    return t[factor].isna() if level is None else t[factor] == level


def fraction_effects(out: Path, resolution: int) -> dict:
    """The main effects a resolution IV or V anchor fraction gives, computed from the
    truth run's own cells (gridrun's anchor trials are bit-identical to them): what the
    table would say, before any screening cost. Each level against the baseline level: the
    difference of the mean final val_acc of the fraction's cells at the two levels."""
    from gridrun.design.schedule import anchors_for, cell_key
    from gridrun.store import read_run

    run = read_run(out / "truth")
    spec, names = run.spec, list(run.spec["factors"])
    keys = anchors_for(spec["factors"], spec.get("baseline") or {}, spec.get("target") or {},
                       resolution=resolution).fraction_keys()
    t = run.trials
    levels = t[names].astype(object).where(t[names].notna(), None).to_dict("records")
    t = t.assign(key=[cell_key(lv) for lv in levels])
    t = t[t.key.isin(keys)]
    effects = {}
    for f, lv in spec["factors"].items():
        base = t[_at_level(t, f, lv[0])].last_val_acc.mean()
        for level in lv[1:]:
            effects[_key(f, level)] = (
                float(t[_at_level(t, f, level)].last_val_acc.mean() - base), math.nan,
                math.nan)
    return {"effects": effects, "trial_epochs": int(t["epochs_run"].sum()),
            "seconds": math.nan, "basis": f"{len(keys)} cells of the truth"}


@functools.lru_cache(maxsize=None)
def _truth_cells(out: Path):
    """The truth run's cells: (spec, x, y, ys) with x each cell's level index per factor
    (0 = the first level), ys each cell's final val_acc per seed (cells x seeds) and y its
    mean over seeds. Read once per run folder: the every-fraction spreads and the
    interaction spectrum all use it."""
    from gridrun.store import read_run

    run = read_run(out / "truth")
    t = run.trials
    coded = {}
    for f, lv in run.spec["factors"].items():
        code = np.zeros(len(t), dtype=int)
        for i, level in enumerate(lv):
            code[_at_level(t, f, level).to_numpy()] = i
        coded[f"_{f}"] = code
    ys = t.assign(**coded).pivot_table(index=list(coded), columns="seed",
                                        values="last_val_acc", aggfunc="mean")
    x = np.array(ys.index.to_list(), dtype=int).reshape(len(ys), len(coded))
    return run.spec, x, np.nanmean(ys.to_numpy(), axis=1), ys.to_numpy()


def _components(x: np.ndarray, counts, word) -> np.ndarray:
    """The contrast columns of the interaction of the factors in ``word`` over the cells:
    products of each factor's orthonormal level contrasts, scaled so that a two-level
    factor's is the usual +1/-1 (a contrast is then mean(+) - mean(-) for two levels)."""
    cols = np.ones((len(x), 1))
    for i in word:
        s = counts[i]
        q, _ = np.linalg.qr(np.column_stack([np.ones(s), np.eye(s)[:, 1:]]))
        q = q[:, 1:] * np.sign(q[-1:, 1:])  # positive at the last level: +1 for two levels
        c = q[x[:, i]] * np.sqrt(s)
        cols = np.einsum("na,nb->nab", cols, c).reshape(len(x), -1)
    return cols


def interaction_spectrum(out: Path) -> dict:
    """Every contrast of the truth's full factorial, grouped by order: {order: (root mean
    square in points, root mean square of its seed noise, [(factors, points) of the largest
    two])}. A fraction's main effect is off by the interactions it shares its contrast with:
    three-factor ones at resolution IV, four-factor ones at V.

    The seed noise of a contrast is its standard error over seeds: the same contrast taken
    on each seed alone, spread / sqrt(seeds). It is not alike at every order: a seed fixes
    the initial weights, data order and augmentation of every cell, so noise common to
    similar cells cancels in high orders and stays in low ones. The square of the first
    column less the square of the second is what the interactions are without seed noise."""
    spec, x, y, ys = _truth_cells(out)
    names = list(spec["factors"])
    counts = [len(v) for v in spec["factors"].values()]
    by_order: dict = {}
    for r in range(1, x.shape[1] + 1):
        for word in itertools.combinations(range(x.shape[1]), r):
            label = " x ".join(names[i] for i in word)
            for c in _components(x, counts, word).T:  # one per degree of freedom
                points = float(100 * 2 * (c @ y) / len(y))
                per_seed = 100 * 2 * np.nansum(c[:, None] * ys, axis=0) / len(y)
                var = float(per_seed.var(ddof=1) / len(per_seed)) if len(per_seed) > 1 \
                    else 0.0
                by_order.setdefault(r, []).append((label, points, var))
    return {r: (float(np.sqrt(np.mean([v ** 2 for _, v, _ in ws]))),
                float(np.sqrt(np.mean([n for *_, n in ws]))),
                [(w, v) for w, v, _ in sorted(ws, key=lambda w: -abs(w[1]))[:2]])
            for r, ws in by_order.items()}


def every_fraction(out: Path, anchors_resolution: int) -> dict:
    """How much of an anchor fraction's error is the grid's own: the largest main-effect
    error of *every* regular fraction with as many cells as gridrun's anchors and at least
    their resolution (all generator sets, all sign cosets), from the truth's cells. gridrun
    takes one of them before any training; if most of them miss, no choice could have hit.
    {resolution: [largest error in points, one per fraction]}."""
    from gridrun.design.schedule import anchors_for

    spec, x, y, _ = _truth_cells(out)
    anchors = anchors_for(spec["factors"], {}, {}, resolution=anchors_resolution)
    if anchors.is_all or any(len(v) != 2 for v in spec["factors"].values()):
        return {}  # regular two-level fractions only
    x = 2 * x - 1  # -1 / +1
    k = x.shape[1]
    p = int(round(math.log2(len(y) / len(anchors.fraction))))

    def effects(mask):
        return np.array([y[mask & (x[:, j] > 0)].mean() - y[mask & (x[:, j] < 0)].mean()
                         for j in range(k)])

    truth = effects(np.ones(len(y), bool))
    words = [frozenset(w) for r in range(anchors_resolution, k + 1)
             for w in itertools.combinations(range(k), r)]
    seen, errors = set(), {}
    for gens in itertools.combinations(words, p):
        group = frozenset(functools.reduce(frozenset.__xor__, sub) for r in range(1, p + 1)
                          for sub in itertools.combinations(gens, r))
        resolution = min(len(w) for w in group)
        if resolution < anchors_resolution or group in seen:
            continue
        seen.add(group)
        for signs in itertools.product((1, -1), repeat=p):
            mask = np.ones(len(y), bool)
            for g, sign in zip(gens, signs):
                mask &= np.prod(x[:, sorted(g)], axis=1) == sign
            errors.setdefault(resolution, []).append(
                float(100 * np.abs(effects(mask) - truth).max()))
    return errors


def compare(truth: dict, arm: dict) -> dict:
    from scipy.stats import spearmanr

    names = list(truth["effects"])
    t = np.array([truth["effects"][n][0] for n in names])
    x = np.array([arm["effects"][n][0] for n in names])
    clear = [i for i, n in enumerate(names)
             if not truth["effects"][n][1] <= 0 <= truth["effects"][n][2]]
    signs = sum(np.sign(x[i]) == np.sign(t[i]) for i in clear)
    return {"epochs": arm["trial_epochs"], "share": arm["trial_epochs"] / truth["trial_epochs"],
            "seconds": arm["seconds"], "signs": f"{signs}/{len(clear)}",
            "signs_ok": bool(signs == len(clear)),
            "rho": float(spearmanr(t, x).statistic), "max_err": float(100 * np.abs(x - t).max())}


GRID_ARGS = ("factors", "techniques", "seeds", "epochs", "train_size", "val_fraction")


def earlier_summary(path: Path, args) -> dict:
    """A summary JSON this script wrote (or one recorded from its output) for the same grid:
    its arms are reused, its truth is the one every new arm is compared with."""
    try:
        summary = json.loads(path.read_text())
        truth = summary["arms"]["truth"]
        recorded = summary["args"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"--truth-from {path}: not a summary of this benchmark ({e!r})")
    keys = [k for k in GRID_ARGS if k != "factors" or not args.techniques]
    differ = [f"{k} {recorded.get(k)} there, {getattr(args, k)} here" for k in keys
              if recorded.get(k) != str(getattr(args, k))]
    if differ:
        sys.exit(f"--truth-from {path}: another grid ({'; '.join(differ)})")
    if not {_key(f.name, f.levels[-1]) for f in chosen(args)} <= set(truth["effects"]):
        sys.exit(f"--truth-from {path}: its truth lacks some of this grid's effects")
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--factors", type=int, default=6, choices=range(4, 9))
    p.add_argument("--techniques", default=None,
                   help="comma-separated factor names instead of the first --factors, e.g. "
                        "crop,batchnorm,dropout,optimizer,weight_decay,batch_size (the "
                        "quickstart's techniques)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--grace", type=int, default=1)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--val-fraction", type=float, default=0.03)
    p.add_argument("--resolution", type=int, default=None, choices=(3, 4, 5),
                   help="force the resolution of gridrun's anchors (default: V when the "
                        "schedule is expected to fit half the truth's epochs, else IV)")
    p.add_argument("--budget", type=float, default=0.5,
                   help="gridrun's ASHA budget: the share of the truth's trial-epochs its "
                        "schedule may use (a ceiling; default 0.5)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--arms", default="truth,vanilla,gridrun")
    p.add_argument("--truth-from", type=Path, default=None,
                   help="a summary JSON of the same grid (benchmarks/results/ has the "
                        "README's): take its truth and arms instead of training them; the "
                        "arms asked for that it lacks are run and added")
    args = p.parse_args(argv)
    earlier = earlier_summary(args.truth_from, args) if args.truth_from else {}
    out = args.out or Path("runs") / ablation(args, None).name.replace("asha_bench", "bench_asha")
    out.mkdir(parents=True, exist_ok=True)
    asha = ASHA(grace_period=args.grace, reduction_factor=args.eta)
    arms = args.arms.split(",")
    gridrun_asha = ASHA(grace_period=args.grace, reduction_factor=args.eta,
                        resolution=args.resolution, budget=args.budget)
    label = ("gridrun" + ("" if args.resolution is None else f" res {args.resolution}")
             + ("" if args.budget == 0.5 else f" budget {args.budget:g}"))
    res = dict(earlier.get("arms", {}))
    if "truth" not in res:
        res["truth"] = run_gridrun(ablation(args, None), out / "truth")
    if "vanilla" in arms and "vanilla ASHA" not in res:
        res["vanilla ASHA"] = run_vanilla(ablation(args, asha), out / "vanilla")
    if "gridrun" in arms and label not in res:
        res[label] = run_gridrun(ablation(args, gridrun_asha),
                                 out / label.replace(" ", "_"))
    has_cells = (out / "truth" / "run.json").is_file()  # the truth's trials, not a summary's
    for r in (4, 5) if has_cells else ():  # what the anchors alone give, from its trials
        try:
            res[f"fraction res {'IV' if r == 4 else 'V'}"] = fraction_effects(out, r)
        except ValueError:  # an analysis that cannot take the subset (e.g. a tiny grid)
            pass
    table = dict(earlier.get("table", {}))  # rows a summary recorded without their effects
    table.update({k: compare(res["truth"], v) for k, v in res.items()})
    kinds = sorted({len(f.levels) for f in chosen(args)})
    print(f"Fashion-MNIST, {len(chosen(args))} factors of {' and '.join(map(str, kinds))} "
          f"levels ({', '.join(_label(f) for f in chosen(args))}), {args.seeds} seeds, "
          f"{args.epochs} epochs, ASHA grace {args.grace} eta {args.eta}, "
          f"{args.train_size} training images\n")
    print(f"{'arm':<20}{'trial-epochs':>13}{'share':>8}{'wall s':>9}{'signs':>7}"
          f"{'rho':>7}{'max err (pt)':>14}")
    for k, r in table.items():
        print(f"{k:<20}{r['epochs']:>13}{r['share']:>8.0%}{r['seconds']:>9.0f}"
              f"{r['signs']:>7}{r['rho']:>7.2f}{r['max_err']:>14.2f}")
    print("\neffects (points):")
    for n in res["truth"]["effects"]:
        v, lo, hi = res["truth"]["effects"][n]
        others = "  ".join(f"{k} {100 * res[k]['effects'][n][0]:+.2f}" for k in res
                           if k != "truth")
        print(f"  {n:<22} truth {100 * v:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]  {others}")
    summary = {**earlier, "args": {k: str(v) for k, v in vars(args).items()}, "table": table,
               "arms": res}
    if not has_cells:
        print(f"\n(the truth's trials are not under {out}: its cells' fractions and "
              "interactions are not computed)")
    else:
        print("\nevery regular fraction of the anchors' size, largest error over the effects "
              "(points; from the truth's cells):")
        spread = {}
        for r in (4, 5):
            for resolution, errs in sorted(every_fraction(out, r).items()):
                e = np.array(errs)
                spread[f"{len(e)} at resolution {resolution} (anchors asked at {r})"] = errs
                print(f"  anchors at resolution {'IV' if r == 4 else 'V'}: {len(e)} fractions "
                      f"of resolution {resolution}: best {e.min():.2f}, median "
                      f"{np.median(e):.2f}, worst {e.max():.2f}; under 0.5 in "
                      f"{np.mean(e < 0.5):.0%}")
        if not spread:
            print("  (none: only regular fractions of two-level grids smaller than the "
                  "grid are enumerated)")
        print("\ninteractions of the truth's full factorial, by order (points; root mean "
              "square, its seed noise, and the largest two):")
        spectrum = interaction_spectrum(out)
        for r, (rms, noise, top) in spectrum.items():
            print(f"  {r}: {rms:.2f} (noise {noise:.2f})  "
                  + ";  ".join(f"{w} {v:+.2f}" for w, v in top))
        summary.update(every_fraction=spread, interactions=spectrum)
    name = label.replace(" ", "_") if "gridrun" in arms else "_".join(res).replace(" ", "_")
    (out / f"summary_{name}.json").write_text(json.dumps(summary, indent=2))  # one per arms
    return 0


if __name__ == "__main__":
    sys.exit(main())
