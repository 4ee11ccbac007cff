"""Tidy tables of an ``Analysis`` for machines: one list of plain records per table, every
number in the metric's own units (accuracy as a fraction), and their CSV and JSON text.

The Markdown/LaTeX/HTML report formats numbers for people; these tables keep them as
numbers, so ``pandas.DataFrame(tables["techniques"])`` needs no parsing:

    >>> from gridrun.analysis import analyze
    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"batchnorm": [False, True]},
    ...                     value=lambda lv: 0.80 + 0.05 * lv["batchnorm"])
    >>> tables = tidy_tables(analyze(run.trials, run.epochs, run.spec, n_boot=100))
    >>> [(r["factor"], round(r["effect"], 6), r["epoch"]) for r in tables["techniques"]]
    [('batchnorm', 0.05, 6)]
"""

from __future__ import annotations

import csv
import io
import json
import math

__all__ = ["TABLES", "tidy_tables", "tidy_text", "run_metadata"]

TABLES = ("levels", "techniques", "configurations", "add_one_in", "leave_one_out",
          "cumulative", "interactions", "variance", "gap", "survival")

_STATS = ("effect", "ci_low", "ci_high", "boot_low", "boot_high", "se", "p_value", "p_holm",
          "significant")
_COUNTS = ("epoch", "n_seeds", "n_trials", "n_short", "n_error", "survivors_only")
_EFFECT = ("kind", "factor", "level", "reference", *_STATS, "shapley_phi", "shapley_share",
           "mean", "reference_mean", *_COUNTS, "basis")
_GAP = tuple(c for c in _EFFECT if not c.startswith("shapley"))
_CONFIG = ("rank", "mean", "std", "ci_low", "ci_high", "epoch", "n_seeds", "n_short",
           "n_error", "n_completed", "params", "wall_seconds", "seconds_per_epoch", "test_acc")
_PATH = ("factor", "level", "reference", "mean", "std", "ci_low", "ci_high", "epoch",
         "n_seeds", "n_short", "n_error", "effect", "effect_ci_low", "effect_ci_high",
         "p_holm", "significant", "shapley_share", "params", "seconds_per_epoch", "basis")
_COLUMNS = {
    "levels": ("factor", "level", "is_baseline", "mean", "std", "delta", "n", "n_short",
               "n_error", "n_stopped", "epoch"),
    "techniques": _EFFECT,
    "interactions": ("factor_1", "level_1", "reference_1", "factor_2", "level_2",
                     "reference_2", *_STATS, *_COUNTS, "basis"),
    "variance": ("term", "df", "ss", "share", "f_value", "p_value", "epoch", "n_seeds",
                 "n_trials", "basis"),
    "gap": _GAP,
    "survival": ("factor", "level", "epoch", "is_rung", "n_trials", "n_reached"),
}


def tidy_tables(a, levels=()) -> dict[str, list[dict]]:
    """Every table of the analysis ``a`` (and the per-level summaries ``levels``) as lists of
    records of plain Python values, NaN as None. Keys are ``TABLES`` (a table the design
    cannot support is empty), then the ASHA diagnostics tables when ``a`` has them."""
    return {name: records for name, (_, records) in _build(a, levels).items()}


def tidy_text(a, levels, fmt: str, *, table: str | None = None, notes=(),
              info=None, by_framework=None) -> str:
    """The tables as ``fmt`` "csv" (one long table; a leading ``table`` column names each
    row's table unless ``table`` picks one) or "json" (run metadata, tables, notes).
    ``by_framework`` ({framework: main effects}) adds the table "frameworks"."""
    built = _build(a, levels)
    if by_framework:
        cols = ("framework", "kind", "factor", "level", "reference", *_STATS, "mean",
                "reference_mean", *_COUNTS)
        records = [_plain({c: {"framework": fw, **_effect(a, e, shapley=False)}.get(c)
                           for c in cols})
                   for fw, effects in by_framework.items() for e in effects]
        built["frameworks"] = (cols, records)
    if table is not None:
        if table not in built:
            raise ValueError(f"unknown table {table!r}; allowed: {', '.join(built)}")
        built = {table: built[table]}
    if fmt == "json":
        doc = {"run": run_metadata(a, info), "notes": list(notes),
               "tables": {k: records for k, (_, records) in built.items()}}
        return json.dumps(_plain(doc), indent=2, default=str, allow_nan=False) + "\n"
    if fmt == "csv":
        partial = bool((info or {}).get("partial"))
        return _csv(built, with_table=table is None, partial=partial)
    raise ValueError(f"unknown tidy format {fmt!r}; allowed: csv, json")


