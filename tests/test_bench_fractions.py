"""benchmarks/asha_agreement.py's every-fraction spread on a run with known effects: an
additive grid plus one planted three-factor interaction."""

import importlib.util
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
