"""Add-one-in, leave-one-out and cumulative deltas, on their own designs and inside a full
factorial."""

import pytest

from gridrun.analysis import add_one_in, analyze, cumulative, leave_one_out
from gridrun.analysis.testing import additive, synthetic_run

FACTORS = {"augmentation": [False, True], "batchnorm": [False, True],
           "optimizer": ["sgd", "adam", "rmsprop"]}
VALUE = additive(0.70, {"augmentation": {True: 0.05}, "batchnorm": {True: 0.02},
                        "optimizer": {"adam": 0.03, "rmsprop": 0.01}},
                 {("augmentation", "batchnorm"): {(True, True): 0.04}})
TARGET = {"optimizer": "adam"}


def deltas(rows):
    return {r.factor: r.estimate.value for r in rows}


@pytest.mark.parametrize("design", ["add_one_in", "full"])
def test_add_one_in(design):
    run = synthetic_run(FACTORS, value=VALUE, design=design, target=TARGET, seeds=3)
    rows = add_one_in(run.grid(), n_boot=100)
    assert deltas(rows) == pytest.approx({"augmentation": 0.05, "batchnorm": 0.02,
                                          "optimizer": 0.03})
    aug = rows[0]
    assert (aug.kind, aug.level, aug.reference) == ("add_one_in", True, False)
    assert (aug.mean, aug.reference_mean) == pytest.approx((0.75, 0.70))
    assert aug.estimate.n_trials == 6 and aug.estimate.budget == 6


@pytest.mark.parametrize("design", ["leave_one_out", "full"])
def test_leave_one_out(design):
    run = synthetic_run(FACTORS, value=VALUE, design=design, target=TARGET, seeds=3)
    assert deltas(leave_one_out(run.grid(), n_boot=100)) == pytest.approx(
        {"augmentation": 0.09, "batchnorm": 0.06, "optimizer": 0.03})


@pytest.mark.parametrize("design", ["cumulative", "full"])
def test_cumulative_path_in_the_given_order(design):
    order = ["batchnorm", "optimizer", "augmentation"]
    run = synthetic_run(FACTORS, value=VALUE, design=design, target=TARGET, order=order,
                        seeds=3, noise=0.002, seed=1)
    rows = cumulative(run.grid(), order=order, n_boot=200)
    assert [r.factor for r in rows] == order
    assert [r.kind for r in rows] == ["cumulative"] * 3
    assert rows[-1].config == {"augmentation": True, "batchnorm": True, "optimizer": "adam"}
    for r, true in zip(rows, [0.02, 0.03, 0.09]):
        assert r.estimate.ci_low < true < r.estimate.ci_high
    # consecutive rows chain: each row's "before" is the previous row's "after"
    assert rows[1].reference_mean == pytest.approx(rows[0].mean)


def test_spec_order_is_the_default_and_missing_steps_end_the_path():
    run = synthetic_run(FACTORS, value=VALUE, design="cumulative", target=TARGET,
                        order=["optimizer", "augmentation", "batchnorm"])
    assert [r.factor for r in cumulative(run.grid())] == ["optimizer", "augmentation",
                                                          "batchnorm"]
    # in another order the second configuration was never run
    assert [r.factor for r in cumulative(run.grid(), order=["augmentation"])] == []
    with pytest.raises(ValueError, match="not factors"):
        cumulative(run.grid(), order=["mixup"])


def test_one_at_a_time_designs_in_analyze():
    run = synthetic_run(FACTORS, value=VALUE, design="add_one_in", target=TARGET, seeds=2)
    a = analyze(run.trials, run.epochs, run.spec, n_boot=100)
    assert deltas(a.add_one_in) == pytest.approx({"augmentation": 0.05, "batchnorm": 0.02,
                                                  "optimizer": 0.03})
    assert a.main_effects == () and a.interactions == () and a.variance is None
    assert a.leave_one_out == () and a.cumulative == () and a.shapley is None
    assert [r.kind for r in a.gap] == ["add_one_in"] * 3
    assert len(a.configs) == 4
