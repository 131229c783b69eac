"""Reading karpathy/autoresearch's results.tsv into the journal: the real mar8 log and hostile ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.core import importing, journal
from arsup.core.experiment import Status
from arsup.core.summary import IMPORTED
from tests.conftest import git, make_project

MAR8 = Path(__file__).resolve().parents[1] / "data" / "autoresearch-mar8-results.tsv"  # a real karpathy/autoresearch log
HEADER = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"


def test_the_mar8_log_comes_in_whole_and_goes_back_out_byte_for_byte(tmp_path: Path) -> None:
    experiments = importing.import_results(tmp_path, MAR8)
    assert len(experiments) == 126 and {e.tag for e in experiments} == {"imported"}
    recorded = journal.Journal(tmp_path).experiments("imported")
    assert [e.id for e in recorded] == [f"{n:04d}" for n in range(1, 127)]
    assert recorded[0].is_baseline and recorded[0].commit == "baseline" and recorded[0].metric == 0.9979
    assert min(e.metric for e in recorded if e.metric is not None) == 0.969686
    assert sum(e.status == Status.KEEP for e in recorded) == 23
    crash = next(e for e in recorded if e.status == Status.CRASH)
    assert crash.metric is None and "not divisible" in crash.runs[0].crash_reason
    # A keep's parent is the keep before it: the kept line as autoresearch walked it.
    assert recorded[2].parent == "bea057b" and recorded[3].parent == "7f2a65c"
    assert all(e.agent == IMPORTED and e.agent_data["source"] == str(MAR8) for e in recorded)
    assert journal.results_text("val_bpb", recorded) == MAR8.read_text()


def test_statuses_in_any_case_and_a_second_import_gets_the_next_free_tag(tmp_path: Path) -> None:
    log = tmp_path / "results.tsv"
    log.write_text(HEADER + "abc1234\t1.000000\t2.0\tKEEP\tbaseline\nbcd2345\t0.9\t2.0\tDiscard\tlr up\n"
                   "cde3456\t0.000000\t0.0\tCRASH\toom\n")
    first = importing.import_results(tmp_path, log)
    second = importing.import_results(tmp_path, log)
    assert [e.status for e in first] == [Status.KEEP, Status.DISCARD, Status.CRASH]
    assert {e.tag for e in second} == {"imported2"} and second[0].id == "0004"
    assert importing.metric_of(journal.Journal(tmp_path).events(), "imported2", None) == ("val_bpb", "minimize")


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"),
    ("a\tb\tc\n", "line 1: not autoresearch's results.tsv header"),
    (HEADER, "a header and no experiments"),
    (HEADER + "abc\t0.9\t1.0\tkept\tx\n", "line 2: status 'kept', expected one of keep, discard, crash"),
    (HEADER + "abc\t0.9\t1.0\tkeep\tx\nabd\tlow\t1.0\tdiscard\ty\n", "line 3: the metric is 'low', not a number"),
    (HEADER + "abc\tnan\t1.0\tkeep\tx\n", "line 2: the metric is 'nan'"),
    (HEADER + "abc 0.9 1.0 keep x\n", "line 2: 1 tab-separated columns, expected 5"),
    (HEADER + "\t0.9\t1.0\tkeep\tx\n", "line 2: the commit column is empty"),
])
def test_a_bad_log_is_refused_whole_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    log = tmp_path / "results.tsv"
    log.write_text(text)
    ledger = journal.Journal(tmp_path)
    ledger.append("note", tag="before", text="kept as it was")
    before = ledger.path.read_bytes()
    with pytest.raises(importing.BadLog, match=message):
        importing.import_results(tmp_path, log)
    assert ledger.path.read_bytes() == before


def test_an_existing_tag_is_not_imported_into(tmp_path: Path) -> None:
    log = tmp_path / "results.tsv"
    log.write_text(HEADER + "abc1234\t1.0\t2.0\tkeep\tbaseline\n")
    importing.import_results(tmp_path, log, tag="mar8")
    before = journal.Journal(tmp_path).path.read_bytes()
    with pytest.raises(importing.BadLog, match="already holds tag 'mar8'"):
        importing.import_results(tmp_path, log, tag="mar8")
    assert journal.Journal(tmp_path).path.read_bytes() == before


def test_in_the_clone_that_ran_it_each_kept_change_gets_its_diff(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    base = git(root, "rev-parse", "HEAD")
    (root / "train.py").write_text((root / "train.py").read_text().replace("LR = ", "LR = 2 * "))
    git(root, "commit", "-qam", "lr")
    kept = git(root, "rev-parse", "HEAD")
    log = tmp_path / "results.tsv"
    log.write_text(HEADER + f"{base[:7]}\t1.0\t1.0\tkeep\tbaseline\n{kept[:7]}\t0.9\t1.0\tkeep\tdouble lr\n"
                   "fedcba9\t0.8\t1.0\tkeep\tfrom another clone\n")
    experiments = importing.import_results(root, log)
    assert "+LR = 2 * " in experiments[1].diff and experiments[0].diff == ""
    assert experiments[2].diff == ""  # its commit is not here: no diff, no error
    assert git(root, "status", "--porcelain") == ""
