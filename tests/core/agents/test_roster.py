"""A roster of researchers: turns alternate, each agent keeps its own limit of calls at once, all learn everything."""

from __future__ import annotations

import threading
import time

from arsup.core.agents.base import AgentContext, Proposal
from arsup.core.agents.roster import Roster
from arsup.core.experiment import Experiment


class Counting:
    """An agent that proposes `ideas` times, holding each call for `hold_s`, and remembers what it was shown."""

    def __init__(self, name: str, ideas: int = 100, hold_s: float = 0.0, lanes: int = 1) -> None:
        self.name, self.ideas, self.hold_s, self.lanes = name, ideas, hold_s, lanes
        self.seen: list[str] = []
        self.under_way = self.most = 0
        self._lock = threading.Lock()

    def propose(self, context: AgentContext) -> Proposal | None:
        with self._lock:
            if self.ideas == 0:
                return None
            self.ideas -= 1
            self.under_way += 1
            self.most = max(self.most, self.under_way)
        time.sleep(self.hold_s)
        with self._lock:
            self.under_way -= 1
        return Proposal(f"{self.name}'s idea")

    def observe(self, experiment: Experiment) -> None:
        self.seen.append(experiment.id)


def context() -> AgentContext:
    return AgentContext(instructions="", files={}, history=[], metric="val_bpb", goal="minimize", time_budget=1)


def test_turns_alternate_and_each_proposal_names_its_maker() -> None:
    roster = Roster([Counting("claude-code"), Counting("codex")])
    made = [roster.propose(context()) for _ in range(4)]
    assert [p.agent for p in made if p] == ["claude-code", "codex", "claude-code", "codex"]
    assert [p.hypothesis for p in made if p][:2] == ["claude-code's idea", "codex's idea"]
    assert roster.name == "claude-code+codex" and roster.lanes == 2


def test_an_agent_out_of_ideas_is_passed_over_and_the_roster_ends_with_the_last() -> None:
    roster = Roster([Counting("a", ideas=1), Counting("b", ideas=3)])
    makers = []
    while (proposal := roster.propose(context())) is not None:
        makers.append(proposal.agent)
    assert makers == ["a", "b", "b", "b"]


def test_calls_at_once_wait_for_a_busy_agent_but_not_for_one_with_lanes() -> None:
    single, parallel = Counting("tuner", hold_s=0.3), Counting("claude-code", hold_s=0.3, lanes=4)
    roster = Roster([single, parallel])
    calls = [threading.Thread(target=roster.propose, args=(context(),)) for _ in range(6)]
    for call in calls:
        call.start()
    for call in calls:
        call.join(10)
    assert single.ideas == parallel.ideas == 97  # three turns each, whatever the threads' order
    assert single.most == 1 and parallel.most == 3  # the tuner never saw two calls at once


def test_every_agent_learns_every_experiment_before_its_next_proposal() -> None:
    first, second = Counting("a"), Counting("b")
    roster = Roster([first, second])
    roster.propose(context())  # a's turn
    for number in ("0001", "0002"):
        roster.observe(Experiment(id=number, tag="t", parent="", commit="", hypothesis="", agent="a"))
    assert first.seen == second.seen == []  # told only on the thread that makes its next proposal
    roster.propose(context())  # b's turn
    assert (first.seen, second.seen) == ([], ["0001", "0002"])
    roster.propose(context())
    assert first.seen == ["0001", "0002"]


def test_a_stopped_loop_ends_a_call_waiting_for_a_busy_agent() -> None:
    busy = Counting("tuner", hold_s=1.0)
    roster = Roster([busy])
    holder = threading.Thread(target=roster.propose, args=(context(),))
    holder.start()
    time.sleep(0.1)
    stopped = context()
    stopped.cancel.set()
    started = time.monotonic()
    assert roster.propose(stopped) is None and time.monotonic() - started < 0.9
    holder.join(5)
