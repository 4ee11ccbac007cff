"""ASHA diagnostics: did the early-stopping rungs rank trials as the final epoch did, and
did pruning fall on one level of a factor far more than on the others?

Both matter for attribution. A rung that ranks trials unlike the end stops trials that would
have finished well; pruning that follows a level (every augmented trial stopped at the first
rung) leaves that level's comparisons at an early epoch or over survivors only.

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"dropout": [0.0, 0.1, 0.2, 0.3]}, seeds=1, epochs=6,
    ...                     value=lambda lv: 0.8 + lv["dropout"],
    ...                     slow=lambda lv: 0.01 + 0.3 * lv["dropout"],
    ...                     scheduler={"grace_period": 1, "reduction_factor": 2})
    >>> d = asha_diagnostics(run.grid())
    >>> d.rungs, [round(d.rho_at(r), 6) for r in d.rungs], d.suggested_grace
    ((1, 2, 4), [-1.0, -1.0, 1.0], 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import stats

from gridrun.analysis._grid import Grid
from gridrun.analysis._summary import _rungs

__all__ = ["Diagnostics", "PruningRow", "asha_diagnostics", "RHO_MIN", "MIN_FINISHED",
           "PRUNE_GAP", "PRUNE_RATIO"]

# A rung whose Spearman correlation with the final epoch is below this ranks trials too
# unlike the end for its stopping decisions to be trusted.
RHO_MIN = 0.8
# A rank correlation needs at least this many trials that finished every epoch.
MIN_FINISHED = 3
# A level is pruned "far more" than another level of its factor when, at some rung, its
# pruned fraction exceeds the other's by at least PRUNE_GAP (absolute) and is at least
# PRUNE_RATIO times it: both, so 0.30 vs 0.02 warns but 0.90 vs 0.70 and 0.04 vs 0.01 don't.
PRUNE_GAP = 0.25
PRUNE_RATIO = 1.5


@dataclass(frozen=True)
class PruningRow:
    """Of a factor level's ``n_trials`` non-errored trials, ``n_pruned`` were stopped by ASHA
    at or before epoch ``rung``. ``factor`` "all" (``level`` None) counts every trial; a
    ``rung`` equal to the final epoch counts every stop (the overall pruned fraction)."""

    factor: str
    level: Any
    rung: int
    n_trials: int
    n_pruned: int
    pruned_fraction: float  # NaN when n_trials is 0


@dataclass(frozen=True)
class Diagnostics:
    """ASHA diagnostics of one run and metric.

    ``rho[i]`` is the Spearman rank correlation between each trial's metric at epoch
    ``epochs[i]`` (every epoch below ``final_epoch``) and at ``final_epoch``, over the ``n[i]``
    non-errored trials that finished (NaN when n < MIN_FINISHED or a side is constant).
    Finished trials are ASHA's survivors, a narrower field than all trials, so a low rho is
    a warning sign rather than a precise measure. ``rungs`` are the ASHA rungs below the
    final epoch; ``pruning`` one row per factor level and rung (then the final epoch), then
    the "all" rows. ``suggested_grace`` is the smallest grace period whose rungs (at the same
    reduction factor) all have rho >= RHO_MIN, None if none does or rho is unknown.
    ``warnings`` are sentences for the report's notes."""

    metric: str
    final_epoch: int
    rungs: tuple[int, ...]
    epochs: tuple[int, ...]
    rho: tuple[float, ...]
    n: tuple[int, ...]
    n_finished: int
    pruning: tuple[PruningRow, ...]
    suggested_grace: int | None
    warnings: tuple[str, ...]

    def rho_at(self, epoch: int) -> float:
        """Spearman rho of ``epoch`` (1 to final_epoch - 1) with the final epoch."""
        if epoch not in self.epochs:
            raise ValueError(f"epoch must be from 1 to {self.final_epoch - 1}, got {epoch!r}")
        return self.rho[self.epochs.index(epoch)]

    def tidy(self) -> dict[str, list[dict]]:
        """Two tidy tables of plain Python values (NaN as None, so JSON stays valid):
        "rung_correlation" (epoch, is_rung, rho, n) and "pruning" (factor, level, rung,
        n_trials, n_pruned, pruned_fraction)."""
        rungs = set(self.rungs)
        corr = [{"epoch": int(e), "is_rung": e in rungs, "rho": _plain(r), "n": int(k)}
                for e, r, k in zip(self.epochs, self.rho, self.n)]
        pruning = [{"factor": p.factor, "level": _plain(p.level), "rung": int(p.rung),
                    "n_trials": int(p.n_trials), "n_pruned": int(p.n_pruned),
                    "pruned_fraction": _plain(p.pruned_fraction)} for p in self.pruning]
        return {"rung_correlation": corr, "pruning": pruning}


