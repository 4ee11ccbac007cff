"""What a spec will run, before running it: trials per design, epochs, and compute.

The compute estimate is trials x epochs x seconds per epoch, with seconds per epoch given by
the user or measured by a short calibration run (``gridrun.run.calibrate``). With ASHA the
expected epochs per trial follow from its survival rule: every trial reaches the first rung,
and a fraction 1/eta of those at each rung goes on to the next (``asha_expected_epochs``).

    >>> round(asha_expected_epochs(max_t=9, grace_period=1, reduction_factor=3), 4)
    2.3333
"""

from __future__ import annotations

import dataclasses

from tabulate import tabulate

from gridrun.design.grid import design_points, expand
from gridrun.design.schedule import asha_expected_epochs, asha_rungs
from gridrun.spec.ablation import DESIGNS

__all__ = ["plan_text", "asha_rungs", "asha_expected_epochs", "design_table"]


def _variants(ablation) -> list:
    """The spec itself, plus every other design its factors allow (for comparison)."""
    out = [ablation]
    for design in DESIGNS:
        for resolution in ((3, 4, 5) if design == "fractional" else (None,)):
            if design == ablation.design and resolution == ablation.resolution:
                continue
            order = tuple(ablation.factor_names) if design == "cumulative" else None
            try:
                out.append(dataclasses.replace(ablation, design=design, order=order,
                                               resolution=resolution))
            except ValueError:  # e.g. fractional with multi-level factors
                continue
    return out


def design_table(ablation, seconds_per_epoch: dict | float | None = None) -> list[dict]:
    """One row per design: configurations, trials, trial-epochs and, when seconds per
    epoch are known, compute hours with and without early stopping."""
    epochs = ablation.epochs
    rows = []
    for a in _variants(ablation):
        points = design_points(a)
        asha = _epochs_per_cell(a, len(points))
        default = a.fixed.get("backbone", "simple_cnn")
        per_point = [_seconds(p.get("backbone", default), seconds_per_epoch) for p in points]
        label = a.design + (f" res {'III IV V'.split()[a.resolution - 3]}"
                            if a.resolution else "")
        row = {"design": label + (" (spec)" if a is ablation else ""),
               "configurations": len(points), "trials": len(points) * a.seeds,
               "trial_epochs": len(points) * a.seeds * epochs,
               "trial_epochs_asha": round(len(points) * a.seeds * asha, 1)}
        if None not in per_point:
            full = sum(per_point) * a.seeds * epochs
            row["hours"] = full / 3600
            row["hours_asha"] = full / epochs * asha / 3600
        rows.append(row)
    return rows


def _epochs_per_cell(a, n_points: int) -> float:
    """Expected epochs per configuration (and seed) under gridrun's scheduling: anchors run
    every epoch, the other cells of a full factorial are screened within the budget
    (``schedule``)."""
    from gridrun.design.schedule import anchors_of, scheduled_epochs

    if a.scheduler is None:
        return float(a.epochs)
    anchors = anchors_of(a)
    if anchors.is_all:
        return float(a.epochs)
    return scheduled_epochs(a, anchors) / n_points


def anchors_text(ablation) -> str:
    """What the scheduler will never stop, in one line (for plan and launch)."""
    from gridrun.design.schedule import anchors_of, asha_rungs, budget_settings, promotion_allowance

    if ablation.scheduler is None:
        return "no early stopping: every cell runs every epoch"
    a = anchors_of(ablation)
    if a.is_all:
        why = ("its design needs every cell" if ablation.design != "full" else
               "fewer than 4 two-level factors leave no smaller resolution IV fraction")
        return (f"ASHA stops nothing here: {why}, so every cell runs every epoch "
                f"(scheduler=None does the same)")
    s = ablation.scheduler
    n_screen = a.n_cells - len(a.points)
    left = promotion_allowance(a, **budget_settings(ablation))
    if left < 0:
        first = (asha_rungs(ablation.epochs, s.grace_period, s.reduction_factor)
                 or [ablation.epochs])[0]
        need = s.budget - left / (a.n_cells * ablation.epochs)
        screen = (f"ASHA stops the other {n_screen} cells at their first rung (epoch "
                  f"{first}), since the anchors, those first epochs and the confirmed cells "
                  f"already need {need:.0%} of the grid's epochs, over the budget of "
                  f"{s.budget:.0%}")
    else:
        screen = (f"ASHA screens the other {n_screen} cells, promoting them while the run "
                  f"stays within the budget of {s.budget:.0%} of the grid's epochs")
    return (f"anchors (never stopped; the effects come from them): {a.describe()}; "
            f"{screen}; the best {s.confirm} is brought to the full budget")


