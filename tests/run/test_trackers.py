"""Trackers: what TensorBoard, MLflow and W&B hold after a launch is what the Parquet store
holds (same trials, same epochs, same numbers), read back from their own files; bad tracker
options fail before anything runs. W&B runs offline (no network)."""

import json
import os
import struct
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gridrun.cli import main
from gridrun.run.trackers import (INSTALL, TrackerError, Trackers, as_trackers, check_trackers,
                                  open_trackers)
from gridrun.store.location import Location

ROOT = Path(__file__).parents[2]


def write_spec(path: Path, name: str, epochs: int = 2, seeds: int = 2) -> Path:
    path.write_text(textwrap.dedent(f"""
        from gridrun import Ablation, Factor
        ablation = Ablation(
            name={name!r}, dataset="digits", factors=[Factor("dropout", [0.0, 0.3])],
            fixed={{"epochs": {epochs}, "batch_size": 64}}, seeds={seeds}, train_size=300,
            scheduler=None, resources={{"cpu": 1}}, max_concurrent=2)
    """))
    return path


# -- reading each tracker's own files back ----------------------------------------------------
def read_tensorboard(folder: Path) -> dict:
    """{tag: [(step, value)]}, the hparams and the session's end status of one trial."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("notf"))  # no TF
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    scalars = {tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto).item())
                     for e in acc.Tensors(tag)] for tag in acc.PluginTagToContent("scalars")}
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(c)
            for tag, c in acc.PluginTagToContent("hparams").items()}
    start = data["_hparams_/session_start_info"].session_start_info.hparams
    hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.items()}
    status = data["_hparams_/session_end_info"].session_end_info.status
    return {"scalars": scalars, "hparams": hparams, "status": status}


def read_mlflow(uri: str, experiment: str) -> dict:
    """The experiment's cell runs and trial runs, with params, tags, status and every
    metric's history."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    out = {"cells": {}, "trials": {}}
    for r in runs:
        info = {"id": r.info.run_id, "status": r.info.status, "params": r.data.params,
                "tags": r.data.tags,
                "history": {k: sorted((m.step, m.value) for m in
                                      client.get_metric_history(r.info.run_id, k))
                            for k in r.data.metrics}}
        if "gridrun.trial_id" in r.data.tags:
            out["trials"][r.data.tags["gridrun.trial_id"]] = info
        else:
            out["cells"][r.data.tags["gridrun.cell"]] = info
    return out


def wandb_records(path: Path):
    """The records of a .wandb file: W&B's LevelDB-style log of protobuf records (32 KiB
    blocks; each chunk has a 7-byte header: checksum, length, type full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, "not a .wandb file"
    pos, block, record = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or kind == 0:
            pos += left  # the block's zero padding
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        record = chunk if kind in (1, 2) else record + chunk
        if kind in (1, 4):
            yield wandb_internal_pb2.Record.FromString(record)


def read_wandb(run_dir: Path) -> dict:
    """One offline run: id, group, config, history {step: {metric: value}}, summary."""
    out = {"history": {}, "summary": {}, "config": {}}
    for r in wandb_records(next(run_dir.glob("*.wandb"))):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out.update(id=r.run.run_id, group=r.run.run_group, project=r.run.project)
            out["config"].update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "history":
            row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                   for i in r.history.item}
            out["history"][row["_step"]] = {k: v for k, v in row.items()
                                            if not k.startswith("_")}
        elif kind == "summary":
            out["summary"].update({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                                   for i in r.summary.update})
    return out


# -- comparing with the Parquet store ---------------------------------------------------------
def epoch_columns(epochs: pd.DataFrame) -> list[str]:
    return [c for c in epochs.columns if c not in ("trial_id", "epoch")
            and epochs[c].notna().any()]


def curves(epochs: pd.DataFrame, tid: str) -> dict:
    mine = epochs[epochs.trial_id == tid].sort_values("epoch")
    return {c: [(int(e), float(v)) for e, v in zip(mine.epoch, mine[c])]
            for c in epoch_columns(epochs)}


FINAL = ["epochs_run", "last_val_acc", "best_val_acc", "best_epoch", "test_acc", "params",
         "wall_seconds"]


def finals(row) -> dict:
    return {f"final/{c}": float(row[c]) for c in FINAL if pd.notna(row[c])}


def f32(points):
    """TensorBoard keeps scalars as float32: the store's values rounded as it rounds them."""
    return [(step, float(np.float32(v))) for step, v in points]


