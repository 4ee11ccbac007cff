"""Orthogonal arrays of any levels: the strength and aliases each array claims are recomputed
from its runs alone, every grid gets the smallest array its levels allow, and a planted
multi-level grid's effects come back exactly from its anchors."""

import itertools
import math

import numpy as np
import pytest

from gridrun.analysis import analyze
from gridrun.analysis.testing import additive, synthetic_run
from gridrun.design.arrays import mixed_fraction
from gridrun.design.schedule import anchors_for, cell_key

GRIDS = [  # (level counts, strength, runs the array must have)
    ([3, 3, 3, 3], 3, 27),
    ([3, 3, 3], 2, 9),
    ([3] * 5, 3, 81),
    ([3] * 5, 4, 81),
    ([5, 5, 5, 5], 3, 125),
    ([2, 3, 3, 3, 3], 3, 54),
    ([2, 2, 3, 3, 3, 3], 3, 108),
    ([2] * 4 + [3] * 4, 3, 216),
    ([2] * 6 + [3, 3], 3, 144),
    ([2, 2, 3, 3, 3], 2, 36),
    ([2, 2, 2, 2, 4, 4], 3, 128),  # four levels: crossed in full
    ([2] * 12, 3, 32),
    ([2] * 16, 3, 32),
    ([2] * 20, 3, 64),
    ([2] * 12, 4, 256),
    ([2] * 16, 4, 256),
]


@pytest.mark.parametrize("levels,strength,n_runs", GRIDS)
def test_each_array_has_the_strength_and_aliases_it_claims(levels, strength, n_runs):
    a = mixed_fraction(levels, strength)
    assert a.n_runs == len(a.runs) == n_runs
    assert len(set(a.runs)) == n_runs  # no cell twice
    assert a.strength >= strength
    assert a.measured_strength() == a.strength
    if len(levels) <= 12:  # every effect of up to 3 factors, checked from the runs
        assert a.measured_aliases() == a.aliases()
    for effect, others in a.aliases().items():  # strength t: no main effect aliased below t
        if len(effect) == 1:
            assert all(len(o) >= strength for o in others)


def test_the_smallest_strength_three_array_the_levels_allow():
    # a strength-3 array of 2^2 x 3^3 needs a multiple of lcm(2*2*3, 2*3*3, 3*3*3) = 108 runs:
    # the grid itself, so nothing is smaller
    assert mixed_fraction([2, 2, 3, 3, 3], 3).is_full
    # 2^4 x 3^2: lcm(8, 12, 18) = 72, and the array has 72
    assert mixed_fraction([2, 2, 2, 2, 3, 3], 3).n_runs == 72


def test_bad_levels_and_strengths_are_one_clear_error():
    with pytest.raises(ValueError, match="level counts >= 2"):
        mixed_fraction([2, 1], 3)
    with pytest.raises(ValueError, match="strength must be 2, 3 or 4"):
        mixed_fraction([2, 2, 2], 5)


@pytest.mark.parametrize("k,n_runs", [(12, 32), (16, 32), (20, 64)])
def test_large_two_level_grids_get_resolution_iv_anchors(k, n_runs):
    factors = {f"f{i}": [False, True] for i in range(k)}
    a = anchors_for(factors, {}, {}, resolution=4)
    assert not a.is_all and a.resolution >= 4
    assert len(a.fraction) == n_runs and a.n_cells == 2 ** k
    assert {f: False for f in factors} in a.fraction  # the baseline is in the fraction
    runs = np.array([[int(p[f]) for f in factors] for p in a.fraction])
    for cols in itertools.combinations(range(k), 3):  # strength 3, counted on the cells
        counts = np.unique(runs[:, cols], axis=0, return_counts=True)[1]
        assert len(counts) == 8 and counts.min() == counts.max() == n_runs // 8


MIXED = {"augmentation": [False, True], "optimizer": ["sgd", "adam", "rmsprop"],
         "dropout": [0.0, 0.25, 0.5], "batch_size": [64, 128, 256],
         "weight_decay": [0.0, 5e-4, 5e-3]}
