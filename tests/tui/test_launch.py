"""How the command line reaches the screen: the bare form, --browse, --policy and --headless."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arsup import config
from arsup.cli import build_parser
from arsup.core.journal import Journal
from arsup.core.journal import last_tag
from arsup.tui.launch import run_browse

ARSUP = [sys.executable, "-m", "arsup"]


def arsup(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ARSUP, *args], cwd=cwd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_bare_arsup_is_run_and_takes_the_screen_options() -> None:
    args = build_parser().parse_args(["--policy", "runs", "--theme", "light", "--tag", "mar8"])
    assert (args.command, args.policy, args.theme, args.tag, args.browse) == (None, "runs", "light", "mar8", False)
    assert build_parser().parse_args(["demo", "--policy", "edits"]).policy == "edits"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--policy", "sometimes"])


@pytest.mark.slow
def test_bare_arsup_outside_a_project_says_what_to_do(tmp_path: Path) -> None:
    result = arsup(cwd=tmp_path)
    assert result.returncode == 2 and "run `arsup init` there first" in result.stderr


@pytest.mark.slow
def test_browse_needs_a_history(project: Path) -> None:
    result = arsup("--browse", "--tag", "nov28", cwd=project)
    assert result.returncode == 2 and "no experiments for tag 'nov28'" in result.stderr
    result = arsup("--browse", cwd=project)
    assert result.returncode == 2 and "run `arsup` first" in result.stderr
    assert arsup("--browse", "run", cwd=project).returncode == 2


@pytest.mark.slow
def test_browse_names_the_tags_there_are(project: Path) -> None:
    from arsup.core.experiment import Experiment, Status

    journal = Journal(project)
    journal.record(Experiment("0001", "feb2", "c", "baseline", "arsup", status=Status.KEEP, metric=1.0))
    journal.record(Experiment("0002", "mar8", "c", "baseline", "arsup", status=Status.KEEP, metric=1.0))
    assert last_tag(project) == "mar8"
    with pytest.raises(config.ConfigError, match="tags in the journal: feb2, mar8"):
        run_browse(config.load(project), project, tag="apr1")
