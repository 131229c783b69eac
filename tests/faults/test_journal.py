"""The ledger itself damaged: a line torn by a kill mid-write or a full disk, a record arsup cannot read."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from arsup.core.events import Notice
from arsup.core.experiment import Status
from arsup.core.journal import Journal, JournalError
from tests.conftest import edit, fill, make_engine, make_project, results_rows, write_script
from tests.faults.conftest import assert_invariants, fingerprint, journal_records
from tests.test_cli import arsup

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories

TORN_MIDDLE = b'{"event":"note","time":1,"tag":"t1","te'  # a kill mid-write; the next append closed its line
TORN_END = b'{"event":"note","time":2,"tag":"t1","text":"caf\xc3'  # a full disk, inside a UTF-8 character


def tear(journal: Path) -> tuple[int, int]:
    """A torn line as line 3 and one at the end, as a kill and a full disk leave them; their line numbers."""
    lines = journal.read_bytes().split(b"\n")
    lines.insert(2, TORN_MIDDLE)
    journal.write_bytes(b"\n".join(lines) + TORN_END)
    return 3, len(lines)


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
    assert any(isinstance(e, Notice) and "not JSON" in e.text for e in events)
    records = journal_records(project)  # set aside at the start: the journal parses again
    assert records[-1]["event"] == "session_end"
    assert [row[3] for row in results_rows(project)] == ["keep", "keep"]
    assert_invariants(project, protected)


def test_torn_lines_are_set_aside_at_the_start_and_said_once(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(project, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
    engine, _ = make_engine(project, script, max_experiments=1)
    engine.run()
    journal = project / ".arsup" / "journal.jsonl"
    middle, end = tear(journal)
    with caplog.at_level(logging.WARNING):
        engine, events = make_engine(project, script)
        engine.run()
    said = [e.text for e in events if isinstance(e, Notice) and "not JSON" in e.text]
    assert len(said) == 2 and f"line {middle}:" in said[0] and f"line {end}:" in said[1], said
    assert all("journal.torn" in text for text in said)
    assert not [r for r in caplog.records if "not JSON" in r.getMessage()]  # not said a second time in the log
    side = (project / ".arsup" / "journal.torn").read_bytes()
    assert f"line {middle} ".encode() in side and f"line {end} ".encode() in side
    assert TORN_MIDDLE + b"\n" in side and side.endswith(TORN_END + b"\n")  # the exact bytes, kept
    assert [e.status for e in engine.history] == [Status.KEEP, Status.KEEP]
    assert_invariants(project, protected)  # the journal parses: no bad line left
    engine, events = make_engine(project, script, max_experiments=2)
    engine.run()
    assert not [e for e in events if isinstance(e, Notice) and "journal" in e.text]  # nothing left to say
    assert (project / ".arsup" / "journal.torn").read_bytes() == side


def test_rebuild_says_each_torn_line_once_and_sets_it_aside(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(project, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
    engine, _ = make_engine(project, script, max_experiments=1)
    engine.run()
    middle, end = tear(project / ".arsup" / "journal.jsonl")
    rebuilt = arsup("rebuild", cwd=project)
    assert rebuilt.returncode == 0, rebuilt.stderr
    said = rebuilt.stdout + rebuilt.stderr
    assert said.count(f"line {middle}:") == 1 and said.count(f"line {end}:") == 1, said
    again = arsup("rebuild", cwd=project)
    assert again.returncode == 0 and "line" not in again.stdout + again.stderr
    assert TORN_MIDDLE in (project / ".arsup" / "journal.torn").read_bytes()
    assert_invariants(project, protected)


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


def test_a_line_torn_by_a_real_full_disk_is_set_aside_once_the_disk_is_freed(small_disk: Path) -> None:
    project = make_project(small_disk / "repo")
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(project, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
    engine, _ = make_engine(project, script, max_experiments=1)
    engine.run()
    journal = project / ".arsup" / "journal.jsonl"
    whole = journal.read_bytes()
    filler = fill(small_disk)
    with open(filler, "r+b") as handle:
        handle.truncate(filler.stat().st_size - 8192)  # two pages left: a long line is cut short
    with pytest.raises(JournalError, match="No space left on device"):
        Journal(project).append("note", tag="t1", text="x" * 100_000)
    torn = journal.read_bytes()[len(whole):]
    assert torn and b"\n" not in torn and journal.read_bytes().startswith(whole)
    filler.unlink()  # the person frees the disk and starts again
    engine, events = make_engine(project, script)
    engine.run()
    said = [e.text for e in events if isinstance(e, Notice) and "not JSON" in e.text]
    assert len(said) == 1 and f"its {len(torn)} bytes were moved to" in said[0], said
    assert (project / ".arsup" / "journal.torn").read_bytes().endswith(b":\n" + torn + b"\n")
    assert_invariants(project, protected)  # the journal parses
