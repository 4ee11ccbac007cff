"""Integration: a real Ray Tune grid with ASHA on a tiny subset of digits; no mocks."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 4


def write_spec(path, name, factors, scheduler="ASHA(grace_period=1, reduction_factor=2)",
               epochs=EPOCHS, seeds=2):
    path.write_text(textwrap.dedent(f"""
        from gridrun import Ablation, Factor, ASHA
        ablation = Ablation(
            name={name!r}, dataset="digits", factors=[{factors}],
            fixed={{"epochs": {epochs}, "batch_size": 32}}, seeds={seeds}, train_size=500,
            scheduler={scheduler}, resources={{"cpu": 1}}, max_concurrent=2)
    """))
    return path


def gridrun(*args, cwd):
    return subprocess.run([sys.executable, "-m", "gridrun.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


FACTORS = ("Factor('lr', [0.05, 1e-6]), Factor('batchnorm', [False, True]), "
           "Factor('dropout', [0.0, 0.3]), Factor('optimizer', ['sgd', 'adam'])")


@pytest.fixture(scope="module")
def asha_run(tmp_path_factory):
    """Four two-level factors: 8 anchor cells run every epoch, the other 8 are screened.
    lr 1e-6 barely moves from chance, so ASHA must stop those screened cells at a rung once
    a cell with lr 0.05 has reported there (grid order runs the good ones first). The
    budget is the whole grid, so its ceiling never binds and ASHA's own decisions show."""
    tmp = tmp_path_factory.mktemp("asha")
    spec = write_spec(tmp / "asha.py", "asha", FACTORS,
                      scheduler="ASHA(grace_period=1, reduction_factor=2, budget=1.0)")
    proc = gridrun("launch", spec, "--out", tmp / "run", cwd=tmp)
    return tmp / "run", proc


def anchor_mask(trials):
    from gridrun.design.schedule import anchors_for, cell_key

    factors = {"lr": [0.05, 1e-6], "batchnorm": [False, True], "dropout": [0.0, 0.3],
               "optimizer": ["sgd", "adam"]}
    keys = anchors_for(factors, {}, {}).keys()
    return trials.apply(lambda r: cell_key({f: r[f] for f in factors}) in keys, axis=1)


def test_launch_writes_one_row_per_trial(asha_run):
    run, proc = asha_run
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 16 * 2  # configs x seeds
    assert trials.trial_id.is_unique
    assert set(trials.status) <= {"completed", "stopped_early"}
    assert "finished in" in proc.stdout and "32 trials" in proc.stdout


def test_asha_stopped_trials_are_stored_with_epoch_reached(asha_run):
    run, _ = asha_run
    trials = pd.read_parquet(run / "trials.parquet")
    epochs = pd.read_parquet(run / "epochs.parquet")
    stopped = trials[trials.status == "stopped_early"]
    assert len(stopped) >= 1
    # ASHA rungs for grace 1, factor 2, max 4 are epochs 1 and 2
    assert set(stopped.epochs_run) <= {1, 2}
    assert stopped.test_acc.isna().all()
    per_trial = epochs.groupby("trial_id").epoch.max()
    assert (per_trial[trials.trial_id].to_numpy() == trials.epochs_run.to_numpy()).all()
    done = trials[trials.status == "completed"]
    assert (done.epochs_run == EPOCHS).all() and done.test_acc.between(0, 1).all()
    # the tiny learning rate is stopped at a rung, except in the anchors and in screened
    # cells that stratified promotion keeps as the first survivor of one of their levels
    tiny = trials[(trials.lr == 1e-6) & ~anchor_mask(trials)]
    assert (tiny.status == "stopped_early").mean() >= 0.5
    # stopped trials keep the checkpoint of the rung they were stopped at
    for tid in stopped.trial_id:
        assert (run / "checkpoints" / f"{tid}.pt").is_file()


def test_anchors_are_never_stopped_and_seeds_move_together(asha_run):
    run, _ = asha_run
    trials = pd.read_parquet(run / "trials.parquet")
    anchors = anchor_mask(trials)
    assert anchors.sum() == 8 * 2
    assert (trials[anchors].status == "completed").all()
    cells = trials.groupby(["lr", "batchnorm", "dropout", "optimizer"])
    assert (cells.epochs_run.nunique() == 1).all() and (cells.status.nunique() == 1).all()


