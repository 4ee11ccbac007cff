"""What a spec will run, before running it: trial count, epochs, and the trial table."""

from __future__ import annotations

from tabulate import tabulate

from gridrun.design import expand

__all__ = ["plan_text"]


def plan_text(ablation) -> str:
    """The text ``gridrun launch --dry-run`` prints."""
    trials = expand(ablation)
    points = len(trials) // ablation.seeds
    sched = ("no early stopping" if ablation.scheduler is None else
             f"ASHA (grace period {ablation.scheduler.grace_period}, reduction factor "
             f"{ablation.scheduler.reduction_factor})")
    head = (f"{ablation.name}: design '{ablation.design}', {points} configurations x "
            f"{ablation.seeds} seeds = {len(trials)} trials, up to {ablation.epochs} epochs "
            f"each ({len(trials) * ablation.epochs} trial-epochs at most), {sched}; "
            f"dataset {ablation.dataset}, framework {ablation.framework}")
    rows = [[t.trial_id, t.seed, *(str(t.levels[n]) for n in ablation.factor_names)]
            for t in trials]
    table = tabulate(rows, headers=["trial", "seed", *ablation.factor_names],
                     tablefmt="github", disable_numparse=True)
    return f"{head}\n\n{table}"

