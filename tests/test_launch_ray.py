"""Integration: a real Ray Tune grid with ASHA on a tiny subset of digits; no mocks."""

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 4


def write_spec(path, name, factors, scheduler="ASHA(grace_period=1, reduction_factor=2)"):
    path.write_text(textwrap.dedent(f"""
        from gridrun import Ablation, Factor, ASHA
        ablation = Ablation(
            name={name!r}, dataset="digits", factors=[{factors}],
            fixed={{"epochs": {EPOCHS}, "batch_size": 32}}, seeds=2, train_size=300,
            scheduler={scheduler}, resources={{"cpu": 1}}, max_concurrent=2)
    """))
    return path


def gridrun(*args, cwd):
    return subprocess.run([sys.executable, "-m", "gridrun.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def asha_run(tmp_path_factory):
    """lr 1e-6 barely moves from chance, so ASHA must stop those trials at a rung once a
    trial with lr 0.05 has reported there (grid order runs the good ones first)."""
    tmp = tmp_path_factory.mktemp("asha")
    spec = write_spec(tmp / "asha.py", "asha",
                      "Factor('lr', [0.05, 1e-6]), Factor('batchnorm', [False, True])")
    proc = gridrun("launch", spec, "--out", tmp / "run", cwd=tmp)
    return tmp / "run", proc


def test_launch_writes_one_row_per_trial(asha_run):
    run, proc = asha_run
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 2 * 2 * 2  # configs x seeds
    assert trials.trial_id.is_unique
    assert set(trials.status) <= {"completed", "stopped_early"}
    assert "finished in" in proc.stdout and "8 trials" in proc.stdout


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
    # the tiny learning rate is what ASHA culled
    assert (stopped.lr == 1e-6).all()


def test_epoch_metrics_are_complete(asha_run):
    run, _ = asha_run
    epochs = pd.read_parquet(run / "epochs.parquet")
    for col in ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]:
        assert epochs[col].notna().all(), col
    assert epochs.val_acc.between(0, 1).all()


def test_run_json_records_spec_versions_hardware(asha_run):
    import json

    run, _ = asha_run
    info = json.loads((run / "run.json").read_text())
    assert info["spec"]["factors"] == {"lr": [0.05, 1e-06], "batchnorm": [False, True]}
    assert info["complete"] is True and info["trials_written"] == 8
    assert info["versions"]["ray"] == "2.60.0"
    assert info["hardware"]["cluster_cpus"] >= 1
    assert info["data"]["train"] == 300
    assert info["started_at"] < info["finished_at"]


def test_second_launch_refuses_to_overwrite(asha_run, tmp_path):
    run, _ = asha_run
    spec = write_spec(tmp_path / "asha.py", "asha", "Factor('lr', [0.05])")
    before = (run / "trials.parquet").read_bytes()
    proc = gridrun("launch", spec, "--out", run, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {run} already holds a run; pass --overwrite to "
                                   "replace it or --out to write elsewhere")
    assert (run / "trials.parquet").read_bytes() == before


def test_diverging_trial_is_recorded_as_error(tmp_path):
    """A trial whose loss turns non-finite is stored with status error and its message;
    the other trials still complete and the command exits 1."""
    spec = write_spec(tmp_path / "boom.py", "boom", "Factor('lr', [0.05, 10.0])",
                      scheduler="None")
    proc = gridrun("launch", spec, "--out", tmp_path / "run", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    trials = pd.read_parquet(tmp_path / "run" / "trials.parquet")
    assert len(trials) == 4
    bad = trials[trials.lr == 10.0]
    assert (bad.status == "error").all()
    assert bad.error.str.contains("non-finite|nan|inf", case=False).all()
    assert (trials[trials.lr == 0.05].status == "completed").all()
