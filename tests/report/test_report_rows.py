"""One-at-a-time ablation tables: every number in a row is at the epoch that row shows.

Early stopping makes comparisons reach different epochs: here one trial of (+ augmentation)
stops at epoch 2 and one of (target without batchnorm) at epoch 4, so the table-wide common
budget is 2 while most pairs are compared at 6. Curves are not flat (``slow``), so a number
read at the wrong epoch is visibly wrong.
"""

import pytest

from gridrun import store
from gridrun.analysis.testing import synthetic_run
from gridrun.report.tables import report_text

FACTORS = {"augmentation": [False, True], "batchnorm": [False, True], "dropout": [0.0, 0.5]}
STOPS = {(True, False, 0.0): 2, (True, False, 0.5): 4}
F, T = False, True


def value(lv):
    return 0.80 + 0.03 * lv["augmentation"] + 0.05 * lv["batchnorm"] + 0.04 * lv["dropout"]


def slow(lv):
    return 0.01 + 0.005 * lv["augmentation"] + 0.01 * lv["batchnorm"]


def stop(lv, seed):
    return STOPS.get(tuple(lv.values()), 6) if seed == 1 else 6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = synthetic_run(FACTORS, value=value, slow=slow, stop=stop, seeds=3, epochs=6)
    path = tmp_path_factory.mktemp("rows") / "run"

    def records(df):
        return df.astype(object).where(df.notna(), None).to_dict("records")

    store.write_run(path, factor_names=list(FACTORS), trials=records(run.trials),
                    epochs=records(run.epochs), info={"spec": run.spec, "complete": True})
    return run, path


def config(a, b, c):
    """augmentation, batchnorm, dropout (False/True for 0.0/0.5)."""
    return {"augmentation": a, "batchnorm": b, "dropout": 0.5 if c else 0.0}


# (row label, configuration shown, Δ as (after, before), epoch of the row)
ROWS = {
    "add_one_in": [
        ("baseline", config(F, F, F), None, 6),
        ("+ augmentation", config(T, F, F), (config(T, F, F), config(F, F, F)), 2),
        ("+ batchnorm", config(F, T, F), (config(F, T, F), config(F, F, F)), 6),
        ("dropout = 0.5", config(F, F, T), (config(F, F, T), config(F, F, F)), 6)],
    "leave_one_out": [
        ("target (all techniques)", config(T, T, T), None, 6),
        ("target without augmentation", config(F, T, T), (config(T, T, T), config(F, T, T)), 6),
        ("target without batchnorm", config(T, F, T), (config(T, T, T), config(T, F, T)), 4),
        ("target without dropout", config(T, T, F), (config(T, T, T), config(T, T, F)), 6)],
    "cumulative": [
        ("baseline", config(F, F, F), None, 6),
        ("+ augmentation (step 1)", config(T, F, F), (config(T, F, F), config(F, F, F)), 2),
        ("+ batchnorm (step 2)", config(T, T, F), (config(T, T, F), config(T, F, F)), 2),
        ("dropout = 0.5 (step 3)", config(T, T, T), (config(T, T, T), config(T, T, F)), 6)],
}


def ablation_rows(text, view):
    block = text.split(f"## Ablation table ({view.replace('_', '-')} view)")[1]
    block = block.split("\n## ")[0]
    rows = [[c.strip() for c in ln.strip("|").split("|")]
            for ln in block.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    return {r[0]: r for r in rows}


def number(cell):
    return float(cell.strip("*").split()[0])


@pytest.mark.parametrize("view", sorted(ROWS))
def test_each_row_is_read_at_its_own_epoch(run, view):
    truth, path = run[0].truth, run[1]
    rows = ablation_rows(report_text(path, view=view), view)
    assert sorted(rows) == sorted(label for label, *_ in ROWS[view])
    for label, shown, pair, epoch in ROWS[view]:
        row = rows[label]
        assert int(row[5]) == epoch, row
        assert number(row[1]) == pytest.approx(100 * truth(shown, epoch), abs=0.006), row
        assert row[1].strip("*").endswith("(n=3)"), row
        if pair is None:
            assert row[2] == "—", row
        else:
            delta = 100 * (truth(pair[0], epoch) - truth(pair[1], epoch))
            assert number(row[2]) == pytest.approx(delta, abs=0.006), row


def test_delta_is_the_difference_of_means_shown_at_the_same_epoch(run):
    """+ batchnorm and the baseline are both at epoch 6: the row reads as arithmetic."""
    rows = ablation_rows(report_text(run[1], view="add_one_in"), "add_one_in")
    base, b = rows["baseline"], rows["+ batchnorm"]
    assert base[5] == b[5] == "6"
    assert number(b[2]) == pytest.approx(number(b[1]) - number(base[1]), abs=0.011)


@pytest.mark.parametrize("view", sorted(ROWS))
def test_json_rows_agree_with_the_table(run, view):
    """The machine-readable rows carry the same numbers, unrounded and as fractions."""
    import json

    truth, path = run[0].truth, run[1]
    rows = json.loads(report_text(path, fmt="json", table=view))["tables"][view]
    assert len(rows) == len(ROWS[view])
    for got, (label, shown, pair, epoch) in zip(rows, ROWS[view]):
        assert {f: got[f] for f in FACTORS} == shown, label
        assert got["epoch"] == epoch and got["n_seeds"] == 3, label
        assert got["mean"] == pytest.approx(truth(shown, epoch)), label
        if pair is None:
            assert got["effect"] is None
        else:
            delta = truth(pair[0], epoch) - truth(pair[1], epoch)
            assert got["effect"] == pytest.approx(delta), label