def check_tensorboard(folder: Path, trials, epochs, factors) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(trials.trial_id)
    for _, row in trials.iterrows():
        tb = read_tensorboard(folder / row.trial_id)
        got = {k: v for k, v in tb["scalars"].items() if not k.startswith("final/")}
        assert got == {k: f32(v) for k, v in curves(epochs, row.trial_id).items()}
        # a trial ASHA stopped and a confirmation continued ended twice: the last counts
        step = int(row.epochs_run)
        assert {k: v[-1] for k, v in tb["scalars"].items() if k.startswith("final/")} == \
            {k: f32([(step, v)])[0] for k, v in finals(row).items()}
        assert {f: tb["hparams"][f] for f in [*factors, "seed"]} == \
            {f: row[f] for f in [*factors, "seed"]}
        assert tb["status"] == 1  # STATUS_SUCCESS


def check_mlflow(uri: str, name: str, trials, epochs, factors) -> None:
    ml = read_mlflow(uri, name)
    assert sorted(ml["trials"]) == sorted(trials.trial_id)
    assert len(ml["cells"]) == trials.groupby(factors).ngroups
    parents = {c["id"]: c for c in ml["cells"].values()}
    for _, row in trials.iterrows():
        run = ml["trials"][row.trial_id]
        parent = parents[run["tags"]["mlflow.parentRunId"]]  # nested in its cell's run
        assert all(parent["params"][f] == run["params"][f] == str(row[f]) for f in factors)
        assert run["params"]["seed"] == str(row.seed)
        assert run["tags"]["gridrun.status"] == row.status and run["status"] == "FINISHED"
        got = {k: v for k, v in run["history"].items() if not k.startswith("final/")}
        assert got == curves(epochs, row.trial_id)
        assert {k: v[-1] for k, v in run["history"].items() if k.startswith("final/")} == \
            {k: (int(row.epochs_run), v) for k, v in finals(row).items()}
        assert parent["status"] == "FINISHED"


def check_wandb(folder: Path, name: str, trials, epochs, factors) -> None:
    runs = [read_wandb(d) for d in sorted((folder / "wandb").glob("offline-run-*"))]
    by_trial = {r["config"]["trial_id"]: r for r in runs}
    assert len(runs) == len(trials) and sorted(by_trial) == sorted(trials.trial_id)
    for _, row in trials.iterrows():
        run = by_trial[row.trial_id]
        assert run["project"] == name
        assert run["group"] == ", ".join(f"{f}={row[f]}" for f in factors)
        assert {f: run["config"][f] for f in [*factors, "seed"]} == \
            {f: row[f] for f in [*factors, "seed"]}
        history = {c: [(step, vals[c]) for step, vals in sorted(run["history"].items())]
                   for c in epoch_columns(epochs)}
        assert history == curves(epochs, row.trial_id)
        assert {k: v for k, v in run["summary"].items() if k.startswith("final/")} == \
            finals(row)
        assert run["summary"]["status"] == row.status


