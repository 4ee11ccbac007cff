"""Shapley attribution: exact on the full lattice, model-based on fractional designs."""

import itertools

import numpy as np
import pytest

from gridrun.analysis import main_effects, shapley
from gridrun.analysis.testing import additive, synthetic_run

NAMES = ["A", "B", "C", "D", "E", "F"]
# Fallback generators if gridrun.design.fractional is not importable (same catalogue entries).
GENERATORS = {(5, 5): {4: (0, 1, 2, 3)}, (6, 4): {4: (0, 1, 2), 5: (1, 2, 3)},
              (5, 3): {3: (0, 1), 4: (0, 2)}}
RUNS_FOR = {5: (5, 5), 4: (6, 4), 3: (5, 3)}


def plan_runs(k, resolution):
    """+-1 runs of a 2^(k-p) design: gridrun.design.fractional when present, else built here."""
    try:
        from gridrun.design.fractional import fractional_plan
    except ImportError:
        gens = GENERATORS[(k, resolution)]
        base = k - len(gens)
        rows = []
        for bits in itertools.product([-1, 1], repeat=base):
            row = list(bits[::-1])
            row += [int(np.prod([row[j] for j in gens[g]])) for g in sorted(gens)]
            rows.append(tuple(row))
        return rows
    return fractional_plan(k, resolution).runs


def model_run(k, resolution, beta, beta2, *, seeds=2, noise=0.0, seed=0):
    names = NAMES[:k]
    factors = {n: [False, True] for n in names}

    def value(lv):
        x = [float(lv[n]) for n in names]
        v = 70.0 + sum(b * xi for b, xi in zip(beta, x))
        return v + sum(b * x[i] * x[j] for (i, j), b in beta2.items())

    runs = plan_runs(k, resolution)
    return synthetic_run(factors, value=value, design="fractional", resolution=resolution,
                         runs=runs, seeds=seeds, noise=noise, seed=seed), names


def phi_true(k, beta, beta2):
    phi = np.array(beta, float)
    for (i, j), b in beta2.items():
        phi[i] += b / 2
        phi[j] += b / 2
    return phi


@pytest.mark.parametrize("k,resolution", [(5, 5), (6, 4)])
def test_model_shapley_recovers_phi_with_all_interactions(k, resolution):
    rng = np.random.default_rng(k)
    beta = rng.normal(2, 1, k)
    beta2 = {p: rng.normal(0, 1) for p in itertools.combinations(range(k), 2)}
    run, names = model_run(k, resolution, beta, beta2)
    assert len(run.trials) < 2 ** k * 2  # really a fraction
    s = shapley(run.grid(), n_boot=100)
    assert s.method == "model"
    got = np.array([p.estimate.value for p in s.parts])
    assert got == pytest.approx(phi_true(k, beta, beta2), abs=1e-9)
    total = sum(beta) + sum(beta2.values())
    assert s.total.value == pytest.approx(total, abs=1e-9)
    assert got.sum() == pytest.approx(s.total.value, abs=1e-9)
    # On a fractional design the main-effect contrast is that same phi.
    assert [e.estimate.value for e in main_effects(run.grid(), n_boot=0)] == \
        pytest.approx(got, abs=1e-9)


def test_resolution_three_takes_aliased_interactions_as_zero():
    beta = [3.0, -1.0, 2.0, 0.5, 1.5]
    run, _ = model_run(5, 3, beta, {})
    s = shapley(run.grid(), n_boot=100)
    assert [p.estimate.value for p in s.parts] == pytest.approx(beta, abs=1e-9)
    assert s.dropped and "taken as zero" in s.note


def test_model_shapley_intervals_cover_with_noise():
    beta = [2.0, 1.0, -0.5, 0.0, 1.0]
    beta2 = {(0, 1): 1.0, (2, 3): -0.6}
    run, _ = model_run(5, 5, beta, beta2, seeds=10, noise=0.3, seed=4)
    s = shapley(run.grid(), n_boot=500)
    for p, true in zip(s.parts, phi_true(5, beta, beta2)):
        assert p.estimate.ci_low < true < p.estimate.ci_high
        assert p.estimate.n_seeds == 10
    assert sum(p.estimate.value for p in s.parts) == pytest.approx(s.total.value)


def test_exact_shapley_on_multilevel_factors_uses_the_target_levels():
    factors = {"dropout": [0.0, 0.25, 0.5], "optimizer": ["sgd", "adam", "rmsprop"],
               "augmentation": [False, True]}
    value = additive(0.7, {"dropout": {0.25: 0.05, 0.5: 0.02},
                           "optimizer": {"adam": 0.04, "rmsprop": 0.01},
                           "augmentation": {True: 0.03}},
                     {("dropout", "augmentation"): {(0.25, True): 0.02}})
    run = synthetic_run(factors, value=value, target={"dropout": 0.25, "optimizer": "adam"})
    s = shapley(run.grid())
    assert s.target == {"dropout": 0.25, "optimizer": "adam", "augmentation": True}
    parts = {p.factor: p.estimate.value for p in s.parts}
    assert parts == pytest.approx({"dropout": 0.06, "optimizer": 0.04, "augmentation": 0.04})
    assert s.total.value == pytest.approx(0.14)


def test_target_best_and_mapping_and_unreachable_factor_left_out():
    factors = {"A": [False, True], "B": ["x", "y", "z"]}
    value = additive(0.5, {"A": {True: 0.1}, "B": {"z": 0.2, "y": -0.1}})
    grid = synthetic_run(factors, value=value, target={"B": "y"}).grid()
    best = shapley(grid, target="best")
    assert best.target == {"A": True, "B": "z"}
    assert best.total.value == pytest.approx(0.3)
    only_a = shapley(grid, target={"A": True})  # B stays at baseline: not a player
    assert [p.factor for p in only_a.parts] == ["A"]
    with pytest.raises(ValueError, match="not one of its levels"):
        shapley(grid, target={"B": "w"})


def test_no_lattice_no_shapley():
    run = synthetic_run({"A": [False, True], "B": [False, True]}, value=lambda lv: 1.0,
                        design="add_one_in")
    assert shapley(run.grid()) is None
