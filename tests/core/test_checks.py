"""verify and ablate on a real repo after a real loop: numbers, journal, and a restored work tree."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from arsup import config
from arsup.core.agents.script import ScriptAgent
from arsup.core.checks import ablate, verify
from arsup.core.journal import JournalError, last_tag
from arsup.core.loop import Engine
from arsup.core.experiment import Status
from arsup.core.journal import Journal, RepoBusy
from arsup.core.vcs import GitError
from tests.conftest import blocked_bwrap, git, make_project

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it

ADDITIVE = (
    "import os\nA = 0\nB = 0\nNOISE = {0: 0.0, 1: 0.02, 2: -0.02, 3: 0.01, 4: -0.01}\n"
    "seed = int(os.environ['ARSUP_SEED'])\n"
    "print('---')\nprint(f'val_bpb: {1.0 - 0.1 * A - 0.05 * B + NOISE[seed]:.6f}')\n"
)


@pytest.fixture
def night(tmp_path: Path) -> Path:
    """A finished night: baseline, A kept (worth 0.1), B kept (worth 0.05)."""
    root = make_project(tmp_path / "repo", train=ADDITIVE)
    script = tmp_path / "p.jsonl"
    lines = [
        {"hypothesis": "turn on A", "files": {"train.py": ADDITIVE.replace("A = 0", "A = 1")}},
        {"hypothesis": "turn on B", "files": {"train.py": ADDITIVE.replace("A = 0", "A = 1").replace("B = 0", "B = 1")}},
    ]
    script.write_text("".join(json.dumps(line) + "\n" for line in lines))
    # The second file holds both changes, as a replay of a sequential night: one proposal at a time.
    # One look at 3 runs (max_runs 3): a baseline of 3 seeds, the figures below and the report tests' own.
    cfg = config.load(root, {"slots": {"queue": 0}, "acceptance": {"max_runs": 3}})
    engine = Engine(cfg, root, ScriptAgent(script), tag="night")
    engine.prepare()
    engine.run()
    assert [e.status for e in engine.history] == [Status.KEEP] * 3
    return root


def test_verify_the_best_beside_the_baseline(night: Path) -> None:
    before = (night / "train.py").read_text()
    lines: list[str] = []
    report = verify(config.load(night), night, last_tag(night), None, seeds=4, progress=lines.append)
    assert report.measured.values == pytest.approx({0: 0.85, 1: 0.87, 2: 0.83, 3: 0.86})
    assert report.versus_baseline.seeds == [0, 1, 2]
    assert report.versus_baseline.gain == pytest.approx(0.15) and report.versus_baseline.p_value == 0.0
    assert report.experiment.hypothesis == "turn on B"
    assert len(lines) == 4 and (night / "train.py").read_text() == before
    assert git(night, "status", "--porcelain") == ""
    assert [e for e in Journal(night).events() if e["event"] == "verify"][-1]["mean"] == pytest.approx(0.8525)


def test_verify_where_bwrap_is_blocked_says_so_before_its_runs(night: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{blocked_bwrap(night.parent / 'bin')}{os.pathsep}{os.environ['PATH']}")
    lines: list[str] = []
    report = verify(config.load(night, {"sandbox": {"kind": "auto"}}), night, "night", None, seeds=1, progress=lines.append)
    assert lines[0].startswith("runs are not sandboxed: bwrap fails here (bwrap: setting up uid map: Permission denied)")
    assert len(lines) == 2 and report.measured.values == pytest.approx({0: 0.85})


def test_verify_an_older_commit_puts_the_tree_back(night: Path) -> None:
    first_keep = Journal(night).experiments("night")[1]
    report = verify(config.load(night), night, "night", first_keep.commit[:7], seeds=2)
    assert report.measured.values == pytest.approx({0: 0.9, 1: 0.92})
    assert "B = 1" in (night / "train.py").read_text() and git(night, "status", "--porcelain") == ""


def test_ablate_credits_each_kept_change(night: Path) -> None:
    rows = ablate(config.load(night), night, "night", seeds=3)
    assert [r.experiment.hypothesis for r in rows] == ["turn on A", "turn on B"]
    assert rows[0].contribution.gain == pytest.approx(0.1) and rows[1].contribution.gain == pytest.approx(0.05)
    assert rows[0].contribution.p_value == 0.0
    assert "A = 1" in (night / "train.py").read_text() and git(night, "status", "--porcelain") == ""
    event = [e for e in Journal(night).events() if e["event"] == "ablation"][-1]
    assert [row["contribution"] for row in event["rows"]] == pytest.approx([0.1, 0.05])


def test_checks_refuse_a_dirty_tree_or_a_busy_repo(night: Path) -> None:
    (night / "train.py").write_text("A = 5\n")
    with pytest.raises(GitError, match="uncommitted changes in train.py"):
        verify(config.load(night), night, "night", None, seeds=1)
    git(night, "checkout", "--", "train.py")
    engine = Engine(config.load(night), night, ScriptAgent(night.parent / "p.jsonl"), tag="night")
    engine.prepare()
    with pytest.raises(RepoBusy):
        ablate(config.load(night), night, "night", seeds=1)
    engine.close()


def test_no_run_yet(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    with pytest.raises(JournalError, match="the journal is empty"):
        last_tag(root)
