"""The researcher's own code refused before launch: each bad plug-in is one line on stderr,
exit 2, and nothing written, not even over a run that --overwrite would replace."""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")

HEAD = """
import numpy as np
import torch.nn as nn
from gridrun import Ablation, Factor

def net(config, input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes))

def images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)
    return x, np.arange(60) % 3, x[:12], np.arange(12) % 3
"""


def spec(tmp_path, body, **kw):
    args = dict(name="'bad'", dataset="'digits'", models="{'net': net}",
                factors="[Factor('backbone', ['simple_cnn', 'net'])]",
                fixed="{'epochs': 1}")
    args.update(kw)
    path = tmp_path / "bad.py"
    path.write_text(HEAD + textwrap.dedent(body) + "\nablation = Ablation(" + ", ".join(
        f"{k}={v}" for k, v in args.items()) + ", train_size=100)\n")
    return path


CASES = [  # (name, extra code, Ablation arguments, the message after "error: bad.py: ")
    ("builder raises", "def boom(config, input_shape, num_classes):\n    raise KeyError('x')\n",
     {"models": "{'net': boom}"}, "models['net'] (spec:boom) raised KeyError: 'x'"),
    ("builder returns no module", "def text(config, input_shape, num_classes):\n    return 1\n",
     {"models": "{'net': text}"}, "models['net'] (spec:text) returned int, not a torch.nn.Module"),
    ("wrong output", "def five(config, input_shape, num_classes):\n"
     "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5))\n",
     {"models": "{'net': five}"}, "models['net'] (spec:five): its model maps a batch of shape "
                                  "(2, 1, 8, 8) to (2, 5), not to logits of shape (2, 10)"),
    ("unread architecture technique", "",
     {"factors": "[Factor('backbone', ['net']), Factor('batchnorm', [False, True])]"},
     "batchnorm does nothing to models['net']: its builder (spec:net) never reads "
     "config['batchnorm']; read it in the builder, or keep batchnorm at its default for that "
     "model"),
    ("pretrained on an own model", "",
     {"fixed": "{'epochs': 1, 'backbone': 'net', 'pretrained': 'w.pt'}",
      "factors": "[Factor('dropout', [0.0, 0.5])]"}, None),
    ("dataset of bad labels", "def floats():\n    x = np.zeros((10, 8, 8), np.uint8)\n"
     "    return x, np.zeros(10), x, np.zeros(10, int)\n",
     {"dataset": "floats"}, "dataset function spec:floats: y_train must be a non-empty 1-D array "
                            "of integer class labels, got float64 of shape (10,)"),
    ("dataset of mismatched shapes", "def shapes():\n    x = np.zeros((10, 8, 8), np.uint8)\n"
     "    return x, np.zeros(10, int), np.zeros((4, 9, 9), np.uint8), np.zeros(4, int)\n",
     {"dataset": "shapes"}, "dataset function spec:shapes: train images are (8, 8, 1), test "
                            "images (9, 9, 1); both splits must share one shape"),
    ("dataset that raises", "def broken():\n    raise OSError('no such file: data.npz')\n",
     {"dataset": "broken"}, "dataset function spec:broken raised OSError: no such file: "
                            "data.npz"),
    ("trainer without the contract", "class Half:\n    def step(self):\n        return {}\n",
     {"trainer": "Half", "metric": "'val_x'"}, "trainer spec:Half lacks state(), load(): a "
     "trainer class has __init__(config, data, seed), step() -> dict, state() -> bytes and "
     "load(state)"),
    ("custom factor shadows a technique", "",
     {"factors": "[Factor('dropout', [0.0, 0.5], custom=True)]"},
     "custom factor 'dropout' has the name of a built-in technique; give it a name of its own "
     "(or drop custom=True to vary the built-in one)"),
    ("model name shadows a backbone", "", {"models": "{'resnet20': net}"},
     "models: 'resnet20' is a built-in backbone; give your model a name of its own"),
    ("unknown model", "", {"factors": "[Factor('backbone', ['simple_cnn', 'nett'])]"},
     "factor 'backbone': unknown level 'nett'; allowed: simple_cnn, resnet20, vgg_small, vgg, "
     "resnet18, or one of models= (net) (did you mean 'net'?)"),
    ("import that fails", "", {"models": "{'net': 'no_such_package.nets:net'}"},
     "models['net'] 'no_such_package.nets:net': cannot import 'no_such_package.nets' (No "
     "module named 'no_such_package')"),
]


@pytest.mark.parametrize("extra,kw,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_plug_in_is_one_line_before_anything_is_written(tmp_path, extra, kw, message):
    path = spec(tmp_path, extra, **kw)
    run = tmp_path / "runs" / "bad"
    run.mkdir(parents=True)
    (run / "keep.txt").write_text("an earlier run")  # --overwrite must not reach it
    proc = subprocess.run([sys.executable, "-m", "gridrun.cli", "launch", str(path), "--out",
                           str(run), "--overwrite"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    if message is not None:
        assert lines[0] == f"error: {path}: {message}" or lines[0] == f"error: {message}"
    assert sorted(p.name for p in run.iterdir()) == ["keep.txt"]


def readme_spec() -> str:
    """The Python block of the README's "Your own model" section."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text.split("## Your own model")[1].split("\n## ")[0]
    return section.split("```python\n")[1].split("```")[0]


@pytest.mark.slow
def test_the_readmes_shortest_spec_runs_and_its_refusal_is_the_one_shown(tmp_path):
    from pathlib import Path

    text = (Path(__file__).parents[2] / "README.md").read_text()
    shown = text.split("## Your own model")[1].split("```console\n")[1].split("```")[0]
    good = readme_spec()
    (tmp_path / "mine.py").write_text(good)

    def launch():
        return subprocess.run([sys.executable, "-m", "gridrun.cli", "launch", "mine.py"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)

    bad = good.replace('nn.BatchNorm2d(width) if config["batchnorm"] else nn.Identity()',
                       "nn.Identity()")
    assert bad != good
    (tmp_path / "mine.py").write_text(bad)
    proc = launch()
    assert proc.returncode == 2 and proc.stderr.strip() == shown.splitlines()[1]
    assert not (tmp_path / "runs").exists()
    (tmp_path / "mine.py").write_text(good)
    proc = launch()
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd

    trials = pd.read_parquet(tmp_path / "runs" / "mine" / "trials.parquet")
    assert len(trials) == 12 and set(trials.wide) == {False, True}
    assert "+ wide" in proc.stdout
