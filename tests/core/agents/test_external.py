"""The external agent: proposals handed in by clients, checked as any other, settled by the loop's events."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from arsup import config
from arsup.core.agents import create_agent
from arsup.core.agents.base import AgentContext, Proposal
from arsup.core.agents.external import OFFER, ExternalAgent, Outcome
from arsup.core.events import ExperimentFinished, ProposalQueued
from arsup.core.experiment import Experiment, Status


def experiment(ident: str, status: Status, meta: dict, reason: str = "") -> Experiment:
    return Experiment(id=ident, tag="t", parent="", hypothesis="h", agent="external", status=status, reason=reason,
                      agent_data=dict(meta))


def context(cancel: threading.Event, refuse: str = "") -> AgentContext:
    """What the loop gives an agent: here a check that refuses any edit of `refuse`."""

    def check(proposal: Proposal) -> str:
        return f"{refuse}: protected; nobody may edit it" if refuse in proposal.files else ""

    return AgentContext("", {}, [], "val_bpb", "minimize", 5, cancel=cancel, check=check)


def test_an_offer_becomes_the_proposal_and_learns_its_id_from_the_loop() -> None:
    agent, cancel = ExternalAgent(accept_s=5), threading.Event()
    with ThreadPoolExecutor(1) as client:
        pending: Future[Outcome] = client.submit(agent.offer, "raise LR", {"train.py": "LR = 0.003\n"})
        proposal = agent.propose(context(cancel))
        assert proposal is not None and proposal.hypothesis == "raise LR"
        assert proposal.files == {"train.py": "LR = 0.003\n"}
        agent(ProposalQueued(experiment("0002", Status.QUEUED, proposal.meta)))
        assert pending.result(5) == Outcome(id="0002", status="queued")


def test_a_refused_offer_goes_back_and_the_loop_waits_for_the_next() -> None:
    agent, cancel = ExternalAgent(accept_s=5), threading.Event()
    made: list[Proposal | None] = []
    loop = threading.Thread(target=lambda: made.append(agent.propose(context(cancel, refuse="prepare.py"))))
    loop.start()
    refused = agent.offer("cheat", {"prepare.py": "DATA = 'mine'\n"})
    assert refused.refused == "prepare.py: protected; nobody may edit it" and not refused.id
    assert loop.is_alive()  # still asking
    with ThreadPoolExecutor(1) as client:
        pending = client.submit(agent.offer, "honest", {"train.py": "LR = 0.003\n"})
        loop.join(5)
        assert made[0] is not None and made[0].hypothesis == "honest"
        agent(ExperimentFinished(experiment("0003", Status.INVALID, made[0].meta, "the edit changes nothing"), None))
        assert pending.result(5) == Outcome(id="0003", refused="the edit changes nothing", status="invalid")


def test_an_offer_nobody_asks_for_is_withdrawn_as_busy_and_a_stopped_loop_asks_no_more() -> None:
    agent, cancel = ExternalAgent(accept_s=0.3), threading.Event()
    assert agent.offer("early", {"train.py": "x\n"}) == Outcome(busy=True)
    cancel.set()
    assert agent.propose(context(cancel)) is None  # the withdrawn offer is not made later either
    agent(ProposalQueued(experiment("0009", Status.QUEUED, {OFFER: "not ours"})))  # not an offer of this agent


def test_kind_external_is_a_known_agent(tmp_path: Path) -> None:
    cfg = config.Config.model_construct(agent=config.AgentConfig(kind="external"))
    assert isinstance(create_agent(cfg, tmp_path), ExternalAgent)
    with pytest.raises(ValueError, match="external"):
        config.AgentConfig(kind="externa")
