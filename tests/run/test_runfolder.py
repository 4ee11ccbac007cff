"""The run folder after a complete run: the journal goes, and so do the checkpoints of the
trials that reached the end, whatever their framework's file; a stopped trial's stay, since
`gridrun confirm` continues them."""

from gridrun.run.runfolder import tidy
from gridrun.store import journal
from gridrun.store.location import Location


def test_tidy_keeps_only_the_checkpoints_confirm_can_continue(tmp_path):
    loc = Location(tmp_path / "run")
    ckpts = loc.child("checkpoints")
    names = ["a.pt", "a.history.json", "k.npz", "k.history.json", "s.pt", "s.history.json"]
    for name in names:
        ckpts.child(name).write_text("x")
    loc.child(journal.PARTS, "p.json").write_text("{}")
    loc.child(journal.HEARTBEAT).write_text("{}")
    tidy(loc, [{"trial_id": "a", "status": "completed"}, {"trial_id": "k", "status": "error"},
               {"trial_id": "s", "status": "stopped_early"}])
    assert ckpts.list() == ["s.history.json", "s.pt"]  # the Keras trial's .npz went too
    assert not loc.child(journal.PARTS).exists() and not loc.child(journal.HEARTBEAT).exists()
