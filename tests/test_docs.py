"""The README and the pages under docs/ stay true: every link leads somewhere, every
`gridrun` command they show is one the CLI has (and its options are the command's), and
every spec, benchmark and make target they name exists."""

import re
from pathlib import Path

import pytest

from gridrun.cli import main

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _id(p):
    return str(p.relative_to(ROOT))


def commands(text: str):
    """Each `gridrun ...` command line of a console block (after `$ `, up to a comment)."""
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ").split("  #")[0].strip()
            if line.startswith("gridrun "):
                yield line.split()


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_links_lead_to_files(page):
    text = page.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if target.startswith(("http://", "https://")):
            continue
        assert (page.parent / target).exists(), f"{_id(page)} links to missing {target}"


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_commands_are_the_clis(page):
    for words in commands(page.read_text()):
        name = words[1]
        assert name in main.commands, f"{_id(page)}: no command gridrun {name}"
        options = {o for p in main.commands[name].params for o in p.opts + p.secondary_opts}
        for w in words[2:]:
            if w.startswith("--"):
                assert w.split("=")[0] in options, f"{_id(page)}: gridrun {name} has no {w}"


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_files_and_make_targets_named_exist(page):
    text = page.read_text()
    for path in set(re.findall(r"\b((?:ablations|benchmarks|cluster)/[\w./-]+\.\w+)", text)):
        assert (ROOT / path).exists(), f"{_id(page)} names missing {path}"
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"`make ([\w-]+)`|^make ([\w-]+)", text, re.M)):
        target = next(t for t in target if t)
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), \
            f"{_id(page)}: no make target {target}"


def test_the_readme_is_short_and_links_every_page():
    readme = PAGES[0].read_text()
    assert len(readme.splitlines()) < 250
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme, f"the README does not link {page.name}"
