"""The driver's cost as a grid grows: n one-epoch cells through `gridrun launch` and through
raw Ray Tune, for n in --sizes (default 40, 1,024 and 4,096).

Both sides train the same n configurations (digits, train_size 100, one seed, one epoch:
well under a second of training per trial, so what is measured is what surrounds it),
``--concurrent`` at a time, with gridrun's own ``Trainer``. The raw side is
``benchmarks/orchestration.py``'s: ``ray.init``, a grid search per factor (as a Tune user
writes a factorial), a Tuner with ``reuse_actors=True``, nothing else. Each side runs in a
fresh process (Ray start included), the raw side first. Per side and n:

- wall time (the whole process; for gridrun the whole `gridrun launch` command, its report
  and plots at the end included), per trial, and gridrun's overhead per trial over raw
  (the difference in wall time per trial, times the trials running at once);
- the driver's peak resident memory (that process alone), and the peak of the driver with
  every process it started (Ray's raylet, GCS and workers), sampled each second;
- for gridrun: the objects written into the run folder (parts, heartbeats, claims,
  launch.json, the store, plots) and the driver's storage calls (writes, reads, info,
  listings, deletes: requests, on an object store).

``--storage URI`` runs the gridrun side on that storage too (``s3://bucket/prefix``, or any
URI gridrun takes; credentials and endpoint from the standard AWS_* environment
variables): a column beside the local one. The raw side keeps Tune's files on local disk.
Each run folder is deleted afterwards.

    python benchmarks/scale.py                                    # 40, 1,024 and 4,096
    python benchmarks/scale.py --sizes 40,64 --out runs/bench/scale.json
    python benchmarks/scale.py --storage s3://bucket/gridrun-scale
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARK = "SCALE-RESULT "  # the line a side prints its numbers on


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="40,1024,4096",
                        help="comma-separated numbers of trials (default 40,1024,4096)")
    parser.add_argument("--concurrent", type=int, default=2,
                        help="trials at a time, both sides (default 2)")
    parser.add_argument("--train-size", type=int, default=100,
                        help="training images per trial (default 100)")
    parser.add_argument("--storage", default=None, metavar="URI",
                        help="also run gridrun with its run folder there (e.g. s3://bucket/p)")
    parser.add_argument("--sides", default=None,
                        help="comma-separated sides to run: raw, local, storage "
                             "(default all there are)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    parser.add_argument("--side", choices=("raw", "gridrun"), default=None,
                        help=argparse.SUPPRESS)  # one side, in its own process
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    if not args.sizes or min(args.sizes) < 1:
        parser.error("--sizes: one or more numbers of trials, each at least 1")
    known = ["raw", "local"] + (["storage"] if args.storage else [])
    args.sides = known if args.sides is None else [s.strip() for s in args.sides.split(",")]
    bad = [s for s in args.sides if s not in known]
    if bad:
        parser.error(f"--sides: unknown or unavailable {bad}; choose from {known}")
    return args


# -- the grid ------------------------------------------------------------------------------
_FACTORS = (  # factor name, its k levels
    ("dropout", lambda k: [round(0.5 * i / k, 6) for i in range(k)]),
    ("lr", lambda k: [round(0.01 * (1 + i), 6) for i in range(k)]),
    ("weight_decay", lambda k: [round(1e-5 * i, 8) for i in range(k)]),
    ("label_smoothing", lambda k: [round(0.2 * i / k, 6) for i in range(k)]),
)


def level_counts(n: int) -> list[int]:
    """n as a product of up to four level counts, as even as its prime factors allow.

    >>> level_counts(40), level_counts(4096), level_counts(97)
    ([5, 2, 2, 2], [8, 8, 8, 8], [97])
    """
    primes, rest, p = [], n, 2
    while rest > 1:
        while rest % p == 0:
            primes.append(p)
            rest //= p
        p += 1
    counts = [1] * len(_FACTORS)
    for q in sorted(primes, reverse=True):
        counts[counts.index(min(counts))] *= q
    return sorted((c for c in counts if c > 1), reverse=True)


def ablation(n: int, train_size: int = 100, concurrent: int = 2):
    """A full factorial of exactly n one-epoch cells on digits, one seed each."""
    from gridrun import Ablation, Factor

    factors = [Factor(name, levels(k)) for (name, levels), k in zip(_FACTORS, level_counts(n))]
    return Ablation(name=f"scale-{n}", dataset="digits", factors=factors, seeds=1,
                    fixed={"epochs": 1}, train_size=train_size, max_concurrent=concurrent,
                    resources={"cpu": 1})


# -- one side, in its own process ----------------------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def raw_side(args) -> dict:
    import orchestration

    seconds = orchestration.raw_tune(
        lambda: ablation(args.n, args.train_size, args.concurrent), args.concurrent)
    return {"seconds_inside": seconds, "driver_peak_rss_mb": _peak_rss_mb()}


def _count_storage_calls() -> tuple[dict, set]:
    """Count the driver's storage calls by kind, and the paths it writes (an object store
    makes one request of each; ``delete`` adds the ``info`` it makes first)."""
    from gridrun.store.location import Location

    calls, written = {}, set()
    kinds = {"write_bytes": "write", "read_bytes": "read", "_info": "info", "list": "list",
             "files": "list", "delete": "delete", "make_dir": "make_dir"}
    for method, kind in kinds.items():
        original = getattr(Location, method, None)
        if original is None:
            continue

        def counted(self, *a, _original=original, _kind=kind, **kw):
            calls[_kind] = calls.get(_kind, 0) + 1
            if _kind == "write":
                written.add(self.path)
            return _original(self, *a, **kw)

        setattr(Location, method, counted)
    return calls, written


def _objects_in(run_dir: str) -> set:
    """The paths of every object under the run folder now."""
    import pyarrow.fs as pafs

    from gridrun.store.location import Location

    loc = Location(run_dir)
    infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=True,
                                                    allow_not_found=True))
    return {i.path for i in infos if i.type == pafs.FileType.File}


def gridrun_side(args) -> dict:
    """`gridrun launch` on a spec file of the grid, with the storage calls counted."""
    from gridrun.cli import main
    from gridrun.store.location import Location

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp, f"scale_{args.n}.py")
        a = ablation(args.n, args.train_size, args.concurrent)
        spec.with_suffix(".json").write_text(json.dumps(a.to_dict()))
        spec.write_text("import json\nfrom pathlib import Path\n\nfrom gridrun.spec.ablation "
                        "import Ablation\n\nablation = Ablation.from_dict(json.loads(\n"
                        "    Path(__file__).with_suffix('.json').read_text()))\n")
        calls, written = _count_storage_calls()
        started = time.perf_counter()
        try:
            main(["launch", str(spec), "--out", args.run_dir], standalone_mode=False)
        except SystemExit as e:
            if e.code:
                raise
        seconds = time.perf_counter() - started
        calls = dict(calls)  # what the launch did, before the listing below
        left = _objects_in(args.run_dir)
        Location(args.run_dir).delete()
    return {"seconds_inside": seconds, "driver_peak_rss_mb": _peak_rss_mb(),
            "objects_written": len(written | left), "objects_left": len(left),
            "writes": calls.get("write", 0), "storage_calls": sum(calls.values()),
            "storage_calls_by_kind": calls}


# -- the parent: every side and size -------------------------------------------------------
def _tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2 ** 20


def run_side(args, side: str, n: int, run_dir: str | None = None) -> dict:
    """One side in a fresh process: its numbers, its wall time and its process tree's peak
    resident memory."""
    cmd = [sys.executable, __file__, "--side", side, "--n", str(n),
           "--concurrent", str(args.concurrent), "--train-size", str(args.train_size)]
    cmd += ["--run-dir", run_dir] if run_dir else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}  # Ray workers too
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        peak, stop = [0.0], threading.Event()

        def sample():
            while not stop.wait(1.0):
                peak[0] = max(peak[0], _tree_rss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        log.seek(0)
        text = log.read()
    lines = [ln for ln in text.splitlines() if ln.startswith(MARK)]
    if code != 0 or not lines:
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise SystemExit(f"{side} side at n={n} failed (exit {code}):\n{tail}")
    out = json.loads(lines[-1][len(MARK):])
    launched = re.search(r"finished in ([\d.]+) s", text)
    out.update(seconds=seconds, seconds_per_trial=seconds / n, tree_peak_rss_mb=peak[0],
               launch_seconds=float(launched.group(1)) if launched else None)
    return out


def measure(args) -> list[dict]:
    rows = []
    for n in args.sizes:
        print(f"n={n}:", end=" ", flush=True)
        sides = {}
        for side in args.sides:
            print(side, end=" ... ", flush=True)
            if side == "raw":
                sides[side] = run_side(args, "raw", n)
            else:
                from gridrun.store.location import Location

                where = Location(tempfile.gettempdir() if side == "local" else args.storage)
                run_dir = where.child(f"gridrun-scale-{n}-{uuid.uuid4().hex[:8]}").text
                sides[side] = run_side(args, "gridrun", n, run_dir)
            print(f"{sides[side]['seconds']:.0f} s", end="; ", flush=True)
        print(flush=True)
        raw = sides.get("raw")
        for side, r in sides.items():
            if raw is not None and side != "raw":
                r["overhead_seconds_per_trial"] = (
                    (r["seconds"] - raw["seconds"]) / n * args.concurrent)
            rows.append({"trials": n, "side": side, **r})
    return rows


def table(rows: list[dict], storage: str | None) -> str:
    from tabulate import tabulate

    name = {"raw": "raw Ray Tune", "local": "gridrun, local", "storage": f"gridrun, {storage}"}

    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    return tabulate(
        [[f"{r['trials']:,}", name[r["side"]], num(r["seconds"], ".1f"),
          num(r["seconds_per_trial"], ".3f"), num(r.get("overhead_seconds_per_trial"), "+.3f"),
          num(r["driver_peak_rss_mb"], ".0f"), num(r["tree_peak_rss_mb"], ".0f"),
          num(r.get("objects_written"), ","), num(r.get("storage_calls"), ",")]
         for r in rows],
        headers=["trials", "side", "wall s", "s / trial", "overhead s / trial",
                 "driver peak MiB", "with Ray MiB", "objects written", "storage calls"],
        tablefmt="github", disable_numparse=True)


def growth(rows: list[dict]) -> dict:
    """Per side: how its wall time per trial, overhead per trial and driver memory changed
    from the smallest size to the largest (ratios)."""
    out = {}
    for side in dict.fromkeys(r["side"] for r in rows):
        mine = sorted((r for r in rows if r["side"] == side), key=lambda r: r["trials"])
        if len(mine) < 2:
            continue
        lo, hi = mine[0], mine[-1]
        g = {"from": lo["trials"], "to": hi["trials"],
             "seconds_per_trial": hi["seconds_per_trial"] / lo["seconds_per_trial"],
             "driver_peak_rss_mb": hi["driver_peak_rss_mb"] / lo["driver_peak_rss_mb"]}
        if lo.get("overhead_seconds_per_trial") is not None:
            g["overhead_seconds_per_trial"] = [lo["overhead_seconds_per_trial"],
                                               hi["overhead_seconds_per_trial"]]
        out[side] = g
    return out


def main() -> None:
    args = parse_args()
    if args.side:
        out = raw_side(args) if args.side == "raw" else gridrun_side(args)
        print(MARK + json.dumps(out), flush=True)
        return
    rows = measure(args)
    print(f"\none-epoch cells on digits (train_size {args.train_size}), {args.concurrent} at "
          f"a time; overhead = (gridrun - raw) wall time per trial x {args.concurrent}\n")
    print(table(rows, args.storage))
    result = {"sizes": args.sizes, "concurrent": args.concurrent,
              "train_size": args.train_size, "storage": args.storage,
              "cpu_count": os.cpu_count(), "rows": rows,
              "growth": growth(rows)}
    for side, g in result["growth"].items():
        print(f"{side}: wall time per trial x{g['seconds_per_trial']:.2f} and driver memory "
              f"x{g['driver_peak_rss_mb']:.2f} from {g['from']:,} to {g['to']:,} trials")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
