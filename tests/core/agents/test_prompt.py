from __future__ import annotations

import os

from arsup.core.agents.base import AgentContext
from arsup.core.agents.prompt import PromptParts, build_messages
from arsup.core.experiment import Experiment, Status


def _experiment(i: int, status: str = Status.DISCARD, metric: float | None = 1.5) -> Experiment:
    return Experiment(
        id=f"{i:04d}", tag="t", parent="p", hypothesis=f"idea number {i} " + "x" * 80, agent="llm",
        status=status, metric=metric, reason="exit code 1" if status == Status.CRASH else "",
    )


def _context(n: int) -> AgentContext:
    history = [_experiment(1, Status.KEEP, 2.0), _experiment(2, Status.KEEP, 1.0)]
    history += [_experiment(i) for i in range(3, n + 1)]
    return AgentContext(
        instructions="PROGRAM-MD-VERBATIM: minimise val_bpb.",
        files={"train.py": "LR = 0.001\nprint('val_bpb: 1.0')\n"},
        history=history, metric="val_bpb", goal="minimize", time_budget=300, best=history[1],
        notes=["try a smaller model"],
    )


def _count(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"]) for m in messages) // 4


def test_everything_fits_when_there_is_room() -> None:
    messages = build_messages(_context(10), PromptParts(["train.py"], ["prepare.py"]), _count, 100_000)
    system, user = messages[0]["content"], messages[1]["content"]
    assert "PROGRAM-MD-VERBATIM" in system and "prepare.py" in system and "lower is better" in system
    assert "300 seconds" in system and "ARSUP_SEED" in system
    assert "LR = 0.001" in user and "try a smaller model" in user
    assert all(f"idea number {i} " in user for i in range(1, 11))


def test_oldest_history_goes_first_and_never_the_best_nor_the_files() -> None:
    context = _context(200)
    full = _count(build_messages(context, PromptParts(["train.py"], []), _count, 10**9))
    messages = build_messages(context, PromptParts(["train.py"], []), _count, full // 3)
    user = messages[1]["content"]
    assert _count(messages) <= full // 3
    assert "idea number 200 " in user and "idea number 3 " not in user
    assert "Best so far: 0002 keep" in user
    assert "older experiments left out to fit the context" in user
    assert "PROGRAM-MD-VERBATIM" in messages[0]["content"] and "LR = 0.001" in user


def test_the_prompt_never_contains_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-super-secret-123")
    messages = build_messages(_context(5), PromptParts(["train.py"], []), _count, 100_000)
    text = "".join(m["content"] for m in messages)
    assert "sk-super-secret-123" not in text
    assert os.environ["HOME"] not in text


def test_crashed_experiment_offers_a_fix_with_its_diff_and_tail() -> None:
    crashed = _experiment(3, Status.CRASH, None)
    crashed.diff, crashed.crash_tail = "+LR = 10.0", "Traceback: loss is nan\nFAIL"
    parts = PromptParts(["train.py"], [], crashed=crashed, fixes_left=2)
    user = build_messages(_context(3), parts, _count, 100_000)[1]["content"]
    assert "crashed: exit code 1" in user and "+LR = 10.0" in user and "loss is nan" in user
    assert "2 fixes left" in user
    parts.fixes_left = 0
    user = build_messages(_context(3), parts, _count, 100_000)[1]["content"]
    assert "move on to a different idea" in user


def _night() -> AgentContext:
    """A night as a researcher reads it: a baseline, a confirmed keep, a discard, a crash and an invalid edit."""
    from arsup.core.acceptance import Noise, Rule

    common = {"tag": "t", "agent": "llm"}
    seconds = {"training_seconds": 19.8, "peak_vram_mb": 512.0, "num_steps": 300.0}
    history = [
        Experiment(id="0001", parent="c0", commit="c1", hypothesis="baseline", status=Status.KEEP, metric=1.0,
                   metrics={"val_bpb": 1.0, **seconds}, is_baseline=True, **common),
        Experiment(id="0002", parent="c1", commit="c2", hypothesis="wider MLP", status=Status.KEEP, metric=0.95,
                   metrics={"val_bpb": 0.95, **seconds, "num_steps": 250.0}, gain_sigma=25.0, p_value=0.001,
                   **common),
        Experiment(id="0003", parent="c2", commit="c3", hypothesis="more dropout", status=Status.DISCARD,
                   metric=0.97, metrics={"val_bpb": 0.97, **seconds}, gain_sigma=-10.0, **common),
        Experiment(id="0004", parent="c2", commit="c4", hypothesis="huge batch", status=Status.CRASH,
                   reason="exit code 1\nTraceback (most recent call last):\nCUDA out of memory", **common),
        Experiment(id="0005", parent="c2", hypothesis="rename things", status=Status.INVALID,
                   reason="train.py, block 1 of 1: the SEARCH text matches nothing", **common),
    ]
    return AgentContext(
        instructions="p", files={"train.py": "LR = 1\n"}, history=history, metric="val_bpb", goal="minimize",
        time_budget=300, best=history[1], noise=Noise(0.002, 9), rule=Rule("confirm", 3, 1.0, 0.05, 0.0),
    )


def test_the_history_reads_like_a_researchers_table() -> None:
    user = build_messages(_night(), PromptParts(["train.py"], []), _count, 100_000)[1]["content"]
    assert "Noise floor: sigma 0.002 from 9 runs" in user
    assert "must beat the best by more than about 0.002 (1 sigma)" in user
    assert "paired test over 3 seeds (p < 0.05), by at least 0.0011547 on average" in user  # 0.002 / sqrt(3)
    assert "(a borderline result runs on up to 5 seeds, alpha split over the two looks)." in user
    lines = user.splitlines()
    header = next(line for line in lines if line.startswith("id "))
    for column in ("status", "val_bpb", "vs parent", "evidence", "training_seconds", "peak_vram_mb", "num_steps"):
        assert column in header
    row = {line.split()[0]: line for line in lines if line[:4].isdigit() and len(line.split()) > 2}
    assert "-0.050000" in row["0002"] and "+25.0 sigma, p 0.001" in row["0002"] and "250" in row["0002"]
    assert "+0.020000" in row["0003"] and "19.8" in row["0003"]
    assert "crash" in row["0004"] and "CUDA out of memory" in row["0004"]  # the reason, on the one line
    assert "invalid" in row["0005"] and "crash" not in row["0005"] and "matches nothing" in row["0005"]


def test_greedy_and_an_unmeasured_noise_floor_are_said_plainly() -> None:
    from dataclasses import replace

    from arsup.core.acceptance import Rule

    context = replace(_night(), noise=None, rule=Rule("greedy"))
    user = build_messages(context, PromptParts(["train.py"], []), _count, 100_000)[1]["content"]
    assert "Noise floor: not measured yet" in user and "Any gain over the best is kept" in user


def test_an_agent_going_in_circles_is_told_so_with_the_list() -> None:
    from dataclasses import replace

    night = _night()
    same = [Experiment(id=f"00{n}", tag="t", parent="c2", hypothesis=f"LR try {n}", agent="llm", status=Status.DISCARD,
                       metric=0.96, diff=f"-LR = 1\n+LR = {n}\n") for n in (10, 11, 12)]
    user = build_messages(replace(night, circling=same), PromptParts(["train.py"], []), _count, 100_000)[1]["content"]
    assert "## You are going in circles" in user
    assert "Your last 3 experiments all changed the same place (LR)" in user
    assert all(f"00{n} discard 0.960000  LR try {n}" in user for n in (10, 11, 12))
    quiet = build_messages(replace(night, circling=same[:2]), PromptParts(["train.py"], []), _count, 100_000)
    assert "going in circles" not in quiet[1]["content"]  # two in a row is research, not a loop
