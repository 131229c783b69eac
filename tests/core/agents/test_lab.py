"""The lab folder a coding agent reads: what the engine chose to show, as files."""

from __future__ import annotations

from pathlib import Path

from arsup.core.agents import lab
from arsup.core.agents.base import AgentContext
from arsup.core.experiment import Experiment, RunResult, Status


def _experiment(number: str, status: str, curve: list[list[float]] | None = None) -> Experiment:
    run = RunResult(seed=0, log_path="", curve=curve or [])
    return Experiment(id=number, tag="t", parent="p", commit="c", hypothesis=f"idea {number}", agent="codex",
                      status=status, metric=1.0, runs=[run], crash_tail=f"log of {number}\n")


def test_the_lab_holds_the_loss_curves_of_the_best_and_the_latest_runs(tmp_path: Path) -> None:
    best = _experiment("0001", Status.KEEP, [[0.5, 3.0], [1.0, 2.5]])
    history = [best, *(_experiment(f"{n:04d}", Status.DISCARD, [[1.0, 2.9]]) for n in range(2, 9)),
               _experiment("0009", Status.CRASH)]
    context = AgentContext(instructions="Minimise val_bpb.", files={}, history=history, metric="val_bpb",
                           goal="minimize", time_budget=5, best=best)
    lab.write_lab(tmp_path / "lab", context, notebook="")
    curves = sorted(p.name for p in (tmp_path / "lab" / "curves").iterdir())
    assert curves == ["0001-seed0.tsv", *(f"{n:04d}-seed0.tsv" for n in range(4, 9))]  # the best + the latest 5
    assert (tmp_path / "lab" / "curves" / "0001-seed0.tsv").read_text() == "fraction\tloss\n0.5000\t3\n1.0000\t2.5\n"
    assert "curves/" in lab.prompt(context, tmp_path / "lab", ["train.py"], ["prepare.py"])


def test_a_training_without_progress_lines_leaves_the_curves_folder_empty(tmp_path: Path) -> None:
    context = AgentContext(instructions="", files={}, history=[_experiment("0001", Status.KEEP)], metric="val_bpb",
                           goal="minimize", time_budget=5)
    lab.write_lab(tmp_path / "lab", context, notebook="")
    assert list((tmp_path / "lab" / "curves").iterdir()) == []
