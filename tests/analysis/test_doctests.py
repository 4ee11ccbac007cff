"""The examples in the analysis docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = ["__init__", "_analyze", "_curves", "_effects", "_grid", "_paths", "_shapley",
           "_stats", "_variance", "testing"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module("gridrun.analysis" + ("" if name == "__init__"
                                                            else f".{name}"))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
