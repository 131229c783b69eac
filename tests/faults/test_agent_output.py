"""Whatever the model sends (nothing, noise, a runaway), the loop records a stated outcome and loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.core.experiment import Status
from tests.conftest import edit, make_engine, write_script
from tests.core.agents.test_llm import GOOD, run_llm
from tests.faults.conftest import assert_invariants, fingerprint
from tests.openai_server import OpenAIServer, reply

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories

BINARY = "".join(chr(code) for code in range(0, 0x2FF)) * 50  # NULs, control characters, escapes, accents


@pytest.fixture
def server():
    with OpenAIServer() as running:
        yield running


@pytest.mark.parametrize("text", ["", BINARY], ids=["empty", "binary"])
def test_an_unusable_reply_ends_as_invalid_and_the_loop_goes_on(project: Path, server: OpenAIServer, text: str) -> None:
    protected = fingerprint(project, ["prepare.py"])
    engine, _ = run_llm(project, server, reply(text), reply(text), reply(text), reply(GOOD))
    refused, good = engine.history[1], engine.history[2]
    assert refused.status == Status.INVALID and refused.reason
    assert good.status == Status.KEEP
    assert_invariants(project, protected)


def test_a_runaway_hypothesis_is_cut_before_it_reaches_the_journal(project: Path) -> None:
    """The LLM client already cuts a runaway reply; any agent's 5 MB hypothesis is cut by the engine."""
    protected = fingerprint(project, ["prepare.py"])
    runaway = {"hypothesis": "longer " * 750_000, "edits": edit("LR = 0.0001", "LR = 0.003")}
    engine, _ = make_engine(project, write_script(project, runaway))
    engine.run()
    tried = engine.history[1]
    assert len(tried.hypothesis) <= 1000 and tried.hypothesis.endswith("…")
    assert (project / ".arsup" / "journal.jsonl").stat().st_size < 200_000
    assert_invariants(project, protected)
