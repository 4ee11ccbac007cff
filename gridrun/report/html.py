"""The HTML report: one self-contained HTML5 page with the heading, a table of contents,
every table, every plot embedded as a PNG data URI, and the notes. No script, no font and
no URL outside the page: it opens from a file, offline, or as a mail attachment, and its
Content-Security-Policy keeps a browser from fetching anything. Formatting only.

    >>> from gridrun.report.render import Table
    >>> page = html_page([Table("techniques", "What each technique contributed", ("x",),
    ...                         (("+1.00",),))], heading="demo", notes=["a note"])
    >>> page.startswith("<!DOCTYPE html>") and '<a href="#techniques">' in page
    True
"""

from __future__ import annotations

import base64
import re
from html import escape

__all__ = ["html_page"]

# Nothing but this page's own inline style and data: images may load.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = """
:root { color-scheme: light; --ink: #1d2329; --muted: #57606a; --rule: #d0d7de;
        --stripe: #f6f8fa; --accent: #0b5cad; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 76rem; padding: 1.5rem 1.25rem 3rem; color: var(--ink);
       background: #fff; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
       "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
h1 { font-size: 1.45rem; line-height: 1.3; margin: 0 0 1rem; }
h2 { font-size: 1.15rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.2rem;
     border-bottom: 1px solid var(--rule); }
a { color: var(--accent); }
nav ol { margin: 0; padding-left: 1.4rem; columns: 2 18rem; }
nav ol ol { columns: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9rem; font-variant-numeric: tabular-nums; }
caption { caption-side: bottom; text-align: left; color: var(--muted); font-style: italic;
          font-size: 0.85rem; padding-top: 0.45rem; max-width: 70rem; }
th, td { padding: 0.3rem 0.65rem; text-align: left; vertical-align: top; }
thead th { border-top: 2px solid var(--ink); border-bottom: 1px solid var(--ink);
           white-space: nowrap; }
tbody tr:last-child td { border-bottom: 2px solid var(--ink); }
tbody tr:nth-child(even) { background: var(--stripe); }
.num { text-align: right; white-space: nowrap; }
figure { margin: 1rem 0 2rem; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 0.3rem; }
.notes li { margin: 0.3rem 0; }
.lead { font-weight: 600; border-left: 4px solid #bf8700; background: #fff8c5;
        padding: 0.5rem 0.8rem; }
section { scroll-margin-top: 1rem; }
@media print { nav { display: none; } section, figure { break-inside: avoid; } }
"""


def _id(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", key)


def _table(t) -> list[str]:
    num = [' class="num"' if j in t.numeric else "" for j in range(len(t.headers))]
    out = [f'<section id="{_id(t.key)}" class="table">', f"<h2>{escape(t.title)}</h2>",
           '<div class="scroll"><table>']
    if t.caption:
        out.append(f"<caption>{escape(t.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f'<th scope="col"{a}>{escape(h)}</th>'
                                       for a, h in zip(num, t.headers)) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(t.rows):
        out.append("<tr>" + "".join(
            f"<td{a}><strong>{escape(c)}</strong></td>" if (i, j) in t.bold else
            f"<td{a}>{escape(c)}</td>" for j, (a, c) in enumerate(zip(num, row))) + "</tr>")
    out += ["</tbody>", "</table></div>", "</section>"]
    return out


def _figure(p) -> list[str]:
    data = base64.b64encode(p.png).decode("ascii")
    return [f'<figure id="plot-{_id(p.key)}">',
            f'<img src="data:image/png;base64,{data}" width="{p.width}" '
            f'height="{p.height}" alt="{escape(p.title)}">',
            f"<figcaption>{escape(p.title)}</figcaption>", "</figure>"]


def _contents(tables, plots, notes) -> list[str]:
    items = [f'<li><a href="#{_id(t.key)}">{escape(t.title)}</a></li>' for t in tables]
    if plots:
        items.append('<li><a href="#plots">Plots</a><ol>' + "".join(
            f'<li><a href="#plot-{_id(p.key)}">{escape(p.title)}</a></li>' for p in plots)
            + "</ol></li>")
    if notes:
        items.append('<li><a href="#notes">Notes</a></li>')
    if not items:
        return []
    return ['<nav id="contents" aria-label="Contents">', "<h2>Contents</h2>",
            "<ol>", *items, "</ol>", "</nav>"]


def html_page(tables, *, heading: str = "", notes=(), plots=(), lead: str = "") -> str:
    """The whole report as one HTML5 document: ``tables`` are ``render.Table`` records (not
    imported here: ``render`` imports this module for its html format), ``plots`` are
    ``PlotImage`` records (``plots.plot_images``), each embedded as a PNG data URI; ``lead``
    is one line shown under the heading, above everything (a partial run's status)."""
    notes, plots = list(notes), list(plots)
    title = heading or "gridrun report"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<meta name="generator" content="gridrun">',
           '<link rel="icon" href="data:,">',  # no request for /favicon.ico
           f"<title>{escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<header><h1>{escape(title)}</h1>"
           + (f'<p class="lead" role="note">{escape(lead)}</p>' if lead else "") + "</header>"]
    out += _contents(tables, plots, notes)
    out.append("<main>")
    for t in tables:
        out += _table(t)
    if plots:
        out += ['<section id="plots">', "<h2>Plots</h2>"]
        for p in plots:
            out += _figure(p)
        out.append("</section>")
    if notes:
        out += ['<section id="notes" class="notes">', "<h2>Notes</h2>", "<ul>",
                *(f"<li>{escape(n)}</li>" for n in notes), "</ul>", "</section>"]
    out += ["</main>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
