"""Tables from analysis results: the per-level summary, the technique attribution, the
paper table of configurations, interactions, variance shares, the generalization gap and
ASHA survival. Formats numbers only; every statistic comes from ``gridrun.analysis``.

    >>> print(report_text("runs/quickstart"))          # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

from gridrun.report.render import FORMATS as TEXT_FORMATS
from gridrun.report.render import Fmt as _Fmt
from gridrun.report.render import Table, render
from gridrun.store.progress import read_progress

__all__ = ["report_text", "build_tables", "VIEWS", "FORMATS"]

VIEWS = ("effects", "add_one_in", "leave_one_out", "cumulative", "configs")
FORMATS = TEXT_FORMATS + ("csv", "json")  # csv and json: tidy numeric tables (gridrun.report.tidy)


def _level_label(factor: str, level) -> str:
    if level is True:
        return f"+ {factor}"
    if level is False:
        return f"no {factor}"
    return f"{factor} = {level}"


def _mark(est) -> str:
    return "*" if est.significant else ""


def level_table(levels, f: _Fmt, metric: str) -> Table:
    """Per level: mean ± std, Δ vs the baseline level, n, and where ASHA stopped the level's
    trials, a column shown only when it stopped some of the trials summarised (a screened
    run's table is of its anchors, which ASHA never stops)."""
    rows = []
    any_stopped = any(c for s in levels for _, c in s.stopped)
    for s in levels:
        stopped = sum(c for _, c in s.stopped)
        where = ", ".join(f"{c} at {e}" for e, c in s.stopped)
        rows.append((s.factor, str(s.level) + (" (baseline)" if s.is_baseline else ""),
                     f"{f.v(s.mean)} ± {f.v(s.std)}" if not math.isnan(s.std) else f.v(s.mean),
                     "—" if s.is_baseline else f.v(s.delta, signed=True), str(s.n))
                    + ((f"{stopped} ({where})" if stopped else "0",) if any_stopped else ()))
    budget = levels[0].budget if levels else 0
    return Table("levels", "Per factor level",
                 ("factor", "level", f"{metric}{f.unit} mean ± std", "Δ vs baseline level",
                  "n") + (("stopped by ASHA (count at epoch)",) if any_stopped else ()),
                 tuple(rows),
                 caption=f"{metric} at epoch {budget}; mean ± std over the trials of each level "
                         "(all other factors and seeds) in the cells the effects use",
                 numeric=(2, 3, 4))


def effects_table(a, f: _Fmt) -> Table:
    phi = {(p.factor, _key(p.level)): p for p in (a.shapley.parts if a.shapley else ())}
    rows, bold = [], set()
    effects = a.main_effects or a.add_one_in or a.leave_one_out or a.cumulative
    best = _best_index([e.estimate.value for e in effects], a.mode)
    for i, e in enumerate(effects):
        p = phi.get((e.factor, _key(e.level)))
        est = e.estimate
        rows.append((_level_label(e.factor, e.level), f"vs {e.reference}", f.delta(est),
                     "n/a" if math.isnan(est.boot_low) else
                     f"[{f.v(est.boot_low, True)}, {f.v(est.boot_high, True)}]",
                     "—" if p is None else f"{f.v(p.estimate.value, True)} ({100 * p.share:.0f}%)",
                     _mark(est), "n/a" if math.isnan(est.p_holm) else f"{est.p_holm:.3f}",
                     f"{est.budget} ({est.n_seeds})"))
        if i == best:
            bold.add((i, 2))
    kind = effects[0].kind.replace("_", "-") if effects else "main"
    return Table("techniques", "What each technique contributed",
                 ("technique", "reference", f"Δ {a.metric}{f.unit} [95% t-CI]",
                  "[95% bootstrap CI]", "Shapley φ (share)", "sig.", "p (Holm)",
                  "epoch (seeds)"), tuple(rows), bold=frozenset(bold), numeric=(2, 3, 4, 6),
                 caption=_caption(a, f"{kind} effect"))


def framework_table(by: dict, f: _Fmt, metric: str) -> Table | None:
    """Each main effect within each framework (``framework`` a factor), side by side, and
    whether the frameworks agree: the same sign wherever an interval excludes zero."""
    if len(by) < 2:
        return None
    names = list(by)
    per = {fw: {(e.factor, _key(e.level)): e for e in effects} for fw, effects in by.items()}
    rows = []
    for e in by[names[0]]:
        key = (e.factor, _key(e.level))
        ests = [per[fw][key].estimate if key in per[fw] else None for fw in names]
        cells = ["n/a" if x is None else f.delta(x) + (" *" if x.significant else "")
                 for x in ests]
        rows.append((_level_label(e.factor, e.level), f"vs {e.reference}", *cells,
                     _agreement(ests)))
    return Table("frameworks", "Each effect per framework",
                 ("technique", "reference", *(f"Δ {metric}{f.unit} in {fw}" for fw in names),
                  "agree"), tuple(rows), numeric=tuple(range(2, 2 + len(names))),
                 caption="main effect within each framework's own trials, at the epoch of "
                         "the main table, 95% t-interval over seeds; agree: every framework "
                         "gives the same sign wherever an interval excludes zero (— when "
                         "none does); * = Holm-adjusted p < 0.05 within that framework")


def _agreement(ests) -> str:
    ests = [x for x in ests if x is not None]
    clear = [x for x in ests if x.ci_low > 0 or x.ci_high < 0]
    if not clear:
        return "—"
    signs = {x.value > 0 for x in clear} | {x.value > 0 for x in ests if x.value != 0}
    return "yes" if len(signs) == 1 else "no"


def _caption(a, what: str, anchored: bool = True) -> str:
    seeds = a.counts.n_seeds
    sh = (f"; Shapley φ splits the baseline → target gain ({a.shapley.method}) so the parts "
          "sum to it" if a.shapley else "")
    screened = "anchors" in a.basis
    where = ("the anchors, every seed at the full budget" if screened and anchored else
             "cells that reached the full budget with every seed" if screened else
             "the last every compared trial reached")
    lower = (f"; lower {a.metric} is better, so a negative Δ is an improvement"
             if a.mode == "min" else "")
    return (f"{what} on {a.metric} at the epoch shown ({where}){lower}; 95% t-interval over "
            f"{seeds} seeds, blocked on seed, and a bootstrap over whole seeds; "
            f"* = Holm-adjusted p < 0.05{sh}")


def _key(level):
    return (type(level).__name__, level)


def _best_index(values, mode):
    vals = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
    if not vals:
        return -1
    return (max(vals) if mode == "max" else min(vals))[1]


def _levels_key(levels: dict) -> tuple:
    return tuple(sorted((k, _key(v)) for k, v in levels.items()))


def _path_rows(a, view):
    """(label, ConfigSummary, effect or None) per row of an ablation table view. An effect
    row's summary is at its effect's budget, so the whole row is at one epoch; the
    reference row (baseline or target) is at its own budget."""
    if view == "configs":  # the best configurations by rank, all at the common budget
        return [(", ".join(f"{k}={v}" for k, v in c.levels.items()), c, None)
                for c in a.configs[:10]]
    if view == "add_one_in":
        rows = [("baseline", a.baseline_summary, None)]
        rows += [(_level_label(e.factor, e.level), e.summary, e) for e in a.add_one_in]
    elif view == "leave_one_out":
        rows = [("target (all techniques)", a.target_summary, None)]
        rows += [(f"target without {e.factor}", e.summary, e) for e in a.leave_one_out]
    else:  # cumulative
        rows = [("baseline", a.baseline_summary, None)]
        rows += [(f"{_level_label(e.factor, e.level)} (step {i + 1})", e.summary, e)
                 for i, e in enumerate(a.cumulative)]
    return [r for r in rows if r[1] is not None]


_DELTA_HEAD = {"add_one_in": "Δ vs baseline", "leave_one_out": "Δ from removing it",
               "cumulative": "Δ vs previous step", "configs": "Δ vs baseline"}


def config_table(a, f: _Fmt, view: str) -> Table:
    # Only the configs view, where every row is at the common budget, has Δ on plain rows.
    base = next((c for c in a.configs if _levels_key(c.levels) == _levels_key(a.baseline)),
                None) if view == "configs" else None
    phi = {p.factor: p for p in (a.shapley.parts if a.shapley else ())}
    rows, means = [], []
    for label, c, e in _path_rows(a, view):
        if e is not None:
            est = e.estimate
            delta, mark = f.delta(est), _mark(est)
            share = phi.get(e.factor)
            share = "—" if share is None else f"{100 * share.share:.0f}%"
        else:
            delta = "—" if base is None or c is base else f.v(c.mean - base.mean, signed=True)
            mark, share = "", "—"
        means.append(c.mean)
        rows.append((label, f.pm(c.mean, c.ci_low, c.ci_high, c.n_seeds), delta, share, mark,
                     str(c.budget), "n/a" if c.params is None else f"{c.params:,}",
                     f"{c.seconds_per_epoch:.2f}"))
    best = _best_index(means, a.mode)
    return Table(f"configurations_{view}", f"Ablation table ({view.replace('_', '-')} view)",
                 ("configuration", f"{a.metric}{f.unit} mean ± 95% CI (n seeds)",
                  f"{_DELTA_HEAD[view]} [95% CI]", "Shapley share", "sig.", "epoch",
                  "params", "s/epoch"), tuple(rows),
                 bold=frozenset({(best, 1)}) if best >= 0 else frozenset(),
                 numeric=(1, 2, 3, 5, 6, 7),
                 caption=_caption(a, f"{view.replace('_', '-')} comparison", anchored=False) +
                 "; mean ± half-width of the 95% t-interval over seeds, at the row's epoch "
                 "(a reference row: the last epoch all its trials reached); best mean in "
                 "bold; s/epoch is training time")


def interaction_table(a, f: _Fmt, top: int = 5) -> Table | None:
    if not a.interactions:
        return None
    rows = [(f"{i.factors[0]} × {i.factors[1]}", f"{i.levels[0]} × {i.levels[1]}",
             f.delta(i.estimate), _mark(i.estimate), f"{i.estimate.budget} ({i.estimate.n_seeds})")
            for i in a.interactions[:top]]
    return Table("interactions", "Largest two-factor interactions",
                 ("factors", "levels (vs baseline levels)", "interaction [95% CI]", "sig.",
                  "epoch (seeds)"), tuple(rows), numeric=(2,),
                 caption="difference of differences: how much the pair's joint effect "
                         "exceeds the sum of their separate effects")


def variance_table(a) -> Table | None:
    v = a.variance
    if v is None:
        return None
    rows = [(" × ".join(t.term), str(t.df), f"{100 * t.share:.1f}%", f"{t.f_value:.1f}",
             f"{t.p_value:.3g}") for t in sorted(v.terms, key=lambda t: -t.share)]
    rows.append(("residual (seeds)", str(v.residual.df), f"{100 * v.residual.share:.1f}%", "",
                 ""))
    return Table("variance", "Share of variance (ANOVA)",
                 ("term", "df", "share of SS", "F", "p"), tuple(rows), numeric=(1, 2, 3, 4),
                 caption=f"sums of squares of {v.metric} at epoch {v.budget} over "
                         f"{v.n_trials} trials ({v.n_seeds} seeds)" +
                         (f"; {v.note}" if v.note else ""))


def gap_table(a, f: _Fmt) -> Table | None:
    if not a.gap:
        return None
    f = _Fmt("train_acc")  # the gap is in accuracy, in points, whatever the run's metric
    rows = [(_level_label(e.factor, e.level), f"vs {e.reference}", f.delta(e.estimate),
             _mark(e.estimate), str(e.estimate.budget)) for e in a.gap]
    return Table("generalization", "Generalization gap (train_acc − val_acc)",
                 ("technique", "reference", "Δ gap (pp) [95% CI]", "sig.", "epoch"),
                 tuple(rows), numeric=(2,),
                 caption="negative = the technique shrinks overfitting")


def survival_table(a) -> Table | None:
    s = a.survival
    if not s.rungs or s.total[-1] == s.n_trials:
        return None
    idx = [s.epochs.index(r) for r in s.rungs]
    rows = [(r.factor, str(r.level), str(r.n_trials), *(str(r.reached[i]) for i in idx))
            for r in s.rows]
    rows.append(("all", "", str(s.n_trials), *(str(s.total[i]) for i in idx)))
    return Table("survival", "Trials reaching each ASHA rung",
                 ("factor", "level", "trials", *(f"epoch {r}" for r in s.rungs)), tuple(rows),
                 numeric=tuple(range(2, 3 + len(idx))))


def diagnostics_table(a) -> Table | None:
    """ASHA diagnostics: per rung, how well it ranked trials like the final epoch, and how
    many trials (overall and per level) ASHA had stopped by then."""
    d = a.diagnostics
    if d is None:
        return None
    from gridrun.analysis._diagnostics import RHO_MIN

    E, rows, bold = d.final_epoch, [], set()

    def pct(p) -> str:
        return "n/a" if math.isnan(p.pruned_fraction) else f"{p.pruned_fraction:.0%}"

    for i, r in enumerate(d.rungs + (E,)):
        at = [p for p in d.pruning if p.rung == r]
        per = "; ".join(f"{f}: " + ", ".join(f"{p.level} {pct(p)}" for p in at if p.factor == f)
                        for f in a.factors)
        total = at[-1]  # the "all" row
        if r < E:
            rho, n = d.rho_at(r), d.n[r - 1]
            if rho < RHO_MIN:
                bold.add((i, 1))
            cells = (str(r), "n/a" if math.isnan(rho) else f"{rho:.2f}", str(n))
        else:
            cells = (f"{E} (final)", "—", str(d.n_finished))
        rows.append((*cells, f"{total.n_pruned}/{total.n_trials} ({pct(total)})", per))
    grace = (f"; a grace period of {d.suggested_grace} puts every rung at {RHO_MIN} or more"
             if d.suggested_grace is not None else "")
    return Table("asha_diagnostics", "ASHA diagnostics",
                 ("rung epoch", f"rank corr. with epoch {E}", "n finished",
                  "stopped by then", "stopped by then, per level"), tuple(rows),
                 bold=frozenset(bold), numeric=(1, 2, 3),
                 caption=f"Spearman rank correlation of each finished trial's {a.metric} at "
                         f"the rung with its {a.metric} at epoch {E} (bold: below {RHO_MIN}, "
                         f"the rung ranks trials unlike the end){grace}; stopped by then: "
                         f"non-errored trials ASHA had stopped at or before the epoch")


def default_view(a) -> str:
    return a.design if a.design in ("add_one_in", "leave_one_out", "cumulative") else "effects"


def _number_format(a) -> _Fmt:
    """The format of ``a.metric``: its typical value and largest effect set the decimals."""
    means = sorted(abs(c.mean) for c in a.configs if math.isfinite(c.mean))
    effects = a.main_effects or a.add_one_in or a.leave_one_out or a.cumulative
    steps = [abs(e.estimate.value) for e in effects if math.isfinite(e.estimate.value)]
    return _Fmt(a.metric, means[len(means) // 2] if means else None,
                max(steps) if steps else None)


def build_tables(a, levels, view: str | None = None, by_framework=None) -> list[Table]:
    f = _number_format(a)
    view = view or default_view(a)
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; allowed: {', '.join(VIEWS)}")
    tables = [level_table(levels, f, a.metric)] if a.design == "full" else []
    tables.append(effects_table(a, f))
    if by_framework:
        tables += [t for t in (framework_table(by_framework, f, a.metric),) if t is not None]
    if view != "effects":
        tables.append(config_table(a, f, view))
    elif a.add_one_in and a.design == "full":
        tables.append(config_table(a, f, "add_one_in"))
    tables += [t for t in (interaction_table(a, f), variance_table(a), gap_table(a, f),
                           survival_table(a), diagnostics_table(a)) if t is not None]
    return tables


def _level_rows(run, a, metric, budget, partial=False):
    """Per-level summaries over the cells the effects use: the anchors at the full budget
    for a screened run, else every trial at the common budget (or ``budget``)."""
    from gridrun.analysis import level_summaries
    from gridrun.analysis._analyze import anchor_trials, screened_anchors

    anchors = screened_anchors(run.trials, run.spec, partial) if budget is None else None
    trials = run.trials
    if anchors is not None:
        trials = anchor_trials(trials, run.spec, anchors)
        budget = a.epochs
    return level_summaries(trials, run.epochs, run.spec, metric=metric, budget=budget)


def _budget_notes(run) -> list[str]:
    """A note when the ASHA budget's ceiling stopped screened cells (run.json's schedule)."""
    sched = run.info.get("schedule") or {}
    capped = sched.get("stopped_by_budget") or {}
    if not capped:
        return []
    return [f"The budget ({sched['budget']:.0%} of the grid's epochs) stopped {len(capped)} "
            f"screened cell(s) that ASHA's bar or stratified promotion would have kept, the "
            f"first at epoch {min(capped.values())}: the effects come from the anchors and "
            f"do not depend on it, but the search for the best configuration saw fewer "
            f"cells to the end."]


def _error_notes(run) -> list[str]:
    """One line per distinct error: how many trials, which configurations, the message."""
    bad = run.trials[run.trials.status == "error"]
    out = []
    factors = list(run.spec["factors"])
    for text, group in bad.groupby(bad["error"].fillna("(no message)"), sort=True):
        cells = sorted({", ".join(f"{f}={_plain(v)}" for f, v in zip(factors, row))
                        for row in group[factors].itertuples(index=False)})
        shown = "; ".join(cells[:3]) + (f"; and {len(cells) - 3} more" if len(cells) > 3
                                         else "")
        out.append(f"Error in {len(group)} trial(s) ({shown}): {text}")
    return out


def _plain(v):
    if v is None or isinstance(v, float) and v != v:
        return "None"
    return v.item() if hasattr(v, "item") else v


def _draw(a, plots_dir) -> None:
    """Plots into a local folder, or drawn locally and uploaded to storage (a URI)."""
    from gridrun.store.location import Location
    from gridrun.report.plots import write_plots

    loc = plots_dir if isinstance(plots_dir, Location) else Location(plots_dir)
    if loc.is_local:
        write_plots(a, loc.local_path)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gridrun-plots-") as tmp:
        write_plots(a, tmp)
        for f in sorted(Path(tmp).iterdir()):
            loc.child(f.name).write_bytes(f.read_bytes())


def report_text(run_dir: str | Path, *, fmt: str = "markdown", metric: str | None = None,
                budget: int | None = None, view: str | None = None,
                plots_dir: str | Path | None = None, table: str | None = None,
                summary: bool = False) -> str:
    """Read the run at ``run_dir`` and render its report (no Ray or framework needed);
    with ``plots_dir``, also draw the plots there (PNG and PDF). "csv" and "json" give
    every table as numbers (``gridrun.report.tidy``), or only ``table`` when given.
    ``summary``: of a text format, only the heading, what each technique contributed and
    the notes (what launch prints at its end)."""
    from gridrun.analysis import analyze, metrics_of

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if view is not None and view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; allowed: {', '.join(VIEWS)}")
    if table is not None and fmt in TEXT_FORMATS:
        raise ValueError(f"--table picks one table of csv or json output, not of {fmt}")
    run = read_progress(run_dir)
    partial = run.info.get("partial")
    if partial and run.trials.empty:
        raise ValueError(f"{run_dir}: no cell has finished yet (the run {partial['state']}); "
                         f"gridrun status {run_dir} shows what is running")
    metric = metric or run.spec.get("metric") or "val_acc"
    if metric not in metrics_of(run.epochs):
        raise ValueError(f"unknown metric {metric!r}; allowed: "
                         f"{', '.join(metrics_of(run.epochs))}")
    if budget is not None and not 1 <= budget <= int(run.trials.epochs_run.max()):
        raise ValueError(f"budget {budget} is outside the epochs this run reached "
                         f"(1 to {int(run.trials.epochs_run.max())})")
    a = analyze(run.trials, run.epochs, run.spec, metric=metric, budget=budget,
                partial=bool(partial))
    levels = _level_rows(run, a, metric, budget, bool(partial))
    if plots_dir is not None:
        _draw(a, plots_dir)
    c = a.counts
    heading = (f"{a.name}: {a.design} design on {a.dataset}, {c.n_trials} trials "
               f"({c.n_completed} completed, {c.n_stopped_early} stopped by ASHA, "
               f"{c.n_error} errors), {c.n_seeds} seeds")
    notes = ([f"Numbers: {a.basis}."] if a.basis else []) + list(a.notes)
    notes += _error_notes(run) + _budget_notes(run)
    by_framework = None
    if len(run.spec["factors"].get("framework", ())) > 1:
        from gridrun.analysis._by_level import effects_by

        try:
            by_framework = effects_by(run.trials, run.epochs, run.spec, "framework",
                                      metric=metric, budget=budget)
        except ValueError as e:
            notes.append(f"No table of effects per framework: {e}.")
    lead = partial_line(run, budget) if partial else ""
    if not run.info.get("complete", True) and not partial:
        notes.insert(0, f"Incomplete run: {run.info.get('trials_written')} of "
                        f"{run.info.get('trials_expected')} trials finished.")
    if fmt in TEXT_FORMATS:
        tables = build_tables(a, levels, view, by_framework)
        if summary:
            tables = [t for t in tables if t.key == "techniques"]
        if fmt == "html" and not summary:  # the page embeds every plot, with or without --plots
            from gridrun.report.html import html_page
            from gridrun.report.plots import plot_images

            return html_page(tables, heading=heading, notes=notes, plots=plot_images(a),
                             lead=lead)
        return render(tables, fmt, heading=heading, notes=notes, lead=lead)
    from gridrun.report.tidy import tidy_text

    return tidy_text(a, levels, fmt, table=table, notes=[lead, *notes] if lead else notes,
                     info=run.info, by_framework=by_framework)


_STATES = {"running": "is running", "stalled": "has stalled (no heartbeat)",
           "interrupted": "was interrupted"}


def partial_line(run, budget=None) -> str:
    """The line that heads the report of a run still going or cut off: how far it is, and
    what its numbers cannot say yet."""
    from gridrun.analysis._analyze import anchor_trials, cell_keys, screened_anchors

    p = run.info["partial"]
    state = "was stopped (its driver is gone)" if p.get("gone") else _STATES[p["state"]]
    done = f"{p['cells_done']} of {p['cells']} cells ({p['trials_done']} of {p['trials']} trials)"
    anchors = screened_anchors(run.trials, run.spec, partial=True) if budget is None else None
    if anchors is None:
        cannot = ("the effects compare the finished cells only, so their intervals are wider "
                  "than the whole grid's will be, and the best configuration may still change")
        return f"Partial report: the run {state}; {done} have finished; {cannot}."
    keys = anchors.fraction_keys()
    sub = anchor_trials(run.trials, run.spec, anchors)
    E = int(run.spec["epochs"])
    have = len(set(cell_keys(sub[sub["epochs_run"] >= E], list(run.spec["factors"]))) & keys)
    if have < len(keys):
        cannot = (f"the effects come from the anchors and are shown when all {len(keys)} have "
                  "finished; until then the tables hold only the cells finished so far")
    else:
        cannot = ("every anchor has finished, so the effects are final; the screen is not, "
                  "so the best configuration may still change")
    return (f"Partial report: the run {state}; {done} have finished, {have} of {len(keys)} "
            f"anchors; {cannot}.")
