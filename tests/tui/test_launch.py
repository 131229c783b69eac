"""How the command line reaches the screen: the bare form, --browse, --policy and --headless."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from arsup import config
from arsup.cli import build_parser
from arsup.core.journal import Journal
from arsup.core.journal import last_tag
from arsup.tui.launch import run_browse
from arsup.tui.lines import LinesView
from tests.conftest import git

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


@pytest.mark.slow
def test_an_import_is_browsed_where_there_is_no_arsup_toml_by_its_own_metric_ids_and_logs(tmp_path: Path) -> None:
    from arsup import cli
    from arsup.core.monitor import FixedGpuReader, Monitor
    from arsup.tui.launch import browse_app
    from arsup.tui.panes.history import ExperimentTree
    from arsup.tui.panes.log import LogPane
    from tests.core.test_importing import MAR8
    from tests.tui.conftest import NO_GPU, drive, until

    clone = tmp_path / "autoresearch"  # a clone the night ran in elsewhere: no arsup.toml
    clone.mkdir()
    git(clone, "init", "-q")
    assert cli.main(["import", str(MAR8), "--tag", "mar8", "--dir", str(clone)]) == 0
    assert config.load_if_present(clone) is None
    app = browse_app(None, clone, "mar8", monitor=Monitor(gpu_reader=FixedGpuReader([], NO_GPU)))

    async def go(pilot: Any) -> None:
        await until(pilot, lambda: len(app.view.history) == 126, what="the history")
        assert (app.view.metric, app.view.goal, app.view.agent) == ("val_bpb", "minimize", "import")
        assert [e.id for e in app.view.history] == [f"{n:04d}" for n in range(1, 127)]  # as import said
        tree = app.main.query_one(ExperimentTree)
        assert str(tree.root.children[0].label).startswith("0001") and "baseline" in str(tree.root.children[0].label)
        past = app.main.query_one(LogPane).query_one("#log-past", LinesView)
        said = "no log: 0126 was imported from autoresearch-mar8-results.tsv line 127, which keeps no run logs"
        await until(pilot, lambda: past.plain_lines == [said], what=f"the log pane to say {said!r}")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="the app to close")

    drive(app, go, size=(120, 40))
    result = arsup("--browse", "--tag", "nov28", cwd=clone)  # the command goes past the missing arsup.toml
    assert result.returncode == 2 and "no experiments for tag 'nov28'" in result.stderr, result.stderr


@pytest.mark.slow
def test_an_import_in_a_configured_repo_is_browsed_by_its_own_metric_not_the_projects(tmp_path: Path) -> None:
    from arsup.core.events import SessionStarted
    from arsup.core.experiment import Experiment, Status
    from arsup.core.importing import import_results
    from arsup.tui.launch import journal_session
    from tests.conftest import make_project
    from tests.core.test_importing import MAR8

    root = make_project(tmp_path / "repo", metric={"name": "val_accuracy", "goal": "maximize"})
    import_results(root, MAR8, "mar8")
    started = journal_session(config.load(root), root, "mar8")[0]
    assert isinstance(started, SessionStarted)
    assert (started.metric, started.goal, started.agent) == ("val_bpb", "minimize", "import")
    (root / "arsup.toml").unlink()
    Journal(root).record(Experiment("0200", "nov28", "c", "baseline", "arsup", status=Status.KEEP, metric=0.9))
    with pytest.raises(config.ConfigError, match="no arsup.toml in .*only an imported night is browsed without one"):
        journal_session(None, root, "nov28")
