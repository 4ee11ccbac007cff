"""The worked example from the design brief, reproduced exactly."""

import pytest

from gridrun.analysis import add_one_in, analyze, leave_one_out, main_effects, shapley
from gridrun.analysis.testing import synthetic_run

# Cell accuracies of three two-level techniques; baseline all off, target all on.
CELLS = {(False, False, False): 80.0, (True, False, False): 83.0, (False, True, False): 85.0,
         (False, False, True): 82.0, (True, True, False): 91.0, (True, False, True): 84.0,
         (False, True, True): 86.0, (True, True, True): 91.5}
FACTORS = {"A": [False, True], "B": [False, True], "C": [False, True]}


@pytest.fixture(params=[1, 3], ids=["1seed", "3seeds"])
def grid(request):
    return synthetic_run(FACTORS, value=CELLS, seeds=request.param).grid()


def values(rows):
    return {r.factor: r.estimate.value for r in rows}


def test_shapley_parts_and_sum(grid):
    s = shapley(grid)
    assert s.method == "exact"
    assert values(s.parts) == pytest.approx({"A": 4.1667, "B": 6.1667, "C": 1.1667}, abs=1e-4)
    assert s.total.value == pytest.approx(11.5, abs=1e-12)
    assert sum(p.estimate.value for p in s.parts) == pytest.approx(s.total.value, abs=1e-12)
    assert sum(p.share for p in s.parts) == pytest.approx(1.0)
    assert (s.baseline_mean, s.target_mean) == pytest.approx((80.0, 91.5))


def test_leave_one_out(grid):
    assert values(leave_one_out(grid)) == pytest.approx({"A": 5.5, "B": 7.5, "C": 0.5},
                                                        abs=1e-4)


def test_add_one_in(grid):
    assert values(add_one_in(grid)) == pytest.approx({"A": 3.0, "B": 5.0, "C": 2.0}, abs=1e-4)


def test_main_effects(grid):
    rows = main_effects(grid)
    assert values(rows) == pytest.approx({"A": 4.125, "B": 6.125, "C": 1.125}, abs=1e-4)
    a = rows[0]
    assert (a.mean, a.reference_mean) == pytest.approx((87.375, 83.25))


def test_analyze_carries_all_tables():
    run = synthetic_run(FACTORS, value=CELLS, seeds=2)
    a = analyze(run.trials, run.epochs, run.spec, n_boot=100)
    assert values(a.shapley.parts) == pytest.approx({"A": 25 / 6, "B": 37 / 6, "C": 7 / 6})
    assert [r.factor for r in a.cumulative] == ["A", "B", "C"]
    assert [r.estimate.value for r in a.cumulative] == pytest.approx([3.0, 8.0, 0.5])
    assert a.best.levels == {"A": True, "B": True, "C": True}
    assert a.budgets == (6,)
