"""analyze() end to end: metrics, the generalization gap, fractional runs, input checks."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gridrun.analysis import analyze, learning_curves, prepare
from gridrun.analysis.testing import additive, synthetic_run

FACTORS = {"augmentation": [False, True], "dropout": [0.0, 0.3], "optimizer": ["sgd", "adam"]}
VALUE = additive(0.80, {"augmentation": {True: 0.04}, "dropout": {0.3: 0.01},
                        "optimizer": {"adam": 0.02}})
GAP = additive(0.10, {"augmentation": {True: -0.04}, "dropout": {0.3: -0.03}})


@pytest.fixture(scope="module")
def run():
    return synthetic_run(FACTORS, value=VALUE, gap=GAP, seeds=3, noise=0.002, seed=11)


def test_full_factorial_fills_every_table(run):
    a = analyze(run.trials, run.epochs, run.spec, n_boot=200)
    assert (a.design, a.metric, a.mode, a.epochs) == ("full", "val_acc", "max", 6)
    assert a.factors == ("augmentation", "dropout", "optimizer")
    assert a.levels["dropout"] == (0.0, 0.3)
    assert a.baseline == {"augmentation": False, "dropout": 0.0, "optimizer": "sgd"}
    assert len(a.main_effects) == 3 and len(a.interactions) == 3
    assert a.shapley.method == "exact" and a.variance is not None
    assert len(a.add_one_in) == len(a.leave_one_out) == len(a.cumulative) == 3
    assert len(a.configs) == 8 and a.best.levels == {"augmentation": True, "dropout": 0.3,
                                                     "optimizer": "adam"}
    assert set(a.curves) == set(a.factors) and len(a.curves["optimizer"]) == 2
    assert (a.counts.n_trials, a.counts.n_completed, a.counts.n_configs) == (24, 24, 8)
    assert a.notes == ()


def test_generalization_gap_attributed_per_technique(run):
    a = analyze(run.trials, run.epochs, run.spec, n_boot=200)
    gap = {e.factor: e for e in a.gap}
    assert gap["augmentation"].estimate.metric == "gap"
    assert gap["augmentation"].estimate.value == pytest.approx(-0.04, abs=0.004)
    assert gap["dropout"].estimate.value == pytest.approx(-0.03, abs=0.004)
    assert gap["dropout"].estimate.significant
    assert gap["optimizer"].estimate.ci_low < 0 < gap["optimizer"].estimate.ci_high


def test_loss_metric_uses_min_mode(run):
    a = analyze(run.trials, run.epochs, run.spec, metric="val_loss", n_boot=100)
    assert a.mode == "min"
    assert a.main_effects[0].estimate.value == pytest.approx(-0.04, abs=0.004)
    assert a.best.levels == {"augmentation": True, "dropout": 0.3, "optimizer": "adam"}
    assert a.configs[0].mean < a.configs[-1].mean


def test_train_metrics_selectable(run):
    a = analyze(run.trials, run.epochs, run.spec, metric="train_acc", n_boot=100)
    # train_acc = val_acc + gap: augmentation's effect on it is 0.04 - 0.04
    assert a.main_effects[0].estimate.value == pytest.approx(0.0, abs=0.004)
    with pytest.raises(ValueError, match="unknown metric 'test_loss'"):
        analyze(run.trials, run.epochs, run.spec, metric="test_loss")


def test_fractional_run():
    factors = {n: [False, True] for n in "ABCDE"}
    value = additive(0.7, {n: {True: 0.01 * (i + 1)} for i, n in enumerate("ABCDE")},
                     {("A", "B"): {(True, True): 0.02}})
    run = synthetic_run(factors, value=value, design="fractional", resolution=5, seeds=2)
    a = analyze(run.trials, run.epochs, run.spec, n_boot=100)
    assert len(a.configs) == 16 and a.shapley.method == "model"
    assert [p.estimate.value for p in a.shapley.parts] == pytest.approx(
        [0.02, 0.03, 0.03, 0.04, 0.05])
    assert [e.estimate.value for e in a.main_effects] == pytest.approx(
        [0.02, 0.03, 0.03, 0.04, 0.05])
    assert a.interactions == () and a.variance is None


def test_parquet_round_trip_gives_the_same_analysis(run, tmp_path):
    run.trials.to_parquet(tmp_path / "trials.parquet")
    run.epochs.to_parquet(tmp_path / "epochs.parquet")
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    epochs = pd.read_parquet(tmp_path / "epochs.parquet")
    a = analyze(trials, epochs, run.spec, n_boot=100)
    b = analyze(run.trials, run.epochs, run.spec, n_boot=100)
    assert a.main_effects == b.main_effects and a.shapley == b.shapley


def test_learning_curve_bands(run):
    std = learning_curves(run.epochs, run.trials, "optimizer", spec=run.spec)
    assert [c.level for c in std] == ["sgd", "adam"]
    assert all(c.low[0] < c.mean[0] < c.high[0] for c in std)
    pct = learning_curves(run.epochs, run.trials, "dropout", band="percentile")
    assert pct[0].band == "percentile" and pct[0].low[0] < pct[0].high[0]
    with pytest.raises(ValueError, match="unknown band"):
        learning_curves(run.epochs, run.trials, "dropout", band="iqr")


def test_bad_inputs_are_named(run):
    t, e, spec = run.trials, run.epochs, run.spec
    with pytest.raises(ValueError, match="'dropout' has value 0.5"):
        prepare(t.assign(dropout=np.where(t.dropout > 0, 0.5, 0.0)), e, spec)
    with pytest.raises(ValueError, match="no column for factor"):
        prepare(t.drop(columns="optimizer"), e, spec)
    with pytest.raises(ValueError, match="same factor levels and seed"):
        prepare(t.assign(seed=0), e, spec)
    with pytest.raises(ValueError, match="not in trials"):
        prepare(t.iloc[1:], e, spec)
    with pytest.raises(ValueError, match="not one of its levels"):
        prepare(t, e, {**spec, "baseline": {"optimizer": "lbfgs"}})


def test_importing_needs_no_framework():
    code = ("import sys, gridrun.analysis, gridrun.analysis.testing; "
            "bad = [m for m in ('ray', 'torch', 'tensorflow', 'statsmodels') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
