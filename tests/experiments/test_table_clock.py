"""The table's clock counts a cut-off invocation to its last beat, not its last phase, and a clock left behind by
a cut-off invocation in the same process never writes over the one that adopted it."""
import json
import time

from dsgkd.experiments.table_clock import FILE, TableClock, phase_minutes


def test_a_cut_off_invocation_counts_to_its_last_beat_and_stays_adopted(tmp_path):
    first = TableClock(tmp_path, {"command": "a"}, beat=0.05)
    first.lap("recipe grid")
    time.sleep(0.3)  # cut off in the next phase, after a few beats
    saved = json.loads((tmp_path / FILE).read_text())["current"]
    assert saved["seconds"] >= 0.25 > sum(saved["phases"].values())

    second = TableClock(tmp_path, {"command": "b"}, beat=0.05)
    time.sleep(0.2)  # the first clock's beats see a new owner and stop
    second.lap("rows")
    cut, done = second.invocations()
    assert cut["command"] == "a" and cut["interrupted"] and "interrupted" not in done
    assert phase_minutes([cut, done]).keys() == {"recipe grid", "rows"}
    second.close()
    time.sleep(0.2)
    assert not (tmp_path / FILE).exists()  # neither clock writes after the close
    assert first.stopped.is_set()
