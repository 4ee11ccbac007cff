"""benchmarks/asha_agreement.py's every-fraction spread on a run with known effects: an
additive grid plus one planted three-factor interaction."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from gridrun.analysis.testing import synthetic_run

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "asha_agreement.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("asha_agreement", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_fraction_errs_exactly_where_a_main_effect_is_aliased(tmp_path):
    factors = {"batchnorm": [False, True], "augmentation": [False, True],
               "crop": [False, True], "dropout": [0.0, 0.3], "weight_decay": [0.0, 5e-4],
               "batch_size": [128, 256]}

    def value(lv):
        x = {n: 2 * levels.index(lv[n]) - 1 for n, levels in factors.items()}  # -1 / +1
        main = sum((i + 1) * 0.005 * x[n] for i, n in enumerate(factors))
        # a 3-point augmentation x crop x dropout interaction
        return 0.7 + main + 0.015 * x["augmentation"] * x["crop"] * x["dropout"]

    synthetic_run(factors, value=value).save(tmp_path / "truth")
    errors = load_bench().every_fraction(tmp_path, 4)
    # 16-cell resolution IV quarters: a main effect aliased with the interaction is off by
    # its 3 points,
    # the others are exact; whichever fractions alias it, some do and some do not
    quarter = np.array(errors.pop(4))
    assert len(quarter) == 60
    assert set(np.round(quarter, 9)) == {0.0, 3.0}
    assert not errors  # no 16-cell fraction of 6 factors has resolution V

    halves = load_bench().every_fraction(tmp_path, 5)
    assert sorted(halves) == [5, 6] and len(halves[6]) == 2
    assert max(max(v) for v in halves.values()) < 1e-9  # clear of three-factor interactions


def test_the_interaction_spectrum_finds_the_planted_interaction_at_its_order(tmp_path):
    factors = {"batchnorm": [False, True], "augmentation": [False, True],
               "crop": [False, True], "dropout": [0.0, 0.3]}

    def value(lv):
        x = {n: 2 * levels.index(lv[n]) - 1 for n, levels in factors.items()}
        return 0.7 + 0.01 * x["batchnorm"] + 0.004 * x["augmentation"] * x["crop"] * x["dropout"]

    synthetic_run(factors, value=value).save(tmp_path / "truth")
    spectrum = load_bench().interaction_spectrum(tmp_path)
    assert sorted(spectrum) == [1, 2, 3, 4]
    rms, noise, top = spectrum[1]  # batchnorm +2 points, the other three 0: rms = 2 / sqrt(4)
    assert top[0][0] == "batchnorm" and abs(top[0][1] - 2.0) < 1e-9 and abs(rms - 1.0) < 1e-9
    rms, noise, top = spectrum[3]  # one of four three-factor words carries 0.8 points
    assert top[0][0] == "augmentation x crop x dropout" and abs(top[0][1] - 0.8) < 1e-9
    assert abs(rms - 0.4) < 1e-9
    assert spectrum[2][0] < 1e-9 and spectrum[4][0] < 1e-9
    assert max(noise for _, noise, _ in spectrum.values()) < 1e-9  # no noise planted


def test_the_spectrum_s_noise_column_is_the_contrasts_standard_error_over_seeds(tmp_path):
    factors = {"batchnorm": [False, True], "augmentation": [False, True],
               "crop": [False, True], "dropout": [0.0, 0.3], "weight_decay": [0.0, 5e-4],
               "batch_size": [128, 256]}
    # an offset that a seed gives every cell alike cancels in every contrast
    synthetic_run(factors, value=lambda lv: 0.7, seed_noise=0.05).save(
        tmp_path / "shared" / "truth")
    shared = load_bench().interaction_spectrum(tmp_path / "shared")
    assert max(max(rms, noise) for rms, noise, _ in shared.values()) < 1e-9

    # noise of its own per trial, sd 1 point: a contrast over 64 cells x 3 seeds has a
    # standard error of 2 x 1 / sqrt(192) = 0.144 points at every order
    synthetic_run(factors, value=lambda lv: 0.7, noise=0.01, seed=3).save(tmp_path / "truth")
    spectrum = load_bench().interaction_spectrum(tmp_path)
    noise_all = np.sqrt(np.mean([noise ** 2 for _, noise, _ in spectrum.values()]))
    rms_all = np.sqrt(np.mean([rms ** 2 for rms, _, _ in spectrum.values()]))
    assert abs(noise_all - 2 / np.sqrt(192)) < 0.03
    assert abs(rms_all - 2 / np.sqrt(192)) < 0.03  # pure noise: all of it is noise


SEVEN = ["--techniques", "augmentation,batchnorm,dropout,optimizer,weight_decay,batch_size,"
         "lr_schedule", "--epochs", "16", "--train-size", "12000", "--eta", "8",
         "--budget", "0.25"]
RECORDED = BENCH.parent / "results" / "asha_7x12k.json"


def test_the_recorded_7_factor_summary_gives_the_rows_its_runs_printed():
    bench = load_bench()
    args = bench.argparse.Namespace(factors=6, techniques=SEVEN[1], seeds=3, epochs=16,
                                    train_size=12000, val_fraction=0.03)
    arms = bench.earlier_summary(RECORDED, args)["arms"]
    _assert_rows(bench, arms, {"gridrun budget 0.25": (1482, "2/2", 0.96, 0.39),  # as printed
                               "vanilla ASHA": (644, "2/2", 0.86, 5.88)})


def _assert_rows(bench, arms, printed):
    """Each arm's row, recomputed from the recorded effects, is the one printed:
    {arm: (trial-epochs, signs, rho, largest error)}."""
    for arm, (epochs, signs, rho, max_err) in printed.items():
        row = bench.compare(arms["truth"], arms[arm])
        assert (row["epochs"], row["signs"]) == (epochs, signs)
        assert round(row["rho"], 2) == rho and round(row["max_err"], 2) == max_err


MIXED_ARGS = "augmentation,optimizer:3,dropout:3,batch_size:3,weight_decay:3"
RECORDED_MIXED = BENCH.parent / "results" / "asha_mixed_6k.json"


def test_the_recorded_mixed_summary_gives_the_rows_the_readme_prints():
    """The README's row for the grid with three-level factors, recomputed from the recorded
    per-level effects: a summary of this grid (per-level keys), its rows as printed."""
    bench = load_bench()
    args = bench.argparse.Namespace(factors=5, techniques=MIXED_ARGS, seeds=3, epochs=8,
                                    train_size=6000, val_fraction=0.03)
    arms = bench.earlier_summary(RECORDED_MIXED, args)["arms"]
    assert len(arms["truth"]["effects"]) == 9  # 1 + 2 + 2 + 2 + 2 levels against baselines
    _assert_rows(bench, arms, {"gridrun": (1920, "6/6", 0.92, 0.32),
                               "vanilla ASHA": (758, "5/6", 0.75, 7.26)})
    assert arms["gridrun"]["trial_epochs"] <= arms["truth"]["trial_epochs"] / 2


def test_truth_from_adds_an_arm_to_a_recorded_summary_without_training(tmp_path, capsys):
    bench = load_bench()
    recorded = json.loads(RECORDED.read_text())
    del recorded["arms"]["vanilla ASHA"], recorded["table"]["vanilla ASHA"]
    (tmp_path / "recorded.json").write_text(json.dumps(recorded))
    truth = recorded["arms"]["truth"]["effects"]
    (tmp_path / "vanilla").mkdir()
    vanilla = {n: [v + (0.02 if n == "batch_size=256" else 0.0), None, None]
               for n, (v, *_) in truth.items()}  # one effect two points off, the rest exact
    (tmp_path / "vanilla" / "vanilla.json").write_text(json.dumps(
        {"effects": vanilla, "trial_epochs": 700, "seconds": 60.0, "basis": "last value"}))
    assert bench.main(SEVEN + ["--truth-from", str(tmp_path / "recorded.json"),
                               "--arms", "vanilla", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "vanilla ASHA" in out and "fraction res IV" in out  # recorded rows kept
    summary = json.loads(next(tmp_path.glob("summary_*.json")).read_text())
    row = summary["table"]["vanilla ASHA"]
    assert row["epochs"] == 700 and abs(row["max_err"] - 2.0) < 1e-9
    assert round(summary["table"]["gridrun budget 0.25"]["max_err"], 2) == 0.39
    assert "source" in summary  # what the recorded numbers are stays with them


def test_truth_from_refuses_a_summary_of_another_grid(tmp_path):
    bench = load_bench()
    try:
        bench.main(SEVEN[:2] + ["--epochs", "8"] + SEVEN[4:] + ["--truth-from", str(RECORDED),
                                 "--out", str(tmp_path)])
    except SystemExit as e:
        assert "another grid" in str(e) and "epochs 16 there, 8 here" in str(e)
    else:
        raise AssertionError("a summary of a 16-epoch grid was taken for an 8-epoch one")
    assert not list(tmp_path.glob("*/"))  # nothing trained, nothing written


def test_a_mixed_grid_s_fraction_effects_and_spectrum_are_per_level(tmp_path):
    factors = {"augmentation": [False, True], "optimizer": ["sgd", "adam", "rmsprop"],
               "dropout": [0.0, 0.25, 0.5], "batch_size": [64, 128, 256],
               "weight_decay": [0.0, 5e-4, 5e-3]}

    def value(lv):  # main effects and one two-factor interaction (which strength 3 clears)
        return (0.8 + 0.02 * lv["augmentation"] + {"sgd": 0, "adam": 0.01, "rmsprop": -0.005}[
            lv["optimizer"]] + 0.01 * (lv["batch_size"] == 256)
            + 0.006 * (lv["optimizer"] == "adam") * (lv["weight_decay"] == 5e-3))

    synthetic_run(factors, value=value, seeds=2, epochs=4).save(tmp_path / "truth")
    bench = load_bench()
    effects = bench.fraction_effects(tmp_path, 4)
    assert effects["basis"] == "54 cells of the truth"
    assert abs(effects["effects"]["optimizer=adam"][0] - (0.01 + 0.006 / 3)) < 1e-9
    assert abs(effects["effects"]["optimizer=rmsprop"][0] + 0.005) < 1e-9
    assert abs(effects["effects"]["batch_size=256"][0] - 0.01) < 1e-9
    assert abs(effects["effects"]["batch_size=128"][0]) < 1e-9
    spectrum = bench.interaction_spectrum(tmp_path)
    assert sorted(spectrum) == [1, 2, 3, 4, 5]
    assert spectrum[2][2][0][0] == "optimizer x weight_decay"  # the planted pair leads
    assert spectrum[3][0] < 1e-9 and spectrum[4][0] < 1e-9  # nothing planted above two
    assert bench.every_fraction(tmp_path, 4) == {}  # regular two-level fractions only
