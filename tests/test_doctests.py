"""The examples in every docstring outside the trainers run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import gridrun

# The trainers' docstrings need their framework; gridrun.analysis has its own test.
MODULES = sorted(m.name for m in pkgutil.walk_packages(gridrun.__path__, "gridrun.")
                 if not m.name.startswith(("gridrun.torch", "gridrun.keras",
                                           "gridrun.analysis")))


@pytest.mark.parametrize("name", ["gridrun", *MODULES])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
