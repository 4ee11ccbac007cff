"""`gridrun report --format csv|json [--table NAME]`: tidy tables of numbers that pandas reads
directly, in the metric's own units (fractions for accuracy), on the worked example."""

import io
import json
from dataclasses import replace

import pandas as pd
import pytest
from click.testing import CliRunner

from gridrun import store
from gridrun.report.tidy import TABLES, tidy_tables
from gridrun.analysis import analyze
from gridrun.analysis.testing import synthetic_run
from gridrun.cli import main
from gridrun.report.tables import report_text

CELLS = {(False, False, 0.0): 0.80, (True, False, 0.0): 0.83, (False, True, 0.0): 0.85,
         (False, False, 0.5): 0.82, (True, True, 0.0): 0.91, (True, False, 0.5): 0.84,
         (False, True, 0.5): 0.86, (True, True, 0.5): 0.915}
FACTORS = {"augmentation": [False, True], "batchnorm": [False, True], "dropout": [0.0, 0.5]}
MAIN = {"augmentation": 0.04125, "batchnorm": 0.06125, "dropout": 0.01125}  # marginal Δ
SHAPLEY = {"augmentation": 0.125 / 3, "batchnorm": 0.185 / 3, "dropout": 0.035 / 3}
NUMERIC = ["effect", "ci_low", "ci_high", "boot_low", "boot_high", "se", "p_value", "p_holm",
           "shapley_phi", "shapley_share", "mean", "reference_mean", "epoch", "n_seeds",
           "n_trials", "n_short", "n_error"]


@pytest.fixture(scope="module")
def run():
    return synthetic_run(FACTORS, value=lambda lv: CELLS[tuple(lv.values())], seeds=3,
                         name="worked")


@pytest.fixture(scope="module")
def worked(run, tmp_path_factory):
    def records(df):
        return df.astype(object).where(df.notna(), None).to_dict("records")

    path = tmp_path_factory.mktemp("tidy") / "run"
    store.write_run(path, factor_names=list(FACTORS), trials=records(run.trials),
                    epochs=records(run.epochs), info={"spec": run.spec, "complete": True})
    return path


def report(*args):
    r = CliRunner().invoke(main, ["report", *map(str, args)])
    return r.exit_code, r.stdout, r.stderr


def test_csv_is_one_long_table_of_numbers(worked):
    code, out, _ = report(worked, "--format", "csv")
    assert code == 0
    df = pd.read_csv(io.StringIO(out))
    assert df.columns[0] == "table" and set(df.table) == set(TABLES)
    tech = df.query("table == 'techniques'").set_index("factor")
    assert all(pd.api.types.is_float_dtype(df[c]) or pd.api.types.is_integer_dtype(df[c])
               for c in NUMERIC)
    assert tech.effect.to_dict() == pytest.approx(MAIN)  # fractions, not percent
    assert tech.shapley_phi.to_dict() == pytest.approx(SHAPLEY)
    assert tech.shapley_share.sum() == pytest.approx(1.0)
    assert set(tech.kind) == {"main"} and (tech.epoch == 6).all() and (tech.n_seeds == 3).all()
    assert set(tech.basis) == {"every cell at epoch 6"}
    configs = df.query("table == 'configurations'")
    assert len(configs) == 8 and configs["rank"].tolist() == list(range(1, 9))
    for _, c in configs.iterrows():  # booleans mixed with blanks: object columns
        key = (str(c.augmentation) == "True", str(c.batchnorm) == "True", c.dropout)
        assert c["mean"] == pytest.approx(CELLS[key])
    add = df.query("table == 'add_one_in' and factor.notna()").set_index("factor")
    assert add.effect.to_dict() == pytest.approx(
        {"augmentation": 0.03, "batchnorm": 0.05, "dropout": 0.02})


def test_table_option_gives_one_table_with_its_own_columns(worked):
    code, out, _ = report(worked, "--format", "csv", "--table", "techniques")
    assert code == 0
    df = pd.read_csv(io.StringIO(out))
    assert "table" not in df.columns and len(df) == 3
    assert not {"term", "rank", "augmentation"} & set(df.columns)
    for c in NUMERIC:
        assert pd.api.types.is_numeric_dtype(df[c]), c
    assert df.n_seeds.dtype == "int64" and df.significant.dtype == bool
    code, out, _ = report(worked, "--format", "csv", "--table", "configurations")
    df = pd.read_csv(io.StringIO(out))
    assert df.augmentation.dtype == bool and df.dropout.dtype == float
    best = df.loc[df["rank"] == 1].iloc[0]
    assert (best.augmentation, best.batchnorm, best.dropout) == (True, True, 0.5)
    assert best["mean"] == pytest.approx(0.915) and best.params > 0


