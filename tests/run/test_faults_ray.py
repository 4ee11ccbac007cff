"""Faults with real processes and real Ray, no mocks: a driver SIGKILLed mid-grid, Ctrl-C,
and a worker node's raylet SIGKILLed in a three-node cluster. Nothing finished may be lost
or trained again, and a killed driver leaves no Ray process behind."""

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

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FACTORS = ("Factor('batchnorm', [False, True]), Factor('dropout', [0.0, 0.3]), "
           "Factor('optimizer', ['sgd', 'adam'])")


def write_spec(path, name, epochs=6, seeds=2, concurrent=2):
    path.write_text(textwrap.dedent(f"""
        from gridrun import Ablation, Factor
        ablation = Ablation(
            name={name!r}, dataset="digits", factors=[{FACTORS}],
            fixed={{"epochs": {epochs}, "batch_size": 32}}, seeds={seeds}, train_size=500,
            resources={{"cpu": 1}}, max_concurrent={concurrent})
    """))
    return path


ENV = {**os.environ, "GRIDRUN_CHECKPOINT_SECONDS": "0"}  # every epoch: retries lose nothing


def gridrun(*args, cwd, env=ENV):
    return subprocess.run([sys.executable, "-m", "gridrun.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def start(*args, cwd, env=ENV):
    return subprocess.Popen([sys.executable, "-m", "gridrun.cli", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)


def parts(run: Path) -> dict:
    out = {}
    for f in sorted((run / "parts").glob("*.json")):
        try:
            for row in json.loads(f.read_text())["trials"]:
                out[row["trial_id"]] = row
        except (ValueError, KeyError):
            continue  # being written
    return out


def in_flight(run: Path, done) -> dict:
    """{trial_id: history} of trials checkpointed at epoch 2 or later and not finished. A
    trial saves its history first and its checkpoint second, so a pair counts only when the
    checkpoint is the newer file: between the two writes the history is an epoch ahead."""
    out = {}
    for f in (run / "checkpoints").glob("*.history.json"):
        tid = f.name.split(".")[0]
        pt = run / "checkpoints" / f"{tid}.pt"
        try:
            written = f.stat().st_mtime_ns
            hist = json.loads(f.read_text())
            paired = pt.stat().st_mtime_ns >= written == f.stat().st_mtime_ns
        except (ValueError, OSError):
            continue
        if tid not in done and len(hist) >= 2 and paired:
            out[tid] = hist
    return out


def exactly_once(run: Path) -> None:
    """Each trial once in trials.parquet, each (trial, epoch) once in epochs.parquet."""
    trials = pd.read_parquet(run / "trials.parquet")
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert trials.trial_id.is_unique
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert set(epochs.trial_id) <= set(trials.trial_id)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def wait_gone(procs, what, timeout=30):
    wait_for(lambda: not [p for p in procs if p.is_running()], timeout, what)


def tree(pid):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def sigkill(proc) -> None:
    """SIGKILL a launch's driver, then wait until the Ray processes it started are gone
    (a small watcher kills them; raylet agents outlive a SIGKILL otherwise)."""
    ray_procs = tree(proc.pid)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        wait_gone(ray_procs, "the killed driver's Ray processes to exit")
    finally:
        kill_all(ray_procs)


def kill_all(procs):
    for p in procs:
        try:
            p.kill()
        except Exception:
            pass


def test_killed_driver_leaves_no_ray_behind_and_launch_again_finishes(tmp_path):
    spec = write_spec(tmp_path / "kill.py", "kill")
    run = tmp_path / "run"
    proc = start("launch", spec, "--out", run, cwd=tmp_path)
    ray_procs = []
    try:
        wait_for(lambda: len(parts(run)) >= 4 and in_flight(run, parts(run)), 240,
                 "two finished cells and one in flight")
        ray_procs = tree(proc.pid)
        before = parts(run)
        flying = in_flight(run, before)
        os.kill(proc.pid, signal.SIGKILL)
        t0 = time.monotonic()
        proc.wait(timeout=30)
        # the watcher kills what the driver left (raylet agents outlive a SIGKILL)
        wait_gone(ray_procs, "the killed driver's Ray processes to exit")
        print(f"\nMEASURE driver kill: {len(ray_procs)} Ray processes gone "
              f"{time.monotonic() - t0:.1f} s after the SIGKILL")
    finally:
        kill_all([proc, *ray_procs])
    assert not (run / "run.json").exists()  # nothing was stored but the journal
    t0 = time.monotonic()
    again = gridrun("launch", spec, "--out", run, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    print(f"MEASURE driver kill: relaunch finished the other {16 - len(before)} trials in "
          f"{time.monotonic() - t0:.1f} s; {len(before)} kept, {len(flying)} continued")
    assert f"{len(before)} of 16 trials finished earlier are kept" in again.stderr
    trials = pd.read_parquet(run / "trials.parquet").set_index("trial_id")
    assert len(trials) == 16 and (trials.status == "completed").all()
    for tid, row in before.items():  # kept as they were: not trained again
        assert trials.wall_seconds[tid] == row["wall_seconds"]
        assert trials.last_val_acc[tid] == row["last_val_acc"]
    for tid, hist in flying.items():  # continued from the checkpoint, not from scratch
        assert trials.continued_from[tid] >= len(hist)
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert (epochs.groupby("trial_id").epoch.apply(list) == [list(range(1, 7))] * 16).all()
    exactly_once(run)
    info = json.loads((run / "run.json").read_text())
    assert info["complete"] and len(info["sessions"]) == 2
    assert not (run / "parts").exists() and not list((run / "checkpoints").glob("*.pt"))


def test_a_growth_by_seeds_killed_midway_is_finished_by_resume(tmp_path):
    """A complete run grows from 1 to 2 seeds; its driver is SIGKILLed before it rewrites
    run.json (which still says complete, with 1 seed); ``gridrun resume`` finishes it."""
    run = tmp_path / "run"
    first = gridrun("launch", write_spec(tmp_path / "g.py", "g", seeds=1), "--out", run,
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    before = pd.read_parquet(run / "trials.parquet").set_index("trial_id")
    proc = start("launch", write_spec(tmp_path / "g.py", "g", seeds=2), "--out", run,
                 cwd=tmp_path)
    ray_procs = []
    try:
        wait_for(lambda: parts(run), 240, "a cell of the new seed to finish")
        ray_procs = tree(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        wait_gone(ray_procs, "the killed driver's Ray processes to exit")
    finally:
        kill_all([proc, *ray_procs])
    assert json.loads((run / "run.json").read_text())["spec"]["seeds"] == 1
    done = gridrun("resume", run, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = pd.read_parquet(run / "trials.parquet").set_index("trial_id")
    assert len(trials) == 16 and (trials.status == "completed").all()
    assert sorted(trials.seed.value_counts()) == [8, 8]
    for tid, row in before.iterrows():  # the first seed's trials were never trained again
        assert trials.wall_seconds[tid] == row.wall_seconds
    exactly_once(run)
    assert json.loads((run / "run.json").read_text())["spec"]["seeds"] == 2


def test_ctrl_c_stops_in_seconds_says_how_to_resume_and_resume_finishes(tmp_path):
    spec = write_spec(tmp_path / "intr.py", "intr")
    storage = f"file://{tmp_path}/runs"
    proc = start("launch", spec, "--storage", storage, cwd=tmp_path)
    run = tmp_path / "runs" / "intr"
    ray_procs = []
    try:
        wait_for(lambda: len(parts(run)) >= 2, 240, "a finished cell")
        ray_procs = tree(proc.pid)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - t0
        wait_gone(ray_procs, "the interrupted driver's Ray processes to exit")
        print(f"\nMEASURE ctrl-c: all {len(ray_procs)} Ray processes gone "
              f"{time.monotonic() - t0:.1f} s after SIGINT")
    finally:
        kill_all([proc, *ray_procs])
    assert proc.returncode == 130, err[-3000:]
    assert seconds < 20
    print(f"\nMEASURE ctrl-c: exit 130 {seconds:.1f} s after SIGINT")
    uri = f"{storage}/intr"
    assert f"continue with: gridrun resume {uri}" in err
    info = json.loads((run / "run.json").read_text())
    assert info["complete"] is False
    status = gridrun("status", uri, cwd=tmp_path)
    assert status.returncode == 0 and "interrupted" in status.stdout
    done = parts(run)
    resumed = gridrun("resume", uri, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = pd.read_parquet(run / "trials.parquet").set_index("trial_id")
    assert len(trials) == 16 and (trials.status == "completed").all()
    assert all(trials.wall_seconds[t] == r["wall_seconds"] for t, r in done.items())
    exactly_once(run)
    report = gridrun("report", uri, cwd=tmp_path)
    assert report.returncode == 0 and "16 trials (16 completed" in report.stdout
    assert "complete" in gridrun("status", uri, cwd=tmp_path).stdout


def test_a_screened_run_interrupted_and_resumed_keeps_its_budget(tmp_path):
    """Ctrl-C in the middle of an ASHA screen, then resume: the resumed session is given the
    earlier rungs' values and promotions, so the whole run stays under the budget's
    ceiling, and nothing finished trains again."""
    spec = tmp_path / "screen.py"
    spec.write_text(textwrap.dedent(f"""
        from gridrun import ASHA, Ablation, Factor
        ablation = Ablation(
            name="screen", dataset="digits",
            factors=[Factor('lr', [0.05, 1e-6]), {FACTORS}],
            fixed={{"epochs": 6, "batch_size": 32}}, seeds=2, train_size=500,
            scheduler=ASHA(grace_period=1, reduction_factor=2, budget=0.75),
            resources={{"cpu": 1}}, max_concurrent=2)
    """))
    proc = start("launch", spec, "--out", tmp_path / "run", cwd=tmp_path)
    run = tmp_path / "run"
    ray_procs = []
    try:
        wait_for(lambda: len(parts(run)) >= 3, 240, "three finished cells")
        ray_procs = tree(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        wait_gone(ray_procs, "the interrupted driver's Ray processes to exit")
    finally:
        kill_all([proc, *ray_procs])
    assert proc.returncode == 130, err[-3000:]
    done = parts(run)
    assert 0 < len(done) < 32
    resumed = gridrun("resume", run, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = pd.read_parquet(run / "trials.parquet").set_index("trial_id")
    assert len(trials) == 32 and set(trials.status) <= {"completed", "stopped_early"}
    assert all(trials.wall_seconds[t] == r["wall_seconds"] for t, r in done.items())
    exactly_once(run)
    # 16 cells x 6 epochs x 2 seeds, at most three quarters of it
    assert trials.epochs_run.sum() <= 0.75 * 16 * 6 * 2
    assert (trials.status == "stopped_early").any()


CLUSTER = textwrap.dedent("""
    # A head and two worker nodes, each its own raylet, in this process's children; prints
    # where they are, then keeps them until stdin closes.
    import json, sys
    from ray.cluster_utils import Cluster
    fast = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5}
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "_system_config": fast})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    print(json.dumps({"address": c.address, "workers": {
        w.node_id: w.all_processes["raylet"][0].process.pid for w in workers}}), flush=True)
    sys.stdin.read()
    c.shutdown()
""")


def test_three_node_cluster_runs_everywhere_and_survives_a_dead_worker_node(tmp_path):
    """A head and two worker nodes (separate raylets). Trials run on all three; a worker
    node running a trial dies (its raylet and the processes it started are SIGKILLed): that
    cell is retried from its checkpoint on the nodes that remain, and the grid completes."""
    # token authentication on, Ray's own default for clusters: the nodes and the driver
    # agree on it through their environment
    env = {**ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    cluster = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    proc, nodes = None, []
    try:
        where = json.loads(cluster.stdout.readline())
        nodes = tree(cluster.pid)
        spec = write_spec(tmp_path / "multi.py", "multi", epochs=40, concurrent=3)
        run = tmp_path / "run"
        proc = start("launch", spec, "--out", run, "--address", where["address"],
                     cwd=tmp_path, env=env)
        workers = where["workers"]

        def victim():
            assert proc.poll() is None, "the grid ended before a worker could be killed"
            done = parts(run)
            if len({r["node"] for r in done.values()}) < 3:
                return None
            for tid, hist in in_flight(run, done).items():
                # epochs left: a cell that has trained all 40 keeps its files until the
                # driver journals it, and killing its node then proves nothing
                if hist[-1].get("node") in workers and len(hist) <= 30:
                    return tid, hist[-1]["node"]
            return None

        tid, node = wait_for(victim, 300, "cells done on all three nodes, one in flight "
                                          "on a worker")
        before = len(in_flight(run, parts(run)).get(tid, []))
        import psutil

        # the node dies: its raylet and every process the raylet started (the trial's
        # worker among them; left alone, that worker trains on for seconds and may finish)
        dying = [psutil.Process(workers[node]), *tree(workers[node])]
        assert len(dying) > 1, "the raylet has no worker processes to kill"
        kill_all(dying)
        t0 = time.monotonic()

        def recovered():  # an epoch of the trial trained on another node
            hist = run / "checkpoints" / f"{tid}.history.json"
            try:
                return proc.poll() is not None or \
                    json.loads(hist.read_text())[-1].get("node") != node
            except (OSError, ValueError, IndexError):
                return tid in parts(run)
        wait_for(recovered, 300, "the killed trial to train again")
        print(f"\nMEASURE node kill: trial {tid} trained an epoch on another node "
              f"{time.monotonic() - t0:.1f} s after its node was SIGKILLed (checkpoint at "
              f"epoch {before} or later)")
        out, err = proc.communicate(timeout=400)
    finally:
        kill_all([p for p in (proc,) if p])
        cluster.stdin.close()
        try:
            cluster.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        kill_all([cluster, *nodes, *tree(cluster.pid)])
    assert proc.returncode == 0, err[-3000:]
    trials = pd.read_parquet(run / "trials.parquet").set_index("trial_id")
    assert len(trials) == 16 and (trials.status == "completed").all()
    assert trials.node.nunique() == 3
    exactly_once(run)
    assert trials.continued_from[tid] >= 2  # retried from its checkpoint, elsewhere
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert epochs[epochs.trial_id == tid].epoch.tolist() == list(range(1, 41))
    assert trials.node[tid] != node
    assert json.loads((run / "run.json").read_text())["hardware"]["nodes"] >= 3


def test_a_raising_trial_and_a_diverging_one_are_errors_and_the_rest_go_on(tmp_path):
    """One cell raises while it is built (its pretrained URL answers nothing), one diverges
    (lr 10 on raw 0-255 pixels: the loss becomes non-finite). Both are stored as errors with their message; the
    other cells complete; the report lists the errors; the exit code says the grid is
    partial."""
    spec = tmp_path / "bad.py"
    spec.write_text(textwrap.dedent("""
        from gridrun import Ablation, Factor
        ablation = Ablation(
            name="bad", dataset="digits",
            factors=[Factor("lr", [0.05, 10.0]),
                     Factor("pretrained", [None, "http://127.0.0.1:9/none.pt"])],
            fixed={"epochs": 3, "batch_size": 32, "normalize": "none"}, seeds=2,
            train_size=500,
            resources={"cpu": 1}, max_concurrent=2)
    """))
    proc = gridrun("launch", spec, "--out", tmp_path / "run", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "run" / "trials.parquet")
    assert len(trials) == 8 and trials.trial_id.is_unique
    ok = trials[(trials.lr == 0.05) & trials.pretrained.isna()]
    assert (ok.status == "completed").all() and len(ok) == 2
    raised = trials[trials.pretrained.notna()]
    assert (raised.status == "error").all() and raised.error.str.contains("none.pt").all()
    diverged = trials[(trials.lr == 10.0) & trials.pretrained.isna()]
    assert (diverged.status == "error").all()
    assert diverged.error.str.contains("non-finite loss").all()
    epochs = pd.read_parquet(tmp_path / "run" / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert "Error in 4 trial(s)" in proc.stdout and "non-finite loss" in proc.stdout
    assert "6 errors" in proc.stdout
