"""`[notify] command`: the person's own hook hears of new bests, questions and error ends, and never holds the loop."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from arsup import config
from arsup.core.agents.script import ScriptAgent
from arsup.core.loop import Engine
from arsup.headless import run_headless
from tests.conftest import edit, make_project, write_script

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it


def run(root: Path, command: str, timeout: float = 10) -> str:
    cfg = config.load(root, {"notify": {"command": command, "timeout": timeout}, "acceptance": {"mode": "greedy"}})
    script = write_script(
        root,
        {"hypothesis": "raise LR", "edits": edit("LR = 0.0001", "LR = 0.003")},
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 128")},
    )
    out = io.StringIO()
    assert run_headless(Engine(cfg, root, ScriptAgent(script), tag="n"), out) == 0
    return out.getvalue()


def test_a_new_best_reaches_the_hook_as_json(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    sink = tmp_path / "heard.jsonl"
    run(root, f"cat >> {sink}; echo >> {sink}")
    heard = [json.loads(line) for line in sink.read_text().splitlines() if line.strip()]
    assert [(h["type"], h["experiment"]["hypothesis"]) for h in heard] == [("ExperimentFinished", "raise LR")]


def test_a_broken_or_hanging_hook_is_said_once_and_never_holds_the_loop(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    said = run(root, "sleep 30", timeout=0.5)
    assert said.count("[notify] command failed (took longer than 0.5 s; killed)") == 1
    assert "0003  discard" in said  # the loop went on meanwhile