# -- a real grid on real Ray, all three trackers on --------------------------------------------
@pytest.mark.ray
@pytest.mark.slow
def test_every_tracker_holds_what_the_store_holds(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("torch")
    spec = write_spec(tmp_path / "tracked.py", "tracked")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb"),
           "WANDB_SILENT": "true"}
    (tmp_path / "wb").mkdir()
    proc = subprocess.run([sys.executable, "-m", "gridrun.cli", "launch", str(spec), "--out",
                           str(tmp_path / "run"), "--tensorboard", "--mlflow", "--wandb"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr
    run = tmp_path / "run"
    trials = pd.read_parquet(run / "trials.parquet")
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert len(trials) == 4 and len(epochs) == 8 and (trials.status == "completed").all()
    check_tensorboard(run / "tensorboard", trials, epochs, ["dropout"])
    check_mlflow(f"sqlite:///{run / 'mlflow.db'}", "tracked", trials, epochs, ["dropout"])
    check_wandb(tmp_path / "wb", "tracked", trials, epochs, ["dropout"])


# -- the same through Tracked with made-up reports: no Ray, and a resumed session ---------------
def made_up(seed_offset: float, epoch: int, **extra) -> dict:
    return {"epoch": epoch, "train_loss": 1 / epoch, "train_acc": 0.1 * epoch,
            "val_loss": 2 / epoch + seed_offset, "val_acc": 0.2 * epoch + seed_offset,
            "lr": 0.01, "epoch_seconds": 0.25 * epoch, "elapsed": 0.5 * epoch,
            "params": 1234, "my_metric": 7.0 + epoch, **extra}


def session(tracked, cells, reports, epochs, replay=0):
    """Cells train ``epochs`` (after ``replay`` replayed ones), as a cell trainable reports."""
    from gridrun.run.cells import trial_row

    tracked.row_of = lambda t: trial_row(t, reports.get(t.trial_id, []), max_epochs=3)
    for c in cells:
        for e in epochs:
            per = {t.trial_id: made_up(t.seed / 100, e, replayed=e <= replay) for t in c.trials}
            for tid, m in per.items():
                got = reports.setdefault(tid, [])
                del got[e - 1:]
                got.append(m)
            tracked.result(per)
        if epochs[-1] == 3:
            tracked.ended(c.key)


def stored(cells, reports):
    from gridrun.run.cells import epoch_rows, trial_row

    rows = [{**trial_row(t, reports[t.trial_id], max_epochs=3)} for c in cells for t in c.trials]
    eps = [r for c in cells for t in c.trials for r in epoch_rows(t.trial_id, reports[t.trial_id])]
    return pd.DataFrame(rows), pd.DataFrame(eps)


@pytest.mark.slow
def test_a_resumed_session_continues_the_same_tracker_runs(tmp_path, monkeypatch):
    """Session one is cut off after epoch 2; session two replays epochs 1-2 from the
    checkpoint and trains 3. Each tracker ends with one run per trial and each epoch once."""
    from gridrun import Ablation, Factor
    from gridrun.design.grid import expand
    from gridrun.run.cells import cells_of

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wb").mkdir()
    ablation = Ablation(name="resumed", dataset="digits", seeds=2, scheduler=None,
                        factors=[Factor("dropout", [0.0, 0.3])], fixed={"epochs": 3})
    cells = cells_of(expand(ablation))
    loc = Location(tmp_path / "run")
    chosen = check_trackers(Trackers(tensorboard=True, mlflow=True, wandb=True), loc)
    assert not (tmp_path / "run").exists()  # checking writes nothing
    reports = {}
    for epochs, replay in (([1, 2], 0), ([1, 2, 3], 2)):
        with open_trackers(chosen, name="resumed", run=loc, tag="t0000001",
                           cells=cells) as tracked:
            session(tracked, cells, reports, epochs, replay)
    trials, epochs = stored(cells, reports)
    check_tensorboard(tmp_path / "run" / "tensorboard", trials, epochs, ["dropout"])
    check_mlflow(chosen.mlflow, "resumed", trials, epochs, ["dropout"])
    # W&B: each session is a file of the same run id; the last holds the whole curve
    runs = [read_wandb(d) for d in sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))]
    assert len(runs) == 8 and len({r["id"] for r in runs}) == 4
    last = {r["config"]["trial_id"]: r for r in runs if 3 in r["history"]}
    assert sorted(last) == sorted(trials.trial_id)
    for tid, r in last.items():
        assert sorted(r["history"]) == [1, 2, 3]
        assert r["history"][3]["val_acc"] == epochs.set_index(["trial_id", "epoch"]).val_acc[
            (tid, 3)]


def test_a_failing_tracker_is_dropped_and_the_others_go_on(capsys):
    from gridrun.run.trackers import Tracked

    class Broken:
        name = "broken"

        def epoch(self, *a):
            raise ConnectionError("server went away")

        def close(self):
            pass

    class Kept:
        name = "kept"
        seen = []

        def epoch(self, cell, trial, epoch, metrics, replayed):
            self.seen.append((trial.trial_id, epoch, metrics["val_acc"]))

        def close(self):
            pass

    cell = types.SimpleNamespace(key="k", levels={}, trials=[
        types.SimpleNamespace(trial_id="a", seed=0, levels={}, config={})])
    tracked = Tracked([Broken(), Kept()], [cell])
    tracked.result({"a": made_up(0, 1)})
    tracked.result({"a": made_up(0, 2)})
    tracked.result({"a": made_up(0, 2, replayed=True)})  # already sent: not again
    assert Kept.seen == [("a", 1, 0.2), ("a", 2, 0.4)]
    assert [w.name for w in tracked.writers] == ["kept"]
    err = capsys.readouterr().err
    assert err.count("warning: the broken tracker stopped (ConnectionError: server went away)") \
        == 1


