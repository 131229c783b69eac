"""The supervisor's screen: panes fed by the loop's events, keys that send it controls.

The screen holds no engine. Everything it shows comes from events folded
into the `SessionView`; the events arrive through the bridge as messages,
from a loop in another process (a control client) or, in tests, from an
engine in this one. Keys act through the `Controls` protocol, sent in
order from one thread of their own, so a slow or vanished loop never
freezes the screen; approvals are answered through each question's future.
The screen never starts, stops or waits on a loop: the launcher starts the
feed in `on_ready`, and leaving asks whether to detach (the loop goes on)
or to stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from textual import events
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input

from arsup.config import NotifyConfig
from arsup.core import policy
from arsup.core.controls import Controls
from arsup.core.events import (
    AgentText,
    ApprovalRequested,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    NoteAdded,
    Notice,
    Paused,
    PolicyChanged,
    Proposing,
    QuestionClosed,
    Resumed,
    RunOutput,
    RunStarted,
    SessionEnded,
    SessionStarted,
    StateChanged,
    StopAfterRunAsked,
)
from arsup.core.experiment import Experiment, Status
from arsup.core.monitor import Monitor
from arsup.signals import STOP_SIGNALS, detach_from_terminal
from arsup.tui import alerts, editor, keys
from arsup.tui.bridge import ApprovalClosed, Bridge, LoopEvent, MonitorSampled
from arsup.tui.palette import Palette
from arsup.tui.panes.diff import DiffPane
from arsup.tui.panes.gpu import GpuPane
from arsup.tui.panes.header import HeaderInfo, HeaderPane
from arsup.tui.panes.history import HistoryPane
from arsup.tui.panes.hypothesis import HypothesisPane, live_text, past_text
from arsup.tui.panes.log import LogPane
from arsup.tui.screens import (
    APPROVE,
    DETACH,
    EDIT,
    HIDE,
    SKIP,
    STOP_AFTER_RUN,
    STOP_NOW,
    ApprovalScreen,
    ErrorScreen,
    HelpScreen,
    KillScreen,
    NoteScreen,
    QuitScreen,
)
from arsup.view import HOME_SLOT, SessionView
from arsup.tui.transcript import TranscriptScreen, applies
from arsup.tui.themes import ThemeSet, load_themes

ERROR_NOTICE_S = 600.0  # how long an error notice stays on screen
HANGUP_GRACE_S = 5.0  # after a hang-up, how long the screen may take to close
STOP_WAIT_S = 60.0  # a stop kills the training (SIGTERM, grace, SIGKILL); then the screen closes regardless
SEVERITY = {"info": "information", "warning": "warning", "error": "error"}
REDRAWN_BY = (
    SessionStarted, Proposing, StateChanged, PolicyChanged, Paused, Resumed, ApprovalRequested, QuestionClosed,
    ExperimentStarted, RunStarted, ExperimentFinished, SessionEnded, NoteAdded, StopAfterRunAsked,
)  # the events after which the header, hypothesis, diff and keys are redrawn (not every streamed token)
PANE_TITLES = {"hypothesis": "Hypothesis", "gpu": "GPU", "log": "Log", "diff": "Diff", "history": "History"}


class MainScreen(Screen[None]):
    """The panes; the app keeps it to reach them while a modal screen is on top."""

    def __init__(self, view: SessionView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield HeaderPane(self.view, id="header")
        with Horizontal(id="top"):
            yield HypothesisPane(id="hypothesis")
            yield GpuPane(id="gpu")
        with Horizontal(id="bottom"):
            yield HistoryPane(self.view, id="history")
            with Vertical(id="right"):
                yield LogPane(id="log")
                yield DiffPane(id="diff")
        yield Footer(compact=True)

    class Uncovered(Message):
        """The main screen is on top again: a dialog over it closed."""

    def on_mount(self) -> None:
        for pane_id, title in PANE_TITLES.items():
            self.query_one(f"#{pane_id}").border_title = title

    def on_screen_resume(self) -> None:
        self.post_message(self.Uncovered())


class SupervisorApp(App[int]):
    """One research session on screen: live (a loop to act on) or browse (its history, read-only).

    `controls` is None in browse mode: every key that acts on a loop is off.
    `on_ready` is called once, after the first frame, when the screen takes
    events: the launcher starts the feed there (a client's reader, a test's
    engine). `owns_loop` says the loop runs in this process (tests): a stop
    signal then stops it instead of detaching. `detached` tells the launcher
    the screen closed and the loop goes on.
    """

    CSS_PATH = "app.tcss"
    TITLE = "arsup"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = keys.main_bindings()
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    def __init__(
        self,
        controls: Controls | None,
        bridge: Bridge,
        *,
        on_ready: Callable[[], None] | None = None,
        owns_loop: bool = False,
        monitor: Monitor | None = None,
        clock: Callable[[], float] = time.time,
        theme: str = "",
        key_map: dict[str, str] | None = None,
        themes: ThemeSet | None = None,
        notices: list[str] | None = None,
        notify: NotifyConfig | None = None,
    ) -> None:
        super().__init__()
        self.controls = controls
        self.bridge = bridge
        self.live = controls is not None
        self.on_ready = on_ready
        self.owns_loop = owns_loop
        self.monitor = monitor
        self.clock = clock
        self.key_map = dict(key_map or {})
        self.themes = themes or load_themes()
        self.requested_theme = theme
        self.notices = list(notices or [])
        self.notify_settings = notify or NotifyConfig()
        self.view = SessionView()
        self.palette = Palette.from_variables({})
        self.started_at = clock()
        self.ended_at = 0.0  # when the loop's end reached the screen: the clock and the duty stop there
        self.selected: Experiment | None = None  # a past experiment shown instead of the live one
        self.stopping = ""  # "", "now" or "after this run"
        self.detached = False  # the screen closed and left the loop running
        self.signalled = 0  # the stop signal that closed the screen, if one did
        self._approval: ApprovalScreen | None = None
        self._hidden: ApprovalRequested | None = None  # the question the person put aside with esc
        # One thread sends every control, in the order of the keys: a loop in another process
        # answers over a socket, and a kill may take the run's grace period.
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="arsup-controls")
        self.main = MainScreen(self.view)

    # -- layout --------------------------------------------------------------------

    async def on_mount(self) -> None:
        await self.push_screen(self.main)
        for theme in self.themes.themes:
            self.register_theme(theme)
        for problem in self.themes.problems:
            self.notices.append(f"theme: {problem}")
        chosen, why = self.themes.choose(self.requested_theme, list(self.available_themes))
        if why:
            self.notices.append(why)
        self.theme = chosen
        self.theme_changed_signal.subscribe(self, lambda _theme: self._restyle())
        self.set_keymap(self.key_map)
        self._restyle()
        for notice in self.notices:
            self.notify(notice, severity="warning", markup=False, timeout=8)
        self.main.set_interval(1.0, self._tick)  # the main screen's timer: it stops when the screen closes
        loop = asyncio.get_running_loop()
        for number in STOP_SIGNALS:
            loop.add_signal_handler(number, self._on_stop_signal, number)
        if self.monitor is not None:
            self.monitor.on_sample = self.bridge.sampled
            self.monitor.start()
        self.call_after_refresh(self._take_events)

    def _take_events(self) -> None:
        """After the first frame: take the events (those held first), then let the feed start."""
        self.main.query_one(HistoryPane).experiment_tree.focus()
        self._show_live()
        self.bridge.attach(self.main)  # messages bubble up to the app; none reach a closed screen
        if self.on_ready is not None:
            self.on_ready()

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)
        self.bridge.detach()
        if self.monitor is not None:
            self.monitor.stop()
        self._sender.shutdown(wait=False)

    # -- events --------------------------------------------------------------------

    def on_loop_event(self, message: LoopEvent) -> None:
        try:
            self._apply(message.event, message.replayed)
        except Exception:  # a display bug must not take the research down: show it, keep going
            self._show_error("The screen failed to show an event", traceback.format_exc(limit=6))

    def _apply(self, event: Event, replayed: bool) -> None:
        """Fold the event into the view, then redraw what it changed; alert only for what is new."""
        ended_before = self.view.ended is not None
        self.view.apply(event)
        log = self.main.query_one(LogPane)
        match event:
            case SessionStarted():
                self._started()
            case RunOutput() if event.experiment_id == log.live_id:
                log.live_output(event.lines, event.partial)
            case AgentText():
                self._refresh_panes()
            case ApprovalRequested():
                if not replayed:
                    self._alert(alerts.question_words(self.view.project_name, event))
                self._offer(event)
            case QuestionClosed() if self._approval is not None:
                if self._approval.request.question_id == event.question_id:
                    self._close_approval(self._approval.request)
            case ExperimentStarted():
                log.start_live(event.experiment.id)
            case RunStarted() if event.index > 1:
                log.live_note(f"── run {event.index} (seed {event.seed}) ──")
            case ExperimentFinished():
                self.main.query_one(HistoryPane).finished(event.experiment)
                done = event.experiment
                if not replayed and done.status == Status.KEEP and not done.is_baseline:
                    self._alert(alerts.new_best_words(self.view.project_name, self.view.metric, done))
            case Notice():
                severity = SEVERITY.get(event.level, "information")
                # An error (tampering, crashes in a row) stays until read; the rest fade.
                timeout = ERROR_NOTICE_S if event.level == "error" else self.NOTIFICATION_TIMEOUT
                self.notify(event.text, severity=severity, markup=False, timeout=timeout)  # type: ignore[arg-type]
            case SessionEnded() if not ended_before:
                self.ended_at = self.clock()
                self._ended(event)
        if isinstance(event, REDRAWN_BY):
            self._refresh_live()
            self.refresh_bindings()

    def _started(self) -> None:
        """The session as it stands (a new loop, a resumed tag, an attach, the journal): its history at once."""
        self.main.query_one(HistoryPane).rebuild()
        if not self.live and self.view.history:  # browsing: nothing is live, so show the latest experiment
            self._show_past(self.view.history[-1])

    def _ended(self, event: SessionEnded) -> None:
        if self.stopping:
            self._close()
        elif event.error:
            self._show_error("The loop ended", event.reason)

    def on_monitor_sampled(self, message: MonitorSampled) -> None:
        # A sample may arrive while the main screen is still composing or already closing.
        for pane in self.main.query(GpuPane):
            pane.add(message.sample)

    def _tick(self) -> None:
        """Once a second: the clock, the training's progress."""
        self._refresh_header()
        if self.view.training:
            self.main.query_one(HistoryPane).running(self._in_flight())

    # -- alerts --------------------------------------------------------------------

    def _alert(self, words: str) -> None:
        """Reach a person who looks elsewhere: the bell, and a desktop notification through the terminal."""
        if self.notify_settings.bell:
            self.bell()
        if self.notify_settings.desktop:
            self.write_to_terminal(alerts.desktop_notification(words))

    def write_to_terminal(self, data: str) -> None:
        """Bytes for the terminal itself, the way Textual's own `bell` sends its BEL; headless has none."""
        if not self.is_headless and self._driver is not None:
            self._driver.write(data)

    # -- drawing -------------------------------------------------------------------

    def _restyle(self) -> None:
        self.palette = Palette.from_variables(self.theme_variables)
        self.main.query_one(GpuPane).restyle(self.palette)
        self.main.query_one(DiffPane).restyle(self.palette)
        self.main.query_one(HistoryPane).restyle(self.palette)
        self._refresh_live()

    def _state_label(self) -> str:
        if not self.live:
            return "browsing"
        if self.stopping and self.view.ended is None:
            return f"stopping {self.stopping}" if self.stopping == "after this run" else "stopping…"
        return self.view.state_label(self.clock())

    def _in_flight(self) -> list[tuple[Experiment, str]]:
        """The experiments in flight with what their row says: the loop's state, or with slots each one's progress."""
        training = self.view.training
        if len(training) <= 1:
            return [(experiment, self._state_label()) for experiment in training]
        now = self.clock()
        return [(experiment, f"training {round(self.view.progress_of(experiment, now) * 100)}%") for experiment in training]

    def _refresh_header(self) -> None:
        since = self.view.started_at or self.started_at  # the loop's start; the screen's own when unknown
        now = self.ended_at or self.clock()
        duty = self.view.duty_cycles(now) if self.live else None
        info = HeaderInfo(state=self._state_label(), elapsed_s=now - since, duty=duty)
        self.main.query_one(HeaderPane).show(info, self.palette)

    def _current(self) -> Experiment | None:
        """The experiment the live panes are about: asked about, training, or the last one."""
        view = self.view
        if view.pending is not None:
            return view.pending.experiment
        return view.running or (view.history[-1] if view.history else None)

    def _in_view(self) -> Experiment | None:
        """The experiment the panes show: the past one picked in the history, else the live one."""
        return self.selected or self._current()

    def _refresh_live(self) -> None:
        self._refresh_header()
        self.main.query_one(HistoryPane).running(self._in_flight())
        busy = sorted(self.view.slots.items())
        if any(name != HOME_SLOT for name, _ in busy):  # with slots: which one trains what
            self.main.query_one(GpuPane).border_subtitle = "  ".join(f"{name} {e.id}" for name, e in busy)
        self._refresh_panes()

    def _refresh_panes(self) -> None:
        """The hypothesis and the diff of the live experiment, unless a past one is in view."""
        if self.selected is not None:
            return
        view = self.view
        in_flight = view.pending.experiment if view.pending is not None else view.running
        streaming = in_flight is None and bool(view.agent_text)
        subtitle = in_flight.id if in_flight is not None else view.proposing_id if streaming else ""
        self.main.query_one(HypothesisPane).show(live_text(view, self.palette), subtitle, follow=streaming)
        current = self._current()
        diff = self.main.query_one(DiffPane)
        if diff.experiment is not current:
            diff.show(current)

    def _show_live(self) -> None:
        self.selected = None
        self.main.query_one(DiffPane).show(None)
        self.main.query_one(LogPane).show_live()
        self._refresh_live()
        self.refresh_bindings()

    def on_history_pane_picked(self, message: HistoryPane.Picked) -> None:
        if self.view.running is not None and message.experiment.id == self.view.running.id:
            self._show_live()
        else:
            self._show_past(message.experiment)

    def _show_past(self, experiment: Experiment) -> None:
        self.selected = experiment
        self.main.query_one(HypothesisPane).show(past_text(experiment, self.view, self.palette), experiment.id)
        self.main.query_one(DiffPane).show(experiment)
        self.main.query_one(LogPane).show_past(experiment)
        self.refresh_bindings()

    def _show_error(self, title: str, message: str) -> None:
        self.push_screen(ErrorScreen(title, message))

    # -- approvals -----------------------------------------------------------------

    def _offer(self, request: ApprovalRequested) -> None:
        """Show the question in its dialog, unless another dialog is open (it comes when that one closes)."""
        if self.screen is self.main and not request.future.done():
            best = self.view.best.metric if self.view.best else None
            self._approval = ApprovalScreen(request, self.palette, best, self.key_map)
            self.push_screen(self._approval, lambda choice: self._approval_chosen(request, choice))

    def on_main_screen_uncovered(self, message: MainScreen.Uncovered) -> None:
        pending = self.view.pending
        if pending is not None and pending is not self._hidden and self._approval is None:
            self._offer(pending)

    def _approval_chosen(self, request: ApprovalRequested, choice: str | None) -> None:
        self._approval = None
        if choice == HIDE:
            self._hidden = request
        elif choice == APPROVE:
            self._answer(request, policy.Answer(True))
        elif choice == SKIP:
            self._answer(request, policy.Answer(False))
        elif choice == EDIT:
            self._edit(request)

    def _answer(self, request: ApprovalRequested, reply: policy.Answer) -> None:
        """Through the question's future: the loop's own (in-process), or one whose result a client sends."""
        if not policy.settle(request.future, reply):
            self.notify("that question was already withdrawn", severity="warning")
        self.view.approval_closed(request)
        self._refresh_live()
        self.refresh_bindings()

    def _edit(self, request: ApprovalRequested) -> None:
        """Run $EDITOR on the proposed files in the foreground, then approve what was saved."""
        try:
            with self.suspend():
                edited = editor.edit_files(request.files)
        except SuspendNotSupported:
            self.notify("this terminal cannot hand over to an editor", severity="error")
            return
        except (OSError, RuntimeError) as exc:
            self.notify(f"editing failed, nothing approved: {exc}", severity="error", markup=False)
            return
        self._answer(request, policy.Answer(True, files=edited))

    def on_approval_closed(self, message: ApprovalClosed) -> None:
        self._close_approval(message.request)

    def _close_approval(self, request: ApprovalRequested) -> None:
        """The question is closed (answered here or by another client, or withdrawn): its dialog goes."""
        self.view.approval_closed(request)
        if self._approval is not None and self._approval.request is request and self.screen is self._approval:
            self._approval.dismiss(None)
        self._refresh_live()
        self.refresh_bindings()

    # -- keys ----------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """esc then a key typed quickly arrives as alt+key: split it again (the key after the esc took effect)."""
        typed = keys.after_escape(event.key, event.character) if isinstance(event, events.Key) else None
        if typed is None or isinstance(self.focused, Input) or event.is_forwarded:
            await super().on_event(event)
            return
        await super().on_event(events.Key("escape", "\x1b"))
        self.call_after_refresh(self.post_message, events.Key(typed, event.character))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys that apply now are live (and shown in the footer)."""
        running = self.live and self.view.ended is None and not self.stopping
        pending = self.view.pending
        if action in (APPROVE, SKIP):
            return pending is not None
        if action == EDIT:
            return pending is not None and pending.kind == policy.EDIT and bool(pending.files)
        if action == "kill":
            return running and self.view.running is not None
        if action == "pause":
            return running and not self.view.paused
        if action == "resume":
            return running and self.view.paused
        if action in ("note", "policy"):
            return running
        if action == "live":
            return self.live and self.selected is not None
        if action == "transcript":
            return (experiment := self._in_view()) is not None and applies(experiment, self.view.agent)
        return True

    def _control(self, what: str, act: Callable[[Controls], object]) -> None:
        """Send a control from the sender thread; a refusal or a lost loop becomes a notice."""
        controls = self.controls
        if controls is not None:
            self._sender.submit(self._send, what, lambda: act(controls))

    def _send(self, what: str, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:  # refused (an unknown policy) or the loop is gone: say it, keep the screen
            with contextlib.suppress(RuntimeError):  # the screen closed meanwhile
                self.notify(f"{what}: {exc}", severity="error", markup=False)

    def action_approve(self) -> None:
        if self.view.pending is not None:
            self._answer(self.view.pending, policy.Answer(True))

    def action_skip(self) -> None:
        if self.view.pending is not None:
            self._answer(self.view.pending, policy.Answer(False))

    def action_edit(self) -> None:
        if self.view.pending is not None:
            self._edit(self.view.pending)

    def action_kill(self) -> None:
        """Asks first (y kills): one key pressed by accident must not cost a run, or with the baseline the night."""
        running = self.view.running
        if running is not None:
            self.push_screen(KillScreen(running), lambda kill: self._kill_chosen(running, bool(kill)))

    def _kill_chosen(self, experiment: Experiment, kill: bool) -> None:
        running = self.view.running
        if not kill or running is None or running.id != experiment.id:  # declined, or that training ended meanwhile
            return
        self.notify(f"killing the training of {experiment.id}", markup=False)
        self._control("kill", lambda controls: controls.kill())

    def action_pause(self) -> None:
        self._control("pause", lambda controls: controls.pause())

    def action_resume(self) -> None:
        self._control("resume", lambda controls: controls.resume())

    def action_note(self) -> None:
        def send(note: str | None) -> None:
            if note:
                self._control("note", lambda controls: controls.add_note(note))

        self.push_screen(NoteScreen(), send)

    def action_policy(self) -> None:
        name = policy.next_policy(self.view.policy)
        self._control(f"policy {name}", lambda controls: controls.set_policy(name))

    def action_theme(self) -> None:
        self.theme = self.themes.next_after(self.theme)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_map, self.view.policy))

    def action_live(self) -> None:
        self._show_live()

    def action_filter(self) -> None:
        self.main.query_one(HistoryPane).start_filter()

    def action_transcript(self) -> None:
        experiment = self._in_view()
        if experiment is not None:
            self.push_screen(TranscriptScreen(experiment, self.view.project, self.palette))

    # -- leaving -------------------------------------------------------------------

    def action_quit(self) -> None:  # type: ignore[override]
        """q (and ctrl+q): at once when no loop is live; else ask: detach, stop after this run, stop now."""
        if not self.live or self.view.ended is not None:
            self._close()
        elif self.stopping != "now":
            self.push_screen(QuitScreen(training=self.view.running is not None), self._quit_chosen)

    def _quit_chosen(self, choice: str | None) -> None:
        if not choice:
            return
        if self.view.ended is not None:  # the loop ended while the dialog was open
            self._close()
        elif choice == DETACH:
            self._leave_running()
        elif choice == STOP_AFTER_RUN:
            self.stopping = "after this run"
            self._control("stop after this run", lambda controls: controls.stop_after_run())
            self._refresh_header()
            self.refresh_bindings()
        elif choice == STOP_NOW:
            self._stop_now()

    def _leave_running(self) -> None:
        """Close the screen and leave the loop running (`arsup attach` comes back to it)."""
        self.detached = True
        self._close()

    def _stop_now(self) -> None:
        """Stop the loop, then close when it says it ended, or after STOP_WAIT_S whatever happened."""
        self.stopping = "now"
        self._control("stop", lambda controls: controls.stop())
        self.set_timer(STOP_WAIT_S, self._close)
        self._refresh_header()
        self.refresh_bindings()

    def _on_stop_signal(self, number: int) -> None:
        """SIGTERM, or SIGHUP when the terminal went away: a detach, without asking.

        The loop is another process and goes on; only a screen that owns its
        loop (in this process: tests) stops it, as "stop now" would. After a
        hang-up the terminal answers writes with EIO, on which Textual's
        writer thread dies and the screen's shutdown then blocks for ever; so
        the standard streams go to /dev/null first, and a last guard ends the
        process should Textual still hang.
        """
        self.signalled = number
        if number == signal.SIGHUP:
            detach_from_terminal()
            threading.Thread(target=self._exit_when_recorded, args=(number,), daemon=True).start()
        if not self.live or self.view.ended is not None:
            self._close()
        elif not self.owns_loop:
            self._leave_running()
        elif self.stopping != "now":
            self._stop_now()

    def _exit_when_recorded(self, number: int) -> None:
        """The guard: a loop of another process has nothing to wait for; one owned here records its end first."""
        if self.owns_loop and self.live:
            self.bridge.wait_ended(STOP_WAIT_S)
        time.sleep(HANGUP_GRACE_S)
        os._exit(128 + number)  # still here: the screen's shutdown hangs on the lost terminal

    def _close(self) -> None:
        """Exit; first cut the feeds, so no event arrives for panes that are being torn down."""
        self.bridge.detach()
        if self.monitor is not None:
            self.monitor.stop()
        self.exit(return_code=self._exit_code())

    def _exit_code(self) -> int:
        ended = self.view.ended
        if ended is None or not ended.error:
            return 0
        return 2 if ended.state_folder else 1  # as headless: 2 for arsup's own files or their disk
