"""The benchmark suite: every CPU benchmark in one command, one table, one JSON file.

Runs each script of ``benchmarks/`` in its own process (its full output goes to
``<out-dir>/<name>.log``, its numbers to ``<out-dir>/<name>.json``), then prints one table
of what each measured against its target and writes everything to ``<out-dir>/suite.json``.
Ratios are measured side by side inside each script (A B A B), since a shared machine's
speed drifts more than the differences measured. The GPU rows come from
``benchmarks/gpu.py`` and ``benchmarks/trainer_speed.py --device cuda``; without a CUDA
device the table says they are unmeasured.

Slow, separate: ``benchmarks/framework_parity.py`` (make bench-parity),
``benchmarks/asha_agreement.py`` (make bench-asha) and ``benchmarks/scale.py`` (the driver
at 40 to 4,096 trials against raw Ray Tune, too long for this suite; ``bookkeeping`` here is
its part without Ray, up to 4,096 cells).

    GRIDRUN_DATA_DIR=path/to/data python benchmarks/suite.py            # make bench
    python benchmarks/suite.py --only trainer_speed,parallel --out-dir runs/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple  # the script's arguments (besides --out)
    rows: Callable[[dict], list]  # its JSON -> table rows
    script: str = ""  # benchmarks/<script>.py; default: the name


def row(bench: str, measure: str, value: str, target: str = "", met=None) -> dict:
    return {"benchmark": bench, "measure": measure, "value": value, "target": target,
            "met": met}


def _trainer_speed(r: dict) -> list:
    out = []
    for x in r["rows"]:
        if x["ratio"] is not None:
            out.append(row("trainer vs plain loop", x["row"].replace(" trainer", ""),
                           f"{x['ratio']:.3f} ({x['images_s']:.0f} images/s)",
                           f">= {x['target']}", x["met"]))
    for x in r["rows"]:
        if x["row"].startswith("torch trainer, train pass"):
            out.append(row("trainer vs plain loop", "torch training FLOP/s, of matmul peak",
                           f"{x['gflops_s']:.1f} GFLOP/s = {x['of_peak']:.0%}"))
    return out


def _orchestration(r: dict) -> list:
    return [row("orchestration", f"{r['trials']} trials, gridrun launch / raw Ray Tune",
                f"{r['ratio']:.3f}", f"<= {r['target']}", r["met"]),
            row("orchestration", "overhead per trial", f"{r['overhead_seconds_per_trial']:+.2f} s")]


def _bookkeeping(r: dict) -> list:
    return [row("driver bookkeeping (no Ray)",
                f"per cell, {r['growth_from']:,} -> {r['growth_to']:,} cells",
                f"x{r['growth']:.2f} ({r['per_cell_ms']:.2f} ms per cell)",
                f"<= {r['target']}", r["met"])]


def _parallel(r: dict) -> list:
    name = "parallel (quickstart" + (")" if r.get("asha", True) else ", no ASHA)")
    if r.get("asha", True):
        out = [row(name, "speed-up 1 -> 2 trials at a time, wall time",
                   f"{r['speedup']:.2f}x", f">= {r['target']}", r["met"])]
    else:  # the same grid without ASHA's short trials: where the fixed cost weighs less
        out = [row(name, "speed-up 1 -> 2 trials at a time, wall time", f"{r['speedup']:.2f}x")]
    if r.get("throughput_speedup") is not None:
        out.append(row(name, "speed-up in trial-epochs per second",
                       f"{r['throughput_speedup']:.2f}x"))
    for k, runs in sorted(r["runs"].items()):
        cpu = runs[0].get("cpu_utilisation")
        out.append(row(name, f"{k} at a time",
                       f"{runs[0]['seconds']:.1f} s, {runs[0]['trial_epochs']} trial-epochs, "
                       f"CPU {cpu:.0%}" if cpu is not None else f"{runs[0]['seconds']:.1f} s"))
    return out


def _data_path(r: dict) -> list:
    out = [row("data path", "dataset from disk (load_dataset)", f"{r['disk_seconds']:.3f} s"),
           row("data path", "dataset from the object store (zero-copy)",
               f"{r['object_store_get_seconds'] * 1e3:.1f} ms")]
    for fw, w in r["workers"].items():
        out.append(row("data path", f"{fw}: memory per extra concurrent trial",
                       f"{w['uss_mb_prepared']:.0f} MB"))
    return out


def _keras_memory(r: dict) -> list:
    return [row("Keras memory", f"worker growth, trial 5 -> {r['trials']}",
                f"{r['growth']:+.1%} ({r['rss_mb_trial_5']:.0f} -> "
                f"{r['rss_mb_trial_last']:.0f} MiB)", f"<= {r['target']:.0%}", r["met"])]


def _augment_cost(r: dict) -> list:
    return [row("augmentation cost", f"strong policy / training step, {x['threads']} thread(s)",
                f"{x['strong_ratio']:.1%}", f"< {r['target']:.0%}", x["strong_ratio"] < r["target"])
            for x in r["rows"]]


def _report_scale(r: dict) -> list:
    return [row("report at scale", f"read + analyze {r['trials']:,} trials",
                f"{r['read_seconds'] + r['analyze_seconds']:.2f} s"),
            row("report at scale", "gridrun report (whole command)",
                f"{r['cli_seconds']['gridrun report']:.2f} s")]


def _baseline(r: dict) -> list:
    return [row("Fashion-MNIST baseline", f"{r['backbone']}, {r['epochs']} epochs, "
                f"{r['train_images']:,} images", f"test acc {100 * r['test_acc']:.2f}%, "
                f"{r['seconds_per_epoch']:.1f} s/epoch")]


def _gpu(r: dict) -> list:
    if "unmeasured" in r:
        return [row("GPU", "packing, full grid, fast-path accuracy",
                    f"unmeasured ({r['unmeasured']})")]
    out = []
    if "packing" in r:
        p = r["packing"]
        for x in p["rows"]:
            out.append(row("GPU packing", f"{x['per_gpu']} trial(s) per GPU",
                           f"{x['per_gpu_minute']:.0f} trial-epochs/GPU-min "
                           f"({x['vs_one']:.2f}x)"))
        out.append(row("GPU packing", "best vs one per GPU", f"{p['gain']:.2f}x",
                       f">= {p['target']}", p["met"]))
    if "full" in r:
        f = r["full"]
        out.append(row("GPU", f"fashion.py full budget, fast path, {f['per_gpu']}/GPU",
                       f"{f['minutes']:.1f} min", f"< {f['target']:.0f} min", f["met"]))
    for x in r.get("accuracy", []):
        out.append(row("GPU", f"test acc {x['backbone']}: fast vs plain",
                       f"{x['fast']:.2f} vs {x['plain']:.2f} ({x['diff']:+.2f}; seed std "
                       f"{x['plain_std']:.2f})"))
    return out


BENCHES = (
    Bench("trainer_speed", (), _trainer_speed),
    Bench("orchestration", (), _orchestration),
    Bench("bookkeeping", (), _bookkeeping),
    Bench("parallel", (), _parallel),
    Bench("parallel_no_asha", ("--no-asha",), _parallel, script="parallel"),
    Bench("data_path", (), _data_path),
    Bench("keras_memory", (), _keras_memory),
    Bench("augment_cost", (), _augment_cost),
    Bench("report_scale", (), _report_scale),
    Bench("fashion_baseline", ("--epochs", "3"), _baseline),
    Bench("gpu", ("--parts", "packing,full,accuracy"), _gpu),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=None,
                        help="comma-separated benchmarks to run (default all: "
                             f"{', '.join(b.name for b in BENCHES)})")
    parser.add_argument("--out-dir", default="runs/bench",
                        help="where the logs and JSON go (default runs/bench)")
    return parser.parse_args()


def run_one(bench: Bench, out_dir: Path) -> tuple[dict | None, float, str | None]:
    """Run one script: (its JSON or None, seconds, error line or None)."""
    out, log = out_dir / f"{bench.name}.json", out_dir / f"{bench.name}.log"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, str(HERE / f"{bench.script or bench.name}.py"),
                               *bench.args,
                               "--out", str(out)], stdout=f, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or not out.is_file():
        tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        return None, seconds, (tail[-1] if tail else f"exit {proc.returncode}")
    return json.loads(out.read_text()), seconds, None


def table(rows: list[dict]) -> str:
    from tabulate import tabulate

    met = {True: "yes", False: "NO", None: ""}
    return tabulate([[r["benchmark"], r["measure"], r["value"], r["target"], met[r["met"]]]
                     for r in rows], headers=["benchmark", "measure", "value", "target", "met"],
                    tablefmt="github")


def main() -> None:
    args = parse_args()
    names = [b.name for b in BENCHES]
    wanted = names if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown or not wanted:
        raise SystemExit(f"--only: unknown benchmark(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(names)}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started, rows, results = time.perf_counter(), [], {}
    for bench in (b for b in BENCHES if b.name in wanted):
        print(f"{bench.name} ...", end=" ", flush=True)
        result, seconds, error = run_one(bench, out_dir)
        print(f"{seconds:.0f} s" + (f" FAILED: {error}" if error else ""), flush=True)
        results[bench.name] = {"seconds": seconds, "result": result, "error": error}
        rows += bench.rows(result) if result is not None else \
            [row(bench.name, "failed", error or "", met=False)]
    total = time.perf_counter() - started
    print()
    print(table(rows))
    print(f"\n{len(results)} benchmark(s) in {total / 60:.1f} min; logs and JSON in {out_dir}")
    summary = {"at": dt.datetime.now(dt.timezone.utc).isoformat(), "seconds": total,
               "cpu_count": os.cpu_count(), "platform": platform.platform(), "rows": rows,
               "benchmarks": results}
    (out_dir / "suite.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out_dir / 'suite.json'}")
    if any(r["met"] is False and r["measure"] == "failed" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
