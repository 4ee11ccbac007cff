from pathlib import Path

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


def _asha_row(text: str) -> tuple[int, str]:
    row = next(ln for ln in text.splitlines() if ln.startswith("| full (spec)"))
    epochs, share = row.split("|")[-2].split()
    return float(epochs), share


def test_the_standard_grid_is_screened_within_half_its_epochs():
    from gridrun import load_spec

    a = load_spec(Path(__file__).resolve().parents[2] / "ablations" / "standard.py")
    text = plan_text(a, show_trials=False)
    assert "the 216-cell 2^(4-1) × 3^(4-1) resolution IV fraction" in text
    epochs, share = _asha_row(text)
    assert epochs <= 0.5 * 1296 * 3 * 30 and share == f"({epochs / (1296 * 3 * 30):.0%})"


THREE = [Factor("dropout", [0.0, 0.25, 0.5]), Factor("optimizer", ["sgd", "adam", "rmsprop"]),
         Factor("backbone", ["simple_cnn", "resnet20", "vgg_small"])]


def test_a_grid_without_a_smaller_resolution_iv_fraction_says_what_iii_would_cost():
    two = [Factor("augmentation", [False, True]), Factor("batchnorm", [False, True])]
    a = spec(factors=two + THREE, fixed={"epochs": 30},
             scheduler=ASHA(grace_period=5, reduction_factor=3))
    text = plan_text(a, show_trials=False)
    assert ("ASHA stops nothing here, so every cell runs every epoch (scheduler=None does the "
            "same): no resolution IV fraction of 2 two-level and 3 three-level factors is "
            "smaller than the grid's 108 cells. ASHA(resolution=3) would anchor 37 cells") in text
    assert "dropout with optimizer×backbone" in text
    assert _asha_row(text)[0] == 108 * 3 * 30  # nothing is stopped
    chosen = plan_text(spec(factors=two + THREE, fixed={"epochs": 30}, scheduler=ASHA(
        grace_period=5, reduction_factor=3, resolution=3)), show_trials=False)
    assert "the 36-cell 3^(3-1) resolution III fraction" in chosen
    assert "its main effects share contrasts with two-factor interactions" in chosen
    assert _asha_row(chosen)[0] <= 0.5 * 108 * 3 * 30


@pytest.mark.parametrize("k", [12, 16])
def test_large_two_level_grids_get_anchors_and_whole_numbers(k):
    names = ["augmentation", "batchnorm", "crop", "flip", "global_pool", "shuffle",
             "lr_staircase", "dropout", "label_smoothing", "weight_decay", "l1", "mixup",
             "erasing", "rotation", "zoom", "shear"][:k]
    on = {"dropout": 0.3, "label_smoothing": 0.1, "weight_decay": 5e-4, "l1": 1e-5,
          "mixup": 0.2, "erasing": 0.25, "rotation": 15.0, "zoom": 0.1, "shear": 10.0}
    factors = [Factor(n, [0.0, on[n]] if n in on else [False, True]) for n in names]
    text = plan_text(spec(factors=factors, fixed={"epochs": 8}, seeds=3,
                          scheduler=ASHA(grace_period=1, reduction_factor=3)), show_trials=False)
    assert "ASHA stops nothing" not in text
    assert f"2^({k}-" in text.split("the effects come from them): ")[1].split(";")[0]
    epochs, _ = _asha_row(text)
    assert epochs <= 0.5 * 2 ** k * 3 * 8
    assert "e+0" not in text  # whole numbers, not 1.76947e+06


def test_a_mixed_fractional_design_prints_its_array_strength_and_aliases():
    a = spec(factors=[Factor("augmentation", [False, True])] + THREE
             + [Factor("lr_schedule", ["constant", "step", "cosine"])], design="fractional",
             resolution=4, scheduler=None)
    text = plan_text(a, show_trials=False)
    assert "54 configurations x 3 seeds = 162 trials" in text
    assert "2^1 × 3^(4-1): 54 of 162 cells, strength 3 (resolution IV)" in text
    assert "generators: lr_schedule=dropout+optimizer+backbone (mod 3)" in text
    assert "  dropout = optimizer×backbone×lr_schedule" in text  # a 3FI alias, no 2FI one
    assert "  augmentation (clear)" in text
