"""Every bad spec gets one clear line on stderr and exit code 2, before Ray starts."""

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from gridrun.spec import techniques
from gridrun.cli import main

HEAD = "from gridrun import Ablation, Factor, ASHA\n"


def spec_source(**overrides) -> str:
    """A valid quickstart-like spec, with keyword arguments replaced by source snippets."""
    args = {
        "name": "'bad'", "dataset": "'digits'",
        "factors": "[Factor('augmentation', [False, True]), Factor('dropout', [0.0, 0.3]), "
                   "Factor('optimizer', ['sgd', 'adam'])]",
        "fixed": "{'epochs': 4}", "seeds": "2", "scheduler": "ASHA(grace_period=2)",
    }
    args.update(overrides)
    body = ", ".join(f"{k}={v}" for k, v in args.items())
    return HEAD + f"ablation = Ablation({body})\n"


CASES = [
    ("unknown factor", spec_source(factors="[Factor('dropuot', [0.1])]"),
     "unknown technique 'dropuot' (did you mean 'dropout'?); gridrun techniques lists the "
     f"{len(techniques.TECHNIQUES)} a "
     "spec may use"),
    ("unknown level", spec_source(factors="[Factor('optimizer', ['sgd', 'adma'])]"),
     "factor 'optimizer': unknown level 'adma'; allowed: sgd, nesterov, adam, adamw, rmsprop "
     "(did you mean 'adam'?)"),
    ("empty levels", spec_source(factors="[Factor('dropout', [])]"),
     "factor 'dropout' has no levels; give at least one"),
    ("duplicate factor", spec_source(factors="[Factor('dropout', [0.0]), Factor('dropout', [0.5])]"),
     "factor 'dropout' is declared twice"),
    ("duplicate level", spec_source(factors="[Factor('dropout', [0.0, 0.5, 0.5])]"),
     "factor 'dropout': level 0.5 is listed twice"),
    ("duplicate level int/float", spec_source(factors="[Factor('dropout', [0, 0.0])]"),
     "factor 'dropout': level 0.0 is listed twice"),
    ("wrong type", spec_source(factors="[Factor('batchnorm', ['yes', False])]"),
     "factor 'batchnorm': 'yes' is a str; allowed: True or False"),
    ("out of range", spec_source(factors="[Factor('dropout', [0.0, 1.5])]"),
     "factor 'dropout': 1.5 is out of range; allowed: a number in [0, 1)"),
    ("baseline not a level", spec_source(baseline="{'optimizer': 'rmsprop'}"),
     "baseline 'optimizer'='rmsprop' is not one of its levels: 'sgd', 'adam'"),
    ("baseline unknown factor", spec_source(baseline="{'batchnorm': True}"),
     "baseline: 'batchnorm' is not a factor; factors: augmentation, dropout, optimizer"),
    ("unknown dataset", spec_source(dataset="'cifar100'"),
     "unknown dataset 'cifar100'; allowed: digits, mnist, fashion_mnist, cifar10, or "
     "folder:PATH for a folder of images (did you mean 'cifar10'?)"),
    ("seeds zero", spec_source(seeds="0"), "seeds must be an integer >= 1, got 0"),
    ("grace > epochs", spec_source(scheduler="ASHA(grace_period=5)"),
     "ASHA grace_period 5 is greater than epochs 4; it must be <= epochs"),
    ("negative resources", spec_source(resources="{'cpu': -1}"),
     "resources 'cpu' must not be negative, got -1"),
    ("unknown resource", spec_source(resources="{'gpus': 1}"),
     "resources: unknown key 'gpus'; allowed: cpu, gpu (did you mean 'gpu'?)"),
    ("fixed unknown", spec_source(fixed="{'epoch': 4}"),
     "fixed: unknown technique 'epoch' (did you mean 'epochs'?); gridrun techniques lists the "
     f"{len(techniques.TECHNIQUES)} "
     "a spec may use"),
    ("epochs as factor", spec_source(factors="[Factor('epochs', [1, 2])]"),
     "'epochs' cannot be a factor; set it in fixed={'epochs': ...}"),
    ("unknown design", spec_source(design="'ful'"),
     "unknown design 'ful'; allowed: full, add_one_in, leave_one_out, cumulative, fractional "
     "(did you mean 'full'?)"),
    ("syntax error", HEAD + "ablation = Ablation(name='x',\n", None),
    ("no ablation", HEAD + "x = 1\n",
     "defines no Ablation; assign one at module level, e.g. ablation = Ablation(...)"),
    ("two ablations", spec_source() + "other = ablation\n",
     "defines 2 Ablation objects (ablation, other); keep exactly one"),
    ("user code error", HEAD + "import nonexistent_module_xyz\n",
     None),
]


def run_cli(args):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("source,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_spec_one_line_exit_2(tmp_path, source, expected):
    path = tmp_path / "bad.py"
    path.write_text(source)
    code, out, err = run_cli(["launch", str(path)])
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {path}")
    if expected is not None:
        assert lines[0] == f"error: {path}: {expected}"


def test_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(HEAD + "x = (\n")
    code, _, err = run_cli(["launch", str(path)])
    assert code == 2
    assert err.startswith(f"error: {path}:2: syntax error:")


def test_user_code_error_names_line(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(HEAD + "\nimport nonexistent_module_xyz\n")
    code, _, err = run_cli(["launch", str(path)])
    assert code == 2
    assert err.strip() == (f"error: {path}:3: ModuleNotFoundError: "
                           "No module named 'nonexistent_module_xyz'")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.py"
    code, _, err = run_cli(["launch", str(path)])
    assert (code, err) == (2, f"error: {path}: no such spec file\n")


def test_bad_spec_never_starts_ray(tmp_path):
    """The CLI exits before importing ray at all (so no Ray process can start)."""
    path = tmp_path / "bad.py"
    path.write_text(spec_source(seeds="0"))
    code = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from gridrun.cli import main
        r = CliRunner().invoke(main, ["launch", {str(path)!r}])
        assert r.exit_code == 2, r.output
        assert "ray" not in sys.modules and "torch" not in sys.modules
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_valid_spec_dry_run_prints_table(tmp_path):
    path = tmp_path / "ok.py"
    path.write_text(spec_source())
    code, out, _ = run_cli(["launch", str(path), "--dry-run"])
    assert code == 0
    assert out.startswith("bad: design 'full', 8 configurations x 2 seeds = 16 trials")
    trial_rows = [ln for ln in out.splitlines()
                  if ln.startswith("| ") and len(ln.split("|")[1].strip()) == 12
                  and ln.split("|")[1].strip().isalnum()]
    assert len(trial_rows) == 16
