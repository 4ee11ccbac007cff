"""The report of a run whose trainer reports its own metric (val_mse, smaller is better):
planted effects come back in the metric's own units, the smallest is the best, and the
Shapley shares and Δ columns keep their meaning with mode="min"."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from gridrun.analysis import analyze
from gridrun.analysis.testing import additive, synthetic_run
from gridrun.cli import main
from gridrun.store import tables as store

# se_block is a custom factor of the spec's own (no technique); val_mse a trainer's metric
FACTORS = {"batchnorm": [False, True], "dropout": [0.0, 0.3], "se_block": [False, True]}
MAIN = {"batchnorm": -0.010, "dropout": 0.004, "se_block": -0.002}
VALUE = additive(0.05, {"batchnorm": {True: -0.010}, "dropout": {0.3: 0.004},
                        "se_block": {True: -0.002}})
BEST = {"batchnorm": True, "dropout": 0.0, "se_block": True}  # 0.05 - 0.01 - 0.002
GAIN = sum(MAIN.values())  # baseline -> target (every factor at its last level): -0.008


@pytest.fixture(scope="module")
def run():
    return synthetic_run(FACTORS, value=VALUE, seeds=3, metric="val_mse", mode="min",
                         gap=lambda lv: 0.01)


@pytest.fixture(scope="module")
def saved(run, tmp_path_factory):
    return run.save(tmp_path_factory.mktemp("own") / "run")


def report(*args):
    r = CliRunner().invoke(main, ["report", *map(str, args), "--no-plots"])
    assert r.exit_code == 0, r.output
    return r.output


def section(out: str, title: str) -> dict:
    """{first cell: cells} of the rows of one Markdown table of the report."""
    body = out.split(f"## {title}")[1].split("\n## ")[0]
    rows = [[c.strip() for c in ln.split("|")[1:-1]] for ln in body.splitlines()
            if ln.startswith("| ") and not ln.startswith("|--")]
    return {r[0]: r for r in rows[1:]} | {"": rows[0]}


def test_the_saved_run_is_stored_as_a_trainer_of_ones_own_would_store_it(saved):
    run = store.read_run(saved)
    assert {"val_mse", "train_mse"} <= set(run.epochs.columns)
    assert run.epochs["val_acc"].isna().all()
    assert {"last_val_mse", "best_val_mse"} <= set(run.trials.columns)
    assert run.trials["se_block"].dtype == bool
    assert run.spec["plugins"]["factors"] == {"se_block": "bool"}


def test_analysis_takes_the_spec_metric_and_mode(run):
    a = analyze(run.trials, run.epochs, run.spec, n_boot=200)
    assert (a.metric, a.mode) == ("val_mse", "min")
    assert a.best.levels == BEST and a.best.mean == pytest.approx(0.038)
    assert a.gap == ()  # the run has no accuracy: no generalization gap
    assert {e.factor: e.estimate.value for e in a.main_effects} == pytest.approx(MAIN)
    assert a.shapley.total.value == pytest.approx(GAIN)


def test_markdown_shows_the_planted_effects_in_the_metrics_units(saved):
    out = report(saved)
    assert "(%)" not in out and "(pp)" not in out
    tech = section(out, "What each technique contributed")
    assert tech[""][2] == "Δ val_mse [95% t-CI]"
    assert tech["+ batchnorm"][2].startswith("**-0.0100")  # bold: the largest improvement
    assert tech["dropout = 0.3"][2].startswith("+0.0040")
    assert tech["+ se_block"][2].startswith("-0.0020")
    # the shares of the gain (-0.008): a negative part of a negative gain is a positive share
    assert tech["+ batchnorm"][4] == "-0.0100 (125%)"
    assert tech["dropout = 0.3"][4] == "+0.0040 (-50%)"
    assert "lower val_mse is better, so a negative Δ is an improvement" in out
    levels = section(out, "Per factor level")
    assert levels[""][2] == "val_mse mean ± std"
    add = section(out, "Ablation table (add-one-in view)")
    assert add["+ batchnorm"][1] == "**0.0400 ± 0.0000 (n=3)**"  # the smallest in bold
    assert add["baseline"][1] == "0.0500 ± 0.0000 (n=3)"


def test_the_configs_view_ranks_the_smallest_first(saved):
    out = report(saved, "--design-view", "configs")
    rows = section(out, "Ablation table (configs view)")
    first = next(r for k, r in rows.items() if k)
    assert first[0] == "batchnorm=True, dropout=0.0, se_block=True"
    assert first[1] == "**0.0380 ± 0.0000 (n=3)**"


def test_json_carries_the_numbers(saved):
    doc = json.loads(report(saved, "--format", "json"))
    meta = doc["run"]
    assert (meta["metric"], meta["mode"], meta["better"]) == ("val_mse", "min", "lower")
    assert meta["units"].startswith("val_mse in its own units")
    tech = {r["factor"]: r for r in doc["tables"]["techniques"]}
    assert {f: r["effect"] for f, r in tech.items()} == pytest.approx(MAIN)
    assert {f: r["shapley_share"] for f, r in tech.items()} == pytest.approx(
        {f: v / GAIN for f, v in MAIN.items()})
    configs = doc["tables"]["configurations"]
    assert configs[0]["rank"] == 1 and configs[0]["mean"] == pytest.approx(0.038)
    assert {f: configs[0][f] for f in FACTORS} == BEST
    assert configs[-1]["mean"] == pytest.approx(0.054)  # the largest val_mse ranks last
    assert doc["tables"]["gap"] == []


def test_csv_carries_the_numbers(saved):
    rows = list(csv.DictReader(io.StringIO(report(saved, "--format", "csv"))))
    tech = {r["factor"]: float(r["effect"]) for r in rows if r["table"] == "techniques"}
    assert tech == pytest.approx(MAIN)
    levels = {(r["factor"], r["level"]): float(r["mean"]) for r in rows
              if r["table"] == "levels"}
    assert levels[("batchnorm", "True")] == pytest.approx(0.041)
    one = list(csv.DictReader(io.StringIO(report(saved, "--format", "csv", "--table",
                                                 "configurations"))))
    assert one[0]["rank"] == "1" and float(one[0]["mean"]) == pytest.approx(0.038)


def test_a_trainer_metric_other_than_the_spec_s_can_be_reported(saved):
    from gridrun.report.tables import report_text

    doc = json.loads(report_text(saved, fmt="json", metric="train_mse"))
    assert (doc["run"]["metric"], doc["run"]["mode"]) == ("train_mse", "min")
    effects = {r["factor"]: r["effect"] for r in doc["tables"]["techniques"]}
    assert effects == pytest.approx(MAIN)  # train_mse = val_mse - gap, a constant gap
    with pytest.raises(ValueError, match="val_psnr"):
        report_text(saved, fmt="json", metric="val_psnr")


def test_plots_draw_a_metric_of_ones_own(run, tmp_path):
    from gridrun.report.plots import write_plots

    a = analyze(run.trials, run.epochs, run.spec, n_boot=100)
    names = {p.name for p in write_plots(a, tmp_path)}
    assert {"effects_forest.png", "interactions.png", "learning_curves.png"} <= names


@pytest.mark.parametrize("typical,step,expected", [
    (None, None, 2), (0.5, None, 3), (0.05, 0.01, 4), (25.0, 3.0, 2), (0.05, 0.0004, 5),
    (1e-9, None, 6)])
def test_decimals_of_a_metric_in_its_own_units(typical, step, expected):
    from gridrun.report.render import decimals

    assert decimals(typical, step) == expected


def test_the_cli_takes_the_metric_a_trainer_reported(saved):
    out = report(saved, "--metric", "train_mse")
    assert "train_mse" in out
