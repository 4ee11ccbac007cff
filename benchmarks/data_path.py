"""How a trial gets its dataset, and what each concurrent trial costs in memory.

gridrun puts the dataset in Ray's object store once per launch (``tune.with_parameters``);
every trial reads it there. This times, for Fashion-MNIST (60,000 training images):

- loading it from disk (``load_dataset``: the IDX files, the split), as a trial would
  without the object store;
- ``ray.get`` of the stored dataset inside a Ray worker (its images are numpy arrays read
  in place from shared memory: zero-copy, so the time does not grow with the data);
- the trainers' own preparation (``prepare_data``: float32 tensors, standardization
  statistics) for torch and for Keras;

and the unique memory (USS: what the process alone holds) of a worker before and after it
gets the dataset and after each framework prepares it: the memory one more concurrent
trial adds.

    GRIDRUN_DATA_DIR=path/to/data python benchmarks/data_path.py
    python benchmarks/data_path.py --dataset digits --out data_path.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion_mnist", help="default fashion_mnist")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser.parse_args()


def load(name: str):
    from gridrun.data import load_dataset

    return load_dataset(name, val_fraction=0.1, split_seed=0)


def worker_side(data, framework: str) -> dict:
    """In a Ray worker that got the dataset as its argument (Ray resolved it from the
    object store): its unique memory before and after the framework prepares it."""
    import importlib

    import psutil

    pkg = importlib.import_module("gridrun.keras" if framework == "tensorflow"
                                  else "gridrun.torch")
    pkg.set_threads(1)
    proc = psutil.Process()
    out = {"uss_mb_before": proc.memory_full_info().uss / 2 ** 20,
           "zero_copy": not data.x_train.flags.writeable}  # a read-only view of shared memory
    started = time.perf_counter()
    prepared = pkg.prepare_data(data)
    out["prepare_seconds"] = time.perf_counter() - started
    out["uss_mb_prepared"] = proc.memory_full_info().uss / 2 ** 20
    del prepared
    return out


def main() -> None:
    args = parse_args()
    import ray

    disk = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        data = load(args.dataset)
        disk.append(time.perf_counter() - started)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ref = ray.put(data)

        @ray.remote(num_cpus=1)
        def get_time(box):
            started = time.perf_counter()
            got = ray.get(box[0])
            return time.perf_counter() - started, len(got.y_train)

        store = [ray.get(get_time.remote([ref]))[0] for _ in range(args.repeats)]
        side = ray.remote(num_cpus=1)(worker_side)
        per = {fw: ray.get(side.remote(ref, fw)) for fw in ("torch", "tensorflow")}
    finally:
        ray.shutdown()
    n, mb = len(data.y_train), data.x_train.nbytes / 2 ** 20
    out = {"dataset": args.dataset, "train_images": n, "train_uint8_mb": round(mb, 1),
           "disk_seconds": statistics.median(disk),
           "object_store_get_seconds": statistics.median(store), "workers": per}
    print(f"{args.dataset}: {n} training images ({mb:.0f} MB as uint8)")
    print(f"  from disk (load_dataset): {out['disk_seconds']:.3f} s (median of {args.repeats})")
    print(f"  from the object store (ray.get in a worker): "
          f"{out['object_store_get_seconds'] * 1e3:.1f} ms; zero-copy: "
          f"{per['torch']['zero_copy']}")
    for fw, w in per.items():
        print(f"  {fw}: prepare_data {w['prepare_seconds']:.3f} s; a worker's own memory "
              f"(USS) {w['uss_mb_before']:.0f} MB with the framework and the dataset, "
              f"{w['uss_mb_prepared']:.0f} MB once prepared (+"
              f"{w['uss_mb_prepared'] - w['uss_mb_before']:.0f}): about "
              f"{w['uss_mb_prepared']:.0f} MB per extra concurrent trial")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
