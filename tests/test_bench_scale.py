"""benchmarks/scale.py: the raw side trains the same configurations as gridrun, and the
table docs/development.md prints is the one its recorded runs measured."""

import doctest
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def load(name):
    sys.path.insert(0, str(BENCH))  # scale.py imports orchestration.py as its raw side
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("name", ["scale", "orchestration"])
def test_docstring_examples(name):
    pytest.importorskip("ray")
    assert doctest.testmod(load(name)).failed == 0


@pytest.mark.parametrize("n", [40, 64, 97])
def test_the_raw_side_s_grid_searches_make_exactly_gridrun_s_configurations(n):
    """One grid search per factor, as a Tune user writes a factorial: Tune's variant
    generator makes from it the same n configurations gridrun trains, each once."""
    pytest.importorskip("ray")
    from ray.tune.search.variant_generator import generate_variants

    from gridrun.design.grid import expand

    scale, orchestration = load("scale"), load("orchestration")
    configs = [dict(t.config) for t in expand(scale.ablation(n))]
    space = orchestration.factorial_space(configs)
    assert "grid_search" not in space  # per factor, not one list of n configurations
    made = [spec["config"] for _, spec in generate_variants({"config": space})]
    key = lambda c: json.dumps(c, sort_keys=True)  # noqa: E731
    assert sorted(map(key, made)) == sorted(map(key, configs)) and len(made) == n


def test_a_grid_that_is_not_a_full_factorial_stays_one_list():
    pytest.importorskip("ray")
    orchestration = load("orchestration")
    configs = [{"a": 0, "b": 0}, {"a": 0, "b": 1}, {"a": 1, "b": 0}]
    assert orchestration.factorial_space(configs) == {"grid_search": configs}


def _docs_row(r):
    side = {"raw": "raw Ray Tune", "local": "gridrun, local", "storage": "gridrun, S3"}[r["side"]]
    over = r.get("overhead_seconds_per_trial")
    return (f"| {r['trials']:,} | {side} | {r['seconds']:.1f} | {r['seconds_per_trial']:.3f} | "
            f"{'' if over is None else format(over, '+.3f')} | {r['driver_peak_rss_mb']:.0f} |")


def test_the_recorded_runs_give_the_table_the_docs_print():
    docs = (ROOT / "docs" / "development.md").read_text()
    rows = [r for f in ("scale_40_1024.json", "scale_4096.json")
            for r in json.loads((BENCH / "results" / f).read_text())["rows"]]
    assert sorted({r["trials"] for r in rows}) == [40, 1024, 4096]
    for r in rows:
        assert _docs_row(r) in docs, _docs_row(r)
