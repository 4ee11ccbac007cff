"""The driver's own work per cell as a grid grows, without Ray or training: what `gridrun
launch` does around n cells, timed stage by stage at each n of --sizes (default 64, 256,
1,024 and 4,096 cells; powers of two).

The grid is k two-level factors (2^k cells, one seed) with ASHA (4 epochs, rungs at 1 and
3), so the anchors are a fraction and the other cells are screened. Every cell reports
every epoch (the schedule judges each at both rungs, its most work), so a cell brings the
same work at every n. Each stage is gridrun's own code, called as the launch calls it:

- design: the trials and their ids, the cells, the anchors, the lines launch prints, and
  launch.json;
- Tune's grid: the trials Ray Tune makes from the driver's cell search, as ``Tuner.fit``
  does (placeholders, the searcher's suggestion, each trial's config resolved);
- schedule: the ablation-aware ASHA's decision at every report of every cell;
- collector: the Tune callback at every start, report and end (each end writes the cell's
  part file), and a heartbeat every 64 cells;
- read back: the parts, `gridrun status`'s view, and the run as `gridrun report` reads it
  while it is running;
- store: the rows, trials.parquet, epochs.parquet and run.json, and the tidy-up;
- report: the report of the stored run (no plots).

Linear work costs the same per cell at every n; the table shows the cost per cell and how
it grew over the last step of sizes (1.0: linear; 4.0: quadratic at a 4x step). Target:
the whole at the largest n costs at most 1.5x per cell what it costs at the size before.
Python is warmed up on 16 cells first (imports, caches), untimed.

    python benchmarks/bookkeeping.py
    python benchmarks/bookkeeping.py --sizes 256,4096 --memory   # also peak traced memory
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import random
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

TARGET = 1.5
EPOCHS = 4
_TWO = [("batchnorm", [False, True]), ("augmentation", [False, True]),
        ("dropout", [0.0, 0.3]), ("weight_decay", [0.0, 5e-4]),
        ("label_smoothing", [0.0, 0.1]), ("crop", [False, True]),
        ("global_pool", [False, True]), ("erasing", [0.0, 0.25]), ("lr", [0.01, 0.05]),
        ("optimizer", ["sgd", "adam"]), ("activation", ["relu", "elu"]),
        ("pooling", ["max", "avg"]), ("grad_clip", [0.0, 1.0]), ("warmup_epochs", [0, 1])]
STAGES = ("design", "Tune's grid", "schedule", "collector", "read back", "store", "report")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,256,1024,4096",
                        help="comma-separated numbers of cells, powers of two from 16 to "
                             f"{2 ** len(_TWO):,} (default 64,256,1024,4096)")
    parser.add_argument("--memory", action="store_true",
                        help="also the peak memory each stage allocates (tracemalloc: slower)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = parser.parse_args()
    args.sizes = sorted({int(x) for x in args.sizes.split(",") if x.strip()})
    bad = [n for n in args.sizes if n < 16 or n > 2 ** len(_TWO) or n & (n - 1)]
    if bad or not args.sizes:
        parser.error(f"--sizes: {bad or 'none'}: each a power of two from 16 to "
                     f"{2 ** len(_TWO)}")
    return args


def ablation(n: int):
    from gridrun import ASHA, Ablation, Factor

    k = n.bit_length() - 1
    return Ablation(name=f"bookkeeping-{n}", dataset="digits",
                    factors=[Factor(name, levels) for name, levels in _TWO[:k]], seeds=1,
                    fixed={"epochs": EPOCHS}, train_size=100, max_concurrent=2,
                    scheduler=ASHA(grace_period=1, reduction_factor=3))


class Stages:
    """Seconds (and, with ``memory``, peak traced MiB) per stage, summed over its calls."""

    def __init__(self, memory: bool):
        self.seconds, self.mib, self.memory = dict.fromkeys(STAGES, 0.0), {}, memory

    def __call__(self, stage: str):
        stages = self

        class Timed:
            def __enter__(self):
                if stages.memory:
                    tracemalloc.reset_peak()
                    self.base = tracemalloc.get_traced_memory()[0]
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                stages.seconds[stage] += time.perf_counter() - self.t0
                if stages.memory:
                    peak = (tracemalloc.get_traced_memory()[1] - self.base) / 2 ** 20
                    stages.mib[stage] = max(stages.mib.get(stage, 0.0), peak)

        return Timed()


def _epoch(tid: str, e: int, rng) -> dict:
    return {"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0,
            "val_acc": rng.random(), "lr": 0.1, "rss_mb": 300.0, "epoch_seconds": 0.1,
            "elapsed": 0.1 * e, "node": "n0", "params": 1000,
            **({"test_acc": 0.5} if e == EPOCHS else {})}


def run(n: int, folder: Path, memory: bool) -> Stages:
    from ray.tune.impl.placeholder import (create_resolvers_map, inject_placeholders,
                                           resolve_placeholders)
    from ray.tune.search import Searcher
    from ray.tune.search.variant_generator import _resolve_nested_dict, format_vars
    from ray.tune.utils.util import merge_dicts

    from gridrun.design.grid import expand
    from gridrun.design.labels import label_warnings
    from gridrun.design.plan import anchors_text
    from gridrun.design.schedule import (RungState, anchors_of, asha_rungs, budget_settings,
                                         promotion_allowance, strata_of)
    from gridrun.report.tables import report_text
    from gridrun.run.cells import cells_of, collect_rows
    from gridrun.run.collector import Heartbeat, make_collector
    from gridrun.run.progress import LiveView, Progress
    from gridrun.run.runfolder import launch_record, tidy
    from gridrun.run.search import cell_search
    from gridrun.store import journal, tables
    from gridrun.store.location import Location
    from gridrun.store.progress import read_progress

    T, a, rng = Stages(memory), ablation(n), random.Random(0)
    loc = Location(folder / "run")
    with T("design"):
        trials = expand(a)
        cells = cells_of(trials)
        anchors = anchors_of(a)
        anchors_text(a), label_warnings(a)
        launch_record(loc, a, trials, cells, None, anchors, dt.datetime.now(dt.timezone.utc))
    with T("Tune's grid"):  # the driver's cell search, each trial as Tuner.fit makes it
        grid = [{"key": c.key, "config": dict(c.config), "epochs": a.epochs,
                 "trials": [{"trial_id": t.trial_id, "seed": t.seed} for t in c.trials],
                 "checkpoints": loc.child("checkpoints").full, "resume": True,
                 "replay": True, "weights": None, "checkpoint_seconds": 0.0,
                 "save_at": [1, 3]} for c in cells]
        search, resolvers = cell_search(grid, threads=1, metric=a.metric), create_resolvers_map()
        spec = {"config": inject_placeholders(copy.deepcopy(search["param_space"]), resolvers)}
        made = []
        while (suggested := search["search_alg"].suggest(str(len(made)))) != Searcher.FINISHED:
            trial = copy.deepcopy(spec)  # ray.tune.search.search_generator, per trial
            trial["config"] = merge_dicts(trial["config"], copy.deepcopy(suggested))
            format_vars(_resolve_nested_dict(trial["config"]))
            config = copy.deepcopy(trial["config"])  # Trial.resolve_config_placeholders
            resolve_placeholders(config, resolvers)
            made.append(config["cell"])
    with T("schedule"):  # as gridrun.run.scheduler.cell_scheduler builds it
        s = a.scheduler
        state = RungState(asha_rungs(a.epochs, s.grace_period, s.reduction_factor),
                          s.reduction_factor, a.mode, protected=anchors.keys(),
                          strata={c.key: strata_of(c.levels) for c in cells},
                          max_t=a.epochs, allowance=promotion_allowance(anchors,
                                                                        **budget_settings(a)))
    scheduler = SimpleNamespace(state=state, stopped_trials=set())  # every cell runs on
    progress = Progress(a.name, len(trials), a.metric, a.mode)
    heartbeat = Heartbeat(loc, 1)
    collector = make_collector(progress, a.metric, LiveView(progress, None, False), scheduler,
                               run=loc, session=1, heartbeat=heartbeat, max_epochs=a.epochs,
                               cells=cells)
    for i, cell in enumerate(made):
        trial = SimpleNamespace(config={"cell": cell}, error_file=None)
        with T("collector"):
            collector.on_trial_start(0, [], trial)
        for e in range(1, a.epochs + 1):
            per_seed = {t["trial_id"]: _epoch(t["trial_id"], e, rng) for t in cell["trials"]}
            mean = sum(m["val_acc"] for m in per_seed.values()) / len(per_seed)
            with T("collector"):
                collector.on_trial_result(0, [], trial, {"epoch": e, a.metric: mean,
                                                         "per_seed": per_seed,
                                                         "seed_errors": {}})
            with T("schedule"):
                state.on_result(cell["key"], e, mean)
        with T("collector"):
            collector.on_trial_complete(0, [], trial)
            if i % 64 == 0:
                heartbeat.write()
    with T("read back"):
        parts = journal.read_parts(loc)
        journal.run_status(journal.read_launch(loc), parts, journal.read_heartbeat(loc), None)
        read_progress(loc)
    with T("store"):
        rows, epochs = collect_rows(trials, collector, {})
        tables.write_run(loc, factor_names=a.factor_names, trials=rows, epochs=epochs,
                         info={"spec": a.to_dict(), "complete": True})
        tidy(loc, rows)
    with T("report"):
        report_text(loc.full)
    if len(parts) != n or len(rows) != n:
        raise SystemExit(f"{n} cells: {len(parts)} parts and {len(rows)} rows")
    return T


def table(results: dict) -> str:
    from tabulate import tabulate

    sizes = sorted(results)
    grow = len(sizes) > 1
    rows = []
    for stage in (*STAGES, "whole"):
        per = [results[n]["per_cell_ms"][stage] for n in sizes]
        row = [stage, *(f"{x:.3f}" for x in per)]
        if grow:
            row.append(f"x{per[-1] / per[-2]:.2f}" if per[-2] > 0 else "")
        if results[sizes[-1]].get("peak_mib"):
            row.append(f"{results[sizes[-1]]['peak_mib'].get(stage, 0.0):.1f}")
        rows.append(row)
    headers = ["stage", *(f"ms / cell at {n:,}" for n in sizes)]
    headers += [f"growth {sizes[-2]:,} -> {sizes[-1]:,}"] if grow else []
    headers += [f"peak MiB at {sizes[-1]:,}"] if results[sizes[-1]].get("peak_mib") else []
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def main() -> None:
    args = parse_args()
    if args.memory:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        run(16, Path(tmp), False)  # imports and first calls, untimed
    results = {}
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            T = run(n, Path(tmp), args.memory)
        total = sum(T.seconds.values())
        results[n] = {"seconds": {**T.seconds, "whole": total},
                      "per_cell_ms": {k: 1e3 * v / n for k, v in
                                      {**T.seconds, "whole": total}.items()}}
        if args.memory:
            results[n]["peak_mib"] = {**T.mib, "whole": max(T.mib.values())}
        print(f"{n:,} cells: {total:.2f} s", flush=True)
    print()
    print(table(results))
    sizes = sorted(results)
    out = {"sizes": sizes, "results": {str(n): r for n, r in results.items()},
           "target": TARGET}
    if len(sizes) > 1:
        lo, hi = (results[n]["per_cell_ms"]["whole"] for n in sizes[-2:])
        out.update(growth=hi / lo, growth_from=sizes[-2], growth_to=sizes[-1],
                   met=hi / lo <= TARGET, per_cell_ms=hi)
        print(f"\nper cell, whole: {lo:.2f} ms at {sizes[-2]:,} cells, {hi:.2f} ms at "
              f"{sizes[-1]:,}: x{hi / lo:.2f} (target <= {TARGET}): "
              f"{'met' if out['met'] else 'NOT met'}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
