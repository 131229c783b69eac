"""Every key flow of the screen against a real engine (its `Controls`), a real repo and real training processes."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot

from arsup import config
from arsup.core import policy
from arsup.core.experiment import Status
from arsup.core.journal import Journal
from arsup.core.monitor import FixedGpuReader, Monitor
from arsup.tui.bridge import Bridge
from arsup.tui.launch import journal_session, screen
from arsup.tui.lines import LinesView
from arsup.tui.panes.gpu import GpuView
from arsup.tui.panes.history import ExperimentTree
from arsup.tui.panes.log import LogPane
from arsup.tui.screens import ApprovalScreen, HelpScreen, NoteScreen, QuitScreen
from tests.conftest import TOY_TRAIN, git
from tests.conftest import edit
from tests.tui.conftest import NO_GPU, SLOW, drive, engine_of, finish, live_app, show_tab, training_processes, until

pytestmark = pytest.mark.slow  # a Textual app over a real loop on a git repository

HIGHER_LR = {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")}
WIDER = {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")}


def statuses(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(e.hypothesis, e.status) for e in app.view.history]


def test_approve_each_run_from_the_modal(repo: Path) -> None:
    app = live_app(repo, HIGHER_LR, approve="runs")

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), what="the baseline's approval")
        assert app.view.pending is not None and app.view.pending.experiment.is_baseline
        await pilot.press("a")
        await until(pilot, lambda: app.view.pending is not None and not app.view.pending.experiment.is_baseline)
        assert isinstance(app.screen, ApprovalScreen)
        assert "higher LR" in str(app.screen.query_one("#approval-hypothesis").render())
        await pilot.press("a")
        await finish(pilot, app)
        assert statuses(app) == [("baseline", Status.KEEP), ("higher LR", Status.KEEP)]
        labels = [str(node.label) for node in app.main.query_one(ExperimentTree).root.children]
        assert labels[0].startswith("0001 keep") and labels[1].startswith("0002 keep")

    drive(app, go, size=(120, 40))


def test_skip_rejects_the_proposal_and_resets(repo: Path) -> None:
    app = live_app(repo, HIGHER_LR, approve="runs")

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("a")
        await until(pilot, lambda: app.view.pending is not None and app.view.pending.experiment.id == "0002")
        await pilot.press("s")
        await finish(pilot, app)
        assert statuses(app) == [("baseline", Status.KEEP), ("higher LR", Status.SKIPPED)]
        assert app.view.history[1].reason == "skipped by user"
        skipped = app.main.query_one(ExperimentTree).root.children[0].children[0]
        assert str(skipped.label).startswith("0002 skipped")  # hangs off the commit it started from

    drive(app, go, size=(120, 40))
    assert "LR = 0.0001" in (repo / "train.py").read_text() and git(repo, "status", "--porcelain") == ""


def test_approve_and_skip_from_the_main_screen_after_hiding_the_modal(repo: Path) -> None:
    app = live_app(repo, HIGHER_LR, approve="runs")

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("escape")
        assert not isinstance(app.screen, ApprovalScreen)
        assert app.check_action("approve", ()) and app.check_action("skip", ()) and not app.check_action("edit", ())
        await pilot.press("a")
        await until(pilot, lambda: app.view.pending is not None and app.view.pending.experiment.id == "0002")
        await pilot.press("escape", "s")
        await finish(pilot, app)
        assert statuses(app) == [("baseline", Status.KEEP), ("higher LR", Status.SKIPPED)]
        assert not app.check_action("approve", ())

    drive(app, go, size=(120, 40))


def test_a_question_waits_for_the_open_dialog_and_esc_puts_it_aside(repo: Path) -> None:
    thought = threading.Event()  # the agent proposes 0002 only once the help is open
    app = live_app(repo, HIGHER_LR, approve="runs", gate=thought)

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen) and app.screen.is_mounted)
        await pilot.press("a")
        # On a loaded machine a key pressed at once could reach the dialog before it had gone.
        await until(pilot, lambda: app.screen is app.main, what="the answered dialog to close")
        await pilot.press("question_mark")  # help opens while the agent thinks
        assert isinstance(app.screen, HelpScreen)
        thought.set()
        await until(pilot, lambda: app.view.pending is not None and app.view.pending.experiment.id == "0002")
        assert isinstance(app.screen, HelpScreen)  # not stacked on top of the help
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), what="the question after the help")
        await pilot.press("escape", "question_mark", "escape")  # put aside: not offered again
        assert app.screen is app.main and app.view.pending is not None
        await pilot.press("a")
        await finish(pilot, app)
        assert statuses(app) == [("baseline", Status.KEEP), ("higher LR", Status.KEEP)]

    try:
        drive(app, go, size=(120, 40))
    finally:
        thought.set()  # a failed step must not leave the agent waiting


def test_kill_records_a_crash_and_the_loop_goes_on(repo: Path) -> None:
    app = live_app(repo, {"hypothesis": "slow", "files": {"train.py": SLOW}}, WIDER)

    async def go(pilot: Pilot[Any]) -> None:
        log = app.main.query_one("#log-live", LinesView)
        await until(pilot, lambda: "training" in log.plain_lines and app.view.running is not None, what="training")
        assert app.check_action("kill", ())
        await pilot.press("x", "y")  # kill, confirmed
        await finish(pilot, app)
        killed = app.view.history[1]
        assert (killed.status, killed.reason) == (Status.CRASH, "killed by user")
        assert statuses(app)[2] == ("wider", Status.DISCARD)
        crashed = app.main.query_one(ExperimentTree).root.children[0].children[0]
        assert str(crashed.label).startswith("0002 crash")

    drive(app, go, size=(120, 40))
    assert not training_processes()


def test_pause_and_resume(repo: Path) -> None:
    app = live_app(repo, WIDER, approve="runs")

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("escape", "p")
        await until(pilot, lambda: app.view.paused, what="the pause to be said")
        assert engine_of(app).paused and app.check_action("resume", ()) and not app.check_action("pause", ())
        assert "pausing" in app._state_label()
        await pilot.press("a")
        await until(pilot, lambda: app.view.state == "paused", what="the paused state")
        assert [e.status for e in app.view.history] == [Status.KEEP] and app.view.pending is None
        await pilot.press("p")
        await until(pilot, lambda: not app.view.paused, what="the resume to be said")
        assert not engine_of(app).paused
        await until(pilot, lambda: app.view.pending is not None, what="the next approval after resuming")
        await pilot.press("a")
        await finish(pilot, app)
        assert statuses(app) == [("baseline", Status.KEEP), ("wider", Status.DISCARD)]

    drive(app, go, size=(120, 40))


def test_note_reaches_the_engine_and_the_journal(repo: Path) -> None:
    app = live_app(repo, WIDER, approve="runs")

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("escape", "n")
        assert isinstance(app.screen, NoteScreen)
        await pilot.press(*"try [bold] smaller", "enter")
        await until(pilot, lambda: engine_of(app).notes == ["try [bold] smaller"], what="the note")
        await pilot.press("n", "x", "escape")  # cancelled: nothing sent
        await pilot.pause(0.2)
        assert engine_of(app).notes == ["try [bold] smaller"]

    drive(app, go, size=(120, 40))
    notes = [e["text"] for e in Journal(repo).events() if e["event"] == "note"]
    assert notes == ["try [bold] smaller"]


def test_policy_change_releases_the_waiting_approval(repo: Path) -> None:
    app = live_app(repo, approve="runs")

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("escape", "P")
        await until(pilot, lambda: app.view.policy == "keeps", what="the new policy to be said")
        assert engine_of(app).policy == policy.next_policy("runs") == "keeps"
        await until(pilot, lambda: app.view.pending is None, what="the withdrawn approval to close")
        await finish(pilot, app)
        assert [e.status for e in app.view.history] == [Status.KEEP]

    drive(app, go, size=(120, 40))


def test_policy_change_closes_the_open_modal(repo: Path) -> None:
    app = live_app(repo, approve="runs")

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        engine_of(app).set_policy("auto")  # as another client or a config reload would
        await until(pilot, lambda: not isinstance(app.screen, ApprovalScreen), what="the modal to close")
        await finish(pilot, app)

    drive(app, go, size=(120, 40))


def test_edit_in_editor_then_approve(repo: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/LR = 0.03/LR = 0.003/' \"$@\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    app = live_app(repo, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.03")}, approve="edits")
    # A headless test terminal cannot hand itself over; the editor runs all the same.
    monkeypatch.setattr(app, "suspend", contextlib.nullcontext)

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        assert app.screen.check_action("edit", ())
        await pilot.press("e")
        await finish(pilot, app)
        tried = app.view.history[1]
        assert tried.agent_data["edited_by_user"] and "+LR = 0.003" in tried.diff

    drive(app, go, size=(120, 40))


def test_quit_during_a_run_stops_it_and_leaves_no_process(repo: Path) -> None:
    app = live_app(repo, {"hypothesis": "slow", "files": {"train.py": SLOW}})

    async def go(pilot: Pilot[Any]) -> None:
        log = app.main.query_one("#log-live", LinesView)
        await until(pilot, lambda: "training" in log.plain_lines, what="training")
        assert training_processes()
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("S")
        await until(pilot, lambda: not app.is_running, timeout=30, what="the app to close")

    drive(app, go, size=(120, 40))
    assert engine_of(app).wait(10) and app.bridge.ended is not None and app.bridge.ended.reason == "stopped by user"
    assert not app.detached and app.return_code == 0
    assert not training_processes()
    assert [e.status for e in engine_of(app).history] == [Status.KEEP, Status.CRASH]
    assert git(repo, "status", "--porcelain") == ""


def test_quit_after_this_run_lets_it_finish(repo: Path) -> None:
    # The run trains until the test lets it go: on a loaded machine a fixed sleep ended before the keys came.
    release = repo.parent / "release"
    held = TOY_TRAIN + (
        "import os, time\nprint('training', flush=True)\ndeadline = time.time() + 30\n"
        f"while not os.path.exists({str(release)!r}) and time.time() < deadline:\n    time.sleep(0.05)\n"
    )
    app = live_app(repo, {"hypothesis": "slow-ish", "files": {"train.py": held}}, WIDER)

    async def go(pilot: Pilot[Any]) -> None:
        log = app.main.query_one("#log-live", LinesView)
        await until(pilot, lambda: "training" in log.plain_lines, what="training")
        await pilot.press("q", "s")
        assert "after this run" in app._state_label()
        release.touch()
        await until(pilot, lambda: not app.is_running, timeout=30, what="the app to close")

    drive(app, go, size=(120, 40))
    assert app.bridge.ended is not None and app.bridge.ended.reason == "stopped after the run, as asked"
    assert [e.hypothesis for e in engine_of(app).history][:2] == ["baseline", "slow-ish"]
    assert [e.status for e in engine_of(app).history[2:]] in ([], [Status.SKIPPED])  # one made meanwhile


def test_quit_during_an_approval_never_hangs(repo: Path) -> None:
    app = live_app(repo, HIGHER_LR, approve="runs")

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("a")
        await until(pilot, lambda: app.view.pending is not None and app.view.pending.experiment.id == "0002")
        request = app.view.pending
        await pilot.press("q")  # from inside the modal: the quit dialog comes over it
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("S")
        await until(pilot, lambda: not app.is_running, timeout=10, what="the app to close")
        assert request is not None and request.future.cancelled()

    drive(app, go, size=(120, 40))
    assert engine_of(app).wait(10) and not training_processes()
    assert [e.status for e in engine_of(app).history] == [Status.KEEP, Status.SKIPPED]
    assert "LR = 0.0001" in (repo / "train.py").read_text()


HOSTILE = (
    "print('[/usr/bin] [bold]x')\n"
    "print('\\x1b[31mred text\\x1b[0m and \\x1b]0;title\\x07plain')\n"
    "print('step 1\\rstep 2\\rstep 3 of 3')\n"
    "import sys\nsys.stdout.write('progress 10%\\rprogress 50%')\nsys.stdout.flush()\n"
)


def test_hostile_log_lines_show_literally(repo: Path) -> None:
    app = live_app(repo, {"hypothesis": "noisy [red]log[/red]", "files": {"train.py": TOY_TRAIN + HOSTILE}})

    async def go(pilot: Pilot[Any]) -> None:
        await finish(pilot, app)
        lines = app.main.query_one("#log-live", LinesView).plain_lines
        assert "[/usr/bin] [bold]x" in lines
        assert "red text and plain" in lines
        assert "step 3 of 3" in lines and not any("step 1" in line for line in lines)
        assert lines[-1] == "progress 50%"
        tree = app.main.query_one(ExperimentTree)
        labels = [str(node.label) for node in [*tree.root.children, *tree.root.children[0].children]]
        assert any("noisy [red]log[/red]" in label for label in labels)
        screen = app.export_screenshot()
        assert "[/usr/bin]&#160;[bold]x" in screen or "[/usr/bin] [bold]x" in screen

    drive(app, go, size=(120, 40))


def test_picking_a_past_experiment_shows_its_diff_and_log_from_disk(repo: Path) -> None:
    app = live_app(repo, HIGHER_LR, WIDER)

    async def go(pilot: Pilot[Any]) -> None:
        await finish(pilot, app)
        tree = app.main.query_one(ExperimentTree)
        tree.focus()
        await pilot.press("home", "down", "enter")  # 0002: higher LR
        assert app.selected is not None and app.selected.hypothesis == "higher LR"
        past = app.main.query_one("#log-past", LinesView)
        await until(pilot, lambda: any(line.startswith("val_bpb:") for line in past.plain_lines), what="the log")
        diff = app.main.query_one("#diff-lines", LinesView).plain_lines
        assert "+LR = 0.003" in diff
        assert app.main.query_one(LogPane).border_subtitle.startswith("0002")
        assert app.check_action("live", ())
        await pilot.press("l")
        assert app.selected is None and app.main.query_one("#log-live").display

    drive(app, go, size=(120, 40))


def test_no_gpu_shows_cpu_ram_and_why(repo: Path) -> None:
    app = live_app(repo)

    async def go(pilot: Pilot[Any]) -> None:
        view = app.main.query_one(GpuView)
        await until(pilot, lambda: len(view.samples) >= 2, what="two monitor samples")
        shown = view.render()
        assert isinstance(shown, Text)
        assert "CPU" in shown.plain and "RAM" in shown.plain and NO_GPU in shown.plain

    drive(app, go, size=(120, 40))


def test_keys_remapped_from_the_config(repo: Path) -> None:
    app = live_app(repo, approve="runs", key_map={"approve": "y"})

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("a")
        assert app.view.pending is not None  # a no longer approves
        await pilot.press("y")
        await finish(pilot, app)
        assert [e.status for e in app.view.history] == [Status.KEEP]

    drive(app, go, size=(120, 40))


def test_theme_key_cycles_our_themes(repo: Path) -> None:
    app = live_app(repo, theme="light")

    async def go(pilot: Pilot[Any]) -> None:
        assert app.theme == "light"
        await pilot.press("t")
        assert app.theme == app.themes.next_after("light") != "light"

    drive(app, go, size=(80, 24))


def test_browse_folds_the_journal_into_the_screen(repo: Path) -> None:
    live = live_app(repo, HIGHER_LR)

    async def run_it(pilot: Pilot[Any]) -> None:
        await finish(pilot, live)

    drive(live, run_it)
    assert engine_of(live).wait(10)
    head = git(repo, "rev-parse", "HEAD")
    bridge = Bridge()
    for event in journal_session(config.load(repo), repo, "tui"):
        bridge(event)
    app = screen(config.load(repo), bridge, None, monitor=Monitor(gpu_reader=FixedGpuReader([], NO_GPU)))

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: len(app.view.history) == 2, what="the history")
        assert app.view.branch == "autoresearch/tui" and app.view.project_name == "repo"
        assert len(app.main.query_one(ExperimentTree).root.children) == 2
        assert app.selected is not None and app.selected.hypothesis == "higher LR"  # the latest, log and all
        for action in ("approve", "kill", "pause", "resume", "note", "policy", "live"):
            assert not app.check_action(action, ())
        assert app._state_label() == "browsing"
        await pilot.press("q")  # nothing to detach from: it closes at once
        await until(pilot, lambda: not app.is_running, what="the app to close")

    drive(app, go, size=(120, 40))
    assert git(repo, "rev-parse", "HEAD") == head and not app.detached
    assert os.path.exists(repo / ".arsup" / "journal.jsonl")


def test_tampering_and_crash_streaks_are_said_as_errors_that_stay(repo: Path) -> None:
    tamper = edit("LR = 0.0001", "LR = 0.003\nopen('prepare.py', 'a').write('# mine now\\n')")
    crashes = [edit("WIDTH = 64", f"WIDTH = {n}\nraise SystemExit(1)") for n in (65, 66)]
    app = live_app(
        repo,
        {"hypothesis": "fake the score", "edits": tamper},
        *({"hypothesis": f"crash {n}", "edits": block} for n, block in enumerate(crashes)),
    )

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.paused, 60, "the pause after three crashes")
        errors = [n for n in app._notifications if n.severity == "error"]  # noqa: SLF001
        assert any("TAMPERING" in n.message and "prepare.py" in n.message for n in errors)
        assert any("3 crashes in a row" in n.message for n in errors)
        assert all(n.timeout >= 600 for n in errors)
        assert app.check_action("resume", ()) and not app.check_action("pause", ())
        await pilot.press("q", "S")
        await finish(pilot, app)

    drive(app, go, size=(120, 40))
    assert (repo / "prepare.py").read_text() == "DATA = 'fixed'\n"


def test_an_imported_autoresearch_log_can_be_browsed(repo: Path) -> None:
    from arsup.core.importing import import_results
    from tests.core.test_importing import MAR8

    import_results(repo, MAR8, tag="mar8")
    bridge = Bridge()
    for event in journal_session(config.load(repo), repo, "mar8"):
        bridge(event)
    app = screen(config.load(repo), bridge, None, monitor=Monitor(gpu_reader=FixedGpuReader([], NO_GPU)))

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: len(app.view.history) == 126, what="the history")
        keeps = app.main.query_one(ExperimentTree).root.children
        assert len(keeps) == 23 and sum(1 + len(k.children) for k in keeps) == 126  # each try under its keep
        assert app.selected is not None and app.selected.hypothesis == "muon momentum warmup 200 to 150 steps"
        await pilot.press("up")  # moving through commits this repo never had is no error
        await pilot.pause()
        assert app._state_label() == "browsing" and app.is_running
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="the app to close")

    drive(app, go, size=(120, 40))
    assert git(repo, "status", "--porcelain") == ""


def test_browsing_a_night_with_a_holdout_shows_it_beside_val_and_warns(tmp_path: Path) -> None:
    from arsup.tui.panes.history import ResultsTable
    from tests.core.test_engine_holdout import HOLDOUT, holdout_night

    root = holdout_night(tmp_path)
    cfg = config.load(root, {"holdout": HOLDOUT})
    bridge = Bridge()
    for event in journal_session(cfg, root, "t1"):
        bridge(event)
    app = screen(cfg, bridge, None, monitor=Monitor(gpu_reader=FixedGpuReader([], NO_GPU)))

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: len(app.view.history) == 4, what="the history")
        keeps = app.main.query_one(ExperimentTree).root.children
        assert "holdout 2.512000" in str(keeps[-1].label) and "1.488000" in str(keeps[-1].label)
        table = app.main.query_one(ResultsTable)
        await show_tab(pilot, app, "tab-table", lambda: table.row_count == 4)
        assert [str(c.label) for c in table.columns.values()][:4] == ["id", "commit", "val_bpb", "holdout"]
        assert str(table.get_row("0004")[3]) == "2.512000"
        shown = [n.message for n in app._notifications]
        assert any("the holdout got worse" in m for m in shown), shown

    drive(app, go, size=(140, 40))
    assert git(root, "status", "--porcelain") == ""
