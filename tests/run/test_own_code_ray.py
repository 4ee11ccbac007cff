"""The researcher's own code through real Ray, with real faults: a model, a dataset function
and factors of one's own (spec A) and a trainer of one's own with its own metric (spec B)
each go through ablation-aware ASHA, a SIGKILLed Ray worker (retried from its checkpoint)
and a SIGKILLed driver (launched again), with every trial stored exactly once and nothing
that finished trained again; and a module beside the spec reaches workers of a three-node
cluster on whose import path it is not."""

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")

from test_faults_ray import (CLUSTER, exactly_once, gridrun, kill_all, parts, start, tree,  # noqa: E402
                             wait_for, wait_gone)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

OWN_MODULE = '''
"""Beside the spec, imported by it: a model and a dataset of one's own."""
import time

import numpy as np
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, channels, classes, wide, gate, dropout):
        super().__init__()
        k = 24 if wide else 8
        self.conv = nn.Sequential(nn.Conv2d(channels, k, 3, padding=1), nn.ReLU())
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(k, k, 1), nn.Sigmoid()) \\
            if gate else None
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(4 * k, classes))

    def forward(self, x):
        time.sleep(0.02)  # slow enough that a fault finds trials in flight
        h = self.conv(x)
        return self.head(h * self.gate(h) if self.gate is not None else h)


def build(config, input_shape, num_classes):
    return Net(input_shape[0], num_classes, config["wide"], config["gate"], config["dropout"])


def stripes():
    """Three classes of 12x12 RGB images: a bright stripe in one of three bands, on noise."""
    rng = np.random.default_rng(7)

    def split(n):
        y = rng.integers(0, 3, n)
        x = rng.integers(0, 120, (n, 12, 12, 3), dtype=np.uint8)
        for k in range(3):
            x[y == k, 4 * k:4 * k + 4, :, k] = 230
        return x, y
    (xt, yt), (xs, ys) = split(400), split(120)
    return {"x_train": xt, "y_train": yt, "x_test": xs, "y_test": ys,
            "classes": ["top", "middle", "bottom"]}
'''

SPEC_A = '''
from gridrun import ASHA, Ablation, Factor
from ownnet import build, stripes

ablation = Ablation(
    name="own_a", dataset=stripes, models={{"ownnet": build}},
    factors=[Factor("wide", [False, True], custom=True), Factor("gate", [False, True], custom=True),
             Factor("dropout", [0.0, 0.3]), Factor("optimizer", ["sgd", "adam"])],
    fixed={{"backbone": "ownnet", "epochs": {epochs}, "batch_size": 32}}, seeds=2,
    val_fraction=0.2, scheduler=ASHA(grace_period=1, reduction_factor=2),
    resources={{"cpu": 1}}, max_concurrent={concurrent})
'''

SPEC_B = '''
import io
import time

import torch
import torch.nn.functional as F
from gridrun import ASHA, Ablation, Factor


class Ridge:
    """Not an image classifier: least-squares regression of the pixel mean from the pixels,
    scored by its validation error (lower is better); one epoch = one pass of SGD."""

    def __init__(self, config, data, seed):
        self.config, self.gen = config, torch.Generator().manual_seed(seed)
        self.x = torch.tensor(data.x_train, dtype=torch.float32).flatten(1) / 255
        self.xv = torch.tensor(data.x_val, dtype=torch.float32).flatten(1) / 255
        self.w = torch.zeros(self.x.shape[1], requires_grad=True)

    def target(self, x):
        return x.mean(1) * self.config["scale"]

    def step(self):
        time.sleep(0.3)  # slow enough that a fault finds trials in flight
        opt = torch.optim.SGD([self.w], lr=self.config["lr"] or 0.05)
        for i in torch.randperm(len(self.x), generator=self.gen).split(64):
            loss = F.mse_loss(self.x[i] @ self.w, self.target(self.x[i]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return {{"train_error": float(loss), "val_error": float(F.mse_loss(
                self.xv @ self.w, self.target(self.xv)))}}

    def state(self):
        buf = io.BytesIO()
        torch.save({{"w": self.w.detach(), "gen": self.gen.get_state()}}, buf)
        return buf.getvalue()

    def load(self, state):
        s = torch.load(io.BytesIO(state))
        self.w = s["w"].clone().requires_grad_(True)
        self.gen.set_state(s["gen"])


ablation = Ablation(
    name="own_b", dataset="digits", trainer=Ridge, metric="val_error", mode="min",
    factors=[Factor("scale", [1, 2], custom=True), Factor("lr", [0.05, 0.001]),
             Factor("batch_size", [32, 64]), Factor("shuffle", [True, False])],
    fixed={{"epochs": {epochs}}}, seeds=2, train_size=500,
    scheduler=ASHA(grace_period=1, reduction_factor=2), resources={{"cpu": 1}},
    max_concurrent={concurrent})
'''

