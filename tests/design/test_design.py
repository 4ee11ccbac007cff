import pytest

from gridrun import Ablation, Factor
from gridrun.design.grid import design_points, expand, resolve_config, trial_id


def ablation(**kw):
    args = dict(name="t", dataset="digits", seeds=2, factors=[
        Factor("augmentation", [False, True]), Factor("dropout", [0.0, 0.25, 0.5]),
        Factor("optimizer", ["sgd", "adam"])])
    args.update(kw)
    return Ablation(**args)


def test_full_factorial_times_seeds():
    trials = expand(ablation())
    assert len(trials) == 2 * 3 * 2 * 2
    assert len({t.trial_id for t in trials}) == len(trials)
    assert {t.seed for t in trials} == {0, 1}


def test_ids_are_stable_and_depend_on_config_and_seed():
    a, b = expand(ablation()), expand(ablation())
    assert [t.trial_id for t in a] == [t.trial_id for t in b]
    cfg = resolve_config({"dropout": 0.5}, {})
    assert trial_id(cfg, 0) != trial_id(cfg, 1)
    assert trial_id(cfg, 0) != trial_id(resolve_config({"dropout": 0.25}, {}), 0)
    # a changed fixed value is a different experiment
    c = expand(ablation(fixed={"epochs": 3}))
    assert a[0].trial_id != c[0].trial_id


def test_resolved_config_has_every_technique():
    t = expand(ablation(fixed={"batch_size": 32}))[0]
    assert t.config["batch_size"] == 32 and t.config["backbone"] == "simple_cnn"
    assert t.levels == {"augmentation": False, "dropout": 0.0, "optimizer": "sgd"}


def test_default_baseline_and_target():
    a = ablation()
    assert a.baseline == {"augmentation": False, "dropout": 0.0, "optimizer": "sgd"}
    assert a.target == {"augmentation": True, "dropout": 0.5, "optimizer": "adam"}


def test_add_one_in_points():
    pts = design_points(ablation(design="add_one_in"))
    assert pts == [
        {"augmentation": False, "dropout": 0.0, "optimizer": "sgd"},
        {"augmentation": True, "dropout": 0.0, "optimizer": "sgd"},
        {"augmentation": False, "dropout": 0.5, "optimizer": "sgd"},
        {"augmentation": False, "dropout": 0.0, "optimizer": "adam"},
    ]


def test_leave_one_out_points_with_given_target():
    pts = design_points(ablation(design="leave_one_out", target={"dropout": 0.25}))
    assert pts[0] == {"augmentation": True, "dropout": 0.25, "optimizer": "adam"}
    assert pts[2] == {"augmentation": True, "dropout": 0.0, "optimizer": "adam"}
    assert len(pts) == 4


def test_cumulative_path_in_order():
    pts = design_points(ablation(design="cumulative", order=["optimizer", "augmentation",
                                                              "dropout"]))
    assert [p["optimizer"] for p in pts] == ["sgd", "adam", "adam", "adam"]
    assert [p["augmentation"] for p in pts] == [False, False, True, True]
    assert [p["dropout"] for p in pts] == [0.0, 0.0, 0.0, 0.5]


def test_cumulative_order_must_name_factors():
    with pytest.raises(ValueError, match="order: 'optimiser' is not a factor"):
        ablation(design="cumulative", order=["optimiser"])


def test_one_at_a_time_needs_distinct_target():
    with pytest.raises(ValueError, match="same baseline and target level"):
        ablation(design="add_one_in", target={"optimizer": "sgd"})


def test_fractional_takes_factors_of_any_levels():
    # 2 x 3 x 2 has no smaller resolution III array than the grid: the full 12 cells
    assert len(design_points(ablation(design="fractional", resolution=3))) == 12
    three = [Factor(n, lv) for n, lv in (("dropout", [0.0, 0.25, 0.5]),
                                         ("optimizer", ["sgd", "adam", "rmsprop"]),
                                         ("lr_schedule", ["constant", "step", "cosine"]))]
    pts = design_points(ablation(design="fractional", resolution=3, factors=three,
                                 baseline={"optimizer": "adam"}))
    assert len(pts) == 9  # a Latin square: every pair of factors meets each pair of levels once
    for a, b in (("dropout", "optimizer"), ("dropout", "lr_schedule"),
                 ("optimizer", "lr_schedule")):
        assert len({(p[a], p[b]) for p in pts}) == 9
    assert {"dropout": 0.0, "optimizer": "adam", "lr_schedule": "constant"} in pts


def test_fractional_needs_two_factors():
    with pytest.raises(ValueError, match="design 'fractional' needs 2 or more factors, got 1"):
        Ablation(name="f", dataset="digits", factors=[Factor("batchnorm", [False, True])],
                 design="fractional", resolution=3)


def test_fractional_points_follow_the_plan():
    a = Ablation(name="f", dataset="digits", design="fractional", resolution=3, seeds=1,
                 factors=[Factor("augmentation", [False, True]),
                          Factor("batchnorm", [False, True]),
                          Factor("optimizer", ["sgd", "adam"])])
    pts = design_points(a)
    assert len(pts) == 4  # 2^(3-1) with C = AB
    for p in pts:  # optimizer is "on" exactly when augmentation and batchnorm agree
        assert (p["optimizer"] == "adam") == (p["augmentation"] == p["batchnorm"])
