"""Attribution statistics for an ablation run: what each technique contributed, with
uncertainty over seeds, at budgets every compared trial reached.

``analyze(trials, epochs, spec)`` runs everything the design supports and returns one
``Analysis``; the estimators are also usable one by one on a ``Grid`` from ``prepare``.
Pure pandas/numpy/scipy: no Ray, torch or TensorFlow. Rendering lives in
``gridrun.report.tables``; reusable synthetic runs for tests in ``gridrun.analysis.testing``.

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"A": [False, True]}, value=lambda lv: 80 + 2 * lv["A"])
    >>> round(analyze(run.trials, run.epochs, run.spec).main_effects[0].estimate.value, 6)
    2.0
"""

from gridrun.analysis._analyze import Analysis, RunCounts, analyze
from gridrun.analysis._curves import Curve, learning_curves
from gridrun.analysis._diagnostics import Diagnostics, PruningRow, asha_diagnostics
from gridrun.analysis._effects import Effect, Interaction, interactions, main_effects
from gridrun.analysis._gap import generalization_gap
from gridrun.analysis._grid import METRICS, Grid, metrics_of, mode_of, prepare
from gridrun.analysis._levels import LevelSummary, level_summaries
from gridrun.analysis._paths import add_one_in, cumulative, leave_one_out
from gridrun.analysis._shapley import Shapley, ShapleyPart, shapley
from gridrun.analysis._stats import ALPHA, CONFIDENCE, Estimate, holm
from gridrun.analysis._summary import (ConfigSummary, Survival, SurvivalRow, config_summaries,
                                       config_summary, survival)
from gridrun.analysis._variance import VarianceShares, VarianceTerm, variance_shares

__all__ = [
    "analyze", "Analysis", "RunCounts",
    "prepare", "Grid", "METRICS", "metrics_of", "mode_of",
    "main_effects", "interactions", "generalization_gap", "Effect", "Interaction",
    "add_one_in", "leave_one_out", "cumulative",
    "shapley", "Shapley", "ShapleyPart",
    "variance_shares", "VarianceShares", "VarianceTerm",
    "config_summaries", "config_summary", "ConfigSummary",
    "survival", "Survival", "SurvivalRow",
    "learning_curves", "Curve", "level_summaries", "LevelSummary",
    "asha_diagnostics", "Diagnostics", "PruningRow",
    "Estimate", "holm", "CONFIDENCE", "ALPHA",
]
