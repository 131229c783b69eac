"""Slots: several experiments at once, each in its own worktree, one journal and one kept line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from arsup.config import ExecutorConfig, SlotsConfig
from arsup.core.experiment import Status
from arsup.core.slots import HOME, carried_hypothesis, devices, plan
from tests.conftest import edit, git, make_engine, make_project, write_script
from tests.faults.conftest import assert_invariants, fingerprint

# Two independent gains; the A run is quick and the B run slow, so B ends after A was kept.
TWO_GAINS = textwrap.dedent(
    """\
    import os
    import time
    A = 0
    B = 0
    C = 0
    time.sleep(0.5 if A and not B else 2.0 if B and not A else 0.3)
    print("cwd", os.getcwd())
    print("gpu", repr(os.environ.get("CUDA_VISIBLE_DEVICES")))
    print("---")
    print(f"val_bpb: {1.0 - 0.1 * A - 0.05 * B + 0.01 * C:.6f}")
    """
)
TWO_SLOTS = {"slots": {"cpu": 2}, "acceptance": {"mode": "greedy"}}


def test_the_plan_names_one_slot_per_gpu_or_cpu_share() -> None:
    def no_gpus() -> list[str]:
        return []

    def two_gpus() -> list[str]:
        return ["GPU-aaa", "GPU-bbb"]

    assert plan(SlotsConfig(), {}, no_gpus) == [(HOME, {})]  # a CPU box: one slot, as always
    assert plan(SlotsConfig(), {}, lambda: ["GPU-aaa"]) == [(HOME, {})]
    order = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert plan(SlotsConfig(), {}, two_gpus) == [
        ("gpu0", {"CUDA_VISIBLE_DEVICES": "GPU-aaa", **order}), ("gpu1", {"CUDA_VISIBLE_DEVICES": "GPU-bbb", **order}),
    ]
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in plan(SlotsConfig(), {"CUDA_VISIBLE_DEVICES": "2, 3"}, two_gpus)] == [
        "2", "3",
    ]  # what the person made visible, not every GPU of the box
    assert plan(SlotsConfig(gpus=["1"]), {}, two_gpus) == [(HOME, {"CUDA_VISIBLE_DEVICES": "1", **order})]
    assert plan(SlotsConfig(gpus="none"), {}, two_gpus) == [(HOME, {})]
    assert plan(SlotsConfig(cpu=2), {}, two_gpus) == [
        ("cpu0", {"CUDA_VISIBLE_DEVICES": ""}), ("cpu1", {"CUDA_VISIBLE_DEVICES": ""}),
    ]


def test_the_devices_the_runs_have_are_the_gpus_the_slots_divide_or_none() -> None:
    """What the session record says (the report names slot-hours GPU-hours only where they were)."""
    local = ExecutorConfig()

    def two_gpus() -> list[str]:
        return ["GPU-aaa", "GPU-bbb"]

    assert devices(SlotsConfig(), local, {}, list) == []  # a CPU box
    assert devices(SlotsConfig(), local, {}, lambda: ["GPU-aaa"]) == ["GPU-aaa"]  # one slot, and it has the GPU
    assert devices(SlotsConfig(), local, {}, two_gpus) == ["GPU-aaa", "GPU-bbb"]
    assert devices(SlotsConfig(), local, {"CUDA_VISIBLE_DEVICES": "2, 3"}, two_gpus) == ["2", "3"]
    assert devices(SlotsConfig(), local, {"CUDA_VISIBLE_DEVICES": ""}, two_gpus) == []  # hidden by the person
    assert devices(SlotsConfig(gpus="none"), local, {}, two_gpus) == ["GPU-aaa", "GPU-bbb"]  # CUDA as set: all
    assert devices(SlotsConfig(gpus=["1"]), local, {}, two_gpus) == ["1"]
    assert devices(SlotsConfig(cpu=2), local, {}, two_gpus) == []
    assert devices(SlotsConfig(), ExecutorConfig.model_construct(kind="ray", gpus=1.0), {}, list) == ["ray"]
    assert devices(SlotsConfig(), ExecutorConfig.model_construct(kind="ray", gpus=0.0), {}, two_gpus) == []


@pytest.mark.slow
def test_two_slots_train_at_once_in_their_worktrees_and_share_one_kept_line(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", train=TWO_GAINS, **TWO_SLOTS)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(
        root,
        {"hypothesis": "turn on A", "edits": edit("A = 0", "A = 1")},
        {"hypothesis": "turn on C", "edits": edit("C = 0", "C = 1")},  # worse: discarded
    )
    engine, _ = make_engine(root, script, **TWO_SLOTS)
    engine.run()
    baseline, *tried = engine.history
    assert baseline.slot == HOME and sorted(e.slot for e in tried) == ["cpu0", "cpu1"]
    first, second = sorted(tried, key=lambda e: e.started_at)
    assert second.started_at < first.finished_at, "the two experiments did not train at the same time"
    for experiment in tried:
        log = Path(experiment.runs[0].log_path).read_text()
        assert f"cwd {root / '.arsup' / 'worktrees' / experiment.slot}" in log and "gpu ''" in log
    statuses = {e.hypothesis: e.status for e in tried}
    assert statuses == {"turn on A": Status.KEEP, "turn on C": Status.DISCARD}
    kept = next(e for e in tried if e.status == Status.KEEP)
    assert git(root, "rev-parse", "HEAD") == kept.commit and "A = 1" in (root / "train.py").read_text()
    assert len(git(root, "worktree", "list").splitlines()) == 1  # the slots' worktrees are gone
    assert_invariants(root, protected)


@pytest.mark.slow
def test_a_keep_overtaken_by_another_slot_is_measured_again_on_the_new_best(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", train=TWO_GAINS, **TWO_SLOTS)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(
        root,
        {"hypothesis": "turn on A", "edits": edit("A = 0", "A = 1")},  # quick: kept first
        {"hypothesis": "turn on B", "edits": edit("B = 0", "B = 1")},  # slow: beats the baseline, too late
    )
    engine, _ = make_engine(root, script, **TWO_SLOTS)
    engine.run()
    baseline, a, b, again = engine.history
    assert (a.hypothesis, a.status) == ("turn on A", Status.KEEP)
    assert (b.hypothesis, b.status) == ("turn on B", Status.DISCARD) and b.parent == baseline.commit
    assert b.reason.endswith(f"but {a.id} was kept meanwhile: carried onto it as {again.id}")
    assert again.hypothesis == f"turn on B (again: it beat {baseline.id} while {a.id} was kept)"
    assert again.parent == a.commit and again.status == Status.KEEP and again.metric == 0.85
    assert git(root, "rev-parse", "HEAD") == again.commit
    assert_invariants(root, protected)


@pytest.mark.slow
def test_a_restart_after_a_kill_closes_every_slots_experiment_and_removes_the_worktrees(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", train=TWO_GAINS, **TWO_SLOTS)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(root, {"hypothesis": "turn on B", "edits": edit("B = 0", "B = 1")})
    engine, _ = make_engine(root, script, **TWO_SLOTS)
    engine.run()
    # As a kill -9 leaves it: an experiment recorded running in a slot whose worktree is still there.
    from arsup.core.vcs import Vcs

    running = engine.history[-1].copy()
    running.id, running.status, running.reason = "0009", Status.RUNNING, ""
    engine.journal.record(running)
    proposed = running.copy()  # and one a second slot was writing in its worktree
    proposed.id, proposed.status, proposed.commit = "0010", Status.PROPOSED, proposed.parent
    engine.journal.record(proposed)
    Vcs(root).add_worktree(root / ".arsup" / "worktrees" / "cpu0", running.commit)
    again, _ = make_engine(root, write_script(root), **TWO_SLOTS)
    recovered = {e.id: (e.status, e.reason) for e in again.history}
    assert recovered["0009"] == (Status.CRASH, "interrupted: arsup stopped before the run finished")
    assert recovered["0010"] == (Status.INVALID, "interrupted before its run")
    assert len(git(root, "worktree", "list").splitlines()) == 1
    again.close()
    assert_invariants(root, protected)


def test_a_candidate_carried_three_times_keeps_its_words_and_one_suffix() -> None:
    rounds = [("0001", "0003"), ("0003", "0005"), ("0007", "0009")]  # (the best it beat, the one kept meanwhile)
    said = [carried_hypothesis("wider", times, beat, kept, 1000) for times, (beat, kept) in enumerate(rounds, 1)]
    assert said == [
        "wider (again: it beat 0001 while 0003 was kept)",
        "wider (carried 2 times: it beat 0003 while 0005 was kept)",
        "wider (carried 3 times: it beat 0007 while 0009 was kept)",
    ]
    longest = carried_hypothesis("x" * 1000, 12, "0001", "0003", 1000)  # the suffix is never cut off
    assert len(longest) == 1000 and longest.endswith("x… (carried 12 times: it beat 0001 while 0003 was kept)")


# One slow gain (B) and quick small ones (A0, A1, ...): while B trains the other slot keeps a quick one or
# more, so B is carried onto a new best round after round until the quick ones run out.
QUICK = 10
SLOW_AND_QUICK = (
    "import time\nB = 0\n"
    + "".join(f"A{i} = 0\n" for i in range(QUICK))
    + f"quick = {' + '.join(f'A{i}' for i in range(QUICK))}\n"
    + "time.sleep(2.0 if B else 0.5 if quick else 0.2)\n"
    + "print('---')\nprint(f'val_bpb: {1.0 - 0.2 * B - 0.01 * quick:.6f}')\n"
)


@pytest.mark.slow
def test_a_candidate_carried_round_after_round_says_so_once_with_the_count(tmp_path: Path) -> None:
    import re

    root = make_project(tmp_path / "repo", train=SLOW_AND_QUICK, **TWO_SLOTS)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(
        root,
        {"hypothesis": "turn on B", "edits": edit("B = 0", "B = 1")},
        *({"hypothesis": f"turn on A{i}", "edits": edit(f"A{i} = 0", f"A{i} = 1")} for i in range(QUICK)),
    )
    engine, _ = make_engine(root, script, **TWO_SLOTS)
    engine.run()
    chain = [e for e in engine.journal.experiments("t1") if e.hypothesis.startswith("turn on B")]
    assert len(chain) >= 4, [(e.id, e.status, e.reason) for e in chain]  # carried three times at least
    assert [e.status for e in chain] == [Status.DISCARD] * (len(chain) - 1) + [Status.KEEP]
    for times, (before, carried) in enumerate(zip(chain, chain[1:]), 1):
        how = "again" if times == 1 else f"carried {times} times"
        assert re.fullmatch(rf"turn on B \({how}: it beat \d{{4}} while \d{{4}} was kept\)", carried.hypothesis)
        assert carried.agent_data["again_of"] == before.id and carried.agent_data["carried"] == times
    assert git(root, "rev-parse", "HEAD") == chain[-1].commit
    assert_invariants(root, protected)
