"""Imports show the architecture: gridrun and its report path need no framework or Ray."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "tensorflow", "keras", "ray")


@pytest.mark.parametrize("module", ["gridrun", "gridrun.spec", "gridrun.design",
                                    "gridrun.store", "gridrun.analysis", "gridrun.report",
                                    "gridrun.plan", "gridrun.cli", "gridrun.data",
                                    "gridrun.launch", "gridrun._status", "gridrun._journal",
                                    "gridrun._storage"])
def test_import_loads_no_framework(module):
    code = (f"import sys, {module}; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
