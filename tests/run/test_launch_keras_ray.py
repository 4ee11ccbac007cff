"""Integration: a real Ray Tune grid with framework as a factor (PyTorch and Keras trials side
by side, ASHA on), on a tiny subset of digits; no mocks."""

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")
pytest.importorskip("tensorflow")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 4


def gridrun(*args, cwd):
    return subprocess.run([sys.executable, "-m", "gridrun.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("both")
    spec = tmp / "both.py"
    spec.write_text(textwrap.dedent(f"""
        from gridrun import Ablation, Factor, ASHA
        ablation = Ablation(
            name="both", dataset="digits",
            factors=[Factor("framework", ["torch", "tensorflow"]),
                     Factor("lr", [0.05, 1e-6]), Factor("batchnorm", [False, True]),
                     Factor("optimizer", ["sgd", "adam"])],
            fixed={{"epochs": {EPOCHS}, "batch_size": 32}}, seeds=2, train_size=500,
            scheduler=ASHA(grace_period=1, reduction_factor=2), resources={{"cpu": 1}},
            max_concurrent=2, keep_weights=True)
    """))
    proc = gridrun("launch", spec, "--out", tmp / "run", cwd=tmp)
    return tmp / "run", proc


def test_both_frameworks_train_and_are_stored(both):
    run, proc = both
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 16 * 2 and set(trials.framework) == {"torch", "tensorflow"}
    assert (trials.status != "error").all()
    good = trials[(trials.lr == 0.05) & (trials.status == "completed")]
    assert set(good.framework) == {"torch", "tensorflow"}
    assert (good.groupby("framework").test_acc.mean() > 0.5).all()  # both learn (chance 0.1)
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert epochs.rss_mb.notna().all() and (epochs.rss_mb > 100).all()


def test_keras_checkpoints_and_weights_are_npz(both):
    run, _ = both
    trials = pd.read_parquet(run / "trials.parquet")
    for t in trials[trials.status == "stopped_early"].itertuples():
        suffix = ".npz" if t.framework == "tensorflow" else ".pt"
        assert (run / "checkpoints" / f"{t.trial_id}{suffix}").is_file()
    done = trials[trials.status == "completed"]
    for t in done.itertuples():
        suffix = ".npz" if t.framework == "tensorflow" else ".pt"
        assert (run / "weights" / f"{t.trial_id}{suffix}").is_file()


def test_exported_keras_weights_load_as_pretrained(both, tmp_path):
    run, _ = both
    trials = pd.read_parquet(run / "trials.parquet")
    tid = trials[(trials.framework == "tensorflow") & (trials.status == "completed")] \
        .trial_id.iloc[0]
    out = tmp_path / "w.npz"
    proc = gridrun("weights", run, "--trial", tid, "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    from gridrun.keras._models import build_model
    from gridrun.keras._pretrained import load_pretrained

    model = build_model("simple_cnn", 1, 3, (8, 8), False, 0.0, seed=5)
    loaded = load_pretrained(model, str(out))
    saved = np.load(out)
    assert loaded and all(np.array_equal(saved[p], v.numpy())
                          for v in model.weights for p in [v.path] if p in loaded)


def test_report_shows_each_effect_in_each_framework(both):
    run, _ = both
    out = gridrun("report", run, "--budget", "1", cwd=run.parent)
    assert out.returncode == 0, out.stderr
    table = out.stdout.split("## Each effect per framework")[1].split("##")[0]
    assert "in torch" in table and "in tensorflow" in table
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and "vs " in ln]
    assert len(rows) == 3  # lr, batchnorm, optimizer


def test_confirm_continues_keras_cells_from_their_checkpoints(both, tmp_path):
    run, _ = both
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = pd.read_parquet(copy / "trials.parquet").set_index("trial_id")
    stopped = before.index[before.status == "stopped_early"]
    keras_stopped = [t for t in stopped if before.framework[t] == "tensorflow"]
    assert keras_stopped  # lr 1e-6 barely moves: ASHA stops its screened Keras cells
    proc = gridrun("confirm", copy, "--top", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = pd.read_parquet(copy / "trials.parquet").set_index("trial_id")
    assert (after.status == "completed").all() and (after.epochs_run == EPOCHS).all()
    assert (after.continued_from[keras_stopped] == before.epochs_run[keras_stopped]).all()
    epochs = pd.read_parquet(copy / "epochs.parquet")
    assert (epochs.groupby("trial_id").epoch.apply(list) == [[1, 2, 3, 4]] * 32).all()
