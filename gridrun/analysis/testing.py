"""Synthetic runs with known truth, in the store's schema, for tests and benchmarks.

``synthetic_run`` builds ``trials`` and ``epochs`` DataFrames (and the run.json ``spec``)
from a true metric per configuration, seed noise, learning-curve shape, early stopping and
errors that you choose, so an estimator can be checked against the answer it must find.

    >>> run = synthetic_run({"A": [False, True], "B": ["x", "y"]},
    ...                     value=additive(0.80, main={"A": {True: 0.03}}), seeds=2)
    >>> len(run.trials), len(run.epochs), round(run.truth({"A": True, "B": "x"}), 6)
    (8, 48, 0.83)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from gridrun.analysis._grid import Grid, mode_of, prepare

__all__ = ["SyntheticRun", "synthetic_run", "additive", "design_points"]

Levels = Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class SyntheticRun:
    """A run with known truth: ``truth(levels, epoch)`` is the noise-free metric (the
    spec's: val_acc unless ``synthetic_run`` was given another) of a configuration at an
    epoch (default: the final one)."""

    trials: pd.DataFrame
    epochs: pd.DataFrame
    spec: dict
    value: Callable[[Levels], float]
    slow: Callable[[Levels], float]

    def truth(self, levels: Levels, epoch: int | None = None) -> float:
        e = self.spec["epochs"] if epoch is None else epoch
        return self.value(levels) - self.slow(levels) * (self.spec["epochs"] - e)

    def grid(self, metric: str | None = None) -> Grid:
        return prepare(self.trials, self.epochs, self.spec, metric=metric)

    def save(self, path):
        """Write the run as a gridrun run folder at ``path`` (for report tests); returns it.
        Factors that are no technique are saved as a run's custom factors are: typed by
        their levels, their kinds in run.json's spec["plugins"]["factors"]."""
        from gridrun import store

        def records(df):
            return df.astype(object).where(df.notna(), None).to_dict("records")

        spec = dict(self.spec)
        kinds = _custom_kinds(spec["factors"])
        if kinds and not (spec.get("plugins") or {}).get("factors"):
            spec["plugins"] = {**(spec.get("plugins") or {}), "factors": kinds}
        store.write_run(path, factor_names=list(spec["factors"]),
                        trials=records(self.trials), epochs=records(self.epochs),
                        info={"spec": spec, "complete": True})
        return path


def _custom_kinds(factors: Mapping[str, Sequence]) -> dict[str, str]:
    """{factor: kind} of the factors that are not techniques, from their levels' type."""
    from gridrun.spec import techniques

    out = {}
    for name, levels in factors.items():
        if name in techniques.TECHNIQUES:
            continue
        types = {type(v) for v in levels if v is not None}
        # numbers are stored as floats here (None is a level of numeric factors: NaN)
        out[name] = "bool" if types == {bool} else "float" if types <= {int, float} \
            else "str"
    return out


def additive(base: float, main: Mapping[str, Mapping[Any, float]] | None = None,
             pairs: Mapping[tuple[str, str], Mapping[tuple, float]] | None = None
             ) -> Callable[[Levels], float]:
    """base + main[f][level] + pairs[(f, g)][(level_f, level_g)] (missing entries are 0)."""
    main, pairs = main or {}, pairs or {}

    def value(lv: Levels) -> float:
        v = base + sum(m.get(lv[f], 0.0) for f, m in main.items())
        return v + sum(p.get((lv[f], lv[g]), 0.0) for (f, g), p in pairs.items())
    return value


def design_points(factors: Mapping[str, Sequence], design: str, baseline: Levels,
                  target: Levels, order=None, resolution=None, runs=None) -> list[dict]:
    """The design's configurations (the same semantics as gridrun.design.grid), deduplicated.
    For "fractional", ``runs`` are +-1 rows (-1 = baseline level); by default they come from
    ``gridrun.design.fractional.fractional_plan``, or, with factors of more than two levels,
    from ``gridrun.design.arrays.mixed_fraction`` (strength ``resolution`` - 1)."""
    names = list(factors)
    if design == "full":
        points = [dict(zip(names, c)) for c in itertools.product(*factors.values())]
    elif design == "add_one_in":
        points = [dict(baseline)] + [{**baseline, n: target[n]} for n in names]
    elif design == "leave_one_out":
        points = [dict(target)] + [{**target, n: baseline[n]} for n in names]
    elif design == "cumulative":
        points, cur = [dict(baseline)], dict(baseline)
        for n in order or names:
            cur = {**cur, n: target[n]}
            points.append(cur)
    elif design == "fractional" and runs is None and (
            any(len(v) != 2 for v in factors.values()) or len(names) > 11):
        from gridrun.design.arrays import mixed_fraction, to_levels

        arr = mixed_fraction([len(factors[n]) for n in names], resolution - 1)
        base = {n: list(factors[n]).index(baseline[n]) for n in names}
        points = [{n: factors[n][to_levels(v, base[n], len(factors[n]))]
                   for n, v in zip(names, r)} for r in arr.runs]
    elif design == "fractional":
        if runs is None:
            from gridrun.design.fractional import fractional_plan
            runs = fractional_plan(len(names), resolution).runs
        points = [{n: target[n] if s > 0 else baseline[n] for n, s in zip(names, r)}
                  for r in runs]
    else:
        raise ValueError(f"unknown design {design!r}")
    seen, out = set(), []
    for p in points:
        key = tuple(repr(p[n]) for n in names)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def synthetic_run(factors: Mapping[str, Sequence], *, value, seeds: int = 3, epochs: int = 6,
                  design: str = "full", baseline: Levels | None = None,
                  target: Levels | None = None, order=None, resolution=None, runs=None,
                  noise: float = 0.0, seed_noise: float = 0.0, slow=None, gap=None,
                  stop=None, error=None, scheduler=None, seed: int = 0,
                  name: str = "synthetic", metric: str = "val_acc",
                  mode: str | None = None) -> SyntheticRun:
    """A run in the store's schema with known truth.

    ``metric``/``mode``: the spec's metric and mode (default: ``mode_of(metric)``). Another
    metric than val_acc is a run whose trainer reports its own metrics: ``value`` is then
    that metric, in a column of its own (a ``val_X`` metric also gets ``train_X``, better
    than it by ``gap``), the built-in metrics are null and trials have
    ``last_<metric>``/``best_<metric>`` (best by ``mode``) and no test_acc.

    ``value``: levels -> true final val_acc (a callable, or a mapping from level tuples in
    factor order). Per trial, val_acc at epoch e is value - slow * (epochs - e) + a trial
    offset N(0, noise) + a seed offset N(0, seed_noise) shared by all trials of that seed.
    ``slow``: levels -> per-epoch shortfall (default 0: flat curves). ``gap``: levels ->
    true train_acc - val_acc (default 0.05; train_acc gets its own N(0, noise)).
    ``stop``: (levels, seed) -> epochs run, or an array of epochs run per trial; ``error``:
    (levels, seed) -> bool, or a bool array. Trials are ordered point-major, seed fastest.
    """
    names = list(factors)
    factors = {n: list(v) for n, v in factors.items()}
    baseline = {n: (baseline or {}).get(n, factors[n][0]) for n in names}
    target = {n: (target or {}).get(n, factors[n][-1]) for n in names}
    value = _as_fn(value, names)
    slow_fn = _as_fn(slow, names) if slow is not None else (lambda lv: 0.0)
    gap_fn = _as_fn(gap, names) if gap is not None else (lambda lv: 0.05)
    points = design_points(factors, design, baseline, target, order, resolution, runs)
    C, S, E = len(points), seeds, epochs
    rng = np.random.default_rng(seed)
    val_c = np.array([value(p) for p in points], float)
    slow_c = np.array([slow_fn(p) for p in points], float)
    gap_c = np.array([gap_fn(p) for p in points], float)
    cfg, sd = np.repeat(np.arange(C), S), np.tile(np.arange(S), C)
    run_e = _per_trial(stop, points, cfg, sd, E, np.int64)
    err = _per_trial(error, points, cfg, sd, False, bool)
    run_e = np.where(err, np.minimum(run_e, 1), np.clip(run_e, 0, E))
    offset = rng.normal(0, noise, C * S) + rng.normal(0, seed_noise, S)[sd]
    tr = np.repeat(np.arange(C * S), run_e)
    ep = np.arange(len(tr)) - np.repeat(np.cumsum(run_e) - run_e, run_e) + 1
    val = val_c[cfg[tr]] - slow_c[cfg[tr]] * (E - ep) + offset[tr]
    val = np.where(err[tr], -1.0, val)  # garbage an estimate must never see
    train = val + gap_c[cfg[tr]] + rng.normal(0, noise, len(tr))
    ids = np.array([f"t{i:07d}" for i in range(C * S)], dtype=object)
    mode = mode or mode_of(metric)
    # the training metric is better than the validation one by ``gap``, whichever way is up
    train = train if metric == "val_acc" or mode == "max" else 2 * val - train
    ep_df = _epochs(ids[tr], ep, val, train, metric)
    trials = _trials(ids, names, factors, points, cfg, sd, run_e, err, ep_df, E, metric, mode)
    spec = {"name": name, "dataset": "synthetic", "factors": factors, "baseline": baseline,
            "target": target, "design": design, "order": list(order) if order else None,
            "resolution": resolution, "seeds": seeds, "epochs": epochs, "metric": metric,
            "mode": mode, "scheduler": scheduler}
    return SyntheticRun(trials, ep_df, spec, value, slow_fn)


def _epochs(ids, ep, val, train, metric: str) -> pd.DataFrame:
    """The epochs table: the built-in metrics from ``val``/``train`` when the metric is
    val_acc; else null built-in metrics and the trainer's own columns."""
    n = len(ids)
    if metric == "val_acc":
        return pd.DataFrame({"trial_id": ids, "epoch": ep, "train_loss": 1 - train,
                             "train_acc": train, "val_loss": 1 - val, "val_acc": val,
                             "lr": np.full(n, 0.1), "seconds": np.ones(n),
                             "rss_mb": np.full(n, np.nan)})
    none = np.full(n, np.nan)
    cols = {"trial_id": ids, "epoch": ep, "train_loss": none, "train_acc": none,
            "val_loss": none, "val_acc": none, "lr": none, "seconds": np.ones(n),
            "rss_mb": none}
    own = {metric: val}
    if metric.startswith("val_"):
        own["train_" + metric[4:]] = train
    return pd.DataFrame({**cols, **{k: own[k] for k in sorted(own)}})  # as the store sorts


def _as_fn(v, names) -> Callable[[Levels], float]:
    if callable(v):
        return v
    table = dict(v)
    return lambda lv: float(table[tuple(lv[n] for n in names)])


def _per_trial(spec, points, cfg, sd, default, dtype) -> np.ndarray:
    if spec is None:
        return np.full(len(cfg), default, dtype=dtype)
    if callable(spec):
        return np.array([spec(points[c], int(s)) for c, s in zip(cfg, sd)], dtype=dtype)
    arr = np.asarray(spec, dtype=dtype)
    if arr.shape != cfg.shape:
        raise ValueError(f"expected one value per trial ({len(cfg)}), got shape {arr.shape}")
    return arr


def _trials(ids, names, factors, points, cfg, sd, run_e, err, ep_df, E, metric="val_acc",
            mode="max") -> pd.DataFrame:
    cols: dict[str, Any] = {"trial_id": ids}
    for n in names:
        lv = factors[n]
        codes = np.array([lv.index(p[n]) for p in points])[cfg]
        if all(isinstance(x, bool) for x in lv):
            cols[n] = np.array(lv, dtype=bool)[codes]
        elif all(x is None or isinstance(x, (int, float)) for x in lv):
            cols[n] = np.array([np.nan if x is None else x for x in lv], dtype=float)[codes]
        else:
            cols[n] = np.array([None if x is None else str(x) for x in lv], dtype=object)[codes]
    last_row = np.cumsum(run_e) - 1
    has = run_e > 0
    val = ep_df[metric].to_numpy()
    last = np.where(has, val[np.maximum(last_row, 0)], np.nan) if len(val) else \
        np.full(len(ids), np.nan)
    best, best_ep = np.full(len(ids), np.nan), np.zeros(len(ids), np.int64)
    if len(val):
        starts = (np.cumsum(run_e) - run_e)[has]
        best[has] = (np.maximum if mode == "max" else np.minimum).reduceat(val, starts)
        tr = np.repeat(np.arange(len(ids)), run_e)
        first = np.where(val == best[tr], ep_df["epoch"].to_numpy(), np.iinfo(np.int64).max)
        best_ep[has] = np.minimum.reduceat(first, starts)
    done = (run_e == E) & ~err
    status = np.where(err, "error", np.where(done, "completed", "stopped_early"))
    own = metric != "val_acc"
    none = np.full(len(ids), np.nan)
    cols.update(seed=sd.astype(np.int64), status=status.astype(object),
                epochs_run=run_e.astype(np.int64), last_val_acc=none if own else last,
                best_val_acc=none if own else best)
    if own:  # the store's columns of the spec's metric, after best_val_acc
        cols.update({f"last_{metric}": last, f"best_{metric}": best})
    cols.update(best_epoch=best_ep, test_acc=np.where(done & (not own), last, np.nan),
                params=(1000 * (1 + cfg)).astype(np.int64),
                wall_seconds=run_e.astype(float),
                error=np.where(err, "RuntimeError: synthetic failure", None),
                continued_from=np.full(len(ids), None, dtype=object),
                node=np.full(len(ids), None, dtype=object))
    return pd.DataFrame(cols)
