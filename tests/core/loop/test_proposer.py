"""What the proposer hands an agent: a scratch copy of the best commit, with nothing of arsup's or git's in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arsup.core.agents.base import Proposal
from arsup.core.experiment import Status
from tests.conftest import edit, git, make_engine, make_project, write_script

pytestmark = pytest.mark.slow  # a real engine on a real repo


def test_the_scratch_copy_is_the_best_commit_without_git_or_arsups_state(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    (root / "notes.txt").write_text("uncommitted, never copied\n")
    script = write_script(root, {"hypothesis": "raise LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
    engine, _ = make_engine(root, script, max_experiments=2)
    copies: list[Path] = []

    class Copying:
        name = "copying"

        def propose(self, context: Any) -> Proposal | None:
            if copies:
                return None
            folder = tmp_path / "scratch"
            context.export(folder)
            copies.append(folder)
            text = (folder / "train.py").read_text()
            return Proposal("raise LR", files={"train.py": text.replace("LR = 0.0001", "LR = 0.003")})

        def observe(self, experiment: Any) -> None:
            pass

    engine.agent = Copying()
    engine.run()
    [folder] = copies
    tracked = sorted(git(root, "ls-files").split())
    copied = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert copied == tracked and not (folder / ".git").exists() and not (folder / ".arsup").exists()
    assert (folder / "train.py").read_text() == git(root, "show", f"{engine.history[0].commit}:train.py") + "\n"
    assert [e.status for e in engine.history][:1] == [Status.KEEP] and len(engine.history) == 2


# A CLI agent of the test's own: it notes when it started and ended and where it worked, thinks for a second,
# and widens the model by its own pid (two calls at once propose two different changes).
PARALLEL_AGENT = """\
import os, pathlib, sys, time
log = pathlib.Path(sys.argv[1])
with log.open("a") as out:
    out.write(f"start {time.time()} {os.getcwd()}\\n")
time.sleep(1.0)
train = pathlib.Path("train.py")
train.write_text(train.read_text().replace("WIDTH = 64", f"WIDTH = {65 + os.getpid() % 1000}"))
with log.open("a") as out:
    out.write(f"end {time.time()}\\n")
print("HYPOTHESIS: a wider model")
"""


def test_two_slots_get_two_proposals_made_at_once_each_in_its_own_scratch_copy(tmp_path: Path) -> None:
    import sys

    from arsup import config
    from arsup.core.agents import create_agent
    from arsup.core.events import AgentText, Proposing
    from arsup.core.loop import Engine
    from tests.faults.conftest import assert_invariants, fingerprint

    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"})
    before = fingerprint(root, ["prepare.py"])
    script, log = tmp_path / "agent.py", tmp_path / "calls.log"
    script.write_text(PARALLEL_AGENT)
    cfg = config.load(root, {
        "budget": {"max_experiments": 3}, "slots": {"cpu": 2, "queue": 0},
        "agent": {"kind": "command", "command": f"{sys.executable} {script} {log}"},
    })
    engine = Engine(cfg, root, create_agent(cfg, root), tag="t1")
    events: list[Any] = []
    engine.subscribe(events.append)
    engine.prepare()
    engine.run()
    lines = log.read_text().splitlines()
    starts = [float(line.split()[1]) for line in lines if line.startswith("start")]
    ends = [float(line.split()[1]) for line in lines if line.startswith("end")]
    folders = {line.split()[2] for line in lines if line.startswith("start")}
    assert len(starts) == 2 and max(starts) < min(ends)  # both were under way together
    assert len(folders) == 2  # each in a scratch copy of its own
    baseline, *proposed = engine.history
    assert len(proposed) == 2 and {e.agent for e in proposed} == {"command"}
    assert len({e.id for e in engine.history}) == 3
    made = {e.experiment_id for e in events if isinstance(e, Proposing)} - {baseline.id}
    assert made == {e.id for e in proposed}  # each streamed under the id its experiment got
    assert {e.experiment_id for e in events if isinstance(e, AgentText)} == made
    assert_invariants(root, before)


def test_two_kinds_of_agent_take_turns_and_the_journal_says_who_made_each(tmp_path: Path) -> None:
    import sys

    from arsup import config
    from arsup.core.agents import create_agent
    from arsup.core.journal import Journal
    from arsup.core.loop import Engine
    from arsup.core.summary import summarize

    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"})
    script, log = tmp_path / "agent.py", tmp_path / "calls.log"
    script.write_text(PARALLEL_AGENT.replace("time.sleep(1.0)", ""))
    cfg = config.load(root, {
        "budget": {"max_experiments": 5},
        "agent": {"kind": ["command", "tuner"], "command": f"{sys.executable} {script} {log}"},
    })
    agent = create_agent(cfg, root)
    engine = Engine(cfg, root, agent, tag="t1")
    engine.prepare()
    engine.run()
    assert agent.name == "command+tuner"
    assert [e.agent for e in engine.history] == ["arsup", "command", "tuner", "command", "tuner"]
    assert "WIDTH = " in engine.history[1].diff and engine.history[2].agent_data.get("param")  # each its own kind
    rows = summarize("t1", Journal(root).experiments("t1"), "val_bpb", "minimize").agents
    assert [(row.agent, row.proposed) for row in rows] == [("command", 2), ("tuner", 2)]


def test_the_same_change_proposed_twice_at_once_runs_once(tmp_path: Path) -> None:
    import sys

    from arsup import config
    from arsup.core.agents import create_agent
    from arsup.core.loop import Engine

    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"})
    script, log = tmp_path / "agent.py", tmp_path / "calls.log"
    same = PARALLEL_AGENT.replace('f"WIDTH = {65 + os.getpid() % 1000}"', '"WIDTH = 80"')  # both lanes alike
    script.write_text(same.replace("time.sleep(1.0)", "time.sleep(1.0 if len(log.read_text().split()) < 9 else 0)"))
    cfg = config.load(root, {
        "budget": {"max_experiments": 3}, "slots": {"cpu": 2, "queue": 0},
        "agent": {"kind": "command", "command": f"{sys.executable} {script} {log}"},
    })
    engine = Engine(cfg, root, create_agent(cfg, root), tag="t1")
    engine.prepare()
    engine.run()
    trained = [e for e in engine.history[1:] if e.status in Status.TRAINED]
    refused = [e for e in engine.history[1:] if e.status == Status.INVALID]
    assert len(trained) == 1, [(e.id, e.status, e.reason) for e in engine.history]  # not twice, one per lane
    assert refused and all("repeats" in e.reason for e in refused)  # then refused each time it came again


def test_at_once_one_makes_one_proposal_at_a_time_whatever_the_slots(tmp_path: Path) -> None:
    import sys

    from arsup import config
    from arsup.core.agents import create_agent
    from arsup.core.loop import Engine

    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"})
    script, log = tmp_path / "agent.py", tmp_path / "calls.log"
    script.write_text(PARALLEL_AGENT.replace("time.sleep(1.0)", "time.sleep(0.5)"))
    cfg = config.load(root, {
        "budget": {"max_experiments": 3}, "slots": {"cpu": 2, "queue": 0},
        "agent": {"kind": "command", "command": f"{sys.executable} {script} {log}", "at_once": 1},
    })
    engine = Engine(cfg, root, create_agent(cfg, root), tag="t1")
    engine.prepare()
    engine.run()
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["start", "end", "start", "end"]  # never two under way
    assert len(engine.history) == 3
