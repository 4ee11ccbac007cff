"""Whole runs on a real S3 API (moto's server on 127.0.0.1, reached through a proxy the test
can cut), with real Ray and real processes: the run folder is ``s3://gridrun/...`` for the
driver, the workers' checkpoints and every command that reads it back. The faults of
docs/faults.md again, on S3: a driver SIGKILLed mid-grid and launched again, Ctrl-C and
resume, two drivers racing for one run, and the endpoint going away while cells end.
Nothing finished may be lost, stored twice or trained again."""

import json
import os
import re
import signal
import socket
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from test_faults_ray import (gridrun, kill_all, start, tree, wait_for, wait_gone,  # noqa: E402
                             write_spec)

pytestmark = [pytest.mark.ray, pytest.mark.slow]


# -- the run as the bucket holds it -----------------------------------------------------------
def files(s3, key: str) -> dict[str, int]:
    """{path inside the run: size} of every object under ``key`` (bucket-relative)."""
    root = f"{s3.bucket}/{key}"
    infos = s3.fs().get_file_info(pafs.FileSelector(root, recursive=True,
                                                    allow_not_found=True))
    return {i.path[len(root) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}


def read(s3, key: str, name: str) -> bytes:
    with s3.fs().open_input_stream(f"{s3.bucket}/{key}/{name}") as f:
        return f.read()


def parts(s3, key: str) -> dict:
    out = {}
    for name in files(s3, key):
        if name.startswith("parts/") and name.endswith(".json"):
            out.update({r["trial_id"]: r for r in
                        json.loads(read(s3, key, name))["trials"]})  # objects appear whole
    return out


def in_flight(s3, key: str, done) -> dict:
    """{trial_id: history} of unfinished trials whose history holds 2 epochs or more (their
    checkpoint holds at least one epoch less: it is written after its history)."""
    out = {}
    for name in files(s3, key):
        if name.startswith("checkpoints/") and name.endswith(".history.json"):
            tid = name.split("/")[1].split(".")[0]
            try:
                hist = json.loads(read(s3, key, name))
            except (OSError, ValueError):
                continue  # deleted as its cell ended
            if tid not in done and len(hist) >= 2:
                out[tid] = hist
    return out


def table(s3, key: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(f"{s3.bucket}/{key}/{name}", filesystem=s3.fs())


def exactly_once(s3, key: str, n: int, epochs: int) -> pd.DataFrame:
    """Each trial once in trials.parquet with every epoch once in epochs.parquet."""
    trials = table(s3, key, "trials.parquet")
    eps = table(s3, key, "epochs.parquet")
    assert len(trials) == n and trials.trial_id.is_unique
    assert not eps.duplicated(["trial_id", "epoch"]).any()
    done = trials[trials.status == "completed"].trial_id
    per = eps[eps.trial_id.isin(done)].groupby("trial_id").epoch.apply(list)
    assert (per == [list(range(1, epochs + 1))] * len(per)).all()
    return trials.set_index("trial_id")


def leftovers(s3, key: str) -> list[str]:
    """What a run that ended cleanly must not leave: journal, claims, a probe."""
    return [f for f in files(s3, key) if f.startswith(("parts/", "claims/", ".gridrun-probe"))
            or f == "heartbeat.json"]


# -- the runs ----------------------------------------------------------------------------------
def test_quickstart_on_s3_status_report_weights_and_confirm(s3, s3env, prefix, tmp_path):
    """A screened grid (ASHA, anchors and screened cells, keep_weights) launched with
    --storage s3://...: `status` while it runs, `report` (Markdown and JSON) and `weights`
    from the bucket, then `confirm` continues the best stopped cell from its checkpoints
    in the bucket."""
    spec = tmp_path / "qs.py"
    spec.write_text(textwrap.dedent("""
        from gridrun import ASHA, Ablation, Factor
        ablation = Ablation(
            name="qs", dataset="digits",
            factors=[Factor("batchnorm", [False, True]), Factor("dropout", [0.0, 0.3]),
                     Factor("optimizer", ["sgd", "adam"])],
            fixed={"epochs": 4, "batch_size": 32}, seeds=2, train_size=200,
            scheduler=ASHA(grace_period=1, reduction_factor=2, resolution=3, confirm=0),
            resources={"cpu": 1}, max_concurrent=2, keep_weights=True)
    """))
    storage, key = s3.uri(prefix, "runs"), f"{prefix}/runs/qs"
    uri = f"{storage}/qs"
    t0 = time.monotonic()
    proc = start("launch", spec, "--storage", storage, cwd=tmp_path, env=s3env)
    try:
        def running():
            r = gridrun("status", uri, cwd=tmp_path, env=s3env)
            return r.stdout if r.returncode == 0 and "qs: running" in r.stdout \
                and "completed" in r.stdout else None
        seen = wait_for(running, 300, "`gridrun status` to show the run going")
        out, err = proc.communicate(timeout=400)
    finally:
        kill_all([proc])
    assert proc.returncode == 0, err[-3000:]
    print(f"\nMEASURE s3 quickstart: launch to the end {time.monotonic() - t0:.1f} s")
    assert "trials: 16 = " in seen and "running" in seen
    assert f"-> {uri}" in out and leftovers(s3, key) == []
    md = gridrun("report", uri, cwd=tmp_path, env=s3env)
    assert md.returncode == 0 and "# qs: full design on digits, 16 trials" in md.stdout
    js = gridrun("report", uri, "--format", "json", cwd=tmp_path, env=s3env)
    assert js.returncode == 0, js.stderr
    assert "techniques" in json.dumps(json.loads(js.stdout))
    w = gridrun("weights", uri, "--out", tmp_path / "best.pt", cwd=tmp_path, env=s3env)
    assert w.returncode == 0 and (tmp_path / "best.pt").stat().st_size > 1000, w.stderr
    trials = exactly_once(s3, key, 16, 4)
    stopped = trials[trials.status == "stopped_early"]
    assert len(stopped) > 0 and all(f"checkpoints/{t}.pt" in files(s3, key)
                                    for t in stopped.index)
    t0 = time.monotonic()
    conf = gridrun("confirm", uri, "--top", "1", cwd=tmp_path, env=s3env)
    assert conf.returncode == 0, conf.stderr[-3000:]
    print(f"MEASURE s3 confirm: {time.monotonic() - t0:.1f} s")
    assert "2 continued to the full budget" in conf.stdout
    after = exactly_once(s3, key, 16, 4)
    confirmed = after[after.index.isin(stopped.index) & (after.status == "completed")]
    assert len(confirmed) == 2 and (confirmed.continued_from >= 1).all()  # from the bucket
    kept = after.drop(confirmed.index)
    assert (kept.wall_seconds == trials.wall_seconds[kept.index]).all()  # not trained again
    assert leftovers(s3, key) == []


def test_on_s3_a_trials_dead_worker_is_retried_from_its_checkpoint_in_the_bucket(
        s3, s3env, prefix, tmp_path):
    """The Ray worker processes training cells are SIGKILLed mid-epoch (an upload in flight
    may be cut off with them): Tune starts those cells again, and they continue from the
    checkpoints the bucket holds; every epoch is stored once."""
    spec = tmp_path / "w.py"
    spec.write_text(textwrap.dedent("""
        from gridrun import Ablation, Factor
        ablation = Ablation(
            name="w", dataset="digits",
            factors=[Factor("batchnorm", [False, True]), Factor("dropout", [0.0, 0.3])],
            fixed={"epochs": 6, "batch_size": 32}, seeds=1, train_size=500,
            resources={"cpu": 1}, max_concurrent=2)
    """))
    storage, key = s3.uri(prefix, "runs"), f"{prefix}/runs/w"
    proc = start("launch", spec, "--storage", storage, cwd=tmp_path, env=s3env)
    try:
        def victim():
            assert proc.poll() is None, "the grid ended before a worker could be killed"
            return next(((t, h) for t, h in in_flight(s3, key, parts(s3, key)).items()
                         if len(h) <= 3), None)
        tid, hist = wait_for(victim, 240, "a trial checkpointed at epoch 2 or 3 of 6")
        workers = [w for w in tree(proc.pid) if "ray::ImplicitFunc" in " ".join(w.cmdline())]
        assert workers, [" ".join(w.cmdline()) for w in tree(proc.pid)]
        kill_all(workers)
        t0 = time.monotonic()

        def recovered():  # an epoch of the trial trained after the kill
            try:
                return tid in parts(s3, key) or len(json.loads(
                    read(s3, key, f"checkpoints/{tid}.history.json"))) > len(hist)
            except (OSError, ValueError):
                return False
        wait_for(recovered, 240, "the killed cell to train again")
        print(f"\nMEASURE s3 worker kill: {len(workers)} worker(s) SIGKILLed; the cell "
              f"trained again {time.monotonic() - t0:.1f} s later, from its checkpoint")
        out, err = proc.communicate(timeout=400)
    finally:
        kill_all([proc])
    assert proc.returncode == 0, err[-3000:]
    trials = exactly_once(s3, key, 4, 6)
    assert (trials.status == "completed").all()
    assert trials.continued_from[tid] >= len(hist) - 1 >= 1
    assert leftovers(s3, key) == []


def test_on_s3_racing_drivers_a_sigkill_and_ctrl_c_lose_nothing(s3, s3env, prefix, tmp_path):
    """One run through three faults. Two drivers start at the same moment on a fresh run:
    one runs, the other exits 2 with one line, and so does a third while the first runs.
    The first is SIGKILLed mid-grid; `gridrun launch` again continues it, the cells that
    were in flight from their checkpoints in the bucket; that session is stopped with
    Ctrl-C (exit 130, `gridrun resume s3://...` printed); `gridrun resume` finishes the
    grid. Nothing finished is lost, stored twice or trained again."""
    spec = write_spec(tmp_path / "kill.py", "kill", epochs=6, seeds=1)  # 8 cells
    storage, key = s3.uri(prefix, "runs"), f"{prefix}/runs/kill"
    uri, host = f"{storage}/kill", socket.gethostname()
    pair = [start("launch", spec, "--storage", storage, cwd=tmp_path, env=s3env)
            for _ in range(2)]
    ray_procs = []
    try:
        loser = wait_for(lambda: next((p for p in pair if p.poll() is not None), None), 120,
                         "one of two racing drivers to back off")
        winner = next(p for p in pair if p is not loser)
        lines = loser.stderr.read().strip().splitlines()
        assert loser.returncode == 2 and len(lines) == 1, lines
        assert lines[0].startswith(f"error: {uri} is being run by another driver (host "
                                   f"{host}, pid {winner.pid}"), lines
        t0 = time.monotonic()
        third = gridrun("launch", spec, "--storage", storage, cwd=tmp_path, env=s3env)
        print(f"\nMEASURE s3 second driver: refused (exit {third.returncode}) in "
              f"{time.monotonic() - t0:.1f} s")
        assert third.returncode == 2 and len(third.stderr.strip().splitlines()) == 1
        assert f"is being run by another driver (host {host}, pid {winner.pid}" in third.stderr
        def mid_grid():  # 2 cells done, one checkpointed with 3 or more epochs to go
            done = parts(s3, key)
            return len(done) >= 2 and any(len(h) <= 3 for h in in_flight(s3, key, done).values())
        wait_for(mid_grid, 240, "two finished cells and one in flight")
        ray_procs = tree(winner.pid)
        os.kill(winner.pid, signal.SIGKILL)
        t0 = time.monotonic()
        winner.wait(timeout=30)
        wait_gone(ray_procs, "the killed driver's Ray processes to exit")
        # only now: an upload the kernel was still sending for a killed process can land
        # after its death, and the workers train on until the watcher kills them
        before = parts(s3, key)
        flying = in_flight(s3, key, before)
        assert flying, "every cell in flight ended before the kill: nothing to continue"
        print(f"MEASURE s3 driver kill: {len(ray_procs)} Ray processes gone "
              f"{time.monotonic() - t0:.1f} s after the SIGKILL; {len(before)} trials "
              f"finished, {len(flying)} in flight")
    finally:
        kill_all([*pair, *ray_procs])
    left = files(s3, key)
    assert "run.json" not in left  # nothing but the journal and checkpoints
    assert all(json.loads(read(s3, key, f)) for f in left if f.endswith(".json"))  # none torn
    t0 = time.monotonic()
    again = start("launch", spec, "--storage", storage, cwd=tmp_path, env=s3env)
    try:
        wait_for(lambda: len(parts(s3, key)) >= len(before) + 1, 240,
                 "the relaunch to finish a cell")
        print(f"MEASURE s3 driver kill: the relaunch finished its first cell "
              f"{time.monotonic() - t0:.1f} s after it started")
        ray_procs = tree(again.pid)
        t0 = time.monotonic()
        os.killpg(again.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        out, err = again.communicate(timeout=60)
        seconds = time.monotonic() - t0
        wait_gone(ray_procs, "the interrupted driver's Ray processes to exit")
    finally:
        kill_all([again, *ray_procs])
    assert again.returncode == 130, err[-3000:]
    print(f"MEASURE s3 ctrl-c: exit 130 {seconds:.1f} s after SIGINT")
    assert f"{len(before)} of 8 trials finished earlier are kept" in err
    assert f"continue with: gridrun resume {uri}" in err
    assert json.loads(read(s3, key, "run.json"))["complete"] is False
    status = gridrun("status", uri, cwd=tmp_path, env=s3env)
    assert status.returncode == 0 and "kill: interrupted (session 2)" in status.stdout
    stored = table(s3, key, "trials.parquet").set_index("trial_id")
    t0 = time.monotonic()
    resumed = gridrun("resume", uri, cwd=tmp_path, env=s3env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    print(f"MEASURE s3 ctrl-c: resume finished the other {8 - len(stored)} trials in "
          f"{time.monotonic() - t0:.1f} s; {len(stored)} kept")
    trials = exactly_once(s3, key, 8, 6)
    assert (trials.status == "completed").all()
    for tid, row in before.items():  # kept as they were: not trained again
        assert trials.wall_seconds[tid] == row["wall_seconds"]
    assert (trials.wall_seconds[stored.index] == stored.wall_seconds).all()
    for tid, hist in flying.items():  # continued from the checkpoint, not from scratch
        assert trials.continued_from[tid] >= len(hist) - 1 >= 1
    info = json.loads(read(s3, key, "run.json"))
    assert info["complete"] and len(info["sessions"]) == 3
    assert "kill: complete" in gridrun("status", uri, cwd=tmp_path, env=s3env).stdout
    assert leftovers(s3, key) == [] and not any(f.endswith(".pt") for f in files(s3, key))


def test_on_s3_cells_that_end_while_the_endpoint_is_away_are_kept_and_uploaded(
        s3, s3env, prefix, tmp_path):
    """The endpoint goes away mid-grid (every connection closed, new ones refused) until a
    cell has ended and been kept on this machine, then comes back. `status` says what waits
    and where; the kept cells are uploaded; every trial is stored once and none trained
    again (a checkpoint the storage refused is skipped, not a failed trial)."""
    spec = write_spec(tmp_path / "cut.py", "cut", epochs=3, seeds=1)
    storage, key = s3.uri(prefix, "runs"), f"{prefix}/runs/cut"
    uri = f"{storage}/cut"
    spool = Path(s3env["GRIDRUN_SPOOL"])
    direct = {**s3env, **s3.env(direct=True)}  # a reader that still reaches the bucket

    def kept():
        return sorted(spool.rglob("parts/*.json"))

    proc = start("launch", spec, "--storage", storage, cwd=tmp_path, env=s3env)
    try:
        wait_for(lambda: len(parts(s3, key)) >= 2, 240, "two finished cells")
        before = parts(s3, key)
        s3.proxy.cut()
        t_cut = time.monotonic()
        wait_for(kept, 180, "a cell to end while the endpoint is away, kept on this machine")
        print(f"\nMEASURE s3 outage: first cell kept {time.monotonic() - t_cut:.1f} s into "
              "the outage")
        away = gridrun("status", uri, cwd=tmp_path, env=s3env)  # through the cut endpoint
        assert away.returncode == 2 and away.stderr.startswith(f"error: {uri}: cannot read")
        assert len(away.stderr.strip().splitlines()) == 1
        here = gridrun("status", uri, cwd=tmp_path, env=direct)
        assert here.returncode == 0, here.stderr
        assert f"kept on {socket.gethostname()}, waiting to be uploaded" in here.stdout
        n_kept = len(kept())
        s3.proxy.restore()
        t_back = time.monotonic()
        print(f"MEASURE s3 outage: endpoint away {t_back - t_cut:.1f} s; {n_kept} "
              "finished cell(s) kept on this machine")
        wait_for(lambda: not kept() or proc.poll() is not None, 120,
                 "the kept cells to be uploaded")
        print(f"MEASURE s3 outage: kept cells uploaded {time.monotonic() - t_back:.1f} s "
              "after the endpoint came back")
        out, err = proc.communicate(timeout=400)
    finally:
        kill_all([proc])
    assert proc.returncode == 0, err[-3000:]
    assert "does not answer: finished cells are kept in" in err
    uploaded = re.findall(r"the storage answers again: uploaded (\d+) finished cell", err)
    assert sum(map(int, uploaded)) >= n_kept, err[-3000:]
    warned = [ln for ln in err.splitlines() if "could not write its checkpoint" in ln]
    assert len(warned) <= 8  # one per cell at most
    trials = exactly_once(s3, key, 8, 3)
    assert (trials.status == "completed").all()
    for tid, row in before.items():
        assert trials.wall_seconds[tid] == row["wall_seconds"]
    assert trials.continued_from.isna().all()  # no cell was started again
    uploads = json.loads(read(s3, key, "run.json"))["uploads"]
    assert uploads["kept"] >= n_kept and uploads["uploaded_late"] == uploads["kept"]
    assert uploads["waiting"] == 0
    assert leftovers(s3, key) == [] and not kept()
