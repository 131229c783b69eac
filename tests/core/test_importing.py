"""Reading karpathy/autoresearch's results.tsv into the journal: the real mar8 log and hostile ones."""

from __future__ import annotations

import os
import shutil
import tracemalloc
from pathlib import Path

import psutil
import pytest

from arsup import config
from arsup.core import importing, journal
from arsup.core.experiment import Status
from arsup.core.summary import IMPORTED
from tests.conftest import git, make_project

MAR8 = Path(__file__).resolve().parents[1] / "data" / "autoresearch-mar8-results.tsv"  # a real karpathy/autoresearch log
HEADER = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"


def test_the_mar8_log_comes_in_whole_and_goes_back_out_byte_for_byte(tmp_path: Path) -> None:
    imported = importing.import_results(tmp_path, MAR8)
    assert imported == importing.Imported("imported", 126, "0001", "0126")
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
    importing.import_results(tmp_path, log)
    second = importing.import_results(tmp_path, log)
    assert [e.status for e in journal.Journal(tmp_path).experiments("imported")] == [
        Status.KEEP, Status.DISCARD, Status.CRASH]
    assert (second.tag, second.first) == ("imported2", "0004")
    assert importing.metric_of(journal.Journal(tmp_path).events(), "imported2", None) == ("val_bpb", "minimize")


def test_an_imported_night_is_read_by_its_own_metric_and_goal_not_the_projects(tmp_path: Path) -> None:
    importing.import_results(tmp_path, MAR8, "mar8")
    project = config.Config(project={"editable": ["fit.py"], "run": "x"}, metric={"name": "acc", "goal": "maximize"})
    events = journal.Journal(tmp_path).events()
    assert importing.metric_of(events, "mar8", project) == ("val_bpb", "minimize")
    assert importing.metric_of(events, "nov28", project) == ("acc", "maximize")  # not imported: the project's


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


@pytest.mark.slow
def test_in_the_clone_that_ran_it_each_kept_change_gets_its_diff(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    base = git(root, "rev-parse", "HEAD")
    (root / "train.py").write_text((root / "train.py").read_text().replace("LR = ", "LR = 2 * "))
    git(root, "commit", "-qam", "lr")
    kept = git(root, "rev-parse", "HEAD")
    log = tmp_path / "results.tsv"
    log.write_text(HEADER + f"{base[:7]}\t1.0\t1.0\tkeep\tbaseline\n{kept[:7]}\t0.9\t1.0\tkeep\tdouble lr\n"
                   "fedcba9\t0.8\t1.0\tkeep\tfrom another clone\n")
    importing.import_results(root, log)
    experiments = journal.Journal(root).experiments()
    assert "+LR = 2 * " in experiments[1].diff and experiments[0].diff == ""
    assert experiments[2].diff == ""  # its commit is not here: no diff, no error
    assert git(root, "status", "--porcelain") == ""


def synthetic_log(path: Path, rows: int, commits: list[str]) -> Path:
    """A results.tsv of `rows` experiments cycling through `commits`, a keep in three."""
    statuses = ["keep", "discard", "crash"]
    path.write_text(HEADER + "".join(
        f"{commits[n % len(commits)]}\t{1 - n / rows / 2:.6f}\t1.0\t{statuses[n % 3]}\ttry {n}\n" for n in range(rows)
    ))
    return path


@pytest.mark.slow
def test_git_is_asked_through_the_same_few_processes_for_300_rows_as_for_30(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A git process per row cost about 2.5 ms, and more as the importer's memory grew (fork copies it).
    root = make_project(tmp_path / "repo")
    base = git(root, "rev-parse", "HEAD")
    (root / "train.py").write_text((root / "train.py").read_text().replace("LR = ", "LR = 2 * "))
    git(root, "commit", "-qam", "lr")
    commits = [base[:7], git(root, "rev-parse", "HEAD")[:7], "fedcba9"]  # the last from another clone
    calls = tmp_path / "git-calls"
    wrapper = tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {shutil.which("git")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    started = []
    for rows in (30, 300):
        calls.write_text("")
        importing.import_results(root, synthetic_log(tmp_path / f"{rows}.tsv", rows, commits))
        started.append(calls.read_text().splitlines())
    assert started[0] == started[1] and len(started[0]) <= 6, started
    assert psutil.Process().children(recursive=True) == []  # the kept-open ones ended with the import
    imported = journal.Journal(root).experiments("imported2")
    assert len(imported) == 300 and "+LR = 2 * " in imported[1].diff and imported[2].diff == ""


@pytest.mark.slow
def test_the_memory_an_import_takes_does_not_grow_with_the_log(tmp_path: Path) -> None:
    peaks = []
    for rows in (500, 5000):
        log = synthetic_log(tmp_path / f"{rows}.tsv", rows, ["baseline", "abc1234"])
        tracemalloc.start()
        try:
            importing.import_results(tmp_path / f"night{rows}", log)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert len(journal.Journal(tmp_path / f"night{rows}").experiments()) == rows
    assert peaks[1] < 2 * peaks[0], peaks  # the rows stream through; ten times the rows took ten times the memory