ENV = {**os.environ, "GRIDRUN_CHECKPOINT_SECONDS": "0"}  # every epoch: retries lose nothing


def write(folder: Path, source: str, epochs=8, concurrent=2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ownnet.py").write_text(OWN_MODULE)
    spec = folder / "spec.py"
    spec.write_text(textwrap.dedent(source.format(epochs=epochs, concurrent=concurrent)))
    return spec


def histories(run: Path) -> dict:
    out = {}
    for f in (run / "checkpoints").glob("*.history.json"):
        try:
            out[f.name.split(".")[0]] = json.loads(f.read_text())
        except (ValueError, OSError):
            continue
    return out


def workers_of(pid) -> list:
    return [p for p in tree(pid) if "ImplicitFunc" in " ".join(p.cmdline())]


@pytest.mark.parametrize("source,metric,factor", [(SPEC_A, "val_acc", "wide"),
                                                   (SPEC_B, "val_error", "scale")],
                         ids=["own model, data and factors", "own trainer and metric"])
def test_own_code_survives_a_killed_worker_and_a_killed_driver(tmp_path, source, metric,
                                                                factor):
    spec = write(tmp_path / "spec", source)
    run = tmp_path / "run"
    proc = start("launch", spec, "--out", run, cwd=tmp_path, env=ENV)
    ray_procs = []
    try:
        # a worker dies mid-trial: Tune retries the cell from its checkpoint
        victim = wait_for(lambda: next((tid for tid, h in histories(run).items()
                                        if len(h) >= 2 and tid not in parts(run)), None)
                          and workers_of(proc.pid), 240, "a cell checkpointed and running")
        at_kill = {tid: len(h) for tid, h in histories(run).items()}
        os.kill(victim[0].pid, signal.SIGKILL)
        # then the driver dies, with cells finished and others in flight
        wait_for(lambda: len(parts(run)) >= 4, 300, "four trials finished")
        ray_procs = tree(proc.pid)
        before = parts(run)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        wait_gone(ray_procs, "the killed driver's Ray processes to exit")
    finally:
        kill_all([proc, *ray_procs])
    assert not (run / "run.json").exists()
    again = gridrun("launch", spec, "--out", run, cwd=tmp_path, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(before)} of 32 trials finished earlier are kept" in again.stderr
    trials = pd.read_parquet(run / "trials.parquet").set_index("trial_id")
    assert len(trials) == 32 and set(trials.status) <= {"completed", "stopped_early"}
    assert (trials.status == "stopped_early").any()  # ASHA screened the grid
    exactly_once(run)
    for tid, row in before.items():  # finished before the kill: kept, not trained again
        if row["status"] == "stopped_early" and trials.status[tid] == "completed":
            # but for the best screened cell, confirmed from its rung checkpoint
            assert trials.continued_from[tid] == row["epochs_run"]
        else:
            assert trials.wall_seconds[tid] == row["wall_seconds"]
    assert trials.continued_from.notna().any(), at_kill  # someone went on from a checkpoint
    assert trials[factor].dtype == (bool if factor == "wide" else "int64")
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert epochs[metric].notna().all()
    report = gridrun("report", run, "--no-plots", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert f"+ {factor}" in report.stdout or f"{factor} =" in report.stdout


def test_a_module_beside_the_spec_reaches_the_workers_of_a_three_node_cluster(tmp_path):
    """The spec imports ownnet.py from its own folder; the cluster's nodes and workers run
    from another folder, without it on their import path (checked), and train its model."""
    env = {**ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("PYTHONPATH", None)
    elsewhere = tmp_path / "cluster"
    elsewhere.mkdir()
    cluster = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env, cwd=elsewhere,
                               start_new_session=True)
    nodes = []
    try:
        where = json.loads(cluster.stdout.readline())
        nodes = tree(cluster.pid)
        probe = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import ray, importlib.util
            ray.init(address={where['address']!r}, log_to_driver=False)
            @ray.remote(num_cpus=1)
            def finds():
                return importlib.util.find_spec("ownnet") is not None
            print(sorted(set(ray.get([finds.remote() for _ in range(6)]))))
        """)], capture_output=True, text=True, env=env, cwd=elsewhere, timeout=120)
        assert probe.stdout.strip().splitlines()[-1] == "[False]", probe.stderr[-2000:]
        spec = write(tmp_path / "spec", SPEC_A, epochs=2, concurrent=3)
        proc = gridrun("launch", spec, "--out", tmp_path / "run", "--address",
                       where["address"], cwd=elsewhere, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        cluster.stdin.close()
        cluster.wait(timeout=60)
        kill_all(nodes)
    trials = pd.read_parquet(tmp_path / "run" / "trials.parquet")
    assert len(trials) == 32 and set(trials.status) <= {"completed", "stopped_early"}
    assert trials.node.nunique() == 3  # trained on every node