# -- options: the library argument and its checks ---------------------------------------------
def test_trackers_take_known_names_only():
    assert as_trackers(None).chosen == []
    assert as_trackers({"mlflow": "sqlite:///x.db"}).chosen == ["mlflow"]
    with pytest.raises(TrackerError, match=r"unknown tracker\(s\) \['tensorbord'\]; allowed: "
                                           "tensorboard, mlflow, wandb"):
        as_trackers({"tensorbord": True})
    with pytest.raises(TrackerError, match="wandb='yes'; give True/False"):
        Trackers(wandb="yes")


def test_defaults_go_in_the_run_folder(tmp_path):
    t = check_trackers({"tensorboard": True, "mlflow": True}, Location(tmp_path / "run"))
    assert t.tensorboard == str(tmp_path / "run" / "tensorboard")
    assert t.mlflow == f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}"
    rel = check_trackers({"mlflow": "sqlite:///m.db"}, Location(tmp_path))
    assert rel.mlflow == f"sqlite:///{Path('m.db').absolute()}"


@pytest.mark.parametrize("trackers, message", [
    ({"mlflow": "ftp://host/x"}, "mlflow 'ftp://host/x': not a tracking store MLflow 3 writes "
                                 "to"),
    ({"mlflow": "file:///tmp/mlruns"}, "its file store is retired"),
    ({"mlflow": "mlruns"}, "give sqlite:///PATH.db"),
    ({"mlflow": "sqlite:///:memory:"}, "give a database file"),
])
def test_bad_tracker_options_say_what_works(tmp_path, trackers, message):
    with pytest.raises(TrackerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_trackers(trackers, Location(tmp_path / "run"))


def test_a_folder_that_cannot_be_made_is_refused(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(TrackerError, match=f"tensorboard {tmp_path}/afile/tb: "
                                           f"{tmp_path}/afile is a file, not a folder"):
        check_trackers({"tensorboard": str(tmp_path / "afile" / "tb")}, Location(tmp_path))


def test_a_run_folder_elsewhere_needs_a_place_given():
    with pytest.raises(TrackerError, match="not on this machine's disk; give a tracking URI"):
        check_trackers({"mlflow": True}, Location("mock:///runs/x"))


def test_a_missing_package_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(TrackerError, match=f"wandb needs the wandb package, which is not "
                                           f"installed: {INSTALL}".replace("[", r"\[")
                       .replace("]", r"\]")):
        check_trackers({"wandb": True}, Location(tmp_path))


def test_wandb_online_without_login_is_refused(tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(TrackerError, match="wandb: not logged in to W&B.*WANDB_MODE=offline"):
        check_trackers({"wandb": True}, Location(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "ofline")
    with pytest.raises(TrackerError, match="WANDB_MODE='ofline'; allowed: online, offline"):
        check_trackers({"wandb": True}, Location(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert check_trackers({"wandb": True}, Location(tmp_path)).wandb is True


# -- the CLI: one line, exit 2, nothing written --------------------------------------------------
@pytest.mark.parametrize("command", ["launch", "resume", "confirm"])
@pytest.mark.parametrize("options, message", [
    (["--mlflow", "ftp://host/x"], "error: mlflow 'ftp://host/x': not a tracking store"),
    (["--tensorboard=SPEC/tb"], "error: tensorboard {spec}/tb: {spec} is a file, not a folder"),
])
def test_cli_refuses_bad_trackers_before_anything_runs(tmp_path, monkeypatch, command, options,
                                                       message):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "grid.py", "grid")
    first = str(spec) if command == "launch" else str(tmp_path / "run")
    options = [o.replace("SPEC", str(spec)) for o in options]
    args = [command, first, *options] + (["--out", str(tmp_path / "run")]
                                         if command == "launch" else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(spec=spec)), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.py"]  # nothing written


def test_the_trackers_extra_is_installed_by_make_and_pinned():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "\ntrackers = [" in pyproject
    assert "EXTRAS ?= torch,tensorflow,dev,trackers" in (ROOT / "Makefile").read_text()
    pins = (ROOT / "constraints.txt").read_text()
    for package in ("tensorboardX==", "tensorboard==", "mlflow-skinny==", "wandb=="):
        assert f"\n{package}" in pins, package