def test_report_is_built_from_anchors_at_the_full_budget(asha_run):
    run, _ = asha_run
    out = gridrun("report", run, cwd=run.parent)
    assert out.returncode == 0, out.stderr
    assert "from the 8-cell 2^(4-1) resolution IV fraction" in out.stdout
    techniques = out.stdout.split("## What each technique contributed")[1].split("##")[0]
    rows = [ln for ln in techniques.splitlines() if ln.startswith("| ") and "vs " in ln]
    assert len(rows) == 4 and all(ln.rstrip(" |").endswith("4 (2)") for ln in rows)


def test_confirm_continues_screened_cells_from_their_checkpoints(asha_run, tmp_path):
    """Stopped trials resume from their rung checkpoints: the epochs before it are kept from
    the store (a sentinel written there survives), the ones after are trained. A seed whose
    checkpoint is gone trains again from epoch 1, beside its sibling that resumes."""
    run, _ = asha_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = pd.read_parquet(copy / "trials.parquet").set_index("trial_id")
    stopped = sorted(before.index[before.status == "stopped_early"])
    lost = stopped[0]
    (copy / "checkpoints" / f"{lost}.pt").unlink()
    epochs = pd.read_parquet(copy / "epochs.parquet")
    epochs.loc[epochs.trial_id.isin(stopped) & (epochs.epoch == 1), "val_acc"] = 0.123
    epochs.to_parquet(copy / "epochs.parquet", index=False)
    proc = gridrun("confirm", copy, "--top", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(stopped) - 1} continued to the full budget" in proc.stdout
    after = pd.read_parquet(copy / "trials.parquet").set_index("trial_id")
    epochs = pd.read_parquet(copy / "epochs.parquet")
    assert (after.status == "completed").all() and (after.epochs_run == EPOCHS).all()
    resumed = [t for t in stopped if t != lost]
    assert (after.continued_from[resumed] == before.epochs_run[resumed]).all()
    assert after.continued_from.drop(resumed).isna().all()
    assert (epochs.groupby("trial_id").epoch.apply(list) == [[1, 2, 3, 4]] * 32).all()
    first = epochs[epochs.epoch == 1].set_index("trial_id").val_acc
    assert (first[resumed] == 0.123).all()  # kept from the store, not trained again
    assert first[lost] != 0.123  # no checkpoint: trained from the start
    report = gridrun("report", copy, cwd=tmp_path).stdout
    assert "Numbers: every cell at epoch 4" in report


