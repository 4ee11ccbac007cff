"""Fixtures for the torch trainer tests: tiny synthetic datasets and resolved configs.

Test modules here are named test_torch_*.py: tests/ has no __init__.py, so basenames must be
unique across the whole test tree (and a package named ``torch`` would shadow PyTorch).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the torch trainer tests need PyTorch installed")

from gridrun.data.testing import bars  # noqa: E402
from gridrun.design.grid import resolve_config  # noqa: E402


@pytest.fixture(scope="session")
def data():
    return bars()


@pytest.fixture
def make_data():
    return bars


@pytest.fixture
def config():
    """A factory: the registry defaults with small epochs and batch size, then overrides."""
    def make(**levels):
        return resolve_config(levels, {"epochs": 2, "batch_size": 64})
    return make
