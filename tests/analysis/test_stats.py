"""Intervals, tests and Holm's correction over seeds."""

import math

import numpy as np
import pytest
from scipy import stats

from gridrun.analysis import holm
from gridrun.analysis._stats import estimates


def test_holm_known_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_matches_statsmodels():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.random.default_rng(3).uniform(0, 0.2, 25)
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])


def test_holm_ignores_nan_and_caps_at_one():
    out = holm([0.5, np.nan, 0.9])
    assert math.isnan(out[1])
    assert out[[0, 2]].tolist() == [1.0, 1.0]


def _one(d, **kw):
    kw = {"metric": "val_acc", "budget": 6, "n_trials": 2 * len(d), "n_short": 0,
          "n_error": 0, "n_boot": 2000, "rng": np.random.default_rng(0), **kw}
    return estimates(np.array([d]), **kw)[0]


def test_t_interval_and_paired_test_match_scipy():
    d = np.array([1.2, 0.4, 0.9, 1.5, 0.7])
    e = _one(d)
    ci = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert (e.ci_low, e.ci_high) == pytest.approx(ci)
    assert e.p_value == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert e.boot_low < e.value < e.boot_high
    assert d.min() <= e.boot_low and e.boot_high <= d.max()
    assert e.n_seeds == 5 and e.budget == 6 and not e.survivors_only


def test_bootstrap_is_reproducible_from_the_seed():
    d = np.random.default_rng(5).normal(1.0, 0.5, 8)
    interval = lambda e: (e.boot_low, e.boot_high)  # noqa: E731
    assert interval(_one(d)) == interval(_one(d))
    assert interval(_one(d)) != interval(_one(d, rng=np.random.default_rng(1)))


def test_one_seed_gives_nan_intervals_and_says_so():
    e = _one(np.array([2.0]))
    assert e.value == 2.0
    assert all(math.isnan(x) for x in (e.ci_low, e.ci_high, e.boot_low, e.boot_high,
                                       e.p_value, e.se))
    assert "1 seed" in e.note


def test_no_seed_at_all():
    e = estimates(np.zeros((1, 0)), metric="val_acc", budget=2, n_trials=0, n_short=4,
                  n_error=0, n_boot=10, rng=np.random.default_rng(0))[0]
    assert math.isnan(e.value) and e.n_seeds == 0 and e.survivors_only and e.note


def test_constant_differences_are_significant_without_crashing():
    e = _one(np.array([1.0, 1.0, 1.0]))
    assert e.ci_low == e.ci_high == 1.0 and e.p_value == 0.0