def test_json_has_metadata_tables_and_no_nan(worked):
    code, out, _ = report(worked, "--format", "json")
    assert code == 0

    def no_nan(token):
        raise AssertionError(f"{token} in JSON output")
    doc = json.loads(out, parse_constant=no_nan)
    meta = doc["run"]
    assert (meta["name"], meta["metric"], meta["design"], meta["epochs"]) == \
        ("worked", "val_acc", "full", 6)
    assert meta["basis"] == "every cell at epoch 6" and "fraction" in meta["units"]
    assert set(doc["tables"]) == set(TABLES) and isinstance(doc["notes"], list)
    tech = pd.DataFrame(doc["tables"]["techniques"]).set_index("factor")
    assert tech.effect.to_dict() == pytest.approx(MAIN)
    assert all(pd.api.types.is_numeric_dtype(tech[c]) for c in NUMERIC if c != "factor")
    variance = pd.DataFrame(doc["tables"]["variance"])
    assert variance.share.sum() == pytest.approx(1.0)
    # the reference row has no effect: null, not NaN
    ref = doc["tables"]["leave_one_out"][0]
    assert ref["factor"] is None and ref["effect"] is None and ref["mean"] == \
        pytest.approx(0.915)
    code, out, _ = report(worked, "--format", "json", "--table", "variance")
    assert code == 0 and list(json.loads(out)["tables"]) == ["variance"]


@pytest.mark.parametrize("args,message", [
    (["--format", "csv", "--table", "nope"],
     "error: unknown table 'nope'; allowed: " + ", ".join(TABLES) + "\n"),
    (["--table", "techniques"],
     "error: --table picks one table of csv or json output, not of markdown\n"),
    (["--metric", "val_mse"],  # the metrics the run's epochs hold, not a fixed list
     "error: unknown metric 'val_mse'; allowed: val_acc, val_loss, train_acc, train_loss, gap\n"),
])
def test_table_errors_are_one_line(worked, args, message):
    code, out, err = report(worked, *args)
    assert (code, out, err) == (2, "", message)


def test_diagnostics_tables_are_added(run):
    class Diagnostics:
        def tidy(self):
            return {"rung_correlation": [{"epoch": 2, "rho": float("nan"), "n": 4}]}

    a = analyze(run.trials, run.epochs, run.spec, n_boot=50)
    tables = tidy_tables(replace(a, diagnostics=Diagnostics()))
    assert tables["rung_correlation"] == [{"epoch": 2, "rho": None, "n": 4}]
    assert list(tidy_tables(replace(a, diagnostics=object()))) == list(TABLES)


def test_loss_metric_stays_in_its_units(worked):
    code, out, _ = report(worked, "--format", "json", "--metric", "val_loss", "--table",
                          "techniques")
    doc = json.loads(out)
    assert code == 0 and doc["run"]["units"].startswith("val_loss in its own units")
    effects = {r["factor"]: r["effect"] for r in doc["tables"]["techniques"]}
    assert effects == pytest.approx({k: -v for k, v in MAIN.items()})  # val_loss = 1 - acc


def test_a_none_level_of_a_nullable_technique_reports(tmp_path):
    """lr=None (the optimizer's default) is stored as NaN in the float lr column; the report
    must still find its level (it failed with "lr has value nan")."""
    effect = {None: 0.0, 0.01: 0.03}
    run = synthetic_run({"lr": [None, 0.01], "batchnorm": [False, True]},
                        value=lambda lv: 0.8 + effect[lv["lr"]] + 0.02 * lv["batchnorm"],
                        seeds=2)
    run.save(tmp_path / "run")
    table = json.loads(report_text(tmp_path / "run", fmt="json", table="techniques"))
    rows = {r["factor"]: r for r in table["tables"]["techniques"]}
    assert rows["lr"]["effect"] == pytest.approx(0.03)
    assert rows["batchnorm"]["effect"] == pytest.approx(0.02)


def test_a_none_level_of_a_string_technique_reports(tmp_path):
    """pretrained=None (scratch) beside a weights file: a missing string is that level."""
    w = "weights/a.pt"
    run = synthetic_run({"pretrained": [None, w], "batchnorm": [False, True]},
                        value=lambda lv: 0.8 + 0.04 * (lv["pretrained"] == w)
                        + 0.02 * lv["batchnorm"], seeds=2)
    run.save(tmp_path / "run")
    table = json.loads(report_text(tmp_path / "run", fmt="json", table="techniques"))
    rows = {r["factor"]: r for r in table["tables"]["techniques"]}
    assert rows["pretrained"]["effect"] == pytest.approx(0.04)


def test_per_level_table_counts_a_none_level(tmp_path):
    run = synthetic_run({"pretrained": [None, "w.pt"], "batchnorm": [False, True]},
                        value=lambda lv: 0.8 + 0.04 * (lv["pretrained"] == "w.pt"), seeds=2)
    run.save(tmp_path / "run")
    table = json.loads(report_text(tmp_path / "run", fmt="json", table="levels"))
    rows = {(r["factor"], r["level"]): r for r in table["tables"]["levels"]}
    assert rows[("pretrained", None)]["n"] == 4
    assert rows[("pretrained", None)]["mean"] == pytest.approx(0.8)


def test_the_summary_launch_prints_is_the_effects_table_and_the_notes(worked):
    full, short = report_text(worked), report_text(worked, summary=True)
    assert short.splitlines()[0] == full.splitlines()[0]  # the same heading
    assert [ln for ln in short.splitlines() if ln.startswith("## ")] == [
        "## What each technique contributed"]
    techniques = full.split("## What each technique contributed")[1].split("\n## ")[0]
    assert techniques.strip() in short
    notes = [ln for ln in full.splitlines() if ln.startswith("> ")]
    assert notes and [ln for ln in short.splitlines() if ln.startswith("> ")] == notes
