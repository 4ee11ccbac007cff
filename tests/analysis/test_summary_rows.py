"""Summaries of one configuration at a chosen epoch: what an ablation table row shows."""

import pytest

from gridrun.analysis import analyze, config_summary
from gridrun.analysis.testing import synthetic_run

FACTORS = {"A": [False, True], "B": [False, True]}


def value(lv):
    return 0.80 + 0.04 * lv["A"] + 0.02 * lv["B"]


@pytest.fixture(scope="module")
def run():
    # (A) stops at epoch 2 in seed 1: its comparisons, and nothing else, are at epoch 2.
    return synthetic_run(FACTORS, value=value, slow=lambda lv: 0.01 + 0.01 * lv["B"],
                         stop=lambda lv, s: 2 if (lv["A"], lv["B"], s) == (True, False, 1)
                         else 6, seeds=3)


def test_config_summary_at_a_budget(run):
    g = run.grid()
    s = config_summary(g, {"A": False, "B": True}, budget=3)
    assert (s.budget, s.n_seeds, s.n_short) == (3, 3, 0)
    assert s.mean == pytest.approx(run.truth({"A": False, "B": True}, 3))
    own = config_summary(g, {"A": True, "B": False})  # its own last common epoch
    assert (own.budget, own.mean) == (2, pytest.approx(run.truth({"A": True, "B": False}, 2)))
    late = config_summary(g, {"A": True, "B": False}, budget=6)  # survivors only
    assert (late.n_seeds, late.n_short) == (2, 1)
    with pytest.raises(ValueError, match="not a level of A"):
        config_summary(g, {"A": "yes", "B": True})
    with pytest.raises(ValueError, match="every factor"):
        config_summary(g, {"A": True})


def test_effects_carry_their_row_at_their_budget(run):
    a = analyze(run.trials, run.epochs, run.spec, n_boot=50)
    assert a.configs[0].budget == 2  # the table-wide common budget
    for e in a.add_one_in + a.leave_one_out + a.cumulative:
        assert e.summary.budget == e.estimate.budget, e
        assert e.summary.mean == pytest.approx(run.truth(e.summary.levels, e.summary.budget))
    budgets = {e.factor: e.estimate.budget for e in a.add_one_in}
    assert budgets == {"A": 2, "B": 6}
    lo = {e.factor: e.summary.levels for e in a.leave_one_out}
    assert lo == {"A": {"A": False, "B": True}, "B": {"A": True, "B": False}}
    assert (a.baseline_summary.budget, a.target_summary.budget) == (6, 6)
    assert a.baseline_summary.levels == {"A": False, "B": False}
