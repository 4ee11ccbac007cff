"""ASHA diagnostics: rung predictiveness, pruning per level and the warnings they raise."""

import dataclasses
import doctest
import math

import pytest
from click.testing import CliRunner

from gridrun.analysis import analyze, asha_diagnostics
from gridrun.analysis import _diagnostics
from gridrun.analysis.testing import synthetic_run
from gridrun.cli import main

AUG = {"augmentation": [False, True]}
FACTORS = {"augmentation": [False, True], "dropout": [0.0, 0.5]}
HALVING = {"type": "asha", "grace_period": 1, "reduction_factor": 2}  # rungs 1, 2, 4 of 6


def with_curves(run, curve):
    """``run`` with val_acc of trial i at epoch e set to curve(i, e) (val_loss = 1 - it)."""
    ep = run.epochs.copy()
    index = ep["trial_id"].str[1:].astype(int)
    ep["val_acc"] = [float(curve(i, e)) for i, e in zip(index, ep["epoch"])]
    ep["val_loss"] = 1 - ep["val_acc"]
    ep["train_acc"] = ep["val_acc"] + 0.05
    return dataclasses.replace(run, epochs=ep)


def reversed_early_run(last_reversed=2, **kw):
    """Six finished trials whose ranking at epochs 1..last_reversed is the reverse of
    their final ranking, and the same as the final one from then on."""
    run = synthetic_run(AUG, value=lambda lv: 0.8, seeds=3, epochs=6, scheduler=HALVING, **kw)
    return with_curves(run, lambda i, e: 0.5 - 0.01 * i if e <= last_reversed
                       else 0.6 + 0.01 * e + 0.01 * i)


def test_reversed_early_ranking_gives_rho_minus_one_and_suggests_a_grace_period():
    run = reversed_early_run()
    d = asha_diagnostics(run.grid())
    assert d.rungs == (1, 2, 4) and d.epochs == (1, 2, 3, 4, 5) and d.final_epoch == 6
    assert d.rho == pytest.approx((-1, -1, 1, 1, 1))
    assert d.n == (6,) * 5 and d.n_finished == 6
    # grace 1 (rungs 1, 2, 4) and 2 (rungs 2, 4) keep a reversed rung; 3 (rung 3) does not
    assert d.suggested_grace == 3
    [warning] = d.warnings
    assert "rungs at epochs 1 and 2" in warning and "-1.00 and -1.00" in warning
    assert "A grace period of 3 would put every rung" in warning


def test_rank_correlation_is_the_same_for_a_loss():
    run = reversed_early_run()
    acc = asha_diagnostics(run.grid("val_acc"))
    loss = asha_diagnostics(run.grid("val_loss"))
    assert loss.rho == pytest.approx(acc.rho) and loss.suggested_grace == 3
    assert "of val_loss" in loss.warnings[0]


def test_predictive_rungs_raise_no_warning():
    d = asha_diagnostics(reversed_early_run(last_reversed=0).grid())
    assert d.rho == pytest.approx((1,) * 5)
    assert d.warnings == () and d.suggested_grace == 1


def test_no_early_epoch_that_predicts_the_end():
    d = asha_diagnostics(reversed_early_run(last_reversed=5).grid())
    assert d.rho == pytest.approx((-1,) * 5) and d.suggested_grace is None
    [warning] = d.warnings
    assert "rungs at epochs 1, 2 and 4" in warning
    assert "No early epoch predicted the end well" in warning


def test_too_few_finished_trials_say_so_once_and_nothing_else():
    # four of six trials stopped at the first rung: two finished, too few for a rank
    run = reversed_early_run(stop=lambda lv, s: 6 if s == 0 else 1)
    d = asha_diagnostics(run.grid())
    assert d.n_finished == 2 and all(math.isnan(r) for r in d.rho)
    assert d.suggested_grace is None
    [note] = [w for w in d.warnings if "rank" in w]
    assert note.startswith("Only 2 trial(s) finished all 6 epochs")
    assert not any("rung at" in w or "rungs at" in w for w in d.warnings)


def test_constant_side_gives_nan_and_no_warning():
    run = synthetic_run(AUG, value=lambda lv: 0.8, seeds=3, epochs=6, scheduler=HALVING)
    d = asha_diagnostics(run.grid())  # flat, equal curves: ranks carry no information
    assert all(math.isnan(r) for r in d.rho) and d.n == (6,) * 5
    assert d.warnings == ()


def test_a_level_pruned_at_the_first_rung_is_flagged():
    run = synthetic_run(FACTORS, value=lambda lv: 0.8, seeds=3, epochs=6, scheduler=HALVING,
                        stop=lambda lv, s: 1 if lv["augmentation"] else 6)
    d = asha_diagnostics(run.grid())
    level = [w for w in d.warnings if w.startswith("ASHA stopped")]
    assert level == [
        "ASHA stopped 6 of 6 trials with augmentation = True by epoch 1 (100%) but 0 of 6 "
        "with augmentation = False (0%): comparisons of augmentation are at an early epoch "
        "or over survivors only, so read its effect with care."]


@pytest.mark.parametrize("stopped,warns", [
    ((3, 2), True),   # 0.75 vs 0.50: gap 0.25, ratio 1.5 (both thresholds are inclusive)
    ((2, 1), True),   # 0.50 vs 0.25: gap 0.25, ratio 2
    ((1, 0), True),   # 0.25 vs 0.00: gap 0.25, any ratio
    ((4, 3), False),  # 1.00 vs 0.75: gap 0.25 but ratio 1.33
    ((1, 1), False),  # equal
])
def test_level_warning_thresholds(stopped, warns):
    """Of four seeds per augmentation level, ``stopped`` (True, False) stop at epoch 1."""
    counts = dict(zip((True, False), stopped))
    run = synthetic_run(AUG, value=lambda lv: 0.8, seeds=4, epochs=6, scheduler=HALVING,
                        stop=lambda lv, s: 1 if s < counts[lv["augmentation"]] else 6)
    d = asha_diagnostics(run.grid())
    level = [w for w in d.warnings if w.startswith("ASHA stopped")]
    assert len(level) == (1 if warns else 0)
    assert (_diagnostics.PRUNE_GAP, _diagnostics.PRUNE_RATIO) == (0.25, 1.5)