def run_metadata(a, info=None) -> dict:
    """What the numbers are about: the run, the metric and its units, the basis."""
    info = info or {}
    c = a.counts
    return {
        "name": a.name, "dataset": a.dataset, "design": a.design, "metric": a.metric,
        "mode": a.mode, "better": "lower" if a.mode == "min" else "higher",
        "epochs": a.epochs, "budget": a.budget, "budgets": list(a.budgets),
        "basis": a.basis, "units": _units(a.metric),
        "factors": list(a.factors), "levels": {f: list(v) for f, v in a.levels.items()},
        "baseline": a.baseline, "target": a.target,
        "counts": {"n_trials": c.n_trials, "n_completed": c.n_completed,
                   "n_stopped_early": c.n_stopped_early, "n_error": c.n_error,
                   "n_seeds": c.n_seeds, "n_configs": c.n_configs},
        "complete": bool(info.get("complete", True)),
        "partial": bool(info.get("partial")),
        **({"progress": dict(info["partial"])} if info.get("partial") else {}),
    }


def _units(metric: str) -> str:
    scale = ("as a fraction (0.83 is 83%), not percent" if metric.endswith("acc")
             else "in its own units, as logged")
    return (f"{metric} {scale}: every mean, std, effect and interval is in these units "
            "(the gap table's: train_acc - val_acc, a fraction), test_acc is a fraction; "
            "share and shapley_share are fractions of 1; wall_seconds and seconds_per_epoch "
            "are seconds")


def _build(a, levels) -> dict[str, tuple[tuple, list[dict]]]:
    factors = tuple(a.factors)
    effects = a.main_effects or a.add_one_in or a.leave_one_out or a.cumulative
    out = {
        "levels": [_level(s) for s in levels] if a.design == "full" else [],
        "techniques": [_effect(a, e) for e in effects],
        "configurations": [{**c.levels, **_config(c), "basis": a.basis} for c in a.configs],
        **{view: _path(a, view) for view in ("add_one_in", "leave_one_out", "cumulative")},
        "interactions": [_interaction(a, x) for x in a.interactions],
        "variance": _variance(a),
        "gap": [_effect(a, e, shapley=False) for e in a.gap],
        "survival": _survival(a.survival),
    }
    columns = {**_COLUMNS, "configurations": (*factors, *_CONFIG, "basis"),
               "add_one_in": (*_PATH[:3], *factors, *_PATH[3:]),
               "leave_one_out": (*_PATH[:3], *factors, *_PATH[3:]),
               "cumulative": ("step", *_PATH[:3], *factors, *_PATH[3:])}
    built = {k: (columns[k], [_plain({c: r.get(c) for c in columns[k]}) for r in v])
             for k, v in out.items()}
    diagnostics = getattr(a, "diagnostics", None)
    if diagnostics is not None and hasattr(diagnostics, "tidy"):
        for name, records in diagnostics.tidy().items():
            records = [_plain(dict(r)) for r in records]
            cols = tuple(dict.fromkeys(k for r in records for k in r))
            built[name if name not in built else f"diagnostics_{name}"] = (cols, records)
    return built


def _estimate(est) -> dict:
    return {"effect": est.value, "ci_low": est.ci_low, "ci_high": est.ci_high,
            "boot_low": est.boot_low, "boot_high": est.boot_high, "se": est.se,
            "p_value": est.p_value, "p_holm": est.p_holm, "significant": est.significant,
            "epoch": est.budget, "n_seeds": est.n_seeds, "n_trials": est.n_trials,
            "n_short": est.n_short, "n_error": est.n_error,
            "survivors_only": est.survivors_only}


def _shapley_part(a, factor, level):
    for p in (a.shapley.parts if a.shapley else ()):
        if p.factor == factor and _same(p.level, level):
            return p
    return None


def _same(x, y) -> bool:
    return type(x) is type(y) and x == y


