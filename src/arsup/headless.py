"""Headless mode: the engine with a plain-text printer and Ctrl-C handling.

One line per experiment, meant for logs, nohup and CI. Ctrl-C, SIGTERM (a
`kill`, a scheduler) and SIGHUP (the SSH session dropped) all ask the engine to
stop (the training is killed and recorded); the process exits once the
journal, results.tsv and the work tree agree, with 128 + the signal's number.
"""

from __future__ import annotations

import signal
import sys
from typing import TextIO

from arsup.core.loop import STOPPED_BY_USER, Engine
from arsup.core.events import (
    ApprovalRequested,
    Event,
    ExperimentFinished,
    Notice,
    Paused,
    PolicyChanged,
    Resumed,
    SessionEnded,
    SessionStarted,
)
from arsup.core.experiment import Experiment, Status
from arsup.core import load
from arsup.core.agents import roster
from arsup.core.agents.external import ExternalAgent
from arsup.core.mlflow_export import LiveExport, tracking_uri
from arsup.core.notify import CommandNotifier
from arsup.core.service import ControlServer
from arsup.output import locations, say, waiting_line
from arsup.view import SessionView
from arsup.signals import STOP_SIGNALS, Signalled, stop_signals

EXPORT_WAIT_S = 30  # at the end, how long the last experiments may take to reach the tracker (Ctrl-C cuts it short)


def _format_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def experiment_line(experiment: Experiment, best: Experiment | None, metric: str, by_agent: bool = False) -> str:
    """One finished experiment; `by_agent` on a night of several agents names the one that made it."""
    shown = experiment.metric if experiment.status != Status.CRASH else None
    hypothesis = " ".join(experiment.hypothesis.split())
    if by_agent and not experiment.is_baseline:
        hypothesis = f"({experiment.agent}) {hypothesis}"
    line = (
        f"{experiment.id}  {experiment.status:<7}  {metric} {_format_metric(shown):>10}"
        f"  best {_format_metric(best.metric if best else None):>10}  {hypothesis}"
    )
    if experiment.p_value is not None:
        sigmas = f", {experiment.gain_sigma:+.1f} sigma" if experiment.gain_sigma is not None else ""
        line += f"  (p {experiment.p_value:.3g}{sigmas}, {len(experiment.runs)} runs)"
    if experiment.holdout is not None:
        line += f"  holdout {experiment.holdout:.6f}"
    if experiment.status in (Status.CRASH, Status.INVALID, Status.SKIPPED):
        line += f"  [{' '.join(experiment.reason.split())[:200]}]"
    elif experiment.status == Status.DISCARD and experiment.p_value is not None:
        # It passed the screen (its mean was better): why the test let it go, after the reason's figures.
        line += f"  [{' '.join(experiment.reason.split(': ', 1)[-1].split())[:200]}]"
    if capped := load.note(experiment):
        line += f"  [{capped}]"
    return line


class Printer:
    """Turns engine events into lines; called from the engine thread. Reads only the events (folded in `view`)."""

    def __init__(self, out: TextIO = sys.stdout, how_to_stop: str = "Ctrl-C stops") -> None:
        self.out = out
        self.how_to_stop = how_to_stop
        self.view = SessionView()

    @property
    def ended(self) -> SessionEnded | None:
        return self.view.ended

    def __call__(self, event: Event) -> None:
        self.view.apply(event)
        match event:
            case SessionStarted():
                resumed = f", resuming after {event.resumed} experiments" if event.resumed else ""
                self._say(f"arsup: branch {event.branch} at {event.head[:7]}{resumed}; {self.how_to_stop}")
            case ExperimentFinished():
                several = roster.SEPARATOR in self.view.agent  # a roster of agents takes turns
                self._say(experiment_line(event.experiment, event.best, self.view.metric, by_agent=several))
            case ApprovalRequested():
                self._say(f"arsup: {waiting_line(event)}")
            case Notice():
                self._say(f"arsup: {'error: ' if event.level == 'error' else ''}{event.text}")
            case Paused():
                self._say("arsup: pausing after the current step")
            case Resumed():
                self._say("arsup: resumed")
            case PolicyChanged():
                self._say(f"arsup: policy: {event.policy}")
            case SessionEnded():
                self._say(f"arsup: {'error: ' if event.error else ''}{event.reason}")

    def closing_lines(self) -> list[str]:
        """The best so far and the LLM's spend, said when the loop ends."""
        lines = []
        best = self.view.best
        if best is not None and best.metric is not None:
            lines.append(f"arsup: best {self.view.metric} {best.metric:.6f} at {best.commit[:7]} ({best.id})")
        spend = self.view.spend()
        if spend["calls"]:
            tokens = int(spend["prompt_tokens"] + spend["completion_tokens"])
            lines.append(f"arsup: LLM spend {int(spend['calls'])} calls, {tokens} tokens, ${spend['cost_usd']:.4f}")
        return lines

    def _say(self, line: str) -> None:
        say(line, self.out)


