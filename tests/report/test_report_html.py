"""`gridrun report RUN --format html`: one self-contained HTML5 page (every table and note of
the Markdown report, each plot a PNG data URI, a table of contents), checked as text and in
a real headless browser: Debian's Chromium driven by Playwright."""

import base64
import io
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridrun.analysis.testing import synthetic_run
from gridrun.cli import main
from gridrun.report.html import html_page
from gridrun.report.tables import report_text

CELLS = {(False, False, 0.0): 0.80, (True, False, 0.0): 0.83, (False, True, 0.0): 0.85,
         (False, False, 0.5): 0.82, (True, True, 0.0): 0.91, (True, False, 0.5): 0.84,
         (False, True, 0.5): 0.86, (True, True, 0.5): 0.915}
FACTORS = {"augmentation": [False, True], "batchnorm": [False, True], "dropout": [0.0, 0.5]}
CHROMIUM = Path(os.environ.get("GRIDRUN_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def worked(tmp_path_factory):
    run = synthetic_run(FACTORS, value=lambda lv: CELLS[tuple(lv.values())], seeds=3,
                        noise=0.005, name="worked")
    return run.save(tmp_path_factory.mktemp("html") / "run")


@pytest.fixture(scope="module")
def page_file(worked):
    out = worked.parent / "report.html"
    r = CliRunner().invoke(main, ["report", str(worked), "--format", "html", "--out", str(out)])
    assert r.exit_code == 0 and r.stderr.strip() == f"wrote {out}", r.output
    return out


def _flat(text: str) -> str:
    return " ".join(text.split())


def markdown_report(text: str) -> dict:
    """The heading, tables (title, headers, rows, caption) and notes of a Markdown report."""
    heading = text.splitlines()[0].removeprefix("# ")
    tables = []
    for block in text.split("\n## ")[1:]:
        lines = block.splitlines()
        grid = [[_flat(c).replace("**", "") for c in ln.strip().strip("|").split("|")]
                for ln in lines if ln.startswith("|") and not ln.startswith("|--")]
        caption = next((ln[1:-1] for ln in lines if ln.startswith("*") and ln.endswith("*")
                        and not ln.startswith("**")), "")
        tables.append({"title": lines[0], "headers": grid[0], "rows": grid[1:],
                       "caption": _flat(caption)})
    notes = [_flat(ln[2:]) for ln in text.splitlines() if ln.startswith("> ")]
    return {"heading": heading, "tables": tables, "notes": notes}


class _Page(HTMLParser):
    """The structure a test checks: tags balance, ids, links, images and every table's
    title, headers, rows and caption."""

    VOID = {"meta", "link", "img", "br", "hr", "input", "source", "col", "wbr"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.ids, self.hrefs, self.srcs = [], [], [], [], []
        self.decl, self.tags, self.imgs, self.tables, self.notes = None, [], [], [], []
        self.heading, self._text, self._row = "", None, None
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed {self.stack}")

    def handle_decl(self, decl):
        self.decl = decl

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag not in self.VOID:
            self.stack.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if "href" in a:
            self.hrefs.append(a["href"])
        if "src" in a:
            self.srcs.append(a["src"])
        if tag == "img":
            self.imgs.append(a)
        if tag == "section" and a.get("class") == "table":
            self.tables.append({"id": a["id"], "title": "", "headers": [], "rows": [],
                                "caption": ""})
        if tag in ("h1", "h2", "th", "td", "caption", "li"):
            self._text = []
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        text = _flat("".join(self._text or []))
        where = self.stack
        if tag == "h1":
            self.heading = text
        elif tag == "h2" and "section" in where and self.tables and not self.tables[-1]["title"]:
            self.tables[-1]["title"] = text
        elif tag in ("th", "td"):
            self._row.append(text)
        elif tag == "caption":
            self.tables[-1]["caption"] = text
        elif tag == "tr" and "thead" in where:
            self.tables[-1]["headers"] = self._row
        elif tag == "tr":
            self.tables[-1]["rows"].append(self._row)
        elif tag == "li" and "ul" in where:
            self.notes.append(text)
        if tag in ("h1", "h2", "th", "td", "caption", "li"):
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def _compare(page: dict, md: dict) -> None:
    assert page["heading"] == _flat(md["heading"])
    assert [t["title"] for t in page["tables"]] == [t["title"] for t in md["tables"]]
    for got, want in zip(page["tables"], md["tables"]):
        assert got["headers"] == want["headers"], want["title"]
        assert got["rows"] == want["rows"], want["title"]
        assert got["caption"] == want["caption"], want["title"]
    assert page["notes"] == md["notes"] and md["notes"]


# --- the page as text ------------------------------------------------------------------


def test_page_is_html5_with_charset_and_nothing_from_outside(page_file):
    text = page_file.read_text()
    assert text.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert '<meta charset="utf-8">' in text[:1024]  # where a browser must find it
    p = _Page(text)
    assert p.errors == [] and p.decl == "DOCTYPE html"
    assert "script" not in {t for t, _ in p.tags} and "<script" not in text
    assert all(h.startswith(("#", "data:")) for h in p.hrefs), p.hrefs
    assert all(s.startswith("data:image/png;base64,") for s in p.srcs), [s[:40] for s in p.srcs]
    assert not re.search(r"(?:https?:)?//[\w.-]+\.\w", re.sub(r"data:[^\"]*", "", text))
    assert any(a.get("http-equiv") == "Content-Security-Policy" for _, a in p.tags)


def test_ids_are_unique_and_every_link_lands(page_file):
    p = _Page(page_file.read_text())
    assert len(p.ids) == len(set(p.ids))
    targets = [h[1:] for h in p.hrefs if h.startswith("#")]
    assert set(targets) <= set(p.ids)
    assert {"techniques", "levels", "plots", "plot-effects_forest", "notes"} <= set(targets)


def test_every_table_and_note_of_the_markdown_report_is_on_the_page(worked, page_file):
    p = _Page(page_file.read_text())
    _compare({"heading": p.heading, "tables": p.tables, "notes": p.notes},
             markdown_report(report_text(worked)))
    assert len(p.tables) >= 5


def test_plots_are_embedded_pngs_without_the_plots_option(worked, page_file):
    from PIL import Image

    p = _Page(page_file.read_text())
    figures = [a["id"] for t, a in p.tags if t == "figure"]
    assert figures == ["plot-effects_forest", "plot-interactions", "plot-learning_curves"]
    for img in p.imgs:
        png = base64.b64decode(img["src"].split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(png)) as im:
            assert im.format == "PNG"
            # drawn at 1.5 pixels per CSS pixel; shown at the width and height given
            assert im.size == pytest.approx((1.5 * int(img["width"]), 1.5 * int(img["height"])),
                                            abs=2)
        assert img["alt"]
    assert not (worked / "plots").exists()  # PNG and PDF files stay behind --plots


def test_a_run_with_little_to_draw_still_makes_a_whole_page(tmp_path):
    """One factor: no interactions to draw (and no table of them); without plots at all
    (render's html, the launch summary) the page has no Plots section or link."""
    run = synthetic_run({"batchnorm": [False, True]}, value=lambda lv: 0.8 + 0.05 *
                        lv["batchnorm"], seeds=2, epochs=2, name="one")
    path = run.save(tmp_path / "run")
    p = _Page(report_text(path, fmt="html"))
    assert p.errors == []
    assert [a["id"] for t, a in p.tags if t == "figure"] == ["plot-effects_forest",
                                                              "plot-learning_curves"]
    assert "interactions" not in p.ids
    bare = _Page(report_text(path, fmt="html", summary=True))
    assert bare.errors == [] and bare.imgs == [] and "plots" not in bare.ids
    assert [t["id"] for t in bare.tables] == ["techniques"]
    empty = _Page(html_page([], heading="", notes=()))
    assert empty.errors == [] and empty.heading == "gridrun report" and empty.ids == []
    lead = html_page([], heading="h", lead="Partial report: 3 of 8 cells")
    assert lead.index('<p class="lead" role="note">Partial report: 3 of 8 cells</p>') < \
        lead.index("<main>") and _Page(lead).errors == []


# --- the page in a real browser ----------------------------------------------------------


def _browser():
    """Playwright's sync API, or a skip saying what is missing; in CI (CI set) a failure,
    since CI must run this test (.ci/run installs Debian's chromium)."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the playwright package (pip install -c constraints.txt -e '.[dev]')")
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (Debian: apt-get install chromium)")
    if missing:
        reason = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run it")
        pytest.skip(reason)
    return sync_playwright


# What a probe of the CI machines found Chromium needs to stay offline and quiet.
FLAGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browsed(page_file, tmp_path_factory):
    """Open the page in headless Chromium once: what it logged and fetched, its tables and
    notes as rendered, its links, the effects plot, and screenshots under a tmp folder."""
    sync_playwright = _browser()
    shots = tmp_path_factory.mktemp("screenshots")
    seen = {"console": [], "errors": [], "requests": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS,
                                     timeout=120_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: seen["console"].append((m.type, m.text)))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.on("requestfailed", lambda r: seen["errors"].append(f"failed: {r.url}"))
            page.goto(page_file.as_uri(), wait_until="load")
            seen["doc"] = page.evaluate("[document.compatMode, document.characterSet, "
                                        "document.title]")
            seen["page"] = page.evaluate(_READ_PAGE)
            img = page.locator("#plot-effects_forest img")
            seen["img"] = img.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]")
            page.screenshot(path=shots / "page.png", full_page=True)
            img.screenshot(path=shots / "effects_forest.png")
            page.click('nav a[href="#plot-effects_forest"]')  # an in-page link scrolls there
            page.wait_for_function("location.hash === '#plot-effects_forest'")
            seen["scrolled"] = page.evaluate(
                "[scrollY, document.getElementById('plot-effects_forest')"
                ".getBoundingClientRect().top]")
        finally:
            browser.close()
    seen["shots"] = shots
    return seen


_READ_PAGE = """() => {
  const text = el => el ? el.innerText.split(/\\s+/).filter(Boolean).join(" ") : "";
  const tables = [...document.querySelectorAll("section.table")].map(s => ({
    title: text(s.querySelector("h2")),
    headers: [...s.querySelectorAll("thead th")].map(text),
    rows: [...s.querySelectorAll("tbody tr")].map(r => [...r.cells].map(text)),
    caption: text(s.querySelector("caption"))}));
  const broken = [...document.querySelectorAll('a[href^="#"]')]
    .map(a => a.getAttribute("href").slice(1)).filter(id => !document.getElementById(id));
  return {heading: text(document.querySelector("h1")), tables,
          notes: [...document.querySelectorAll("#notes li")].map(text), broken};
}"""


def test_the_browser_logs_no_error_and_fetches_nothing(browsed, page_file):
    assert browsed["errors"] == []
    assert [m for m in browsed["console"] if m[0] == "error"] == []
    assert browsed["requests"] == [page_file.as_uri()]
    assert browsed["doc"][:2] == ["CSS1Compat", "UTF-8"]  # standards mode: a doctype
    assert browsed["doc"][2].startswith("worked: full design")


def test_the_browser_shows_every_table_and_note_and_its_links_land(browsed, worked):
    shown = browsed["page"]
    assert shown.pop("broken") == []
    _compare(shown, markdown_report(report_text(worked)))
    y, top = browsed["scrolled"]
    assert y > 500 and -5 < top < 50  # the link scrolled the plot to the top


def test_the_browser_draws_the_effects_plot(browsed):
    from PIL import Image

    complete, width, height = browsed["img"]
    assert complete and width > 300 and height > 100  # decoded, not a broken image
    with Image.open(browsed["shots"] / "effects_forest.png") as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        ink = sum(n for n, c in colours if sum(c) < 600)  # anything not white or near it
        assert len(colours) > 100 and ink > 0.02 * rgb.width * rgb.height
        blues = sum(n for n, (r, g, b) in colours if b > 150 and r < 80)  # tab:blue CIs
        assert blues > 50
    with Image.open(browsed["shots"] / "page.png") as im:
        assert im.height > 2000  # the whole page: tables, plots and notes
