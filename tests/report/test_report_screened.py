"""Reports of screened runs come from the anchors at the full budget; runs made before
gridrun scheduled cells (per-trial ASHA, no anchors, no continued_from column) still open."""

import pyarrow.parquet as pq
from click.testing import CliRunner

from gridrun.analysis.testing import additive, synthetic_run
from gridrun.cli import main
from gridrun.design.schedule import anchors_for, cell_key

from test_report import save

FACTORS = {"augmentation": [False, True], "batchnorm": [False, True],
           "dropout": [0.0, 0.3], "optimizer": ["sgd", "adam"]}
SCHED = {"type": "asha", "grace_period": 1, "reduction_factor": 3, "resolution": 4,
         "confirm": 1}
# augmentation starts slowly: 3 points behind per epoch short of the end
VALUE = additive(0.8, {"augmentation": {True: 0.02}, "batchnorm": {True: 0.05},
                       "dropout": {0.3: -0.01}, "optimizer": {"adam": 0.005}})


def report(*args):
    r = CliRunner().invoke(main, ["report", *map(str, args), "--no-plots"])
    return r.exit_code, r.output


def screened_run(tmp_path, scheduler=SCHED):
    keys = anchors_for(FACTORS, {}, {}).keys()
    run = synthetic_run(FACTORS, value=VALUE, seeds=3, epochs=9, scheduler=scheduler,
                        slow=lambda lv: 0.03 * lv["augmentation"],
                        stop=lambda lv, s: 9 if cell_key(lv) in keys else 1)
    return save(run, tmp_path / "run")


def test_screened_run_reports_true_effects_at_the_full_budget(tmp_path):
    code, out = report(screened_run(tmp_path))
    assert code == 0, out
    assert "Numbers: main effects and Shapley parts from the 8-cell 2^(4-1) resolution IV" in out
    rows = {ln.split("|")[1].strip(): ln.split("|") for ln in out.split(
        "## What each technique contributed")[1].split("##")[0].splitlines()
        if ln.startswith("| ") and " vs " in ln}
    # the slow starter is credited with its final +2 points, not -22 at epoch 1
    assert rows["+ augmentation"][3].strip().startswith("+2.00")
    assert rows["+ batchnorm"][3].strip().strip("*").startswith("+5.00")  # bold: the largest
    assert all(r[8].strip() == "9 (3)" for r in rows.values())


def test_run_made_before_cell_scheduling_still_opens(tmp_path):
    old_sched = {"type": "asha", "grace_period": 1, "reduction_factor": 3}
    path = screened_run(tmp_path, old_sched)
    table = pq.read_table(path / "trials.parquet")
    pq.write_table(table.drop_columns(["continued_from"]), path / "trials.parquet")
    code, out = report(path)
    assert code == 0, out
    assert "Numbers: each number at the last epoch every trial it compares reached" in out
    code, out = report(path, "--format", "json")
    assert code == 0 and '"basis": "each number at the last epoch' in out
