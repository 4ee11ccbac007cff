"""Imports show the architecture: gridrun and its report path need no framework or Ray."""

import subprocess
from pathlib import Path
import sys

import pytest

HEAVY = ("torch", "tensorflow", "keras", "ray")


# Every package and every module of the stages before the run, and the run stage's own
# package: Ray and the frameworks are imported only when a run starts.
@pytest.mark.parametrize("module", ["gridrun", "gridrun.spec", "gridrun.design", "gridrun.run",
                                    "gridrun.store", "gridrun.analysis", "gridrun.report",
                                    "gridrun.data", "gridrun.cli", "gridrun.design.plan",
                                    "gridrun.design.schedule", "gridrun.run.driver",
                                    "gridrun.run.status", "gridrun.run.cells",
                                    "gridrun.store.journal", "gridrun.store.location",
                                    "gridrun.report.plots"])
def test_import_loads_no_framework(module):
    code = (f"import sys, {module}; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_public_api_loads_ray_only_when_launch_is_used():
    code = ("import sys, gridrun; from gridrun import Ablation, Factor, ASHA, load_spec; "
            "print('ray' in sys.modules); from gridrun import launch, resume, confirm; "
            "print(launch.__module__, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "gridrun.run.driver", "False"]


def test_the_layout_is_the_flow():
    # ls gridrun/ reads as DESIGN's stages: packages, and the CLI as the only flat module
    import gridrun

    root = Path(gridrun.__file__).parent
    flat = sorted(p.name for p in root.glob("*.py"))
    packages = sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file())
    assert flat == ["__init__.py", "cli.py"]
    assert packages == ["analysis", "data", "design", "keras", "report", "run", "spec",
                        "store", "torch"]


def _import_graph() -> dict:
    """gridrun module -> the gridrun modules it imports (at the top or inside a function)."""
    import ast

    import gridrun

    root = Path(gridrun.__file__).parent

    def name(p: Path) -> str:
        parts = ("gridrun", *p.relative_to(root).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name(p): p for p in root.rglob("*.py")}
    graph = {m: set() for m in files}
    for m, p in files.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gridrun"):
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[m] |= {t for t in names if t in files and t != m}
    return graph


def _stage(module: str) -> str:
    return module.split(".")[1] if "." in module else "gridrun"


# Which stages each stage may import: data flows forward (DESIGN.md's table).
ALLOWED = {
    "gridrun": {"spec", "run", "report"},
    "spec": {"data"},  # the dataset names a spec may use
    "design": {"spec"},
    "store": {"spec"},
    "data": set(),
    "analysis": {"spec", "design", "store"},
    "report": {"analysis", "store"},
    "torch": {"spec", "data", "store"},
    "keras": {"spec", "data", "store"},
    "run": {"spec", "design", "store", "data", "torch", "keras"},
}


def test_stages_import_only_what_comes_before_them():
    wrong = sorted(f"{a} imports {b}" for a, bs in _import_graph().items() for b in bs
                   if _stage(a) != _stage(b) and _stage(a) != "cli"
                   and _stage(b) not in ALLOWED[_stage(a)] | {"gridrun"})
    assert wrong == []


def test_no_module_imports_itself_through_another():
    graph = _import_graph()
    state, cycles = {}, []

    def visit(m, path):
        state[m] = "open"
        for t in sorted(graph[m]):
            if t.startswith(m + ".") or m.startswith(t + "."):
                continue  # a package and its own modules
            if state.get(t) == "open":
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []
