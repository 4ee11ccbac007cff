"""``analyze``: every estimate the run's design supports, in one ``Analysis`` to render."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from gridrun.analysis._curves import curves_by_factor
from gridrun.analysis._diagnostics import asha_diagnostics
from gridrun.analysis._effects import Effect, Interaction, interactions, main_effects
from gridrun.analysis._grid import Grid, epoch_rows, metric_of, prepare_many
from gridrun.analysis._paths import add_one_in, cumulative, leave_one_out
from gridrun.analysis._shapley import Shapley, shapley
from gridrun.analysis._summary import (ConfigSummary, Survival, config_summaries, summary_at,
                                       survival)
from gridrun.analysis._variance import VarianceShares, variance_shares

__all__ = ["Analysis", "RunCounts", "analyze"]


@dataclass(frozen=True)
class RunCounts:
    """What the run holds; ``errors`` lists (trial_id, error text) of errored trials."""

    n_trials: int
    n_completed: int
    n_stopped_early: int
    n_error: int
    n_seeds: int
    n_configs: int
    errors: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Analysis:
    """Everything a report prints. Tables a design cannot support are empty (or None):
    main effects need a full or fractional design, interactions and variance a full one;
    the one-at-a-time tables appear when their configurations are all in the run.
    ``budget`` is the caller's override (None: each number at the largest epoch all its
    trials reached); ``budgets`` the epochs the numbers were actually computed at.
    ``gap`` is the effect of each technique on train_acc - val_acc (empty when the run has
    no train_acc). ``notes`` are sentences the report should print under the tables."""

    name: str
    dataset: str
    design: str
    metric: str
    mode: str
    factors: tuple[str, ...]
    levels: dict
    baseline: dict
    target: dict
    epochs: int
    budget: int | None
    budgets: tuple[int, ...]
    counts: RunCounts
    configs: tuple[ConfigSummary, ...]
    main_effects: tuple[Effect, ...]
    interactions: tuple[Interaction, ...]
    shapley: Shapley | None
    add_one_in: tuple[Effect, ...]
    leave_one_out: tuple[Effect, ...]
    cumulative: tuple[Effect, ...]
    variance: VarianceShares | None
    gap: tuple[Effect, ...]
    survival: Survival
    curves: dict
    notes: tuple[str, ...]
    # How the numbers were obtained, in one sentence (which cells, which budget), e.g.
    # "every cell at epoch 12" or "the 16-cell resolution IV fraction at epoch 12".
    basis: str = ""
    # ASHA diagnostics (gridrun.analysis._diagnostics.Diagnostics) for runs with a scheduler.
    diagnostics: Any = None
    # The reference rows of the one-at-a-time tables: the baseline and the target, each at
    # its own budget (the last epoch all its trials reached, or the caller's ``budget``);
    # None when that configuration is not in the run.
    baseline_summary: ConfigSummary | None = None
    target_summary: ConfigSummary | None = None

    @property
    def best(self) -> ConfigSummary | None:
        return self.configs[0] if self.configs else None


def analyze(trials: pd.DataFrame, epochs: pd.DataFrame, spec: Mapping[str, Any], *,
            metric: str | None = None, mode: str | None = None, budget: int | None = None,
            n_boot: int = 2000, seed: int = 0, partial: bool = False) -> Analysis:
    """Run every estimator the design supports, on ``metric`` (default: the spec's) and
    with ``mode`` (default: the spec's for its metric, else ``mode_of``) saying which way
    is better: it ranks the configurations and picks the best. ``partial``: ``trials`` are
    the finished part of a run still going (or cut off); a screened grid's effects then
    come from its anchors alone, and stay empty until every anchor has finished.

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"A": [False, True], "B": [False, True]},
    ...                     value=lambda lv: 80 + 3 * lv["A"] + 1 * lv["B"])
    >>> a = analyze(run.trials, run.epochs, run.spec, n_boot=200)
    >>> [(e.factor, round(e.estimate.value, 6)) for e in a.main_effects]
    [('A', 3.0), ('B', 1.0)]
    """
    metric = metric or metric_of(spec)
    row = epoch_rows(trials, epochs)
    metrics = (metric, "gap") if _has_gap(epochs) else (metric,)
    grids = prepare_many(trials, epochs, spec, metrics, row, modes={metric: mode})
    g = grids[metric]
    screened = screened_anchors(trials, spec, partial) if budget is None else None
    if screened is not None:
        result, basis = _screened(trials, epochs, spec, grids, screened, metrics, n_boot, seed)
    else:
        result = _all_cells(g, grids.get("gap"), budget, n_boot, seed)
        basis = _basis(g, budget, result)
    curves = curves_by_factor(epochs, trials, list(g.factors), metric=metric, spec=spec,
                              row=row)
    counts = _counts(trials, g)
    result.update(_references(g, budget))
    budgets = _budgets(result)
    diagnostics = asha_diagnostics(g, anchored=screened is not None) \
        if spec.get("scheduler") else None
    notes = _notes(g, budget, budgets, counts, result)
    notes += diagnostics.warnings if diagnostics is not None else ()
    return Analysis(
        name=str(spec.get("name", "")), dataset=str(spec.get("dataset", "")),
        design=g.design, metric=metric, mode=g.mode, factors=g.factors,
        levels=dict(zip(g.factors, g.levels)), baseline=g.named(g.baseline),
        target=g.named(g.target), epochs=g.epochs, budget=budget, budgets=budgets,
        counts=counts, curves=curves, notes=notes, diagnostics=diagnostics, basis=basis,
        **result)


def _has_gap(epochs: pd.DataFrame) -> bool:
    """The run reported train_acc and val_acc (a trainer of one's own may leave them null)."""
    cols = ("train_acc", "val_acc")
    return all(c in epochs.columns for c in cols) and bool(
        epochs[list(cols)].notna().all(axis=1).any())


def _all_cells(g: Grid, gap_grid, budget, n_boot, seed) -> dict:
    """Every estimator the design supports, over every cell of the run."""
    kw = dict(budget=budget, n_boot=n_boot, seed=seed)
    full, frac = g.design == "full", g.design == "fractional"
    gap = ()
    if gap_grid is not None:
        from gridrun.analysis._gap import generalization_gap
        gap = generalization_gap(gap_grid, **kw)
    moving = sum(b != t for b, t in zip(g.baseline, g.target))
    paths = {}
    for name, fn in (("add_one_in", add_one_in), ("leave_one_out", leave_one_out),
                     ("cumulative", cumulative)):
        rows = fn(g, **kw)
        paths[name] = rows if g.design == name or len(rows) == moving else ()
    return dict(
        configs=config_summaries(g, budget=budget),
        main_effects=main_effects(g, **kw) if full or frac else (),
        interactions=interactions(g, **kw) if full else (), shapley=shapley(g, **kw),
        variance=variance_shares(g, budget=budget) if full else None, gap=gap,
        survival=survival(g), **paths)


def screened_anchors(trials: pd.DataFrame, spec: Mapping[str, Any], partial: bool = False):
    """The run's anchors (gridrun.design.schedule.Anchors) when its table must come from them: a
    full factorial that ASHA screened, whose anchors all reached the full budget while some
    other cell did not. None otherwise (then every cell is used). Of a ``partial`` run (one
    still running or cut off) the anchors are returned whatever has finished: its effects
    wait for them, since the other cells' early epochs would mislead."""
    from gridrun.design.schedule import anchors_of_spec

    anchors = anchors_of_spec(spec)
    if anchors is None or anchors.is_all or spec.get("design", "full") != "full":
        return None
    if partial:
        return anchors
    live = trials[trials["status"] != "error"]
    E = int(spec["epochs"])
    if (live["epochs_run"] >= E).all():
        return None
    done = live[live["epochs_run"] >= E]
    have = set(cell_keys(done, list(spec["factors"])))
    return anchors if anchors.fraction_keys() <= have else None


def cell_keys(trials: pd.DataFrame, factors) -> list[str]:
    """``gridrun.design.schedule.cell_key`` of every trial's configuration."""
    from gridrun.design.schedule import cell_key

    cols = [trials[f].tolist() for f in factors]
    return [cell_key(dict(zip(factors, vals))) for vals in zip(*cols)]


def anchor_trials(trials: pd.DataFrame, spec: Mapping[str, Any], anchors) -> pd.DataFrame:
    """The trials of the anchors' balanced fraction (the cells a screened run's effects use)."""
    keys = pd.Series(cell_keys(trials, list(spec["factors"])), index=trials.index)
    return trials[keys.isin(anchors.fraction_keys()).to_numpy()]


def _screened(trials, epochs, spec, grids, anchors, metrics, n_boot, seed):
    """Effects from the anchors' balanced fraction at the full budget; configurations from
    every cell that reached it. Interactions and variance shares need the whole grid."""
    E = int(spec["epochs"])
    sub = anchor_trials(trials, spec, anchors)
    sub_epochs = epochs[epochs["trial_id"].isin(set(sub["trial_id"]))]
    frac = prepare_many(sub, sub_epochs, {**spec, "design": "fractional"}, metrics,
                        modes={m: grids[m].mode for m in metrics})
    kw = dict(budget=E, n_boot=n_boot, seed=seed)
    g, f = grids[metrics[0]], frac[metrics[0]]
    paths = {}
    moving = sum(b != t for b, t in zip(g.baseline, g.target))
    for name, fn in (("add_one_in", add_one_in), ("leave_one_out", leave_one_out),
                     ("cumulative", cumulative)):
        rows = fn(g, **kw)
        whole = len(rows) == moving and all(r.estimate.n_short == 0 and r.estimate.n_seeds
                                            for r in rows)
        paths[name] = rows if whole else ()
    result = dict(
        configs=tuple(c for c in config_summaries(g, budget=E) if c.n_seeds),
        main_effects=main_effects(f, **kw), interactions=(), shapley=shapley(f, **kw),
        variance=None, gap=main_effects(frac["gap"], **kw) if "gap" in frac else (),
        survival=survival(g), **paths)
    n_short = int((g.present & ~g.error & (g.reach < E)).sum())
    keys = anchors.fraction_keys()
    done = set(cell_keys(sub[sub["epochs_run"] >= E], list(spec["factors"]))) & keys
    if len(done) < len(keys):
        basis = (f"main effects and Shapley parts from {anchors.describe()}, of which "
                 f"{len(done)} of {len(keys)} cells have finished (the effects need them "
                 f"all); configurations at epoch {E}")
        return result, basis
    basis = (f"main effects and Shapley parts from {anchors.describe()}, every seed at "
             f"epoch {E} (anchors are never stopped); configurations at epoch {E}; "
             f"{n_short} screened trials that ASHA stopped earlier are in no number")
    return result, basis


def _basis(g: Grid, budget, result) -> str:
    if budget is not None:
        return f"every trial that reached epoch {budget} (survivors only where some did not)"
    if (g.reach[g.present & ~g.error] >= g.epochs).all():
        return f"every cell at epoch {g.epochs}"
    return ("each number at the last epoch every trial it compares reached (trials were "
            "stopped early and not confirmed)")


def _references(g: Grid, budget) -> dict:
    """Baseline and target summaries, each at its own common budget (or ``budget``)."""
    out = {}
    for name, codes in (("baseline_summary", g.baseline), ("target_summary", g.target)):
        row = int(g.rows([g.key(codes)])[0])
        out[name] = summary_at(g, row, budget) if row >= 0 else None
    return out


def _counts(trials: pd.DataFrame, g: Grid) -> RunCounts:
    status = trials["status"]
    err = trials[(status == "error").to_numpy(bool)]
    texts = err["error"] if "error" in err.columns else pd.Series([""] * len(err))
    errors = tuple((str(t), "" if pd.isna(e) else str(e))
                   for t, e in zip(err["trial_id"], texts))
    return RunCounts(len(trials), int((status == "completed").sum()),
                     int((status == "stopped_early").sum()), len(err), len(g.seeds),
                     len(g.keys), errors)


def _estimates(result):
    for key in ("main_effects", "add_one_in", "leave_one_out", "cumulative", "gap",
                "interactions"):
        for row in result[key]:
            yield row.estimate
    if result["shapley"] is not None:
        yield result["shapley"].total
        yield from (p.estimate for p in result["shapley"].parts)


def _budgets(result) -> tuple[int, ...]:
    found = {e.budget for e in _estimates(result) if e.budget is not None}
    found |= {c.budget for c in result["configs"] if c.budget is not None}
    found |= {result[k].budget for k in ("baseline_summary", "target_summary")
              if result.get(k) is not None and result[k].budget is not None}
    if result["variance"] is not None:
        found.add(result["variance"].budget)
    return tuple(sorted(found))


def _notes(g, budget, budgets, counts, result) -> tuple[str, ...]:
    notes = []
    if counts.n_error:
        notes.append(f"{counts.n_error} errored trial(s) are left out of every number.")
    if budget is None and budgets and min(budgets) < g.epochs:
        notes.append(
            f"Some trials stopped before epoch {g.epochs} (early stopping), so each number is "
            f"at the largest epoch every trial it compares reached "
            f"(epoch {', '.join(map(str, budgets))}); pass --budget {g.epochs} "
            f"(budget={g.epochs} in Python) for the survivors-only comparison.")
    if budget is not None and any(e.survivors_only for e in _estimates(result)):
        notes.append(f"At budget={budget}, numbers are over the trials that reached epoch "
                     f"{budget} only (survivors); n and n_short say how many.")
    if result["shapley"] is None and any(b != t for b, t in zip(g.baseline, g.target)):
        notes.append("No Shapley attribution: the run has neither every configuration "
                     "between baseline and target nor a two-level fractional design.")
    if len(g.seeds) < 2:
        notes.append("One seed: no intervals or significance tests.")
    return tuple(notes)