def _seconds(backbone: str, seconds_per_epoch):
    if seconds_per_epoch is None or isinstance(seconds_per_epoch, (int, float)):
        return seconds_per_epoch
    return seconds_per_epoch.get(backbone)


def plan_text(ablation, seconds_per_epoch: dict | float | None = None,
              show_trials: bool = True) -> str:
    """The text ``gridrun plan`` and ``gridrun launch --dry-run`` print."""
    trials = expand(ablation)
    points = len(trials) // ablation.seeds
    sched = ("no early stopping" if ablation.scheduler is None else
             f"ASHA (grace period {ablation.scheduler.grace_period}, reduction factor "
             f"{ablation.scheduler.reduction_factor}, rungs at epochs "
             f"{asha_rungs(ablation.epochs, ablation.scheduler.grace_period, ablation.scheduler.reduction_factor)})")
    head = (f"{ablation.name}: design '{ablation.design}', {points} configurations x "
            f"{ablation.seeds} seeds = {len(trials)} trials, up to {ablation.epochs} epochs "
            f"each ({len(trials) * ablation.epochs} trial-epochs at most), {sched}; "
            f"dataset {ablation.dataset}, framework {' and '.join(ablation.frameworks)}")
    from gridrun.design.labels import label_warnings

    parts = [head, *label_warnings(ablation), anchors_text(ablation), "",
             _designs_text(ablation, seconds_per_epoch)]
    if ablation.design == "fractional":
        from gridrun.design.fractional import fractional_plan

        plan = fractional_plan(len(ablation.factors), ablation.resolution)
        parts += ["", plan.describe(ablation.factor_names)]
    if show_trials:
        rows = [[t.trial_id, t.seed, *(str(t.levels[n]) for n in ablation.factor_names)]
                for t in trials]
        parts += ["", tabulate(rows, headers=["trial", "seed", *ablation.factor_names],
                               tablefmt="github", disable_numparse=True)]
    return "\n".join(parts)


def _designs_text(ablation, seconds_per_epoch) -> str:
    rows = design_table(ablation, seconds_per_epoch)
    asha = ablation.scheduler is not None
    headers = ["design", "configurations", "trials", "trial-epochs",
               "trial-epochs with ASHA" if asha else None]
    keys = ["design", "configurations", "trials", "trial_epochs",
            "trial_epochs_asha" if asha else None]
    if "hours" in rows[0]:
        headers += ["compute (trial-h)", "with ASHA (trial-h)" if asha else None]
        keys += ["hours", "hours_asha" if asha else None]
    keep = [i for i, k in enumerate(keys) if k]
    table = [[_cell(r[keys[i]]) for i in keep] for r in rows]
    note = ("compute = trials x epochs x seconds per epoch, summed over trials (divide by "
            "the trials running at once for wall time)"
            + ("; with ASHA: anchors run every epoch, and 1/eta of the other cells are "
               "expected to survive each rung" if asha else ""))
    return tabulate(table, headers=[headers[i] for i in keep], tablefmt="github") + "\n" + note


def _cell(v):
    return f"{v:.2f}" if isinstance(v, float) and not float(v).is_integer() else v
