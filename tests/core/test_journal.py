from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterator

import pytest

from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.journal import (
    STATE_DIR,
    Journal,
    JournalError,
    append_result,
    other_results_tag,
    results_row,
    write_results,
)


def _experiment(id_: str, status: str, metric: float | None, tag: str = "t") -> Experiment:
    return Experiment(
        id=id_,
        tag=tag,
        parent="a" * 40,
        commit="b" * 40,
        hypothesis="LR 0.001 -> 0.003:\tbigger\nsteps",
        agent="tuner",
        status=status,
        metric=metric,
        metrics={"peak_vram_mb": 45060.2} if metric is not None else {},
        runs=[RunResult(seed=0, log_path="x.log", exit_code=0)],
    )


def test_records_rebuild_latest_state_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    first = _experiment("0001", Status.RUNNING, None)
    journal.record(first)
    journal.record(_experiment("0002", Status.KEEP, 1.0, tag="other"))
    first.status, first.metric = Status.DISCARD, 1.5
    journal.record(first)
    rebuilt = journal.experiments("t")
    assert [(e.id, e.status, e.metric) for e in rebuilt] == [("0001", Status.DISCARD, 1.5)]
    assert rebuilt[0].runs[0].exit_code == 0
    assert journal.next_number() == 3


def test_truncated_last_line_is_skipped(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record(_experiment("0001", Status.KEEP, 1.0))
    with open(journal.path, "a") as handle:
        handle.write('{"event": "experiment", "experim')
    assert [e.id for e in journal.experiments()] == ["0001"]


def test_results_row_matches_autoresearch() -> None:
    row = results_row(_experiment("0001", Status.KEEP, 0.9979))
    assert row == "bbbbbbb\t0.997900\t44.0\tkeep\tLR 0.001 -> 0.003: bigger steps\n"
    crash = results_row(_experiment("0002", Status.CRASH, 3.0))
    assert crash.split("\t")[1:4] == ["0.000000", "0.0", "crash"]


def test_results_file_header_rows_and_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "results.tsv"
    append_result(path, "val_bpb", _experiment("0001", Status.KEEP, 1.0))
    append_result(path, "val_bpb", _experiment("0002", Status.DISCARD, 1.2))
    lines = path.read_text().splitlines()
    assert lines[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert [line.split("\t")[3] for line in lines[1:]] == ["keep", "discard"]
    write_results(path, "val_bpb", [_experiment("0003", Status.INVALID, None), _experiment("0004", Status.CRASH, None)])
    assert path.read_text().splitlines()[1:] == ["bbbbbbb\t0.000000\t0.0\tcrash\tLR 0.001 -> 0.003: bigger steps"]


def test_append_after_a_torn_line_keeps_the_new_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record(_experiment("0001", Status.KEEP, 1.0))
    with open(journal.path, "a") as handle:
        handle.write('{"event": "experiment", "experim')  # killed mid-write: no newline
    journal.record(_experiment("0002", Status.DISCARD, 1.2))
    assert [e.id for e in journal.experiments()] == ["0001", "0002"]
    assert len(journal.warnings) == 1 and "line 2" in journal.warnings[0] and "not JSON" in journal.warnings[0]
    assert journal.path.read_text().endswith("\n")


def _write_lines(journal: Journal, *records: object) -> None:
    with open(journal.path, "a") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)


def test_records_of_the_wrong_shape_are_skipped_with_a_warning(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    good = _experiment("0001", Status.KEEP, 1.0).to_json()
    _write_lines(
        journal,
        [1, 2],  # line 1: valid JSON, not an object
        {"event": "experiment", "experiment": "0002"},  # line 2
        {"event": "experiment", "experiment": {**good, "id": "0003", "metric": "fast"}},  # line 3
        {"event": "experiment", "experiment": {**good, "id": "0004", "runs": [{"seed": "zero", "log_path": "x"}]}},
        {"event": "experiment", "experiment": {**good, "id": "0005", "runs": {"seed": 0}}},  # line 5
        {"event": "experiment", "experiment": {**good, "id": "0006", "metric": True}},  # line 6
        {"event": "experiment", "experiment": {"id": "0007"}},  # line 7: required fields missing
        {"event": "experiment", "experiment": good},  # line 8
    )
    assert [e.id for e in journal.experiments()] == ["0001"]
    assert [w.split(":")[0] for w in journal.warnings] == [f"{journal.path} line {n}" for n in range(1, 8)]
    assert "metric" in journal.warnings[2] and "seed" in journal.warnings[3] and "missing" in journal.warnings[6]
    assert [e["experiment"]["id"] for e in journal.events()] == ["0001"]
    journal.experiments()
    assert len(journal.warnings) == 7  # a bad line is reported once per read, not once per caller


def test_keys_from_a_newer_arsup_are_dropped_and_the_record_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path)
    newer = _experiment("0001", Status.KEEP, 1.0).to_json()
    newer["energy_kwh"] = 0.2
    newer["runs"][0]["gpu_temp"] = 71
    _write_lines(journal, {"event": "experiment", "experiment": newer})
    with caplog.at_level(logging.WARNING, logger="arsup.core.journal"):
        (experiment,) = journal.experiments()
    assert (experiment.id, experiment.runs[0].exit_code) == ("0001", 0)
    (warning,) = journal.warnings
    assert "line 1" in warning and "energy_kwh" in warning and "runs[0].gpu_temp" in warning
    assert warning in caplog.messages


def test_a_file_where_the_state_folder_belongs_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / STATE_DIR).write_text("not a folder")
    with pytest.raises(JournalError) as info:
        Journal(tmp_path)
    message = str(info.value)
    assert str(tmp_path / STATE_DIR) in message and "File exists" in message and "move it away" in message


