"""The CLI surface: every command has help and is documented; the README stays true."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from gridrun.cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_and_is_documented(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output or command == "techniques"
    assert f"gridrun {command}" in README


def test_the_techniques_page_is_the_registry():
    result = CliRunner().invoke(main, ["techniques"])
    page = (ROOT / "docs" / "techniques.md").read_text()
    block = page.split("<!-- techniques -->\n")[1].split("<!-- /techniques -->")[0]
    assert block == result.output


def test_readme_quickstart_commands_exist():
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    for target in ("demo:", "test:"):
        assert target in makefile
    assert "make demo" in README and "make test" in README


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["lanch"])
    assert result.exit_code == 2