def asha_diagnostics(grid: Grid, scheduler: Mapping[str, Any] | None = None, *,
                     anchored: bool = False) -> Diagnostics:
    """Rung predictiveness, pruning per factor level and warnings for a run stopped by ASHA.
    ``scheduler`` ({"grace_period": g, "reduction_factor": eta}) defaults to the run's.
    ``anchored``: the run's effects come from anchors ASHA never stopped, so uneven pruning
    only thins the search for the best configuration (the warnings say so).

    >>> from gridrun.analysis.testing import synthetic_run
    >>> run = synthetic_run({"augmentation": [False, True]}, value=lambda lv: 0.8, seeds=4,
    ...                     stop=lambda lv, s: 2 if lv["augmentation"] else 6,
    ...                     scheduler={"grace_period": 2, "reduction_factor": 2})
    >>> d = asha_diagnostics(run.grid())
    >>> [(p.level, p.rung, p.pruned_fraction) for p in d.pruning if p.rung == 2]
    [(False, 2, 0.0), (True, 2, 1.0), (None, 2, 0.5)]
    """
    scheduler = grid.scheduler if scheduler is None else scheduler
    if not scheduler:
        raise ValueError("ASHA diagnostics need a scheduler ({'grace_period': g, "
                         "'reduction_factor': eta}); this run has none")
    E = grid.epochs
    rungs = _rungs(scheduler, E)[:-1]
    epochs = tuple(range(1, E))
    rho, n, n_finished = _rank_correlations(grid)
    pruning = _pruning(grid, rungs + (E,))
    grace = _suggest_grace(scheduler, E, rho) if n_finished >= MIN_FINISHED else None
    warnings = _level_warnings(grid, pruning, anchored)
    warnings += _rung_warnings(grid.metric, E, rungs, rho, n_finished, grace)
    return Diagnostics(grid.metric, E, rungs, epochs, rho, n, n_finished, pruning, grace,
                       tuple(warnings))


def _rank_correlations(grid: Grid) -> tuple[tuple[float, ...], tuple[int, ...], int]:
    """Spearman rho and n of every epoch below the final one with it, over finished trials."""
    E = grid.epochs
    finished = grid.usable(E) if E else np.zeros(grid.present.shape, bool)
    x = grid.values[finished]  # (finished trials, E)
    rho, n = [], []
    for e in range(1, E):
        ok = np.isfinite(x[:, e - 1])
        rho.append(_spearman(x[ok, e - 1], x[ok, E - 1]))
        n.append(int(ok.sum()))
    return tuple(rho), tuple(n), int(finished.sum())


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < MIN_FINISHED:
        return math.nan
    ra, rb = stats.rankdata(a), stats.rankdata(b)  # ties get their average rank
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return math.nan
    return float(np.clip(np.corrcoef(ra, rb)[0, 1], -1.0, 1.0))


