"""Main effects and interactions recover the truth a synthetic run was built from."""

import math

import pytest

from gridrun.analysis import analyze, interactions, main_effects
from gridrun.analysis.testing import additive, synthetic_run

FACTORS = {"augmentation": [False, True], "dropout": [0.0, 0.25, 0.5],
           "optimizer": ["sgd", "adam", "rmsprop"]}
MAIN = {"augmentation": {True: 0.04}, "dropout": {0.25: 0.01, 0.5: -0.02},
        "optimizer": {"adam": 0.03, "rmsprop": 0.015}}
PAIRS = {("augmentation", "dropout"): {(True, 0.5): 0.03},
         ("dropout", "optimizer"): {(0.25, "adam"): -0.01}}
VALUE = additive(0.80, MAIN, PAIRS)


def truth_main(factor, level):
    """Marginal (over the other factors, uniformly) difference to the baseline level."""
    run = synthetic_run(FACTORS, value=VALUE, seeds=1)
    grid = run.grid()
    i = grid.factors.index(factor)
    others = [c for c in grid.configs if c[i] == grid.baseline[i]]
    diffs = []
    for c in others:
        lv = grid.named(c)
        diffs.append(VALUE({**lv, factor: level}) - VALUE(lv))
    return sum(diffs) / len(diffs)


def test_noise_free_run_gives_exact_marginal_effects():
    grid = synthetic_run(FACTORS, value=VALUE, seeds=2).grid()
    rows = main_effects(grid, n_boot=0)
    assert [(r.factor, r.level, r.reference) for r in rows] == [
        ("augmentation", True, False), ("dropout", 0.25, 0.0), ("dropout", 0.5, 0.0),
        ("optimizer", "adam", "sgd"), ("optimizer", "rmsprop", "sgd")]
    for r in rows:
        assert r.estimate.value == pytest.approx(truth_main(r.factor, r.level), abs=1e-12)
    # augmentation: +0.04, plus the (True, 0.5) interaction averaged over 3 dropout levels
    assert rows[0].estimate.value == pytest.approx(0.04 + 0.03 / 3)
    assert rows[0].estimate.n_seeds == 2 and rows[0].estimate.n_trials == 36


def test_blocking_on_seed_removes_shared_seed_noise():
    # A seed offset shared by every trial of a seed cancels inside each seed's difference.
    run = synthetic_run(FACTORS, value=VALUE, seeds=4, seed_noise=0.05, seed=1)
    rows = main_effects(run.grid(), n_boot=200)
    for r in rows:
        assert r.estimate.value == pytest.approx(truth_main(r.factor, r.level), abs=1e-12)


def test_noisy_run_recovers_effects_within_their_intervals():
    run = synthetic_run(FACTORS, value=VALUE, seeds=8, noise=0.004, seed=2)
    rows = main_effects(run.grid(), n_boot=500)
    for r in rows:
        e = r.estimate
        assert e.ci_low < truth_main(r.factor, r.level) < e.ci_high
        assert e.value == pytest.approx(truth_main(r.factor, r.level), abs=0.004)
    sig = {(r.factor, r.level): r.estimate.significant for r in rows}
    assert sig[("augmentation", True)] and sig[("optimizer", "adam")]
    assert all(r.estimate.p_holm >= r.estimate.p_value for r in rows)


def test_interactions_recovered_and_ranked_by_magnitude():
    run = synthetic_run(FACTORS, value=VALUE, seeds=3, noise=0.001, seed=3)
    rows = interactions(run.grid(), n_boot=200)
    assert len(rows) == 1 * 2 + 1 * 2 + 2 * 2  # (levels-1) products over the three pairs
    top = rows[0]
    assert (top.factors, top.levels, top.references) == (
        ("augmentation", "dropout"), (True, 0.5), (False, 0.0))
    assert top.estimate.value == pytest.approx(0.03, abs=0.003)
    second = rows[1]
    assert (second.factors, second.levels) == (("dropout", "optimizer"), (0.25, "adam"))
    assert second.estimate.value == pytest.approx(-0.01, abs=0.003)
    mags = [abs(r.estimate.value) for r in rows]
    assert mags == sorted(mags, reverse=True)
    for r in rows[2:]:
        assert r.estimate.ci_low < 0 < r.estimate.ci_high or abs(r.estimate.value) < 0.003


def test_one_seed_gives_nan_intervals_not_an_error():
    run = synthetic_run(FACTORS, value=VALUE, seeds=1)
    a = analyze(run.trials, run.epochs, run.spec, n_boot=100)
    e = a.main_effects[0].estimate
    assert e.value == pytest.approx(0.05)
    assert math.isnan(e.ci_low) and math.isnan(e.boot_high) and math.isnan(e.p_value)
    assert not e.significant and "1 seed" in e.note
    assert any("One seed" in n for n in a.notes)
    assert all(math.isnan(r.estimate.ci_low) for r in a.interactions)
    assert math.isnan(a.shapley.total.ci_low)


def test_errored_trials_are_excluded_and_counted():
    # Two errored trials carry a garbage val_acc of -1; the estimates must not see it.
    bad = {(True, 0.5, "adam", 0), (False, 0.0, "sgd", 1)}

    def error(lv, seed):
        return (lv["augmentation"], lv["dropout"], lv["optimizer"], seed) in bad

    run = synthetic_run(FACTORS, value=VALUE, seeds=3, error=error)
    a = analyze(run.trials, run.epochs, run.spec, n_boot=100)
    assert a.counts.n_error == 2
    assert [t for t, _ in a.counts.errors] == list(
        run.trials.loc[run.trials.status == "error", "trial_id"])
    assert any("2 errored" in n for n in a.notes)
    # Noise-free: leaving the errored trials out must not move any estimate.
    for r in a.main_effects:
        assert r.estimate.value == pytest.approx(truth_main(r.factor, r.level), abs=1e-12)
    aug = a.main_effects[0].estimate
    assert aug.n_error == 2 and aug.n_short == 0
    assert aug.n_trials == 54 - 2 - 2  # each errored trial also takes its partner out
    assert a.survival.n_error == 2 and a.survival.n_trials == 52
    base = next(c for c in a.configs
                if c.levels == {"augmentation": False, "dropout": 0.0, "optimizer": "sgd"})
    assert base.n_error == 1 and base.n_seeds == 2


def test_main_effects_refuse_one_at_a_time_designs():
    run = synthetic_run(FACTORS, value=VALUE, design="add_one_in")
    with pytest.raises(ValueError, match="full or fractional"):
        main_effects(run.grid())
