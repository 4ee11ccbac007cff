"""The report stage: analysis results as the tables and plots a paper prints.

- ``tables``: the report's tables (``report_text``), from ``gridrun.analysis`` results;
- ``render``: Markdown, LaTeX (booktabs) and HTML formatting of those tables;
- ``html``: the HTML report as one self-contained page, the plots embedded as PNG data URIs;
- ``tidy``: the same tables as plain records for CSV and JSON;
- ``plots``: the effect forest plot, interaction heat map, learning curves and ASHA
  survival, as files or as PNG bytes for the page.

Formats numbers only; every statistic comes from ``gridrun.analysis``. Imports no framework
and no Ray.

    >>> print(report_text("runs/quickstart"))          # doctest: +SKIP
"""

from gridrun.report.tables import FORMATS, VIEWS, build_tables, report_text

__all__ = ["report_text", "build_tables", "VIEWS", "FORMATS"]
