"""gridrun's ablation-aware ASHA as a Ray Tune scheduler: one Tune trial is one cell, the
decisions are ``gridrun.design.schedule.RungState``'s. Imports Ray inside functions.
"""

from __future__ import annotations

__all__ = ["cell_scheduler", "seed_scheduler"]


def cell_scheduler(ablation, cells, anchors):
    """The ablation-aware ASHA of ``gridrun.design.schedule`` as a Ray Tune scheduler: one Tune
    trial is one cell; anchors always continue; stratified promotion; promotions end when
    the budget is spent. None when nothing may be stopped (no scheduler, or every cell is an
    anchor)."""
    if ablation.scheduler is None or anchors.is_all:
        return None
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    from gridrun.design.schedule import (RungState, asha_rungs, budget_settings,
                                         promotion_allowance, strata_of)

    sch = ablation.scheduler
    allowance = promotion_allowance(anchors, **budget_settings(ablation))
    state = RungState(asha_rungs(ablation.epochs, sch.grace_period, sch.reduction_factor),
                      sch.reduction_factor, ablation.mode, protected=anchors.keys(),
                      strata={c.key: strata_of(c.levels) for c in cells},
                      max_t=ablation.epochs, allowance=allowance)
    seeds = {c.key: [t.trial_id for t in c.trials] for c in cells}

    class CellASHA(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.state, self.stopped_trials = state, set()

        def on_trial_result(self, tune_controller, trial, result):
            key = trial.config["cell"]["key"]
            if self.state.on_result(key, result["epoch"], result.get(ablation.metric)) \
                    == "stop":
                self.stopped_trials.update(seeds[key])
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

    return CellASHA()


def seed_scheduler(scheduler, cells, previous, ablation) -> None:
    """Give the scheduler the rung values of cells earlier sessions finished, and what was
    decided there, so a resumed run judges its cells against the same bar and charges the
    promotions already made to the budget."""
    if scheduler is None or not previous:
        return
    for c in cells:
        eps = [previous[t.trial_id][1] for t in c.trials if t.trial_id in previous]
        if len(eps) < len(c.trials):
            continue
        reached = min(len(e) for e in eps)
        for r in scheduler.state.rungs:
            vals = [e[r - 1].get(ablation.metric) for e in eps if len(e) >= r]
            vals = [v for v in vals if v is not None]
            if vals and len(vals) == len(eps):
                scheduler.state.record(c.key, r, sum(vals) / len(vals), passed=reached > r)