def _effect(a, e, shapley: bool = True) -> dict:
    p = _shapley_part(a, e.factor, e.level) if shapley else None
    return {"kind": e.kind, "factor": e.factor, "level": e.level, "reference": e.reference,
            **_estimate(e.estimate), "mean": e.mean, "reference_mean": e.reference_mean,
            "shapley_phi": None if p is None else p.estimate.value,
            "shapley_share": None if p is None else p.share, "basis": a.basis}


def _config(c) -> dict:
    return {"rank": c.rank, "mean": c.mean, "std": c.std, "ci_low": c.ci_low,
            "ci_high": c.ci_high, "epoch": c.budget, "n_seeds": c.n_seeds,
            "n_short": c.n_short, "n_error": c.n_error, "n_completed": c.n_completed,
            "params": c.params, "wall_seconds": c.wall_seconds,
            "seconds_per_epoch": c.seconds_per_epoch, "test_acc": c.test_acc}


def _path(a, view) -> list[dict]:
    """The ablation table of one view: the reference row (at its own budget), then one row
    per effect with its configuration at the effect's budget."""
    effects = getattr(a, view)
    if not effects:
        return []
    ref = a.target_summary if view == "leave_one_out" else a.baseline_summary
    phi = {p.factor: p.share for p in (a.shapley.parts if a.shapley else ())}
    rows = [] if ref is None else [{**ref.levels, **_config(ref), "basis": a.basis}]
    for i, e in enumerate(effects):
        if e.summary is None:
            continue
        est = e.estimate
        rows.append({**e.summary.levels, **_config(e.summary), "factor": e.factor,
                     "level": e.level, "reference": e.reference, "effect": est.value,
                     "effect_ci_low": est.ci_low, "effect_ci_high": est.ci_high,
                     "p_holm": est.p_holm, "significant": est.significant,
                     "shapley_share": phi.get(e.factor), "basis": a.basis,
                     "step": i + 1 if view == "cumulative" else None})
    return rows


def _interaction(a, x) -> dict:
    return {"factor_1": x.factors[0], "level_1": x.levels[0], "reference_1": x.references[0],
            "factor_2": x.factors[1], "level_2": x.levels[1], "reference_2": x.references[1],
            **_estimate(x.estimate), "basis": a.basis}


def _variance(a) -> list[dict]:
    v = a.variance
    if v is None:
        return []
    common = {"epoch": v.budget, "n_seeds": v.n_seeds, "n_trials": v.n_trials,
              "basis": a.basis}
    return [{"term": ":".join(t.term) or "residual", "df": t.df, "ss": t.ss,
             "share": t.share, "f_value": t.f_value, "p_value": t.p_value, **common}
            for t in (*v.terms, v.residual)]


def _level(s) -> dict:
    return {"factor": s.factor, "level": s.level, "is_baseline": s.is_baseline,
            "mean": s.mean, "std": s.std, "delta": s.delta, "n": s.n, "n_short": s.n_short,
            "n_error": s.n_error, "n_stopped": sum(c for _, c in s.stopped),
            "epoch": s.budget}


def _survival(s) -> list[dict]:
    rungs = set(s.rungs)
    groups = [(r.factor, r.level, r.n_trials, r.reached) for r in s.rows]
    groups.append(("all", None, s.n_trials, s.total))
    return [{"factor": f, "level": lv, "epoch": e, "is_rung": e in rungs, "n_trials": n,
             "n_reached": k}
            for f, lv, n, reached in groups for e, k in zip(s.epochs, reached)]


def _plain(v):
    """Plain Python values for JSON and CSV: numpy scalars unwrapped, NaN and inf as None."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _csv(built, *, with_table: bool, partial: bool = False) -> str:
    """One long table; the rows of a partial run (still going, or cut off) carry a
    ``partial`` column that is true, so a reader of the file alone cannot mistake them."""
    columns = list(dict.fromkeys(c for cols, _ in built.values() for c in cols))
    lead = (["table"] if with_table else []) + (["partial"] if partial else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*lead, *columns])
    for name, (_, records) in built.items():
        for r in records:
            first = ([name] if with_table else []) + (["true"] if partial else [])
            writer.writerow([*first, *(_cell(r.get(c)) for c in columns)])
    return buf.getvalue()


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)
