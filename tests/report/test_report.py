"""`gridrun report` end to end: store -> analysis -> tables and plots, through the CLI."""

import csv
import io
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from gridrun.analysis.testing import synthetic_run
from gridrun.cli import main

# The worked example: techniques A, B, C as augmentation, batchnorm, dropout.
CELLS = {(False, False, 0.0): 0.80, (True, False, 0.0): 0.83, (False, True, 0.0): 0.85,
         (False, False, 0.5): 0.82, (True, True, 0.0): 0.91, (True, False, 0.5): 0.84,
         (False, True, 0.5): 0.86, (True, True, 0.5): 0.915}
FACTORS = {"augmentation": [False, True], "batchnorm": [False, True], "dropout": [0.0, 0.5]}


def save(run, path):
    return run.save(path)


@pytest.fixture(scope="module")
def worked(tmp_path_factory):
    run = synthetic_run(FACTORS, value=lambda lv: CELLS[tuple(lv.values())], seeds=3,
                        name="worked")
    return save(run, tmp_path_factory.mktemp("w") / "run")


def report(*args):
    r = CliRunner().invoke(main, ["report", *map(str, args)])
    return r.exit_code, r.stdout, r.stderr


def table_rows(text, title):
    block = text.split(f"## {title}")[1].split("\n## ")[0]
    return [[c.strip() for c in ln.strip("|").split("|")]
            for ln in block.splitlines() if ln.startswith("| ") and "---" not in ln][1:]


def test_markdown_reproduces_worked_example(worked):
    code, out, _ = report(worked, "--no-plots")
    assert code == 0
    techniques = {r[0]: r for r in table_rows(out, "What each technique contributed")}
    # Shapley 4.1667 / 6.1667 / 1.1667 points; shares of the 11.5-point gain
    assert techniques["+ augmentation"][4] == "+4.17 (36%)"
    assert techniques["+ batchnorm"][4] == "+6.17 (54%)"
    assert techniques["dropout = 0.5"][4] == "+1.17 (10%)"
    assert techniques["+ batchnorm"][2].startswith("**+6.1")  # the largest effect, bold
    configs = {r[0]: r for r in table_rows(out, "Ablation table (add-one-in view)")}
    assert configs["baseline"][1] == "80.00 ± 0.00 (n=3)"
    assert configs["+ augmentation"][2].startswith("+3.00")
    assert configs["+ batchnorm"][2].startswith("+5.00")
    assert configs["dropout = 0.5"][2].startswith("+2.00")


@pytest.mark.parametrize("view,expected", [
    ("leave_one_out", {"target without augmentation": "+5.50", "target without batchnorm":
                       "+7.50", "target without dropout": "+0.50"}),
    ("cumulative", {"+ augmentation (step 1)": "+3.00", "+ batchnorm (step 2)": "+8.00",
                    "dropout = 0.5 (step 3)": "+0.50"}),
])
def test_design_views(worked, view, expected):
    code, out, _ = report(worked, "--no-plots", "--design-view", view)
    assert code == 0
    title = f"Ablation table ({view.replace('_', '-')} view)"
    rows = {r[0]: r for r in table_rows(out, title)}
    for label, delta in expected.items():
        assert rows[label][2].startswith(delta), rows[label]


def test_latex_is_booktabs_with_caption(worked, tmp_path):
    out = tmp_path / "t.tex"
    code, _, err = report(worked, "--no-plots", "--format", "latex", "--out", out)
    assert code == 0 and err.strip() == f"wrote {out}"
    tex = out.read_text()
    for token in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption{", "\\textbf{",
                  "\\label{tab:techniques}", "Holm-adjusted p $<$ 0.05"):
        assert token in tex, token
    assert "val\\_acc" in tex and "_acc" not in tex.replace("\\_acc", "")


def test_csv_and_html(worked):
    code, out, _ = report(worked, "--no-plots", "--format", "csv")
    rows = [r for r in csv.reader(io.StringIO(out)) if r]
    assert code == 0 and rows[0][0] == "table"
    assert {r[0] for r in rows} >= {"techniques", "variance", "levels"}
    code, out, _ = report(worked, "--no-plots", "--format", "html")
    assert code == 0 and out.count("<table") == out.count("</table>") >= 4


def test_plots_written_next_to_run(worked):
    code, _, err = report(worked, "--plots", "--out", worked / "report.md")
    assert code == 0 and err.strip() == (f"wrote {worked / 'report.md'} and plots in "
                                         f"{worked / 'plots'}")
    names = sorted(p.name for p in (worked / "plots").iterdir())
    for stem in ("effects_forest", "interactions", "learning_curves"):
        assert f"{stem}.png" in names and f"{stem}.pdf" in names


def test_asha_run_reports_budget_and_survivors(tmp_path):
    """Trials stopped at epoch 2 of 6: numbers are at epoch 2 unless --budget asks for 6."""
    run = synthetic_run({"augmentation": [False, True], "batchnorm": [False, True]},
                        value=lambda lv: 0.8 + 0.05 * lv["batchnorm"], seeds=3, epochs=6,
                        stop=lambda lv, seed: 2 if lv["augmentation"] and seed else 6)
    path = save(run, tmp_path / "run")
    code, out, _ = report(path, "--no-plots")
    assert code == 0
    levels = table_rows(out, "Per factor level")
    assert levels[1][5] == "4 (4 at 2)"  # augmentation=True: 4 of 6 trials stopped at 2
    assert "*val_acc at epoch 2; mean ± std" in out
    code, out6, _ = report(path, "--no-plots", "--budget", "6")
    assert code == 0
    assert table_rows(out6, "Per factor level")[1][4] == "2"  # survivors only, n=2


def test_report_errors_are_one_line(tmp_path, worked):
    code, _, err = report(tmp_path / "nope")
    assert (code, err) == (2, f"error: {tmp_path / 'nope'}: no such run folder\n")
    code, _, err = report(worked, "--budget", "99", "--no-plots")
    assert code == 2 and err == "error: budget 99 is outside the epochs this run reached " \
                                "(1 to 6)\n"


def test_report_needs_no_framework_or_ray(worked):
    """A laptop with neither torch, tensorflow nor ray installed can make the report."""
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "tensorflow", "ray", "keras"):
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        from click.testing import CliRunner
        from gridrun.cli import main
        r = CliRunner().invoke(main, ["report", {str(worked)!r}])
        assert r.exit_code == 0, r.output
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_latex_compiles(worked, tmp_path):
    """The LaTeX report is a valid booktabs document body (needs pdflatex)."""
    import shutil

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (apt-get install texlive-latex-recommended)")
    code, _, _ = report(worked, "--format", "latex", "--out", tmp_path / "report.tex")
    assert code == 0
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage[margin=1cm,landscape]{geometry}\n"
        "\\usepackage{booktabs}\n\\begin{document}\n\\input{report.tex}\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           "doc.tex"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