def _close_export(exporter: LiveExport, out: TextIO) -> None:
    """The experiments still on their way to MLflow get EXPORT_WAIT_S, and the person is told what is waited
    for; Ctrl-C gives up the wait. Whatever did not get through is said with the command that sends it."""
    uri = exporter.exporter.uri
    try:  # the line too: a Ctrl-C the instant it is out (before the wait began) still gives up the wait
        if exporter.pending:
            say(f"arsup: waiting up to {EXPORT_WAIT_S} s for the MLflow server at {uri} "
                f"({exporter.pending} experiments to send; Ctrl-C gives up)", out)
        unsent = exporter.close(EXPORT_WAIT_S)
    except KeyboardInterrupt:
        unsent = exporter.unsent
    if unsent:
        say(f"arsup: {unsent} experiments did not reach the MLflow server at {uri}; "
            f"`arsup export mlflow --uri {uri}` sends them", out)


def run_headless(engine: Engine, out: TextIO = sys.stdout, detached: bool = False) -> int:
    """Prepare and run to the end: 0 when the loop ended normally, 1 on an error, 2 on one with arsup's own
    files or their disk (a full disk), 128+N after signal N.

    `detached`: the loop runs in the background for attached screens (see
    background.py): it has no terminal to lose, so SIGHUP is ignored.
    GitError from preparing the repo propagates, for the CLI to report."""
    if detached:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        engine.interactive = True  # screens come and go: a crash streak pauses and waits for one
    tracker = engine.config.export
    exporter = None  # made first: a missing MLflow is said before anything starts
    if tracker.mlflow:
        exporter = LiveExport(tracking_uri(engine.root, tracker.mlflow_uri), engine.config.metric.name, engine.say)
    printer = Printer(out, "`arsup stop` stops, `arsup attach` watches" if detached else "Ctrl-C stops")
    external = engine.agent if isinstance(engine.agent, ExternalAgent) else None  # proposals from clients
    server = ControlServer(engine, engine.root, external)  # `arsup status`, `arsup approve`... while it runs
    engine.subscribe(printer)
    engine.subscribe(server)
    if external is not None:
        engine.subscribe(external)  # an offer learns its id from the loop's events
    hook = engine.config.notify
    notifier = CommandNotifier(hook.command, engine.root, hook.timeout, engine.say) if hook.command else None
    for helper in (notifier, exporter):
        if helper is not None:
            engine.subscribe(helper)
    engine.prepare()
    server.start()
    engine.start()
    stopped_by = 0
    with stop_signals(hangup=not detached):
        while True:
            try:
                if engine.wait(0.2):
                    break
            except KeyboardInterrupt as exc:
                number = exc.number if isinstance(exc, Signalled) else signal.SIGINT
                stopped_by = stopped_by or number
                say("\narsup: stopping: killing the training and recording it...", out)
                engine.stop(STOP_SIGNALS.get(number, STOPPED_BY_USER))
    for line in printer.closing_lines():
        say(line, out)
    say(locations(engine.root), out)
    server.stop()
    if notifier is not None:
        notifier.wait(hook.timeout)
    if exporter is not None:
        _close_export(exporter, out)
    if printer.ended is None or printer.ended.error:
        return 2 if printer.ended is not None and printer.ended.state_folder else 1
    return 128 + stopped_by if stopped_by else 0
