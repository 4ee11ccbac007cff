"""ASHA-aware budgets: numbers are at an epoch every compared trial reached, and say so."""

import pytest

from gridrun.analysis import (add_one_in, analyze, config_summaries, learning_curves,
                              main_effects, survival)
from gridrun.analysis.testing import synthetic_run

FACTORS = {"dropout": [False, True], "optimizer": ["sgd", "adam"]}
ASHA = {"type": "asha", "grace_period": 2, "reduction_factor": 3}


def slow_regularizer_run():
    """dropout ends +0.03 ahead at epoch 6 but learns slower, so it is 0.03 behind at epoch
    2; ASHA stopped the dropout trials of seeds 0 and 1 at epoch 2."""
    return synthetic_run(
        FACTORS, value=lambda lv: 0.80 + 0.03 * lv["dropout"],
        slow=lambda lv: 0.02 if lv["dropout"] else 0.005, seeds=4, epochs=6,
        stop=lambda lv, seed: 2 if lv["dropout"] and seed < 2 else 6, scheduler=ASHA)


@pytest.fixture(scope="module")
def run():
    return slow_regularizer_run()


def test_truth_of_the_setup(run):
    on, off = {"dropout": True, "optimizer": "sgd"}, {"dropout": False, "optimizer": "sgd"}
    assert run.truth(on, 2) - run.truth(off, 2) == pytest.approx(-0.03)
    assert run.truth(on) - run.truth(off) == pytest.approx(0.03)


def test_default_budget_is_the_epoch_all_compared_trials_reached(run):
    dropout, optimizer = main_effects(run.grid(), n_boot=100)
    e = dropout.estimate
    assert e.budget == 2
    assert e.value == pytest.approx(-0.03)  # reported where it was measured: it loses here
    assert (e.n_seeds, e.n_trials, e.n_short, e.survivors_only) == (4, 16, 0, False)
    assert optimizer.estimate.budget == 2  # its cells hold stopped trials too


def test_comparisons_without_stopped_trials_use_the_final_epoch(run):
    rows = {r.factor: r.estimate for r in add_one_in(run.grid(), n_boot=100)}
    assert rows["optimizer"].budget == 6  # (no dropout, adam) - (no dropout, sgd)
    assert rows["dropout"].budget == 2


def test_a_later_budget_is_survivors_only_and_says_so(run):
    dropout = main_effects(run.grid(), budget=6, n_boot=100)[0].estimate
    assert dropout.budget == 6
    assert dropout.value == pytest.approx(0.03)  # the survivors' answer
    assert dropout.survivors_only
    assert (dropout.n_seeds, dropout.n_trials, dropout.n_short) == (2, 8, 4)


def test_analyze_records_budgets_and_explains(run):
    a = analyze(run.trials, run.epochs, run.spec, n_boot=100)
    assert a.budget is None and a.budgets == (2, 6)
    assert any("budget=6" in n for n in a.notes)
    assert a.configs[0].budget == 2
    late = analyze(run.trials, run.epochs, run.spec, budget=6, n_boot=100)
    assert late.budgets == (6,)
    assert any("survivors" in n for n in late.notes)
    stopped = [c for c in late.configs if c.levels["dropout"]]
    assert all(c.n_short == 2 and c.n_seeds == 2 for c in stopped)
    assert late.counts.n_stopped_early == 4 and late.counts.n_completed == 12


def test_budget_must_be_an_epoch(run):
    for bad in (0, 7, 2.5, True):
        with pytest.raises(ValueError, match="budget must be an epoch from 1 to 6"):
            main_effects(run.grid(), budget=bad)


def test_survival_counts_per_level_and_rungs(run):
    s = survival(run.grid())
    assert s.rungs == (2, 6) and s.epochs == (1, 2, 3, 4, 5, 6)
    rows = {(r.factor, r.level): r.reached for r in s.rows}
    assert rows[("dropout", True)] == (8, 8, 4, 4, 4, 4)
    assert rows[("dropout", False)] == (8,) * 6
    assert rows[("optimizer", "sgd")] == (8, 8, 6, 6, 6, 6)
    assert s.total == (16, 16, 12, 12, 12, 12)


def test_learning_curves_count_survivors_per_epoch(run):
    curves = {c.level: c for c in learning_curves(run.epochs, run.trials, "dropout")}
    assert curves[True].n == (8, 8, 4, 4, 4, 4)
    assert curves[True].mean[1] == pytest.approx(run.truth({"dropout": True,
                                                            "optimizer": "sgd"}, 2))
    assert curves[False].mean[-1] == pytest.approx(0.80)


def test_config_summary_ranks_by_mode_at_common_budget(run):
    rows = config_summaries(run.grid())
    assert rows[0].levels["dropout"] is False  # at epoch 2 the regularizer is behind
    by_loss = config_summaries(run.grid("val_loss"))
    assert [r.levels for r in by_loss] == [r.levels for r in rows]  # lower loss is better
    assert by_loss[0].mean < by_loss[-1].mean