def test_the_budget_is_a_ceiling_on_a_real_run(tmp_path):
    """The same grid at the default budget of half its epochs: the 8 anchors alone are half,
    so every screened cell stops at its first rung, even those above ASHA's bar, and only
    the best is confirmed: 2 seeds x (8 x 4 + 8 x 1 + 3) trial-epochs, as plan expects."""
    spec = write_spec(tmp_path / "capped.py", "capped", FACTORS)
    plan = gridrun("plan", spec, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "ASHA stops the other 8 cells at their first rung (epoch 1)" in plan.stdout
    row = next(ln for ln in plan.stdout.splitlines() if ln.startswith("| full (spec)"))
    assert row.split("|")[-2].split() == ["86", "(67%)"]  # trial-epochs with ASHA, its share
    proc = gridrun("launch", spec, "--out", tmp_path / "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = pd.read_parquet(tmp_path / "run" / "trials.parquet")
    assert trials.epochs_run.sum() == 2 * (8 * 4 + 8 * 1 + 3)
    screened = trials[~anchor_mask(trials)]
    assert sorted(screened.epochs_run.value_counts().items()) == [(1, 14), (4, 2)]
    info = json.loads((tmp_path / "run" / "run.json").read_text())["schedule"]
    assert info["budget"] == 0.5 and len(info["stopped_by_budget"]) >= 1
    assert "screened cell(s) that would otherwise have been promoted" in proc.stderr
    report = gridrun("report", tmp_path / "run", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (f"The budget (50% of the grid's epochs) stopped {len(info['stopped_by_budget'])} "
            "screened cell(s)") in report.stdout
    # a later confirm keeps the record of what the screen's ceiling stopped
    assert gridrun("confirm", tmp_path / "run", "--top", "2", cwd=tmp_path).returncode == 0
    # and the same again has nothing left to do: it says so, and leaves the run as it is
    stored = (tmp_path / "run" / "trials.parquet").read_bytes()
    nothing = gridrun("confirm", tmp_path / "run", "--top", "2", cwd=tmp_path)
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert nothing.stdout.startswith("nothing to confirm: every anchor and the 2 best")
    assert (tmp_path / "run" / "trials.parquet").read_bytes() == stored
    again = json.loads((tmp_path / "run" / "run.json").read_text())["schedule"]
    assert again["stopped_by_budget"] == info["stopped_by_budget"]


def test_epoch_metrics_are_complete(asha_run):
    run, _ = asha_run
    epochs = pd.read_parquet(run / "epochs.parquet")
    for col in ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]:
        assert epochs[col].notna().all(), col
    assert epochs.val_acc.between(0, 1).all()


def test_run_json_records_spec_versions_hardware(asha_run):
    run, _ = asha_run
    info = json.loads((run / "run.json").read_text())
    assert info["spec"]["factors"]["lr"] == [0.05, 1e-06]
    assert info["complete"] is True and info["trials_written"] == 32
    assert info["schedule"]["anchors"]["fraction_cells"] == 8
    assert info["versions"]["ray"] == "2.60.0"
    assert info["hardware"]["cluster_cpus"] >= 1
    assert info["data"]["train"] == 500
    assert info["started_at"] < info["finished_at"]


def test_second_launch_refuses_to_overwrite(asha_run, tmp_path):
    run, _ = asha_run
    spec = write_spec(tmp_path / "asha.py", "asha", "Factor('lr', [0.05])")
    before = (run / "trials.parquet").read_bytes()
    proc = gridrun("launch", spec, "--out", run, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {run} already holds a complete run; pass "
                                   "--overwrite to replace it or --out to write elsewhere")
    assert (run / "trials.parquet").read_bytes() == before


def test_a_finished_run_grows_by_seeds_without_training_the_old_ones(tmp_path):
    def launch(seeds):
        spec = write_spec(tmp_path / "grow.py", "grow", "Factor('batchnorm', [False, True])",
                          scheduler=None, epochs=2, seeds=seeds)
        return gridrun("launch", spec, "--out", tmp_path / "run", cwd=tmp_path)

    assert launch(1).returncode == 0
    before = pd.read_parquet(tmp_path / "run" / "trials.parquet")
    epochs_before = pd.read_parquet(tmp_path / "run" / "epochs.parquet")
    proc = launch(3)
    assert proc.returncode == 0, proc.stderr
    assert "2 of 6 trials finished earlier are kept; running the other 4" in proc.stderr
    after = pd.read_parquet(tmp_path / "run" / "trials.parquet")
    assert sorted(after.seed) == [0, 0, 1, 1, 2, 2] and set(after.status) == {"completed"}
    old = after[after.seed == 0].set_index("trial_id").sort_index()
    pd.testing.assert_frame_equal(old, before.set_index("trial_id").sort_index(),
                                  check_like=True)  # kept, not trained again
    epochs = pd.read_parquet(tmp_path / "run" / "epochs.parquet")
    pd.testing.assert_frame_equal(
        epochs[epochs.trial_id.isin(before.trial_id)].reset_index(drop=True), epochs_before)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["spec"]["seeds"] == 3
    refused = launch(2)
    assert refused.returncode == 2 and "asking for 2 would drop" in refused.stderr


def descendants(pid):
    """PIDs of every live process below ``pid`` (Ray's raylet, agents and workers)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_killed_worker_is_retried_from_its_checkpoint(tmp_path):
    """SIGKILL one trial's Ray worker mid-training: Tune starts the trial again and it
    continues from its last checkpoint, so the grid completes with every epoch stored once.
    (A worker node lost for good: tests/test_faults_ray.py.)"""
    spec = write_spec(tmp_path / "fault.py", "fault", "Factor('lr', [0.05, 0.01])",
                      scheduler="None", epochs=60, seeds=1)
    run = tmp_path / "run"
    env = {**os.environ, "GRIDRUN_CHECKPOINT_SECONDS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "gridrun.cli", "launch", str(spec),
                             "--out", str(run)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    seen = set()
    try:
        deadline, workers = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            time.sleep(0.3)
            seen.update(descendants(proc.pid))
            workers = [p for p in descendants(proc.pid) if "ImplicitFunc" in cmdline(p)]
            hist = [json.loads(f.read_text() or "[]")
                    for f in (run / "checkpoints").glob("*.history.json")]
            # both trials checkpointed and far from done: whichever worker is killed has a
            # checkpoint to continue from (a fresh install's second worker can start seconds
            # after the first, still without one, and then trains again from the start)
            if len(workers) == 2 and len(hist) == 2 and all(3 <= len(h) < 40 for h in hist):
                break
        assert len(workers) == 2, "two trials never started"
        at_kill = sorted(len(h) for h in hist)
        os.kill(workers[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        for pid in [proc.pid, *seen, *descendants(proc.pid)]:  # never leave Ray behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, err[-3000:]
    trials = pd.read_parquet(run / "trials.parquet")
    assert list(trials.status) == ["completed", "completed"]
    # the killed one, from its checkpoint
    assert trials.continued_from.notna().sum() == 1, f"epochs checkpointed at the kill: {at_kill}"
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert (epochs.groupby("trial_id").epoch.apply(list) == [list(range(1, 61))] * 2).all()


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_launch_joins_an_existing_cluster(tmp_path):
    """`--address` joins a Ray cluster started separately (`ray start --head`, token
    authentication on by default) instead of starting one, and leaves it running."""
    port = free_port()
    ray_bin = str(Path(sys.executable).parent / "ray")
    # its own temp dir, so the machine's /tmp/ray/ray_current_cluster never names this head
    temp_dir = tempfile.mkdtemp(prefix="grhead", dir="/tmp")  # short: socket paths
    start = subprocess.run([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1",
                            "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
                            "--disable-usage-stats", f"--temp-dir={temp_dir}"],
                           capture_output=True, text=True, timeout=180)
    head = [p for p in descendants(1) if f"{port}" in cmdline(p)]
    try:
        assert start.returncode == 0, start.stderr[-2000:]
        spec = write_spec(tmp_path / "join.py", "join", "Factor('lr', [0.05, 0.01])",
                          scheduler="None", epochs=2, seeds=1)
        proc = gridrun("launch", spec, "--out", tmp_path / "run", "--address",
                       f"127.0.0.1:{port}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(pd.read_parquet(tmp_path / "run" / "trials.parquet")) == 2
        # the cluster is the user's: still alive after the launch
        assert any(Path(f"/proc/{p}").exists() for p in head)
    finally:  # clean up this head only, by PID (ray stop would kill every Ray on the box)
        head = [p for p in descendants(1) if f"{port}" in cmdline(p)]
        for pid in head + [c for p in head for c in descendants(p)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_local_launch_ignores_a_stale_cluster_file(tmp_path):
    """A head that died without `ray stop` leaves its address in Ray's current-cluster
    file; a local launch must still start its own Ray instead of hanging on the dead one."""
    from ray._private.utils import get_ray_address_file

    address_file = Path(get_ray_address_file(None))
    if address_file.exists():
        pytest.skip(f"{address_file} belongs to a running cluster on this machine")
    address_file.parent.mkdir(parents=True, exist_ok=True)
    address_file.write_text(f"127.0.0.1:{free_port()}")
    try:
        spec = write_spec(tmp_path / "stale.py", "stale", "Factor('lr', [0.05])",
                          scheduler="None", epochs=1, seeds=1)
        proc = gridrun("launch", spec, "--out", tmp_path / "run", cwd=tmp_path)
    finally:
        address_file.unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_unreachable_cluster_is_one_clear_error(tmp_path):
    spec = write_spec(tmp_path / "nowhere.py", "nowhere", "Factor('lr', [0.05])",
                      scheduler="None", epochs=1, seeds=1)
    proc = gridrun("launch", spec, "--out", tmp_path / "run", "--address",
                   f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot join Ray at 127.0.0.1:")
    assert "nothing answers there" in last
    assert not (tmp_path / "run").exists()


def test_a_real_tuner_copies_the_same_per_trial_whatever_the_grid(tmp_path, monkeypatch):
    """Tune's grid search deep-copies the whole search space for every trial it makes
    (``ray.tune.tune``, then its variant generator): with the cells themselves in a grid
    search, every trial copied every cell, O(n^2), minutes of driver time at 4,096 cells.
    Through a real Tuner.fit with the driver's cell search, every trial gets its own cell,
    once, and the objects Tune copies per trial (counted as deepcopy's memo counts them:
    dicts, lists, tuples) do not grow with the grid."""
    import copy
    import types

    import ray
    import ray.tune.search.search_generator
    import ray.tune.search.variant_generator
    import ray.tune.tune
    from ray import tune

    from gridrun.run.search import cell_search

    copied = [0]

    def counting(x, memo=None):
        memo = {} if memo is None else memo
        before = len(memo)
        y = copy.deepcopy(x, memo)
        copied[0] += len(memo) - before
        return y

    shim = types.SimpleNamespace(deepcopy=counting, copy=copy.copy)
    for module in (ray.tune.tune, ray.tune.search.variant_generator,
                   ray.tune.search.search_generator):
        monkeypatch.setattr(module, "copy", shim)

    def echo_cell(config):  # made here so that it travels to the workers by value
        tune.report({"same": config["cell"]["key"] == config["key"], "epoch": 1})

    def copied_per_trial(n):
        copied[0] = 0
        grid = [{"key": f"c{i}", "config": {"dropout": i / 100, "crop": [2, 2]},
                 "trials": [{"trial_id": f"t{i}", "seed": 0}]} for i in range(n)]
        search = cell_search(grid, threads=1)
        tuner = tune.Tuner(echo_cell, param_space=search["param_space"],
                           tune_config=tune.TuneConfig(reuse_actors=True,
                                                       search_alg=search["search_alg"],
                                                       num_samples=search["num_samples"],
                                                       max_concurrent_trials=2),
                           run_config=tune.RunConfig(storage_path=str(tmp_path / f"t{n}"),
                                                     verbose=0))
        results = tuner.fit()
        assert not results.errors
        assert sorted(r.config["key"] for r in results) == sorted(c["key"] for c in grid)
        assert all(r.metrics["same"] for r in results)
        assert all(r.config["cell"] == next(c for c in grid if c["key"] == r.config["key"])
                   for r in results)
        return copied[0] / n

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        small, large = copied_per_trial(4), copied_per_trial(24)
        pending = _pending_trials_allowed(monkeypatch)
    finally:
        ray.shutdown()
    assert large <= 1.1 * small, (small, large)  # 18 and 18 (the cells in a grid search: 70, 166)
    # Without max_concurrent, as many trials may wait for resources as for a grid search
    # (an autoscaler sees their demand); Tune's own setting for a searcher, 1, comes back
    # after the run; with max_concurrent, or the user's own setting, nothing changes.
    assert pending == {"unlimited": 200, "after": 1, "max_concurrent 2": 2, "user's 7": 7}


def _pending_trials_allowed(monkeypatch):
    from ray.tune.execution.tune_controller import _get_max_pending_trials
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    from gridrun.run.search import CellSearch, pending_trials

    def allowed(limit):
        searcher = CellSearch(["a"])
        return _get_max_pending_trials(SearchGenerator(
            ConcurrencyLimiter(searcher, limit) if limit else searcher))

    monkeypatch.delenv("TUNE_MAX_PENDING_TRIALS_PG", raising=False)
    out = {}
    with pending_trials(None):
        out["unlimited"] = allowed(None)
    out["after"] = allowed(None)
    with pending_trials(2):
        out["max_concurrent 2"] = allowed(2)
    monkeypatch.setenv("TUNE_MAX_PENDING_TRIALS_PG", "7")
    with pending_trials(None):
        out["user's 7"] = allowed(None)
    return out
