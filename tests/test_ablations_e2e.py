"""The shipped transfer, imbalance and own-code examples, end to end on the real MNIST and
Fashion-MNIST files, with reduced budgets: pretrain on MNIST keeping the weights, export them
with `gridrun weights`, fine-tune on Fashion-MNIST; the long-tailed Fashion-MNIST grid; a
model of one's own with its components as factors; a trainer of one's own (an autoencoder).
Skipped without the real files under $GRIDRUN_DATA_DIR (CI sets it)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from gridrun.data._sources import SOURCES

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def real_data():
    env = os.environ.get("GRIDRUN_DATA_DIR")
    if not env:
        pytest.skip("GRIDRUN_DATA_DIR is not set; point it at the real MNIST/Fashion-MNIST")
    for name in ("mnist", "fashion_mnist"):
        missing = [f.path for f in SOURCES[name].values() if not (Path(env) / f.path).exists()]
        if missing:
            pytest.skip(f"real {name} files absent under GRIDRUN_DATA_DIR={env}: {missing[0]}")


def reduced(tmp, name, **changes):
    """A spec file that runs the shipped ablations/NAME.py with a smaller budget."""
    path = tmp / f"{name}.py"
    path.write_text(textwrap.dedent(f"""
        import dataclasses, runpy
        ablation = dataclasses.replace(
            runpy.run_path({str(ROOT / 'ablations' / f'{name}.py')!r})["ablation"],
            **{changes!r})
    """))
    return path


def gridrun(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "gridrun.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_pretrain_export_and_transfer(tmp_path):
    pre = reduced(tmp_path, "pretrain_mnist", train_size=1000,
                  fixed={"epochs": 1, "batch_size": 128})
    gridrun("launch", pre, cwd=tmp_path)
    assert list((tmp_path / "runs/pretrain_mnist/weights").glob("*.pt"))
    out = gridrun("weights", "runs/pretrain_mnist", "--out", "weights/mnist_simple_cnn.pt",
                  cwd=tmp_path)
    assert "sha256=" in out.stdout and (tmp_path / "weights/mnist_simple_cnn.pt").is_file()
    spec = reduced(tmp_path, "transfer", seeds=1, train_size=500,
                   fixed={"epochs": 3, "batch_size": 128, "batchnorm": True,
                          "finetune_lr": 0.1})
    gridrun("launch", spec, cwd=tmp_path)
    trials = pd.read_parquet(tmp_path / "runs/transfer/trials.parquet")
    assert len(trials) == 6 and (trials.status == "completed").all()
    assert trials.pretrained.isna().sum() == 3  # scratch; the others name the weights file
    report = gridrun("report", "runs/transfer", "--format", "json", "--table", "techniques",
                     cwd=tmp_path)
    rows = json.loads(report.stdout)["tables"]["techniques"]
    assert {r["factor"] for r in rows} == {"pretrained", "freeze_epochs"}


def test_imbalance_grid(tmp_path):
    spec = reduced(tmp_path, "imbalance", seeds=1, train_size=1000,
                   fixed={"epochs": 2, "batch_size": 128, "batchnorm": True})
    gridrun("launch", spec, cwd=tmp_path)
    trials = pd.read_parquet(tmp_path / "runs/imbalance/trials.parquet")
    assert len(trials) == 6 and (trials.status == "completed").all()
    assert set(trials.imbalance_remedy) == {"none", "oversample", "class_weight"}


def test_own_model_example(tmp_path):
    spec = reduced(tmp_path, "own_model", seeds=2, train_size=300, val_fraction=0.02,
                   fixed={"backbone": "own_cnn", "epochs": 2, "optimizer": "adam",
                          "batch_size": 128})
    gridrun("launch", spec, cwd=tmp_path)
    trials = pd.read_parquet(tmp_path / "runs/own_model/trials.parquet")
    assert len(trials) == 32 and set(trials.status) <= {"completed", "stopped_early"}
    assert trials.se_block.dtype == bool and trials.residual.dtype == bool
    report = gridrun("report", "runs/own_model", "--format", "json", "--table", "techniques",
                     cwd=tmp_path)
    rows = json.loads(report.stdout)["tables"]["techniques"]
    assert {r["factor"] for r in rows} == {"se_block", "residual", "batchnorm",
                                          "label_smoothing"}


def test_own_trainer_example(tmp_path):
    spec = reduced(tmp_path, "own_trainer", seeds=2, train_size=300, val_fraction=0.02,
                   fixed={"epochs": 2})
    gridrun("launch", spec, cwd=tmp_path)
    trials = pd.read_parquet(tmp_path / "runs/own_trainer/trials.parquet")
    assert len(trials) == 32 and set(trials.status) <= {"completed", "stopped_early"}
    assert trials.best_val_mse.notna().all() and trials.last_val_acc.isna().all()
    report = gridrun("report", "runs/own_trainer", "--format", "json", "--table", "techniques",
                     cwd=tmp_path)
    out = json.loads(report.stdout)
    assert {r["factor"] for r in out["tables"]["techniques"]} == {"bottleneck", "noise",
                                                                  "optimizer", "batch_size"}
    assert out["run"]["better"] == "lower"
