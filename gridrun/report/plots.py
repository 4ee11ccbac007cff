"""Plots of an analysis, written next to the run as PNG and PDF or embedded in the HTML
page as PNG bytes: an effect forest plot with intervals, an interaction heat map, learning
curves per factor level, and how many trials of each level survived each ASHA rung.
Drawing only; numbers come from analysis."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from gridrun.report.render import metric_scale

__all__ = ["write_plots", "plot_images", "PlotImage"]

EMBED_DPI = 144  # 1.5 pixels per CSS pixel: sharp on high-density screens, a few 100 KB

# The stem of each plot's files, and its title in the HTML page.
TITLES = {"effects_forest": "Effects (forest plot)", "interactions": "Two-factor interactions",
          "learning_curves": "Learning curves", "asha_survival": "Trials surviving ASHA"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    matplotlib.rcParams["pdf.compression"] = 1  # a few KB larger, several times faster
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for p in paths:  # layout is settled at figure creation: no second "tight" draw pass
        fig.savefig(p, dpi=110)
    _pyplot().close(fig)
    return paths


@dataclass(frozen=True)
class PlotImage:
    """One drawn plot as PNG bytes; ``width`` and ``height`` in CSS pixels (96 per inch),
    the size the page shows it at."""

    key: str
    title: str
    png: bytes
    width: int
    height: int


def _grid_spacing(fig) -> None:
    # Fixed spacing: a layout engine would be solved again for every file saved, which
    # costs seconds on 8-panel figures of large runs.
    height = fig.get_figheight()  # margins in inches, whatever the number of rows
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.55 / height, top=1 - 0.75 / height,
                        wspace=0.32, hspace=0.55)


def forest(a):
    effects = a.main_effects or a.add_one_in or a.leave_one_out or a.cumulative
    if not effects:
        return None
    plt, k = _pyplot(), metric_scale(a.metric)[0]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(effects) + 1.4),
                           layout="constrained")
    for y, e in enumerate(reversed(effects)):
        est = e.estimate
        lo, hi = est.ci_low, est.ci_high
        if not math.isnan(lo):
            ax.plot([k * lo, k * hi], [y, y], color="tab:blue", lw=2)
        if not math.isnan(est.boot_low):
            ax.plot([k * est.boot_low, k * est.boot_high], [y - 0.15] * 2, color="tab:orange",
                    lw=1.5)
        ax.plot(k * est.value, y, "o", color="black")
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(effects)))
    ax.set_yticklabels([f"{e.factor}={e.level} (ep {e.estimate.budget})"
                        for e in reversed(effects)])
    unit = " (pp)" if k == 100 else ""
    better = ", lower is better" if a.mode == "min" else ""
    ax.set_xlabel(f"Δ {a.metric}{unit}{better}: blue 95% t-CI, orange 95% seed bootstrap")
    ax.set_title(f"{a.name}: {effects[0].kind.replace('_', '-')} effects")
    return fig


def heatmap(a):
    if not a.interactions:
        return None
    plt, k = _pyplot(), metric_scale(a.metric)[0]
    names = list(a.factors)
    grid = [[math.nan] * len(names) for _ in names]
    for i in a.interactions:  # the first (largest) entry per pair wins
        r, c = names.index(i.factors[0]), names.index(i.factors[1])
        if math.isnan(grid[r][c]):
            grid[r][c] = grid[c][r] = k * i.estimate.value
    bound = max((abs(v) for row in grid for v in row if not math.isnan(v)), default=1) or 1
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 1.0 * len(names) + 1.5),
                           layout="constrained")
    # blue where the pair helps: a positive interaction of a "min" metric hurts
    im = ax.imshow(grid, cmap="RdBu" if a.mode == "max" else "RdBu_r", vmin=-bound,
                   vmax=bound)
    for r in range(len(names)):
        for c in range(len(names)):
            if not math.isnan(grid[r][c]):
                # points of accuracy to one decimal; a metric in its own units to 2 digits
                text = f"{grid[r][c]:+.1f}" if k == 100 else f"{grid[r][c]:+.2g}"
                ax.text(c, r, text, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    fig.colorbar(im, ax=ax, label=f"interaction on {a.metric}")
    ax.set_title(f"{a.name}: two-factor interactions")
    return fig


def curves(a):
    factors = [f for f in a.factors if a.curves.get(f)]
    if not factors:
        return None
    plt, k = _pyplot(), metric_scale(a.metric)[0]
    cols = min(3, len(factors))
    rows = math.ceil(len(factors) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    _grid_spacing(fig)
    for ax, factor in zip(axes.flat, factors):
        for c in a.curves[factor]:
            x = list(c.epochs)
            ax.plot(x, [k * v for v in c.mean], label=str(c.level))
            ax.fill_between(x, [k * v for v in c.low], [k * v for v in c.high], alpha=0.2)
        ax.set_title(factor)
        ax.set_xlabel("epoch")
        ax.set_ylabel(a.metric)
        # not "best": it re-tests every artist per save. A rising curve (a "max" metric)
        # leaves the lower right empty, a falling one the upper right.
        ax.legend(fontsize=8, loc="lower right" if a.mode == "max" else "upper right")
    for ax in list(axes.flat)[len(factors):]:
        ax.axis("off")
    fig.suptitle(f"{a.name}: learning curves (mean and band over seeds and other factors)")
    return fig


def survival(a):
    s = a.survival
    if not s.rungs or s.total[-1] == s.n_trials:
        return None
    plt = _pyplot()
    factors = list(dict.fromkeys(r.factor for r in s.rows))
    cols = min(4, len(factors))
    rows = math.ceil(len(factors) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3 * rows), squeeze=False)
    _grid_spacing(fig)
    for ax, factor in zip(axes.flat, factors):
        for r in (r for r in s.rows if r.factor == factor):
            ax.step(s.epochs, r.reached, where="post", label=str(r.level))
        for rung in s.rungs:
            ax.axvline(rung, color="grey", lw=0.5, ls=":")
        ax.set_title(factor)
        ax.set_xlabel("epoch")
        ax.set_ylabel("trials still running")
        ax.legend(fontsize=8, loc="lower right")  # "best" re-tests every artist per save
    for ax in list(axes.flat)[len(factors):]:
        ax.axis("off")
    fig.suptitle(f"{a.name}: trials of each level surviving ASHA's rungs")
    return fig


def _figures(a):
    """(file stem, figure) of every plot the analysis supports, drawn one at a time."""
    for stem, draw in zip(TITLES, (forest, heatmap, curves, survival)):
        fig = draw(a)
        if fig is not None:
            yield stem, fig


def write_plots(a, out_dir: str | Path) -> list[Path]:
    """Draw every plot the analysis supports into ``out_dir``; returns the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [p for stem, fig in _figures(a) for p in _save(fig, out_dir, stem)]


def plot_images(a) -> list[PlotImage]:
    """Every plot the analysis supports as PNG bytes, for a page to embed; none when the
    analysis has nothing to draw.

        >>> [p.key for p in plot_images(a)]          # doctest: +SKIP
        ['effects_forest', 'interactions', 'learning_curves']
    """
    out = []
    for stem, fig in _figures(a):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=EMBED_DPI, metadata={"Software": None})
        w, h = fig.get_size_inches()
        _pyplot().close(fig)
        out.append(PlotImage(stem, TITLES[stem], buf.getvalue(), round(96 * w), round(96 * h)))
    return out
