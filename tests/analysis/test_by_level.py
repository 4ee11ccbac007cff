"""Effects within each framework (``framework`` as a factor): the sub-run of each level is
analyzed on its own, and the report puts the two side by side with their agreement."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from gridrun.analysis._by_level import effects_by, sub_spec
from gridrun.analysis.testing import synthetic_run
from gridrun.report.tables import report_text

FACTORS = {"framework": ["torch", "tensorflow"], "batchnorm": [False, True],
           "dropout": [0.0, 0.3]}


def truth(lv):
    # batchnorm helps in both (more in tensorflow); dropout hurts in torch only
    torch = lv["framework"] == "torch"
    return 0.80 + (0.02 if torch else 0.03) * lv["batchnorm"] \
        - (0.01 if torch else 0.0) * (lv["dropout"] > 0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    r = synthetic_run(FACTORS, value=truth, seeds=4, seed_noise=0.001, noise=0.0005)
    path = tmp_path_factory.mktemp("fw") / "run"
    r.save(path)
    return r, path


def test_each_level_gives_the_effects_of_its_own_trials(run):
    r, _ = run
    by = effects_by(r.trials, r.epochs, r.spec, "framework", n_boot=200)
    assert list(by) == ["torch", "tensorflow"]
    got = {fw: {e.factor: e.estimate.value for e in fx} for fw, fx in by.items()}
    assert got["torch"]["batchnorm"] == pytest.approx(0.02, abs=2e-3)
    assert got["tensorflow"]["batchnorm"] == pytest.approx(0.03, abs=2e-3)
    assert got["torch"]["dropout"] == pytest.approx(-0.01, abs=2e-3)
    assert got["tensorflow"]["dropout"] == pytest.approx(0.0, abs=2e-3)


def test_sub_spec_drops_the_factor_and_names_the_framework(run):
    r, _ = run
    child = sub_spec(r.spec, "framework", "tensorflow")
    assert list(child["factors"]) == ["batchnorm", "dropout"]
    assert "framework" not in child["baseline"] and child["framework"] == "tensorflow"


def test_only_full_designs_and_real_factors(run):
    r, _ = run
    with pytest.raises(ValueError, match="'optimizer' is not a factor"):
        effects_by(r.trials, r.epochs, r.spec, "optimizer")
    with pytest.raises(ValueError, match="need a full factorial"):
        effects_by(r.trials, r.epochs, {**r.spec, "design": "add_one_in"}, "framework")


def test_report_shows_each_effect_per_framework_and_their_agreement(run):
    _, path = run
    text = report_text(path)
    table = text.split("## Each effect per framework")[1].split("##")[0]
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in table.splitlines() if ln.startswith("| ") and "vs " in ln}
    assert set(rows) == {"+ batchnorm", "dropout = 0.3"}
    ref, in_torch, in_tf, agree = rows["+ batchnorm"]
    assert float(in_torch.split()[0]) == pytest.approx(2.0, abs=0.15)  # percent points
    assert float(in_tf.split()[0]) == pytest.approx(3.0, abs=0.15)
    assert in_torch.endswith("*") and agree == "yes"


def test_tidy_output_has_a_frameworks_table_of_numbers(run):
    _, path = run
    df = pd.read_csv(io.StringIO(report_text(path, fmt="csv", table="frameworks")))
    assert set(df.framework) == {"torch", "tensorflow"}
    bn = df[df.factor == "batchnorm"].set_index("framework").effect
    assert bn["torch"] == pytest.approx(0.02, abs=2e-3)
    assert bn["tensorflow"] == pytest.approx(0.03, abs=2e-3)