def _pruning(grid: Grid, rungs: tuple[int, ...]) -> tuple[PruningRow, ...]:
    live = grid.present & ~grid.error
    # The epoch a stopped trial ended at; trials that ran to the end never count as pruned.
    stopped_at = np.where(live & ~grid.completed, grid.reach, np.iinfo(np.int64).max)
    groups = [(f, lv, live & (grid.configs[:, i] == j)[:, None])
              for i, f in enumerate(grid.factors) for j, lv in enumerate(grid.levels[i])]
    rows = []
    for f, lv, mask in groups + [("all", None, live)]:
        total = int(mask.sum())
        for r in rungs:
            k = int((mask & (stopped_at <= r)).sum())
            rows.append(PruningRow(f, lv, r, total, k, k / total if total else math.nan))
    return tuple(rows)


def _suggest_grace(scheduler, E: int, rho: tuple[float, ...]) -> int | None:
    """The smallest grace period whose every rung has rho >= RHO_MIN (NaN fails)."""
    for g in range(1, E):
        rungs = _rungs({**scheduler, "grace_period": g}, E)[:-1]
        if all(rho[r - 1] >= RHO_MIN for r in rungs):
            return g
    return None


def _level_warnings(grid: Grid, pruning: tuple[PruningRow, ...],
                    anchored: bool = False) -> list[str]:
    """One sentence per level pruned far more than another level of its factor, at the
    first rung where it is."""
    out, said = [], set()
    for f in grid.factors:
        rows = [p for p in pruning if p.factor == f]
        for rung in sorted({p.rung for p in rows}):
            at = [p for p in rows if p.rung == rung and not math.isnan(p.pruned_fraction)]
            if not at:
                continue
            low = min(at, key=lambda q: q.pruned_fraction)
            for p in at:
                if repr(p.level) in said or not _far_more(p.pruned_fraction,
                                                          low.pruned_fraction):
                    continue
                said.add(repr(p.level))
                out.append(
                    f"ASHA stopped {p.n_pruned} of {p.n_trials} trials with {f} = {p.level} "
                    f"by epoch {rung} ({p.pruned_fraction:.0%}) but {low.n_pruned} of "
                    f"{low.n_trials} with {f} = {low.level} ({low.pruned_fraction:.0%}): " +
                    (f"the effects come from the anchors, which are never stopped, but the "
                     f"search for the best configuration saw few {f} = {p.level} cells "
                     f"past that epoch." if anchored else
                     f"comparisons of {f} are at an early epoch or over survivors only, so "
                     f"read its effect with care."))
        said.clear()
    return out


def _far_more(p: float, q: float) -> bool:
    return p - q >= PRUNE_GAP - 1e-12 and p >= PRUNE_RATIO * q


def _rung_warnings(metric, E, rungs, rho, n_finished, grace) -> list[str]:
    if not rungs:
        return []
    if n_finished < MIN_FINISHED:
        return [f"Only {n_finished} trial(s) finished all {E} epochs; checking whether "
                f"ASHA's rungs rank trials as the final epoch does needs at least "
                f"{MIN_FINISHED} finished trials."]
    bad = [(r, rho[r - 1]) for r in rungs if rho[r - 1] < RHO_MIN]
    if not bad:
        return []
    s = "s" if len(bad) > 1 else ""
    text = (f"ASHA's rung{s} at epoch{s} {_and(r for r, _ in bad)} "
            f"ranked trials unlike the final epoch {E}: the Spearman rank correlation of "
            f"{metric} with epoch {E} over the {n_finished} finished trials is "
            f"{_and(f'{v:.2f}' for _, v in bad)} (below {RHO_MIN}), so trials stopped there "
            f"may have finished well. ")
    if grace is not None:
        text += (f"A grace period of {grace} would put every rung at an epoch whose "
                 f"correlation is at least {RHO_MIN}.")
    else:
        text += (f"No early epoch predicted the end well (no grace period puts every rung "
                 f"at a correlation of at least {RHO_MIN}); consider training without "
                 f"early stopping.")
    return [text]


def _and(items) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v