# main effects per level and two-factor interactions, in accuracy units: a strength-3
# fraction estimates every main effect exactly whatever the two-factor interactions are
PLANTED = additive(
    0.85,
    main={"augmentation": {True: -0.02}, "optimizer": {"adam": 0.015, "rmsprop": -0.01},
          "dropout": {0.25: 0.004, 0.5: -0.006}, "batch_size": {64: 0.0, 128: -0.003,
                                                                   256: -0.009},
          "weight_decay": {5e-4: 0.002, 5e-3: -0.02}},
    pairs={("optimizer", "weight_decay"): {("adam", 5e-3): -0.03, ("rmsprop", 5e-4): 0.01},
           ("augmentation", "dropout"): {(True, 0.5): 0.012},
           ("dropout", "batch_size"): {(0.25, 256): -0.008, (0.5, 128): 0.005}})


def _true_main_effects():
    """Each level against the baseline level, averaged over every other factor's levels."""
    cells = [dict(zip(MIXED, c)) for c in itertools.product(*MIXED.values())]
    out = {}
    for f, levels in MIXED.items():
        for lv in levels[1:]:
            at = np.mean([PLANTED(c) for c in cells if c[f] == lv])
            base = np.mean([PLANTED(c) for c in cells if c[f] == levels[0]])
            out[f, lv] = at - base
    return out


def test_a_planted_multi_level_grid_is_recovered_exactly_from_its_anchors():
    anchors = anchors_for(MIXED, {}, {})
    assert anchors.name == "3^(4-1) resolution IV" and len(anchors.fraction) == 54
    keys = anchors.keys()
    run = synthetic_run(MIXED, value=PLANTED, seeds=3, epochs=8, seed_noise=0.01,
                        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 3,
                                   "resolution": 4, "confirm": 1},
                        slow=lambda lv: 0.004 * lv["augmentation"],
                        stop=lambda lv, s: 8 if cell_key(lv) in keys else 1)
    an = analyze(run.trials, run.epochs, run.spec, n_boot=200)
    assert an.basis.startswith("main effects and Shapley parts from the 54-cell 3^(4-1)")
    truth = _true_main_effects()
    got = {(e.factor, e.level): e.estimate.value for e in an.main_effects}
    assert set(got) == set(truth)  # one row per non-baseline level
    for key, value in truth.items():  # exact: seed offsets cancel, and strength 3 clears 2FIs
        assert got[key] == pytest.approx(value, abs=1e-9), key
    for e in an.main_effects:  # intervals and Holm marks on every level
        assert e.estimate.ci_low <= e.estimate.value <= e.estimate.ci_high
        assert e.estimate.p_holm is not None
    # Shapley: parts sum to the model's gain; each is its target level's main effect plus
    # half the interactions with the other moving factors the fraction can tell apart
    sh = an.shapley
    assert sh is not None and sh.method == "model"
    assert sum(p.estimate.value for p in sh.parts) == pytest.approx(sh.total.value, abs=1e-9)
    # augmentation is crossed in full, so its interactions are clear; the 3^(4-1) fraction
    # aliases each pair of its factors with the other pair, which are taken as zero
    assert set(sh.terms) == {f"augmentation×{f}" for f in list(MIXED)[1:]}
    assert set(sh.dropped) == {f"{a}×{b}" for a, b in itertools.combinations(list(MIXED)[1:], 2)}
    parts = {p.factor: p.estimate.value for p in sh.parts}
    # with its interactions taken as zero, weight decay's part is its main effect
    assert parts["weight_decay"] == pytest.approx(truth["weight_decay", 5e-3], abs=1e-9)


def test_a_mixed_fractional_design_recovers_planted_main_effects():
    run = synthetic_run(MIXED, value=PLANTED, seeds=2, design="fractional", resolution=4)
    assert len(run.trials) == 54 * 2
    an = analyze(run.trials, run.epochs, run.spec, n_boot=200)
    truth = _true_main_effects()
    for e in an.main_effects:
        assert e.estimate.value == pytest.approx(truth[e.factor, e.level], abs=1e-9)
    # a resolution III fraction of the same grid cannot: its main effects carry the planted
    # two-factor interactions
    iii = synthetic_run(MIXED, value=PLANTED, seeds=2, design="fractional", resolution=3)
    worst = max(abs(e.estimate.value - truth[e.factor, e.level])
                for e in analyze(iii.trials, iii.epochs, iii.spec, n_boot=200).main_effects)
    assert worst > 1e-3
    assert math.isclose(len(iii.trials) / 2, 18)