def test_run_dir_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    (journal.dir / "runs").write_text("")
    with pytest.raises(JournalError, match="runs"):
        journal.run_dir("0001")


def test_a_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.path.symlink_to("/dev/full")
    with pytest.raises(JournalError) as info:
        journal.record(_experiment("0001", Status.KEEP, 1.0))
    assert str(journal.path) in str(info.value) and "No space left" in str(info.value) and "free" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only folder")
def test_a_read_only_state_folder_is_a_clear_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.dir.chmod(0o500)
    try:
        with pytest.raises(JournalError, match="Permission denied.*writable"):
            journal.record(_experiment("0001", Status.KEEP, 1.0))
    finally:
        journal.dir.chmod(0o700)


def test_results_tsv_as_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "results.tsv"
    path.mkdir()
    with pytest.raises(JournalError, match="results.tsv.*a folder"):
        write_results(path, "val_bpb", [_experiment("0001", Status.KEEP, 1.0)])
    with pytest.raises(JournalError, match="results.tsv.*a folder"):
        append_result(path, "val_bpb", _experiment("0001", Status.KEEP, 1.0))


def test_results_row_appended_after_a_torn_row_stays_whole(tmp_path: Path) -> None:
    path = tmp_path / "results.tsv"
    append_result(path, "val_bpb", _experiment("0001", Status.KEEP, 1.0))
    with open(path, "a") as handle:
        handle.write("bbbbbbb\t0.99")
    append_result(path, "val_bpb", _experiment("0002", Status.DISCARD, 1.2))
    assert path.read_text().splitlines()[-1].split("\t")[3] == "discard"


def test_other_results_tag_names_the_tag_results_tsv_holds(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    path = tmp_path / "results.tsv"
    old = _experiment("0001", Status.KEEP, 1.0, tag="nov27")
    old.commit = "c" * 40
    new = _experiment("0002", Status.KEEP, 0.9, tag="nov28")
    for experiment in (old, new):
        journal.record(experiment)
    assert other_results_tag(path, journal.experiments(), "nov28") == ""  # no file yet
    write_results(path, "val_bpb", [old])
    assert other_results_tag(path, journal.experiments(), "nov28") == "nov27"
    assert other_results_tag(path, journal.experiments(), "nov27") == ""
    write_results(path, "val_bpb", [new])
    assert other_results_tag(path, journal.experiments(), "nov28") == ""
    shared = _experiment("0003", Status.KEEP, 1.0, tag="nov29")  # a baseline on the same commit as nov28's
    assert other_results_tag(path, [*journal.experiments(), shared], "nov29") == ""


def test_records_brought_in_batches_are_all_written_or_none(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append("note", text="before")
    with open(journal.path, "a") as handle:
        handle.write('{"event": "no')  # a torn last line stays as it was too
    before = journal.path.read_bytes()

    def failing_late() -> Iterator[Experiment]:
        for n in range(1, 26):
            yield _experiment(f"{n:04d}", Status.KEEP, 1.0)
        raise ValueError("row 26 is bad")

    with pytest.raises(ValueError, match="row 26"):
        journal.record_all("import", {"tag": "t"}, failing_late(), batch=10)  # two batches were out
    assert journal.path.read_bytes() == before
    many = (_experiment(f"{n:04d}", Status.KEEP, 1.0) for n in range(1, 26))
    assert journal.record_all("import", {"tag": "t"}, many, batch=10) == 25
    assert [e.id for e in journal.experiments()] == [f"{n:04d}" for n in range(1, 26)]
    assert [e["event"] for e in journal.events()].count("import") == 1


def test_torn_lines_are_set_aside_with_their_bytes_and_the_journal_parses_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record(_experiment("0001", Status.KEEP, 1.0))
    torn_middle, torn_end = b'{"event": "experiment", "experim', b'{"event":"note","text":"caf\xc3'
    with open(journal.path, "ab") as handle:
        handle.write(torn_middle + b"\n[1, 2]\n")  # [1, 2] is JSON, not arsup's: it stays
    journal.record(_experiment("0002", Status.KEEP, 1.0))
    with open(journal.path, "ab") as handle:
        handle.write(torn_end)
    journal.guard()  # a guarded journal takes the rewrite as its own, not as tampering
    said = journal.set_aside_torn()
    assert len(said) == 2 and "line 2: not JSON" in said[0] and "line 5: not JSON" in said[1]
    side = (tmp_path / STATE_DIR / "journal.torn").read_bytes()
    assert side.count(b"\n# journal.jsonl line") == 1 and side.startswith(b"# journal.jsonl line 2 (32 bytes)")
    assert torn_middle + b"\n" in side and side.endswith(torn_end + b"\n")
    assert [e.id for e in journal.experiments()] == ["0001", "0002"]
    assert journal.warnings == [
        f"{journal.path} line 2: skipped, not an arsup event (a JSON object with an \"event\" name)"]
    assert journal.set_aside_torn() == [] and not journal.repair()
    journal.append("note", text="after")
    assert journal.path.read_bytes().endswith(b'"text":"after"}\n') and len(journal.events()) == 3


def test_an_experiment_marked_unmeasured_stays_so_until_it_is_recorded_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    running = Experiment(id="0003", tag="t", parent="p", hypothesis="h", agent="llm", status=Status.RUNNING)
    journal.record(running)
    journal.append("unmeasured", tag="t", experiment="0003", reason="a full disk")
    journal.append("unmeasured", tag="t", experiment="0004", reason="a lost Ray cluster")
    assert journal.unmeasured() == {"0003": "a full disk", "0004": "a lost Ray cluster"}
    running.status = Status.KEEP
    journal.record(running)  # measured at last
    assert journal.unmeasured() == {"0004": "a lost Ray cluster"}
