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
