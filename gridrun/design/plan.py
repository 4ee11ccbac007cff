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
import math

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
        backbones = _backbone_counts(a)
        n_points = sum(backbones.values())
        asha = _epochs_per_cell(a, n_points)
        per_point = {b: _seconds(b, seconds_per_epoch) for b in backbones}
        label = a.design + (f" res {'III IV V'.split()[a.resolution - 3]}"
                            if a.resolution else "")
        row = {"design": label + (" (spec)" if a is ablation else ""),
               "configurations": n_points, "trials": n_points * a.seeds,
               "trial_epochs": n_points * a.seeds * epochs,
               "trial_epochs_asha": round(n_points * a.seeds * asha, 1)}
        if None not in per_point.values():
            full = sum(per_point[b] * n for b, n in backbones.items()) * a.seeds * epochs
            row["hours"] = full / 3600
            row["hours_asha"] = full / epochs * asha / 3600
        rows.append(row)
    return rows


def _backbone_counts(a) -> dict:
    """How many of the design's configurations use each backbone. A full factorial is
    counted, not listed: each level of a backbone factor is in an equal share of its cells."""
    default = a.fixed.get("backbone", "simple_cnn")
    if a.design == "full":
        n = math.prod(len(f.levels) for f in a.factors)
        levels = next((f.levels for f in a.factors if f.name == "backbone"), (default,))
        return {b: n // len(levels) for b in levels}
    counts: dict = {}
    for p in design_points(a):
        b = p.get("backbone", default)
        counts[b] = counts.get(b, 0) + 1
    return counts


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
               _why_every_cell(ablation))
        return (f"ASHA stops nothing here, so every cell runs every epoch (scheduler=None "
                f"does the same): {why}")
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


def _why_every_cell(ablation) -> str:
    """Why a full factorial has no smaller anchors, and what a weaker fraction would save
    and alias (the spec may choose it with ASHA(resolution=...))."""
    from gridrun.design.arrays import roman
    from gridrun.design.schedule import DEFAULT_RESOLUTION, anchors_of, scheduled_epochs

    s = ablation.scheduler
    asked = s.resolution or DEFAULT_RESOLUTION
    counts: dict[int, int] = {}
    for f in ablation.factors:
        counts[len(f.levels)] = counts.get(len(f.levels), 0) + 1
    kinds = " and ".join(f"{n} {_LEVELS.get(k, f'{k}-level')}"
                         for k, n in sorted(counts.items()))
    n_cells = 1
    for f in ablation.factors:
        n_cells *= len(f.levels)
    out = (f"no resolution {roman(asked)} fraction of {kinds} factors is smaller than the "
           f"grid's {n_cells} cells")
    for weaker in range(asked - 1, 2, -1):
        alt = dataclasses.replace(ablation, scheduler=dataclasses.replace(s, resolution=weaker))
        anchors = anchors_of(alt)
        if anchors.is_all:
            continue
        share = scheduled_epochs(alt, anchors) / (n_cells * ablation.epochs)
        alias = ("each main effect would share its contrast with two-factor interactions ("
                 + "; ".join(anchors.aliased) + ")" if anchors.aliased else
                 "main effects stay clear of two-factor interactions, but not of three-factor "
                 "ones")
        out += (f". ASHA(resolution={weaker}) would anchor {len(anchors.points)} cells (the "
                f"{anchors.name} fraction) and is expected to train {share:.0%} of the "
                f"grid's epochs, but {alias}. Adding factors can make a resolution {roman(asked)} "
                f"fraction smaller than the grid")
        break
    return out


_LEVELS = {2: "two-level", 3: "three-level", 4: "four-level", 5: "five-level"}


def _seconds(backbone: str, seconds_per_epoch):
    if seconds_per_epoch is None or isinstance(seconds_per_epoch, (int, float)):
        return seconds_per_epoch
    return seconds_per_epoch.get(backbone)


def plan_text(ablation, seconds_per_epoch: dict | float | None = None,
              show_trials: bool = True) -> str:
    """The text ``gridrun plan`` and ``gridrun launch --dry-run`` print."""
    points = sum(_backbone_counts(ablation).values())
    n_trials = points * ablation.seeds
    sched = ("no early stopping" if ablation.scheduler is None else
             f"ASHA (grace period {ablation.scheduler.grace_period}, reduction factor "
             f"{ablation.scheduler.reduction_factor}, rungs at epochs "
             f"{asha_rungs(ablation.epochs, ablation.scheduler.grace_period, ablation.scheduler.reduction_factor)})")
    head = (f"{ablation.name}: design '{ablation.design}', {points} configurations x "
            f"{ablation.seeds} seeds = {n_trials} trials, up to {ablation.epochs} epochs "
            f"each ({n_trials * ablation.epochs} trial-epochs at most), {sched}; "
            f"dataset {ablation.dataset}, framework {' and '.join(ablation.frameworks)}")
    from gridrun.design.labels import label_warnings

    parts = [head, *label_warnings(ablation), anchors_text(ablation), "",
             _designs_text(ablation, seconds_per_epoch)]
    if ablation.design == "fractional":
        from gridrun.design.grid import design_points, fraction_of

        names = ablation.factor_names
        parts += ["", fraction_of(ablation).describe(), "the array (one row per cell):",
                  _github_table(names, [[str(p[n]) for n in names]
                                        for p in design_points(ablation)])]
    if show_trials:
        rows = [[t.trial_id, str(t.seed), *(str(t.levels[n]) for n in ablation.factor_names)]
                for t in expand(ablation)]
        parts += ["", _github_table(["trial", "seed", *ablation.factor_names], rows)]
    return "\n".join(parts)


def _github_table(headers: list[str], rows: list[list[str]]) -> str:
    """A left-aligned GitHub Markdown table of strings, as ``tabulate(tablefmt="github",
    disable_numparse=True)`` prints it, in time linear in the rows (a 2^16 grid's trials)."""
    widths = [max([len(h) + 2, *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *map(line, rows)])


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
    if asha:  # the ASHA column says what share of its design's epochs it is
        at = [keys[i] for i in keep].index("trial_epochs_asha")
        for line, r in zip(table, rows):
            line[at] = f"{line[at]} ({r['trial_epochs_asha'] / r['trial_epochs']:.0%})"
    note = ("compute = trials x epochs x seconds per epoch, summed over trials (divide by "
            "the trials running at once for wall time)"
            + ("; with ASHA: anchors run every epoch, and 1/eta of the other cells are "
               "expected to survive each rung" if asha else ""))
    return tabulate(table, headers=[headers[i] for i in keep], tablefmt="github") + "\n" + note


def _cell(v):
    """Numbers as the table shows them: whole numbers as integers (tabulate would print a
    large float such as 1769472.0 as 1.76947e+06), others with two decimals."""
    if isinstance(v, float):
        return int(v) if v.is_integer() else (round(v) if abs(v) >= 1000 else f"{v:.2f}")
    return v
