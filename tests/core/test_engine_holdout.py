"""[holdout]: each keep measured on data the agent never sees; never in its context; divergence said."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from arsup.core.events import Notice
from arsup.core.experiment import Status
from arsup.core.journal import Journal
from tests.conftest import edit, make_engine, make_project, write_script
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it

# Wider scores better on the validation split and worse on the holdout: a loop that fits its val set.
# The split is chosen by the protected prepare.py, from the environment only holdout runs get.
PREPARE = textwrap.dedent("""\
    import os
    SPLIT = os.environ.get("EVAL_SPLIT", "val")
    def score(width):
        return 2.0 - width / 1000 if SPLIT == "val" else 2.0 + width / 1000
""")
TRAIN = textwrap.dedent("""\
    import sys
    sys.dont_write_bytecode = True
    from prepare import score
    WIDTH = 64
    DEPTH = 2
    print("---")
    print(f"val_bpb: {score(WIDTH) + DEPTH * 0.0:.6f}")
    print("training_seconds: 1.5")
""")
WIDER = [edit("WIDTH = 64", "WIDTH = 128"), edit("WIDTH = 128", "WIDTH = 256"), edit("WIDTH = 256", "WIDTH = 512")]


def _project(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "repo", train=TRAIN)
    (root / "prepare.py").write_text(PREPARE)
    from tests.conftest import git

    git(root, "commit", "-qam", "a prepare.py with a holdout split")
    return root


HOLDOUT = {"env": {"EVAL_SPLIT": "holdout"}}


def holdout_night(tmp_path: Path) -> Path:
    """A finished night (tag t1) whose three keeps improve val while the holdout gets worse."""
    root = _project(tmp_path)
    script = write_script(root, *({"hypothesis": f"wider {n}", "edits": e} for n, e in enumerate(WIDER)))
    engine, _ = make_engine(root, script, acceptance={"mode": "greedy"}, slots={"queue": 0}, holdout=HOLDOUT)
    engine.run()
    return root


def test_each_keep_gets_its_holdout_and_the_divergence_is_said(tmp_path: Path) -> None:
    root = _project(tmp_path)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(root, *({"hypothesis": f"wider {n}", "edits": e} for n, e in enumerate(WIDER)),
                          {"hypothesis": "deeper", "edits": edit("DEPTH = 2", "DEPTH = 3")})
    engine, events = make_engine(root, script, acceptance={"mode": "greedy"}, slots={"queue": 0},
                                 holdout={"env": {"EVAL_SPLIT": "holdout"}, "diverge_keeps": 3})
    engine.run()
    history = Journal(root).experiments("t1")
    assert [e.status for e in history] == [Status.KEEP] * 4 + [Status.DISCARD]
    assert [e.holdout for e in history[:4]] == pytest.approx([2.064, 2.128, 2.256, 2.512])
    assert [e.metric for e in history[:4]] == pytest.approx([1.936, 1.872, 1.744, 1.488])
    assert history[4].holdout is None  # only keeps are measured on the holdout
    assert (root / ".arsup" / "runs" / history[1].id / "holdout.log").is_file()
    warnings = [e.text for e in events if isinstance(e, Notice) and "holdout" in e.text]
    assert any("over the last 3 keeps" in w and "the holdout got worse" in w for w in warnings), warnings
    assert_invariants(root, protected)


def test_the_agent_never_sees_a_holdout_value(tmp_path: Path) -> None:
    root = _project(tmp_path)
    seen = []

    class Watching:
        name = "watching"

        def __init__(self) -> None:
            self.left = list(WIDER[:2])

        def propose(self, context):
            from arsup.core.agents.base import Proposal

            seen.extend(e.holdout for e in context.history)
            seen.append(context.best.holdout if context.best else None)
            return Proposal("wider", edits=self.left.pop(0)) if self.left else None

        def observe(self, experiment):
            seen.append(experiment.holdout)

    from arsup import config
    from arsup.core.loop import Engine

    cfg = config.load(root, {"acceptance": {"mode": "greedy"}, "slots": {"queue": 0}, "holdout": {"env": {"EVAL_SPLIT": "holdout"}}})
    engine = Engine(cfg, root, Watching(), tag="t")
    engine.prepare()
    engine.run()
    assert all(e.holdout is not None for e in Journal(root).experiments("t") if e.status == Status.KEEP)
    assert seen and all(value is None for value in seen)


def test_a_crashing_holdout_keeps_the_keep_and_says_why(tmp_path: Path) -> None:
    root = _project(tmp_path)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(root, {"hypothesis": "wider", "edits": WIDER[0]})
    engine, events = make_engine(root, script, acceptance={"mode": "greedy"}, slots={"queue": 0},
                                 holdout={"run": "exit 3", "env": {}})
    engine.run()
    baseline, wider = Journal(root).experiments("t1")
    assert wider.status == Status.KEEP and wider.holdout is None
    assert wider.holdout_note.startswith("holdout run failed: ") and "exit code 3" in wider.holdout_note
    assert any(isinstance(e, Notice) and "0002: holdout run failed" in e.text for e in events)
    assert_invariants(root, protected)
