from __future__ import annotations

from pathlib import Path

from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.journal import Journal, append_result, results_row, write_results


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
