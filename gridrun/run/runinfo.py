"""What run.json records besides the results: versions, hardware, git commit, times.

Ray is passed in by the caller (launch), so this module imports no framework itself.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

__all__ = ["run_info", "hardware"]


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("gridrun", "ray", "torch", "tensorflow", "numpy", "pyarrow", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def hardware(ray) -> dict:
    res = ray.cluster_resources()
    return {"platform": platform.platform(), "machine": platform.machine(),
            "driver_cpus": os.cpu_count(), "cluster_cpus": res.get("CPU", 0),
            "cluster_gpus": res.get("GPU", 0), "nodes": len(ray.nodes()),
            "accelerators": sorted(k for k in res if k.startswith("accelerator_type"))}


def _git_commit(spec_path) -> str | None:
    where = Path(spec_path).resolve().parent if spec_path else Path.cwd()
    try:
        out = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], text=True,
                             capture_output=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain"], text=True,
                               capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty else "")


def run_info(ablation, spec_path, started_at, data, machine, expected, written,
              interrupted) -> dict:
    info = {
        "spec": ablation.to_dict(),
        "spec_file": str(spec_path) if spec_path else None,
        "complete": not interrupted, "trials_expected": expected, "trials_written": written,
        "data": {"dataset": data.name, "train": int(len(data.y_train)),
                 "val": int(len(data.y_val)), "test": int(len(data.y_test)),
                 "image_shape": list(data.image_shape), "classes": list(data.classes)},
        "versions": _versions(), "hardware": machine, "git_commit": _git_commit(spec_path),
        "command": " ".join(sys.argv),
        "started_at": started_at.isoformat(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    if ablation.design == "fractional":
        from gridrun.design.grid import fraction_of

        info["fractional"] = fraction_of(ablation).to_dict()
    return info
