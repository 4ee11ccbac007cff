"""run.json: the record that makes a run reproducible and a fractional design readable."""

import datetime as dt
import json

from gridrun import Ablation, Factor
from gridrun.run.runinfo import run_info
from gridrun.data import load_dataset


def test_run_info_records_spec_versions_and_alias_structure(tmp_path):
    a = Ablation(name="f", dataset="digits", design="fractional", resolution=5, seeds=2,
                 factors=[Factor(n, [False, True]) for n in ("augmentation", "batchnorm")]
                 + [Factor("dropout", [0.0, 0.5]), Factor("optimizer", ["sgd", "adam"]),
                    Factor("backbone", ["simple_cnn", "resnet20"])])
    started = dt.datetime.now(dt.timezone.utc)
    info = run_info(a, tmp_path / "f.py", started, load_dataset("digits", train_size=100),
                    {"cluster_cpus": 2}, 32, 32, False)
    json.dumps(info)  # JSON-ready as written
    assert info["spec"]["design"] == "fractional" and info["complete"] is True
    frac = info["fractional"]
    assert frac["generators"] == ["E=ABCD"] and frac["resolution"] == 5
    assert frac["factors"] == {"A": "augmentation", "B": "batchnorm", "C": "dropout",
                               "D": "optimizer", "E": "backbone"}
    assert frac["aliases"]["AB"] == ["CDE"]
    assert info["data"]["train"] == 100 and info["versions"]["gridrun"]
    assert info["started_at"] <= info["finished_at"]
