"""Datasets declare which transforms change their labels; a spec using one gets a warning at
launch, in plan and in --dry-run (it still runs: measuring label damage may be the point)."""

from click.testing import CliRunner

from gridrun import Ablation, Factor
from gridrun.design.labels import label_warnings
from gridrun.cli import main


def test_flips_and_large_rotations_of_digits_warn_once_each():
    a = Ablation(name="x", dataset="mnist",
                 factors=[Factor("flip", [False, True]), Factor("rotation", [0.0, 30.0, 90.0])],
                 fixed={"augment_policy": "standard"})
    lines = label_warnings(a)
    assert sorted(ln.split(" on ")[0] for ln in lines) == [
        "warning: augment_policy='standard'", "warning: flip=True", "warning: rotation=90.0"]
    assert all("mnist changes what images mean" in ln for ln in lines)


def test_label_safe_specs_and_other_datasets_do_not_warn():
    assert label_warnings(Ablation(name="x", dataset="digits",
                                   factors=[Factor("crop", [False, True]),
                                            Factor("rotation", [0.0, 15.0])])) == []
    assert label_warnings(Ablation(name="x", dataset="fashion_mnist",
                                   factors=[Factor("flip", [False, True])])) == []


def test_dry_run_prints_the_warning(tmp_path):
    spec = tmp_path / "s.py"
    spec.write_text("from gridrun import Ablation, Factor\nablation = Ablation(name='s', "
                    "dataset='digits', factors=[Factor('augmentation', [False, True])])\n")
    out = CliRunner().invoke(main, ["launch", str(spec), "--dry-run"])
    assert out.exit_code == 0 and "warning: augmentation=True on digits" in out.output
