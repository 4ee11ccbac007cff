"""Reports of a run before it ends, with real Ray and real processes: a report of a running
grid and one of a grid whose driver was SIGKILLed give the tables of the cells finished so
far, headed by a line saying they are partial (JSON and CSV say so too); `gridrun status
--watch` refreshes in place on a terminal and ends with the run."""

import json
import os
import pty
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from test_faults_ray import ENV, gridrun, kill_all, parts, sigkill, start, wait_for  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def write_spec(path: Path, name: str, epochs: int = 4) -> Path:
    """16 cells x 2 seeds; ASHA anchors a resolution IV half of them (8 cells)."""
    path.write_text(textwrap.dedent(f"""
        from gridrun import ASHA, Ablation, Factor
        ablation = Ablation(
            name={name!r}, dataset="digits",
            factors=[Factor("batchnorm", [False, True]), Factor("dropout", [0.0, 0.3]),
                     Factor("optimizer", ["sgd", "adam"]), Factor("weight_decay", [0.0, 5e-4])],
            fixed={{"epochs": {epochs}, "batch_size": 32}}, seeds=2, train_size=400,
            scheduler=ASHA(grace_period=1, reduction_factor=2),
            resources={{"cpu": 1}}, max_concurrent=2)
    """))
    return path


def test_a_killed_run_reports_its_finished_cells_and_says_it_is_partial(tmp_path):
    spec = write_spec(tmp_path / "spec.py", "killed")
    run = tmp_path / "run"
    proc = start("launch", spec, "--out", run, cwd=tmp_path)
    try:
        wait_for(lambda: len(parts(run)) >= 6, 300, "three cells finished")
        sigkill(proc)
    finally:
        kill_all([proc])
    done = parts(run)
    assert not (run / "run.json").exists()

    md = gridrun("report", run, cwd=tmp_path)
    assert md.returncode == 0, md.stderr
    first = md.stdout.splitlines()[0]
    assert first.startswith("**Partial report: the run was stopped (its driver is gone); ")
    assert f"({len(done)} of 32 trials) have finished" in first
    assert "of 8 anchors" in first
    assert f"# killed: full design on digits, {len(done)} trials" in md.stdout
    assert "## What each technique contributed" in md.stdout

    doc = json.loads(gridrun("report", run, "--format", "json", cwd=tmp_path).stdout)
    assert doc["run"]["partial"] is True and doc["run"]["complete"] is False
    assert doc["run"]["progress"]["trials_done"] == len(done)
    assert doc["run"]["progress"]["state"] == "stalled" and doc["run"]["progress"]["gone"]
    assert doc["notes"][0] == first.strip("*")
    csv = gridrun("report", run, "--format", "csv", cwd=tmp_path).stdout.splitlines()
    assert csv[0].startswith("table,partial,") and all(",true," in r for r in csv[1:])

    status = gridrun("status", run, "--watch", "--every", "0.2", cwd=tmp_path)
    assert status.returncode == 0  # a dead driver ends the watch at once
    assert "the driver is no longer running" in status.stdout
    assert " running" not in status.stdout.splitlines()[1]  # its cells are not running

    again = gridrun("launch", spec, "--out", run, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    whole = gridrun("report", run, cwd=tmp_path)
    assert "Partial" not in whole.stdout and "32 trials" in whole.stdout
    doc = json.loads(gridrun("report", run, "--format", "json", cwd=tmp_path).stdout)
    assert doc["run"]["partial"] is False and "progress" not in doc["run"]


def _read_all(fd: int, into: list) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other end closed
            return
        if not chunk:
            return
        into.append(chunk)


def test_a_running_run_reports_so_far_and_status_watch_refreshes_in_place(tmp_path):
    spec = write_spec(tmp_path / "spec.py", "live", epochs=12)  # slow enough to catch
    run = tmp_path / "run"
    proc = start("launch", spec, "--out", run, cwd=tmp_path)
    watch, screen = None, []
    try:
        wait_for(lambda: (run / "launch.json").exists(), 120, "the launch record")
        master, slave = pty.openpty()  # a terminal, as a user watching it has
        watch = subprocess.Popen([sys.executable, "-m", "gridrun.cli", "status", str(run),
                                  "--watch", "--every", "0.5"], stdout=slave,
                                 stderr=subprocess.PIPE, cwd=tmp_path, env=ENV)
        os.close(slave)
        reader = threading.Thread(target=_read_all, args=(master, screen), daemon=True)
        reader.start()

        wait_for(lambda: len(parts(run)) >= 2, 300, "a cell finished")
        doc = json.loads(gridrun("report", run, "--format", "json", cwd=tmp_path).stdout)
        md = gridrun("report", run, cwd=tmp_path)
        assert proc.poll() is None, "the run ended before its reports were read"
        assert doc["run"]["partial"] is True and doc["run"]["progress"]["state"] == "running"
        assert doc["run"]["progress"]["trials_done"] >= 2
        assert md.returncode == 0, md.stderr
        first = md.stdout.splitlines()[0]
        assert first.startswith("**Partial report: the run is running; "), first

        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert watch.wait(timeout=60) == 0, watch.stderr.read()  # the watch ends with the run
        reader.join(timeout=10)
        os.close(master)
    finally:
        kill_all([p for p in (proc, watch) if p is not None])
    text = b"".join(screen).decode()
    views = text.split("\x1b[")
    assert len(views) > 2 and "F\x1b[J" in text  # redrawn in place, more than once
    assert "live: running" in text and text.rstrip().splitlines()[-1].startswith("elapsed")
    assert "live: complete" in text.split("\x1b[J")[-1]  # the last view
    assert "Partial" not in gridrun("report", run, cwd=tmp_path).stdout
