"""ANOVA shares agree with statsmodels on a balanced full factorial."""

import numpy as np
import pandas as pd
import pytest

from gridrun.analysis import variance_shares
from gridrun.analysis.testing import additive, synthetic_run

FACTORS = {"augmentation": [False, True], "dropout": [0.0, 0.25, 0.5],
           "optimizer": ["sgd", "adam", "rmsprop"]}
VALUE = additive(0.8, {"augmentation": {True: 0.03}, "dropout": {0.5: -0.02},
                       "optimizer": {"adam": 0.02}},
                 {("augmentation", "optimizer"): {(True, "adam"): 0.015}})


@pytest.fixture(scope="module")
def run():
    return synthetic_run(FACTORS, value=VALUE, seeds=4, noise=0.01, seed_noise=0.005, seed=7)


@pytest.mark.parametrize("typ", [1, 2])
def test_matches_statsmodels_anova_lm(run, typ):
    smf = pytest.importorskip("statsmodels.formula.api")
    anova_lm = pytest.importorskip("statsmodels.stats.anova").anova_lm
    ours = variance_shares(run.grid())
    df = run.trials[["augmentation", "dropout", "optimizer"]].copy()
    df["y"] = run.epochs.groupby("trial_id")["val_acc"].last().loc[run.trials.trial_id].values
    df["augmentation"] = df["augmentation"].astype(str)
    fit = smf.ols("y ~ (C(augmentation) + C(dropout) + C(optimizer)) ** 2", data=df).fit()
    table = anova_lm(fit, typ=typ)
    total = ((df.y - df.y.mean()) ** 2).sum()
    names = {("augmentation",): "C(augmentation)", ("dropout",): "C(dropout)",
             ("optimizer",): "C(optimizer)",
             ("augmentation", "dropout"): "C(augmentation):C(dropout)",
             ("augmentation", "optimizer"): "C(augmentation):C(optimizer)",
             ("dropout", "optimizer"): "C(dropout):C(optimizer)"}
    assert [t.term for t in ours.terms] == list(names)
    for t in ours.terms:
        row = table.loc[names[t.term]]
        assert t.ss == pytest.approx(row["sum_sq"], abs=1e-6)
        assert t.share == pytest.approx(row["sum_sq"] / total, abs=1e-6)
        assert t.df == row["df"]
        assert t.f_value == pytest.approx(row["F"], rel=1e-6)
        assert t.p_value == pytest.approx(row["PR(>F)"], rel=1e-6, abs=1e-12)
    res = table.loc["Residual"]
    assert ours.residual.ss == pytest.approx(res["sum_sq"], abs=1e-6)
    assert ours.residual.df == res["df"]
    assert ours.total_ss == pytest.approx(total, abs=1e-9)
    assert sum(t.share for t in ours.terms) + ours.residual.share == pytest.approx(1.0)


def test_shares_rank_the_factors_by_what_they_do(run):
    shares = {t.term: t.share for t in variance_shares(run.grid()).terms}
    assert shares[("augmentation",)] > shares[("dropout",)]
    assert shares[("augmentation", "optimizer")] > shares[("augmentation", "dropout")]


def test_incomplete_seed_is_left_out_and_counted():
    run = synthetic_run(FACTORS, value=VALUE, seeds=3, noise=0.01,
                        error=lambda lv, s: s == 2 and lv["dropout"] == 0.5
                        and lv["optimizer"] == "sgd" and not lv["augmentation"])
    v = variance_shares(run.grid())
    assert v.n_seeds == 2 and v.n_trials == 36 and v.n_error == 1
    assert "1 seed(s) left out" in v.note


def test_not_a_full_factorial():
    run = synthetic_run(FACTORS, value=VALUE, design="leave_one_out")
    assert variance_shares(run.grid()) is None


def test_pandas_frame_is_unchanged(run):
    before = run.trials.copy()
    variance_shares(run.grid())
    pd.testing.assert_frame_equal(run.trials, before)
    assert np.isfinite(run.epochs.val_acc).all()


def test_survivors_only_budget_analyses_configuration_means():
    # Each seed lost the trials of one dropout level at epoch 2: no seed is complete at 6.
    run = synthetic_run(FACTORS, value=VALUE, seeds=3, noise=0.01, seed=5,
                        stop=lambda lv, s: 2 if s == FACTORS["dropout"].index(lv["dropout"])
                        else 6)
    assert variance_shares(run.grid()).budget == 2
    v = variance_shares(run.grid(), budget=6)
    assert (v.budget, v.n_trials, v.n_short, v.n_seeds) == (6, 36, 18, 3)
    assert "configuration means" in v.note
    final = run.epochs[run.epochs.epoch == 6].merge(run.trials, on="trial_id")
    means = final.groupby(list(FACTORS))["val_acc"].mean()
    assert v.total_ss == pytest.approx(((means - means.mean()) ** 2).sum())
    assert sum(t.share for t in v.terms) + v.residual.share == pytest.approx(1.0)
