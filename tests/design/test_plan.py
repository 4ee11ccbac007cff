import pytest

from gridrun import ASHA, Ablation, Factor
from gridrun.design.plan import asha_expected_epochs, asha_rungs, design_table, plan_text


@pytest.mark.parametrize("max_t,g,eta,rungs,expected", [
    (9, 1, 3, [1, 3], 1 + 2 / 3 + 6 / 9),
    (12, 3, 2, [3, 6], 3 + 3 / 2 + 6 / 4),
    (30, 5, 3, [5, 15], 5 + 10 / 3 + 15 / 9),
    (5, 5, 3, [], 5.0),  # grace == max: nothing is ever stopped
])
def test_asha_expected_epochs(max_t, g, eta, rungs, expected):
    assert asha_rungs(max_t, g, eta) == rungs
    assert asha_expected_epochs(max_t, g, eta) == pytest.approx(expected)


def spec(**kw):
    args = dict(name="p", dataset="digits", seeds=3, fixed={"epochs": 12},
                scheduler=ASHA(grace_period=3, reduction_factor=2),
                factors=[Factor(n, [False, True]) for n in ("augmentation", "batchnorm")]
                + [Factor("dropout", [0.0, 0.5]), Factor("optimizer", ["sgd", "adam"]),
                   Factor("backbone", ["simple_cnn", "resnet20"])])
    args.update(kw)
    return Ablation(**args)


def test_design_table_counts_and_compute():
    rows = {r["design"]: r for r in design_table(spec(), {"simple_cnn": 1.0, "resnet20": 3.0})}
    full = rows["full (spec)"]
    assert (full["configurations"], full["trials"], full["trial_epochs"]) == (32, 96, 1152)
    # half the configurations use each backbone: 16 * 3 seeds * 12 epochs * (1 + 3) s
    assert full["hours"] == pytest.approx(16 * 3 * 12 * 4 / 3600)
    # 5 two-level factors: 17 anchors (the 16-cell resolution V fraction E=-ABCD and the
    # all-target cell) run 12 epochs, over the budget of half the grid's 32 * 12 already, so
    # the other 15 cells stop at their first rung (epoch 3) and the best is confirmed
    per_seed = 17 * 12 + 15 * 3 + 1 * (12 - 3)
    assert full["trial_epochs_asha"] == pytest.approx(3 * per_seed)
    roomy = {r["design"]: r for r in design_table(spec(scheduler=ASHA(
        grace_period=3, reduction_factor=2, budget=0.9)), {"simple_cnn": 1.0, "resnet20": 3.0})}
    # a budget of 90% holds the whole schedule: screened at rungs 3 and 6, a half each time
    assert roomy["full (spec)"]["trial_epochs_asha"] == pytest.approx(
        3 * (17 * 12 + 15 * 3 + 15 / 2 * 3 + 15 / 4 * 6))
    assert full["hours_asha"] == pytest.approx(full["hours"] * per_seed / (32 * 12))
    assert rows["add_one_in"]["configurations"] == 6
    assert rows["fractional res III"]["configurations"] == 8  # 2^(5-2)
    assert rows["fractional res V"]["configurations"] == 16  # 2^(5-1)


def test_plan_text_for_fractional_spec_prints_alias_structure():
    text = plan_text(spec(design="fractional", resolution=5), 2.0)
    assert "16 configurations x 3 seeds = 48 trials" in text
    assert "E=ABCD" in text or "backbone" in text.split("fractional")[-1]


def test_fixed_backbone_prices_every_point():
    a = spec(factors=[Factor("batchnorm", [False, True])], fixed={"epochs": 12,
                                                                   "backbone": "resnet20"})
    rows = design_table(a, {"simple_cnn": 1.0, "resnet20": 5.0})
    assert rows[0]["hours"] == pytest.approx(2 * 3 * 12 * 5.0 / 3600)


def test_calibrate_measures_each_backbone():
    pytest.importorskip("torch")
    from gridrun.run.calibrate import calibrate

    a = spec(factors=[Factor("backbone", ["simple_cnn", "vgg_small"])], seeds=1,
             train_size=200, fixed={"epochs": 4, "batch_size": 64})
    measured = calibrate(a, max_examples=100)
    assert set(measured) == {"simple_cnn", "vgg_small"}
    assert all(0 < v < 60 for v in measured.values())
