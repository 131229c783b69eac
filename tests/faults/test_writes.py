"""An edit writes only what it may, and a failed one puts back exactly what it changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.core.agents.base import AgentContext
from arsup.core.experiment import Status
from tests.conftest import TOY_TRAIN, git, make_engine, make_project, write_script
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories

SECRET = "API_TOKEN=do-not-lose-me\n"


@pytest.fixture
def broad(tmp_path: Path) -> Path:
    """A project whose editable glob matches everything, with a git-ignored .env beside it."""
    root = make_project(tmp_path / "repo", project={"editable": ["*"]})
    (root / ".gitignore").write_text(".env\n")
    git(root, "add", ".gitignore")
    git(root, "commit", "-qm", "ignore .env")
    (root / ".env").write_text(SECRET)
    return root


@pytest.mark.parametrize(
    "target",
    [".env", ".arsup/journal.jsonl", "results.tsv", "arsup.toml", "program.md", ".git/config"],
)
def test_an_edit_never_writes_an_ignored_or_reserved_path(broad: Path, target: str) -> None:
    protected = fingerprint(broad, ["prepare.py", ".env", "program.md", "arsup.toml"])
    script = write_script(broad, {"hypothesis": f"write {target}", "files": {target: "X = 1\n"}})
    engine, _ = make_engine(broad, script)
    engine.run()
    journal_before = (broad / ".arsup" / "journal.jsonl").read_bytes()

    refused = engine.history[-1]
    assert refused.status == Status.INVALID and target in refused.reason
    assert (broad / ".env").read_text() == SECRET
    assert b'"event":"session_end"' in journal_before  # the ledger was never replaced
    assert_invariants(broad, protected)


def test_an_untracked_file_is_never_taken_over(broad: Path) -> None:
    """A discard deletes what the attempt added; a person's untracked file must not be 'added'."""
    (broad / "notes.txt").write_text("a person's notes\n")
    script = write_script(broad, {"hypothesis": "rewrite notes", "files": {"notes.txt": "X = 1\n"}})
    engine, _ = make_engine(broad, script)
    engine.run()
    refused = engine.history[-1]
    assert refused.status == Status.INVALID and "not tracked" in refused.reason
    assert (broad / "notes.txt").read_text() == "a person's notes\n"


class _Spy:
    """An agent that records what it was shown and proposes nothing."""

    name = "spy"

    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def propose(self, context: AgentContext) -> None:
        self.files = dict(context.files)

    def observe(self, experiment: object) -> None:
        pass


def test_ignored_and_arsup_files_never_reach_the_agent(broad: Path) -> None:
    from arsup import config
    from arsup.core.loop import Engine

    spy = _Spy()
    engine = Engine(config.load(broad), broad, spy, tag="t1")
    engine.prepare()
    engine.run()
    assert "train.py" in spy.files
    assert not {".env", "results.tsv", "arsup.toml", "program.md", "prepare.py"} & set(spy.files)
    assert not [name for name in spy.files if name.startswith((".arsup", ".git/"))]


def test_a_failed_commit_puts_back_the_bytes_it_replaced(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(project, {"hypothesis": "new LR", "files": {"train.py": TOY_TRAIN.replace("0.0001", "0.01")}})
    engine, events = make_engine(project, script, max_experiments=1)
    engine.run()  # the baseline
    before = (project / "train.py").read_bytes()
    (project / ".git" / "index.lock").write_text("")  # another git is busy: `git add` fails
    engine, events = make_engine(project, script)
    engine.run()
    (project / ".git" / "index.lock").unlink()
    failed = engine.history[-1]
    assert failed.status == Status.INVALID and "commit" in failed.reason
    assert events[-1].error
    assert (project / "train.py").read_bytes() == before
    assert_invariants(project, protected)
