"""A run must not change what scores it: protected files and arsup's own ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.core.events import Notice
from arsup.core.experiment import Status
from tests.conftest import edit, make_engine, make_project, needs_bwrap, results_rows, write_script
from tests.faults.conftest import assert_invariants, fingerprint, journal_records

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories

# Better constants plus a line that rewrites the evaluator while training.
REWRITE_EVALUATOR = edit(
    "LR = 0.0001",
    "LR = 0.003\nopen('prepare.py', 'a').write('\\nFAKE_SCORE = True\\n')",
)


def test_a_run_that_rewrites_a_protected_file_is_a_crash_and_the_file_is_restored(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py", "program.md", "arsup.toml"])
    script = write_script(
        project,
        {"hypothesis": "rewrite the evaluator", "edits": REWRITE_EVALUATOR},
        {"hypothesis": "honest LR change", "edits": edit("LR = 0.0001", "LR = 0.002")},
    )
    engine, events = make_engine(project, script)
    engine.run()

    baseline, faked, honest = engine.history
    assert (faked.status, faked.reason) == (Status.CRASH, "protected file modified at run time: prepare.py")
    assert honest.status == Status.KEEP, "the loop goes on after a tamper"
    alarms = [e for e in events if isinstance(e, Notice) and e.level == "error"]
    assert any("prepare.py" in e.text and faked.id in e.text for e in alarms)
    assert [row[3] for row in results_rows(project)] == ["keep", "crash", "keep"]
    assert_invariants(project, protected)


WIPE_THE_LEDGER = edit("LR = 0.0001", "LR = 0.003\nimport shutil\nshutil.rmtree('.arsup', ignore_errors=True)")


def test_a_run_that_deletes_the_journal_is_a_crash_and_the_journal_is_restored(tmp_path: Path) -> None:
    project = make_project(tmp_path / "repo", sandbox={"kind": "none"})  # in a sandbox it cannot reach .arsup
    protected = fingerprint(project, ["prepare.py"])
    engine, _ = make_engine(project, write_script(project, {"hypothesis": "wipe the ledger", "edits": WIPE_THE_LEDGER}))
    engine.run()

    baseline, wiped = engine.history
    assert wiped.status == Status.CRASH and ".arsup/journal.jsonl" in wiped.reason
    recorded = [r["experiment"]["id"] for r in journal_records(project) if r["event"] == "experiment"]
    assert baseline.id in recorded and wiped.id in recorded
    assert_invariants(project, protected)


@needs_bwrap
def test_a_sandboxed_run_that_deletes_the_journal_deletes_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path / "repo", sandbox={"kind": "bwrap"})
    protected = fingerprint(project, ["prepare.py"])
    engine, _ = make_engine(project, write_script(project, {"hypothesis": "wipe the ledger", "edits": WIPE_THE_LEDGER}))
    engine.run()

    baseline, wiped = engine.history
    assert wiped.status == Status.KEEP, "its .arsup was an empty folder of its own: the journal was never touched"
    recorded = [r["experiment"]["id"] for r in journal_records(project) if r["event"] == "experiment"]
    assert baseline.id in recorded and wiped.id in recorded
    assert_invariants(project, protected)