def test_exact_pruning_table():
    # (augmentation, dropout) points, seed fastest; the last trial errored (left out)
    run = synthetic_run(FACTORS, value=lambda lv: 0.8, seeds=2, epochs=9,
                        scheduler={"grace_period": 1, "reduction_factor": 3},
                        stop=[9, 9, 1, 9, 1, 3, 3, 9],
                        error=[False] * 7 + [True])
    d = asha_diagnostics(run.grid())
    assert d.rungs == (1, 3)
    rows = [(r["factor"], r["level"], r["rung"], r["n_trials"], r["n_pruned"],
             r["pruned_fraction"]) for r in d.tidy()["pruning"]]
    assert rows == [
        ("augmentation", False, 1, 4, 1, 0.25), ("augmentation", False, 3, 4, 1, 0.25),
        ("augmentation", False, 9, 4, 1, 0.25),
        ("augmentation", True, 1, 3, 1, 1 / 3), ("augmentation", True, 3, 3, 3, 1.0),
        ("augmentation", True, 9, 3, 3, 1.0),
        ("dropout", 0.0, 1, 4, 1, 0.25), ("dropout", 0.0, 3, 4, 2, 0.5),
        ("dropout", 0.0, 9, 4, 2, 0.5),
        ("dropout", 0.5, 1, 3, 1, 1 / 3), ("dropout", 0.5, 3, 3, 2, 2 / 3),
        ("dropout", 0.5, 9, 3, 2, 2 / 3),
        ("all", None, 1, 7, 2, 2 / 7), ("all", None, 3, 7, 4, 4 / 7),
        ("all", None, 9, 7, 4, 4 / 7)]
    # augmentation = True: 1/3 vs 1/4 at epoch 1 is not far more; 3/3 vs 1/4 at 3 is
    level = [w for w in d.warnings if w.startswith("ASHA stopped")]
    assert len(level) == 1 and "augmentation = True by epoch 3" in level[0]


def test_tidy_tables_hold_plain_values():
    d = asha_diagnostics(reversed_early_run(stop=lambda lv, s: 6 if s == 0 else 1).grid())
    tables = d.tidy()
    assert set(tables) == {"rung_correlation", "pruning"}
    assert tables["rung_correlation"][0] == {"epoch": 1, "is_rung": True, "rho": None, "n": 2}
    assert tables["rung_correlation"][2]["is_rung"] is False
    for row in (r for rows in tables.values() for r in rows):
        for v in row.values():
            assert v is None or type(v) in (int, float, bool, str)


def test_analyze_fills_diagnostics_and_notes_only_with_a_scheduler():
    run = reversed_early_run()
    a = analyze(run.trials, run.epochs, run.spec, n_boot=50)
    assert a.diagnostics is not None and a.diagnostics.suggested_grace == 3
    assert a.notes[-1] == a.diagnostics.warnings[-1]
    plain = dataclasses.replace(run, spec={**run.spec, "scheduler": None})
    assert analyze(plain.trials, plain.epochs, plain.spec, n_boot=50).diagnostics is None
    with pytest.raises(ValueError, match="need a scheduler"):
        asha_diagnostics(plain.grid())


def test_module_examples():
    assert doctest.testmod(_diagnostics).failed == 0


def save(run, path):
    return run.save(path)


def table_rows(text, title):
    block = text.split(f"## {title}")[1].split("\n## ")[0]
    return [[c.strip() for c in ln.strip("|").split("|")]
            for ln in block.splitlines() if ln.startswith("| ") and "---" not in ln][1:]


def test_report_prints_the_table_and_the_warnings(tmp_path):
    run = reversed_early_run(stop=lambda lv, s: 1 if lv["augmentation"] and s == 2 else 6)
    path = save(run, tmp_path / "run")
    r = CliRunner().invoke(main, ["report", str(path), "--no-plots"])
    assert r.exit_code == 0, r.output
    rows = table_rows(r.stdout, "ASHA diagnostics")
    assert [row[:4] for row in rows] == [
        ["1", "**-1.00**", "5", "1/6 (17%)"], ["2", "**-1.00**", "5", "1/6 (17%)"],
        ["4", "1.00", "5", "1/6 (17%)"], ["6 (final)", "—", "5", "1/6 (17%)"]]
    assert rows[0][4] == "augmentation: False 0%, True 33%"
    assert "> ASHA's rungs at epochs 1 and 2 ranked trials unlike the final epoch 6" in r.stdout
    assert "A grace period of 3 would put every rung" in r.stdout
    latex = CliRunner().invoke(main, ["report", str(path), "--no-plots", "--format", "latex"])
    assert latex.exit_code == 0 and "ASHA diagnostics" in latex.stdout


def test_report_without_a_scheduler_has_no_diagnostics(tmp_path):
    run = reversed_early_run()
    path = save(dataclasses.replace(run, spec={**run.spec, "scheduler": None}), tmp_path / "r")
    r = CliRunner().invoke(main, ["report", str(path), "--no-plots"])
    assert r.exit_code == 0 and "ASHA diagnostics" not in r.stdout
    assert "ASHA's rung" not in r.stdout
