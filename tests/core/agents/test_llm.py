"""The LLM researcher end to end: litellm talking to a real OpenAI-compatible server on 127.0.0.1,
the engine applying, training and recording what the model sends, and surviving every bad reply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arsup import config
from arsup.core.agents.llm import LLMAgent
from arsup.core.agents.llm_client import LLMClient, import_litellm
from arsup.core.loop import Engine
from arsup.core.events import Event, Notice, SessionEnded
from arsup.core.experiment import Status
from arsup.core.journal import Journal
from tests.conftest import TOY_TRAIN, git, make_project
from tests.openai_server import OpenAIServer, error, huge, reply, stall, trickle

pytestmark = pytest.mark.slow  # the agent proposes on real git repositories

SECRET = "sk-test-do-not-leak-4242"


def block(search: str, replace: str, path: str = "train.py") -> str:
    return f"{path}\n```python\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n"


def answer(hypothesis: str, *blocks: str, notebook: str = "- nothing yet") -> str:
    return f"NOTEBOOK:\n{notebook}\nHYPOTHESIS: {hypothesis}\n\n" + "\n".join(blocks)


GOOD = answer("raise LR toward 3e-3", block("LR = 0.0001", "LR = 0.003"), notebook="- LR looks too low")


@pytest.fixture
def server():
    with OpenAIServer() as running:
        yield running


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def run_llm(
    root: Path, server: OpenAIServer, *behaviours, max_experiments: int = 2, model: str = "openai/test-model",
    watchdog: dict | None = None, sections: dict | None = None, **client,
) -> tuple[Engine, list[Event]]:
    server.push(*behaviours)
    # One proposal at a time (queue 0): each scripted reply answers the result of the experiment before it.
    cfg = config.load(root, {
        "budget": {"max_experiments": max_experiments}, "watchdog": watchdog or {}, "slots": {"queue": 0},
        **(sections or {}),
    })
    settings = {"deadline_s": 10.0, "retries": 2, "backoff_s": 0.01, "context_tokens": 100_000, **client}
    agent = LLMAgent(LLMClient(model, api_base=server.base_url, **settings), ["train.py"], ["prepare.py"])
    engine = Engine(cfg, root, agent, tag="llm")
    events: list[Event] = []
    engine.subscribe(events.append)
    engine.prepare()
    engine.run()
    return engine, events


def user_prompts(server: OpenAIServer) -> list[str]:
    return [r["body"]["messages"][-1]["content"] for r in server.requests]


def assert_consistent(root: Path, engine: Engine) -> None:
    """Protected file untouched, clean tree, journal and results.tsv agree with the engine."""
    assert (root / "prepare.py").read_text() == "DATA = 'fixed'\n"
    assert git(root, "status", "--porcelain") == ""
    rebuilt = Journal(root).experiments("llm")
    assert [(e.id, e.status) for e in rebuilt] == [(e.id, e.status) for e in engine.history]
    rows = (root / "results.tsv").read_text().splitlines()[1:]
    assert len(rows) == sum(e.status in Status.TRAINED for e in engine.history)


def test_good_edit_is_trained_and_kept(project: Path, server: OpenAIServer) -> None:
    engine, events = run_llm(project, server, reply(GOOD))
    baseline, tried = engine.history
    assert (tried.status, tried.hypothesis) == (Status.KEEP, "raise LR toward 3e-3")
    assert "LR = 0.003" in (project / "train.py").read_text()
    assert tried.agent_data["notebook"] == "- LR looks too low"
    assert tried.agent_data["usage"]["calls"] == 1 and tried.agent_data["corrections"] == 0
    request = server.requests[0]["body"]
    assert request["stream"] is True and request["model"] == "test-model"
    assert "Minimise val_bpb" in request["messages"][0]["content"]  # program.md, verbatim
    assert "LR = 0.0001" in request["messages"][1]["content"]  # the editable file
    assert "0001 keep" in request["messages"][1]["content"]  # the history
    assert isinstance(events[-1], SessionEnded) and not events[-1].error
    assert_consistent(project, engine)


def test_the_prompt_shows_the_noise_and_secondary_metrics_and_never_the_holdout(
    project: Path, server: OpenAIServer,
) -> None:
    wider = answer("wider", block("WIDTH = 64", "WIDTH = 80"))
    holdout = {"run": "echo '---'; echo 'val_bpb: 7.777777'"}
    engine, _ = run_llm(project, server, reply(GOOD), reply(wider), max_experiments=3, sections={"holdout": holdout})
    assert [e.holdout for e in engine.history if e.status == Status.KEEP] == [7.777777, 7.777777]  # it was measured
    last = server.requests[-1]["body"]["messages"]
    prompt = last[1]["content"]
    # The toy script is deterministic: five seeds of the baseline and three of the keep agree exactly.
    assert "Noise floor: none (8 runs of the same code gave the same values" in prompt
    assert "then win a paired test over 3 seeds" in prompt
    header = next(line for line in prompt.splitlines() if line.startswith("id "))
    assert "peak_vram_mb" in header and "training_seconds" in header and "vs parent" in header
    assert "0002  keep    1.000523  -2.249477  p 0 " in prompt  # the change vs its parent and the evidence
    for request in server.requests:
        text = json.dumps(request["body"])
        assert "7.777777" not in text and "holdout" not in text.lower()
    assert_consistent(project, engine)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (answer("no blocks at all, just prose"), "no edit blocks"),
        (answer("edit the data", block("DATA = 'fixed'", "DATA = 'mine'", path="prepare.py")), "protected"),
        (answer("edit nothing real", block("LR = 0.5", "LR = 0.003")), "LR = 0.0001"),
        (answer("escape the repo", block("", "import os", path="../evil.py")), "outside"),
        (answer("break the syntax", block("LR = 0.0001", "LR = (0.003")), "compile"),
        ("I think we should raise the learning rate.", "no edit blocks"),
    ],
)
def test_a_bad_reply_is_corrected_then_recorded_invalid(
    project: Path, server: OpenAIServer, bad: str, expected: str
) -> None:
    engine, _ = run_llm(project, server, reply(bad), reply(bad), reply(bad), reply(GOOD))
    invalid, good = engine.history[1], engine.history[2]
    assert invalid.status == Status.INVALID and expected in invalid.reason
    assert invalid.agent_data["corrections"] == 2 and invalid.agent_data["usage"]["calls"] == 3
    prompts = user_prompts(server)
    assert prompts[1].startswith("That edit was refused:") and expected in prompts[1]
    assert good.status == Status.KEEP
    assert not (project.parent / "evil.py").exists()
    assert_consistent(project, engine)


def test_a_search_that_matches_twice_is_explained(tmp_path: Path, server: OpenAIServer) -> None:
    root = make_project(tmp_path / "repo", train=TOY_TRAIN + "if True:\n    pass\nif True:\n    pass\n")
    twice = answer("drop a pass", block("    pass", "    x = 1"))
    engine, _ = run_llm(root, server, reply(twice), reply(GOOD))
    assert engine.history[1].status == Status.KEEP and engine.history[1].agent_data["corrections"] == 1
    assert "matches 2 places" in user_prompts(server)[1]


def test_rate_limit_is_retried_and_nothing_is_lost(project: Path, server: OpenAIServer) -> None:
    engine, events = run_llm(project, server, error(429, retry_after=0.05), error(503), reply(GOOD))
    assert engine.history[1].status == Status.KEEP
    retries = [e.text for e in events if isinstance(e, Notice) and "retry" in e.text]
    assert len(retries) == 2 and "RateLimitError" in retries[0]
    assert_consistent(project, engine)


def test_a_stalled_or_trickling_stream_hits_the_deadline_and_is_retried(project: Path, server: OpenAIServer) -> None:
    engine, events = run_llm(
        project, server, stall(30, text_before="NOTEBOOK:\n"), trickle(GOOD, delay=0.2), reply(GOOD), deadline_s=1.0
    )
    assert engine.history[1].status == Status.KEEP
    assert sum("no complete reply within 1 s" in e.text for e in events if isinstance(e, Notice)) == 2


def test_retries_run_out_with_a_clear_message(project: Path, server: OpenAIServer) -> None:
    engine, events = run_llm(project, server, error(500), error(500), error(500))
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.error
    assert "no answer after 3 tries" in end.reason and server.base_url in end.reason
    assert_consistent(project, engine)


@pytest.mark.parametrize(("status", "expected"), [(401, "authentication failed"), (403, "authentication failed"), (404, "unknown model")])
def test_auth_and_unknown_model_stop_the_loop(project: Path, server: OpenAIServer, status: int, expected: str) -> None:
    engine, events = run_llm(project, server, error(status))
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.error
    assert expected in end.reason and "openai/test-model" in end.reason
    assert len(server.requests) == 1
    assert_consistent(project, engine)


def test_auth_failure_names_the_missing_variable(project: Path, server: OpenAIServer, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    _, events = run_llm(project, server, error(401))
    assert "set OPENAI_API_KEY in the environment" in events[-1].reason


def test_a_5mb_reply_is_cut_and_corrected(project: Path, server: OpenAIServer) -> None:
    engine, _ = run_llm(project, server, huge(5_000_000), reply(GOOD))
    assert engine.history[1].status == Status.KEEP
    prompts = user_prompts(server)
    assert "far too long" in prompts[1]
    assert len(json.dumps(server.requests[1]["body"])) < 100_000  # the runaway is not echoed back whole


def test_context_overflow_shrinks_the_history(project: Path, server: OpenAIServer) -> None:
    engine, events = run_llm(project, server, error(400), reply(GOOD))
    assert engine.history[1].status == Status.KEEP
    first, second = (r["body"]["messages"][1]["content"] for r in server.requests)
    assert "0001 keep" in first and "1 older experiments left out" in second
    assert any("overflowed" in e.text for e in events if isinstance(e, Notice))


def test_a_crash_can_be_fixed_at_most_twice(project: Path, server: OpenAIServer) -> None:
    crash = block("LR = 0.0001", "LR = 0.003\nraise SystemExit(4)")
    engine, _ = run_llm(
        project, server,
        reply(answer("higher LR", crash)),
        reply(answer("FIX: higher LR, without the exit", block("LR = 0.0001", "LR = 0.003\nraise SystemExit(5)"))),
        reply(answer("FIX: again", block("LR = 0.0001", "LR = 0.003\nraise SystemExit(6)"))),
        reply(answer("new idea: wider", block("WIDTH = 64", "WIDTH = 65"))),
        max_experiments=5,
        watchdog={"crashes_in_a_row": 4},  # three crashes in a row would stop the loop (tested elsewhere)
    )
    first, fix1, fix2, new = engine.history[1:]
    assert [e.status for e in (first, fix1, fix2)] == [Status.CRASH] * 3
    assert fix1.agent_data["idea"] == first.id and fix2.agent_data["idea"] == first.id
    prompts = [r["body"]["messages"][1]["content"] for r in server.requests]
    assert "The previous experiment crashed: exit code 4" in prompts[1] and "2 fixes left" in prompts[1]
    assert "raise SystemExit(4)" in prompts[1]  # its diff
    assert "1 fix left" in prompts[2]
    assert "move on to a different idea" in prompts[3]
    assert new.status == Status.DISCARD and "idea" not in new.agent_data


def test_a_repeated_idea_goes_back_with_a_pointer(project: Path, server: OpenAIServer) -> None:
    worse = answer("lower LR", block("LR = 0.0001", "LR = 0.00001"))
    again = answer("lower LR once more", block("LR = 0.0001", "LR = 1e-5"))
    engine, _ = run_llm(project, server, reply(worse), reply(again), reply(GOOD), max_experiments=3)
    assert [e.status for e in engine.history] == [Status.KEEP, Status.DISCARD, Status.KEEP]
    assert "this repeats experiment 0002" in user_prompts(server)[2]


def test_notebook_carries_over_to_the_next_prompt(project: Path, server: OpenAIServer) -> None:
    second = answer("wider", block("WIDTH = 64", "WIDTH = 65"), notebook="- LR 3e-3 helped a lot")
    run_llm(project, server, reply(GOOD), reply(second), max_experiments=3)
    assert "## Your lab notebook\n- LR looks too low" in user_prompts(server)[1]


def test_token_and_cost_ledger_adds_up(project: Path, server: OpenAIServer) -> None:
    engine, _ = run_llm(
        project, server,
        reply(answer("no blocks")), reply(GOOD, prompt_tokens=1000, completion_tokens=200),
        model="openai/gpt-4o-mini",
    )
    usage = engine.history[1].agent_data["usage"]
    calls = engine.history[1].agent_data["calls"]
    assert [c["purpose"] for c in calls] == ["proposal", "correction"]
    assert calls[1]["prompt_tokens"] == 1000 and calls[1]["completion_tokens"] == 200
    prompt_cost, completion_cost = import_litellm().cost_per_token(
        model="openai/gpt-4o-mini", prompt_tokens=1000, completion_tokens=200
    )
    assert calls[1]["cost_usd"] == pytest.approx(prompt_cost + completion_cost) and calls[1]["cost_usd"] > 0
    assert usage["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in calls))
    assert usage["prompt_tokens"] == sum(c["prompt_tokens"] for c in calls)
    events = [json.loads(line) for line in (project / ".arsup" / "journal.jsonl").read_text().splitlines()]
    end = [e for e in events if e["event"] == "session_end"][-1]
    assert end["spend"]["cost_usd"] == pytest.approx(usage["cost_usd"])


def test_max_cost_stops_new_proposals(project: Path, server: OpenAIServer) -> None:
    cfg_path = project / "arsup.toml"
    cfg_path.write_text(cfg_path.read_text() + "\n[budget]\nmax_cost_usd = 0.0001\n")
    git(project, "commit", "-qam", "budget")
    costly = reply(GOOD, prompt_tokens=100_000, completion_tokens=10_000)
    server.push(costly)
    cfg = config.load(project)
    client = LLMClient("openai/gpt-4o-mini", api_base=server.base_url, retries=0, context_tokens=100_000)
    engine = Engine(cfg, project, LLMAgent(client, ["train.py"], ["prepare.py"]), tag="llm")
    events: list[Event] = []
    engine.subscribe(events.append)
    engine.prepare()
    engine.run()
    assert events[-1].reason == "reached the budget of 0.0001 USD" and not events[-1].error
    assert len(server.requests) == 1


def test_two_slots_ask_the_model_for_two_proposals_at_once(project: Path, server: OpenAIServer) -> None:
    """A slot that waits on the model while another trains is an idle GPU: each slot's proposal is its own call,
    made at once, and each streams to its own experiment."""
    wider = answer("a wider model", block("WIDTH = 64", "WIDTH = 96"))
    engine, events = run_llm(project, server, trickle(GOOD, 0.02, 20), trickle(wider, 0.02, 20),
                             max_experiments=3, sections={"slots": {"cpu": 2, "queue": 0}})
    assert server.peak_in_flight == 2  # both replies streamed at the same time
    tried = {e.hypothesis: e for e in engine.history[1:]}
    assert set(tried) == {"raise LR toward 3e-3", "a wider model"}
    assert all(e.status in Status.TRAINED and e.agent_data["usage"]["calls"] == 1 for e in tried.values())
    assert "WIDTH = 96" in tried["a wider model"].diff and "LR = 0.003" in tried["raise LR toward 3e-3"].diff
    assert isinstance(events[-1], SessionEnded) and not events[-1].error
    assert_consistent(project, engine)


def test_secrets_never_leave_the_environment(tmp_path: Path, server: OpenAIServer) -> None:
    train = TOY_TRAIN + "import os\nprint('keys', sorted(k for k in os.environ if 'KEY' in k))\n"
    root = make_project(tmp_path / "repo", train=train)
    engine, _ = run_llm(root, server, reply(GOOD))
    for request in server.requests:
        assert SECRET not in json.dumps(request["body"])
    written = [root / ".arsup" / "journal.jsonl", root / "results.tsv"]
    written += list((root / ".arsup" / "runs").rglob("*"))
    for path in written:
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert "keys []" in Path(engine.history[1].runs[0].log_path).read_text()
