"""The ledger itself damaged: a line torn by a kill mid-write, a record arsup cannot read."""

from __future__ import annotations

from pathlib import Path

from arsup.core.events import Notice
from arsup.core.experiment import Status
from tests.conftest import edit, make_engine, results_rows, write_script
from tests.faults.conftest import assert_invariants, fingerprint, journal_records


def test_a_torn_last_line_costs_only_itself(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(project, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
    engine, _ = make_engine(project, script, max_experiments=1)
    engine.run()
    journal = project / ".arsup" / "journal.jsonl"
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write('{"event":"note","time":1,"tag":"t1","te')  # a kill -9 mid-write
    engine, events = make_engine(project, script)
    engine.run()
    assert [e.status for e in engine.history] == [Status.KEEP, Status.KEEP]
    assert any(isinstance(e, Notice) and "skipped, not JSON" in e.text for e in events)
    records = journal_records(project, bad=1)
    assert records[-1]["event"] == "session_end"
    assert [row[3] for row in results_rows(project)] == ["keep", "keep"]
    assert_invariants(project, protected, bad=1)


def test_a_record_of_the_wrong_shape_is_skipped_not_fatal(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    engine, _ = make_engine(project, write_script(project), max_experiments=1)
    engine.run()
    with open(project / ".arsup" / "journal.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"event":"experiment","experiment":{"id":7}}\n[1, 2]\n')
    engine, events = make_engine(project, write_script(project), max_experiments=1)
    engine.run()
    said = [e.text for e in events if isinstance(e, Notice)]
    assert sum("skipped" in text for text in said) == 2
    assert [e.status for e in engine.history] == [Status.KEEP]
    assert_invariants(project, protected, bad=1)  # [1, 2]; the shapeless experiment is JSON, skipped on reading
