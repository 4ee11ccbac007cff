"""Format ``Table`` records as Markdown, LaTeX (booktabs) or HTML (a whole page, from
``gridrun.report.html``). Formatting only; the machine-readable CSV and JSON come from
``gridrun.report.tidy``, with numbers, not text."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = ["Table", "render", "FORMATS", "metric_scale", "Fmt", "decimals"]

FORMATS = ("markdown", "latex", "html")


def metric_scale(metric: str) -> tuple[float, str]:
    """How tables and plots show a metric: accuracies in percent, any other metric (losses,
    a trainer's own such as val_mse) in its own units."""
    return (100.0, " (%)") if metric.endswith("acc") else (1.0, "")


def decimals(typical: float | None = None, step: float | None = None) -> int:
    """Decimals for a metric in its own units: three significant digits of a ``typical``
    value and two of the largest difference shown (``step``), from 2 to 6. A metric such
    as an MSE of 0.012 would read 0.01 with the two decimals of percentages."""
    d = 2
    for v, digits in ((typical, 3), (step, 2)):
        if v is not None and math.isfinite(v) and v != 0:
            d = max(d, digits - 1 - math.floor(math.log10(abs(v))))
    return min(d, 6)


class Fmt:
    """Number formatting in the metric's units: accuracy in percent with 2 decimals, any
    other metric as it is, with ``decimals(typical, step)``."""

    def __init__(self, metric: str, typical: float | None = None, step: float | None = None):
        self.k, self.unit = metric_scale(metric)
        self.d = 2 if self.k == 100 else decimals(typical, step)

    def v(self, x, signed=False) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "n/a"
        return f"{self.k * x:+.{self.d}f}" if signed else f"{self.k * x:.{self.d}f}"

    def pm(self, mean, lo, hi, n) -> str:
        if any(math.isnan(x) for x in (lo, hi)):
            return f"{self.v(mean)} (n={n})"
        return f"{self.v(mean)} ± {self.k * (hi - lo) / 2:.{self.d}f} (n={n})"

    def delta(self, est) -> str:
        if math.isnan(est.ci_low):
            return self.v(est.value, signed=True)
        return (f"{self.v(est.value, signed=True)} "
                f"[{self.v(est.ci_low, True)}, {self.v(est.ci_high, True)}]")


@dataclass(frozen=True)
class Table:
    """A titled table of already formatted cells; ``bold`` holds (row, column) indices."""

    key: str
    title: str
    headers: tuple
    rows: tuple
    caption: str = ""
    bold: frozenset = field(default_factory=frozenset)
    numeric: tuple = ()  # column indices aligned right


def render(tables: list[Table], fmt: str, *, heading: str = "", notes=(),
           lead: str = "") -> str:
    """``tables`` as ``fmt``, under ``heading``, with ``notes`` after them; ``lead`` is one
    line above everything (a partial run's report says so there)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if fmt == "html":
        from gridrun.report.html import html_page  # the whole page (plots: report_text)

        return html_page(tables, heading=heading, notes=list(notes), lead=lead)
    text = {"markdown": _markdown, "latex": _latex}[fmt](tables, heading, list(notes))
    if lead and fmt == "markdown":
        return f"**{lead}**\n\n{text}"
    if lead and fmt == "latex":
        return f"% {lead}\n{text}"
    return text


def _cells(t: Table, bold_open: str, bold_close: str, escape=lambda s: s):
    return [[(bold_open + escape(c) + bold_close) if (i, j) in t.bold else escape(c)
             for j, c in enumerate(row)] for i, row in enumerate(t.rows)]


def _markdown(tables, heading, notes) -> str:
    from tabulate import tabulate

    out = [f"# {heading}", ""] if heading else []
    for t in tables:
        align = ["right" if j in t.numeric else "left" for j in range(len(t.headers))]
        body = tabulate(_cells(t, "**", "**"), headers=list(t.headers), tablefmt="github",
                        colalign=align, disable_numparse=True)
        out += [f"## {t.title}", "", body, ""]
        if t.caption:
            out += [f"*{t.caption}*", ""]
    out += [f"> {n}" for n in notes]
    return "\n".join(out).rstrip() + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$", "×": r"$\times$",
        "→": r"$\to$", "−": "$-$", "φ": r"$\phi$", "<": r"$<$", ">": r"$>$", "—": "---"}


_MINUS = re.compile(r"(?<![\w.])-(?=\d)")  # a sign, not a hyphen: typeset as a minus


def tex_escape(text: str) -> str:
    return _MINUS.sub("$-$", "".join(_TEX.get(ch, ch) for ch in str(text)))


def _latex(tables, heading, notes) -> str:
    out = [f"% {heading}" if heading else "", "% requires \\usepackage{booktabs}"]
    for t in tables:
        spec = "".join("r" if j in t.numeric else "l" for j in range(len(t.headers)))
        out += ["\\begin{table}[t]", "\\centering", "\\small"]
        if t.caption:
            out.append(f"\\caption{{{tex_escape(t.title)}. {tex_escape(t.caption)}}}")
        out += [f"\\label{{tab:{t.key}}}", f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                " & ".join(tex_escape(h) for h in t.headers) + " \\\\", "\\midrule"]
        out += [" & ".join(r) + " \\\\" for r in _cells(t, "\\textbf{", "}", tex_escape)]
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    out += [f"% {n}" for n in notes]
    return "\n".join(x for x in out if x is not None).strip() + "\n"
