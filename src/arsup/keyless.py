"""Keyless mode: a person's own agent session (Claude Code, Codex) is the researcher; arsup keeps the rules.

`arsup mcp` serves the tools of this module's `Keyless` to that session
(`mcp_server.py` is the protocol; this is what the tools do). A Keyless
attaches to the repo's loop over the control socket, starting one in the
background with `[agent] kind = "external"` if none runs, and folds the
loop's events into a `SessionView`, as every front end does. Invariants:

* The agent edits a working copy outside the project (no .git, no .arsup:
  the journal holds holdout values) exported from the best commit; its
  changes are the proposal, and the loop's checks decide, as for any agent.
* What the agent is told comes from the view and the config, holdout
  scores left out (`Experiment.for_agent`).
* A change made on an older best is carried onto the current one hunk by
  hunk (`editing.carry_over`), as the loop carries its own queued ones: a
  whole file from an old best would undo what was kept meanwhile.
* A refused or accepted proposal resets the working copy to the best, and
  so does a verdict when the copy holds no edit yet; each reply says so.
* Every failure is `KeylessError`, one sentence; the tools never raise
  anything else (the MCP layer turns it into a tool error).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from pathlib import Path

from arsup import config
from arsup.background import LoopFailed, ensure_loop
from arsup.core import acceptance
from arsup.core.agents.base import AgentContext
from arsup.core.agents.edits import EditError
from arsup.core.agents.external import ACCEPT_S, KIND, SETTLE_S
from arsup.core.agents.lab import history_text
from arsup.core.agents.prompt import history_table, keep_rule
from arsup.core.agents.scratch import Scratch
from arsup.core.editing import carry_over
from arsup.core.events import Event, SessionStarted
from arsup.core.experiment import Experiment, Status
from arsup.core.journal import STATE_DIR
from arsup.core.service import ControlClient, ControlRefused, LoopNotRunning
from arsup.core.vcs import GitError, Vcs
from arsup.remote import status_lines
from arsup.view import SessionView

WAIT_MAX_S = 600.0  # one wait call at most (an MCP client's own timeout is often shorter: call wait again)
TAIL_MAX = 2000  # lines of a log one call returns at most
CRASH_TAIL_LINES = 30
_ID = re.compile(r"\d{1,9}")


class KeylessError(Exception):
    """What went wrong, in one sentence for the agent."""


def default_work(root: Path) -> Path:
    """The working copy's folder: outside the project, the same for the same project (a CLI keeps its sessions
    per folder), one per user."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"arsup-{os.getuid()}-keyless-{digest}" / root.resolve().name


class Keyless:
    def __init__(self, root: Path, work: Path | None = None) -> None:
        self.root = root.resolve()
        try:
            self.config = config.load(self.root)
        except config.ConfigError as exc:
            raise KeylessError(f"{exc}") from None
        self.work = (work or default_work(self.root)).resolve()
        if self.work == self.root or self.root in self.work.parents:
            raise KeylessError(f"the working copy {self.work} must be outside the project {self.root}")
        self.scratch = Scratch(self.work)
        self.view = SessionView()
        self.base = ""  # the commit the working copy was exported from
        self.head = ""  # the branch's head when the session started: the baseline's code, the best until judged
        self._cond = threading.Condition()
        self._lock = threading.Lock()  # one tool at a time touches git and the working copy
        self._opening = threading.Lock()  # tools called at once attach once
        self._client: ControlClient | None = None
        self._vcs: Vcs | None = None

    # -- attaching -----------------------------------------------------------------------

    def open(self) -> str:
        """Attach to the loop here, starting one with the external agent if none runs; a line saying which."""
        try:
            pid, started = ensure_loop(self.root, ["--agent", KIND])
        except LoopFailed as exc:
            raise KeylessError(f"the loop did not start: {' '.join(str(exc).split())}") from None
        client = ControlClient(self.root, self._on_event, timeout=10.0)
        try:
            snapshot = client.connect()
        except LoopNotRunning as exc:
            raise KeylessError(str(exc)) from None
        with self._cond:
            for event in snapshot:
                self._fold(event)
        client.start()
        self._client = client
        said = f"{'started' if started else 'attached to'} the loop (pid {pid})"
        if self.view.agent and self.view.agent != KIND:
            said += (f"; its agent is {self.view.agent}, so it makes its own proposals and refuses yours "
                     f"(stop it with `arsup stop`, then start again)")
        return said

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._vcs is not None:
            self._vcs.close()

    def _on_event(self, event: Event) -> None:
        with self._cond:
            self._fold(event)
            self._cond.notify_all()

    def _fold(self, event: Event) -> None:
        self.view.apply(event)
        if isinstance(event, SessionStarted):
            self.head = event.head

    def _attached(self) -> ControlClient:
        """The connection, opened on first use; KeylessError once the loop has ended."""
        with self._opening:
            if self._client is None:
                self.open()
        if self.view.ended is not None:
            raise KeylessError(f"the loop has ended ({self.view.ended.reason}); the night is over")
        assert self._client is not None
        return self._client

    # -- the tools ---------------------------------------------------------------------

    def brief(self) -> str:
        """Everything the agent needs to make its next experiment."""
        with self._lock:
            self._attached()
            self._ensure_copy()
            project = self.config.project
            with self._cond:
                context = self._context()
            instructions = self.root / project.instructions
            text = instructions.read_text(encoding="utf-8", errors="replace") if instructions.is_file() else ""
            direction = "lower" if context.goal == "minimize" else "higher"
            lines = [
                "# arsup research brief",
                "",
                f"Working copy (edit the files here, nowhere else): {self.work}",
                f"It holds the best commit {self.base[:7]}; `propose` turns what you changed there into the next "
                "experiment, after the checks every proposal gets.",
                f"Editable files: {', '.join(project.editable)}",
                f"Protected files (a proposal that changes one is refused): {', '.join(project.protected) or '(none)'}",
                f"Metric: {context.metric} ({direction} is better); each run trains {context.time_budget:g} s. "
                "arsup owns the seed (ARSUP_SEED), the runs and git: do not train, commit or change a seed.",
                "",
                "## Research instructions",
                "",
                text.strip() or "(none)",
                "",
                "## Notes from the person supervising you",
                "",
                *([f"- {note}" for note in context.notes] or ["(none)"]),
                "",
                history_text(context).rstrip(),
                f"Now: {self._doing()}.",
                "",
                "## How to work",
                "",
                "Edit the working copy, then call propose(hypothesis). While it trains you may prepare and propose "
                "the next one; call wait(id) for a verdict, history() for the table, log(id) for a run's log. "
                "Keep going until arsup says the night is over.",
            ]
            return "\n".join(lines) + "\n"

    def propose(self, hypothesis: str) -> str:
        """The working copy's change as the next experiment: its id and place, or the refusal."""
        hypothesis = " ".join(hypothesis.split())
        if not hypothesis:
            raise KeylessError("say the hypothesis: what you changed and why it should help")
        with self._lock:
            client = self._attached()
            self._ensure_copy()
            changes = self.scratch.changes()
            if not changes.files and not changes.problems:
                raise KeylessError(f"the working copy {self.work} holds no change yet: edit an editable file first")
            refusal = changes.refusal()
            files: dict[str, str] = {}
            if not refusal:
                try:
                    files = self._carried(changes.files)
                except EditError as exc:
                    refusal = f"{exc} (your change was made on {self.base[:7]}, and the best moved on)"
            if refusal:
                return f"refused: {refusal.rstrip('.')}. {self._reset()}"
            try:
                reply = client.propose(hypothesis, files, timeout=client.timeout + ACCEPT_S + SETTLE_S)
            except ControlRefused as exc:
                raise KeylessError(str(exc)) from None
            if reply["busy"]:
                raise KeylessError(f"the loop takes no proposal now ({self._doing()}); your working copy is kept: "
                                   "call wait on the experiment in flight, then propose again")
            if reply["refused"]:
                where = f" (recorded as {reply['experiment']})" if reply["experiment"] else ""
                return f"refused{where}: {reply['refused'].rstrip('.')}. {self._reset()}"
            ident = reply["experiment"]
            with self._cond:
                ahead = [e.id for e in self.view.queued].index(ident) if ident in [e.id for e in self.view.queued] \
                    else 0
                training = [e.id for e in self.view.training]
            place = (f"{ahead} queued ahead of it" if ahead else "next in the queue") + \
                (f", {', '.join(training)} training" if training else "")
            return f"accepted as {ident}: {place}. Call wait('{ident}') for its verdict. {self._reset()}"

    def wait(self, ident: str, timeout_s: float = 60.0) -> str:
        """The verdict of `ident` once judged, or where it stands after `timeout_s`."""
        ident = self._known(ident)
        deadline = time.monotonic() + min(max(0.0, timeout_s), WAIT_MAX_S)
        with self._cond:
            while (done := self._finished(ident)) is None and self.view.ended is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._where(ident)
                self._cond.wait(min(left, 1.0))
        if done is None:
            assert self.view.ended is not None
            raise KeylessError(f"the loop ended before {ident} was judged ({self.view.ended.reason})")
        with self._lock:
            return self._verdict(done) + self._after_verdict()

    def history(self, last: int = 20) -> str:
        """The last experiments as a table, with the keep rule in numbers."""
        self._attached()
        with self._cond:
            context = self._context()
        history = context.history
        shown = history[-max(1, last):]
        return "\n".join([f"{len(history)} experiments; the last {len(shown)}:", keep_rule(context.noise, context.rule),
                          "", *history_table(shown, history, context.metric)]) + "\n"

    def log(self, ident: str, tail: int = 50) -> str:
        ident = self._known(ident)
        path = self.root / STATE_DIR / "runs" / ident / "run.log"
        if not path.is_file():
            raise KeylessError(f"{ident} has no run log yet (it has not started training)")
        lines = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
        count = min(max(1, tail), TAIL_MAX)
        return f"the last {min(count, len(lines))} of {len(lines)} lines of {ident}'s log:\n" + \
            "\n".join(lines[-count:]) + "\n"

    def status(self) -> str:
        client = self._attached()
        with self._cond:
            lines = status_lines(self.view, client.loop_pid)
            lines.append(f"working copy: {self.work} (at {self.base[:7] or 'not exported yet'})")
        return "\n".join(lines) + "\n"

    # -- helpers -------------------------------------------------------------------------

    def _context(self) -> AgentContext:
        """The view as an agent's context, holdout scores left out (call with the condition held)."""
        view = self.view
        return AgentContext(
            instructions="", files={}, history=[e.for_agent() for e in view.history], metric=view.metric,
            goal=view.goal, time_budget=view.time_budget or self.config.project.time_budget,
            best=view.best.for_agent() if view.best is not None else None,
            noise=acceptance.noise(view.history, view.metric),
            rule=acceptance.Rule.from_config(self.config.acceptance),
            in_flight=[e.for_agent() for e in [*view.training, *view.queued]], notes=list(self.view.notes),
        )

    def _best_commit(self) -> str:
        with self._cond:
            best = self.view.best
            commit = best.commit if best is not None and best.commit else self.head
        if not commit:
            raise KeylessError(f"the loop has no best yet ({self._doing()}); call status in a moment")
        return commit

    def _git(self) -> Vcs:
        if self._vcs is None:
            self._vcs = Vcs(self.root)
        return self._vcs

    def _ensure_copy(self) -> None:
        if not self.base:
            self._reset()

    def _reset(self) -> str:
        """The working copy back at the best; the sentence that says so."""
        commit, vcs = self._best_commit(), self._git()
        try:
            self.scratch.reset(lambda folder: vcs.export(commit, folder))
        except GitError as exc:
            raise KeylessError(f"cannot read the best commit {commit[:7]}: {exc}") from None
        self.base = commit
        with self._cond:
            best = self.view.best
        shown = f"{best.id}, {self.view.metric} {best.metric:.6f}" if best and best.metric is not None else commit[:7]
        return f"The working copy {self.work} was reset to the best ({shown})."

    def _carried(self, files: dict[str, str]) -> dict[str, str]:
        """The change as it applies to the current best (EditError where it no longer applies)."""
        best = self._best_commit()
        if best == self.base:
            return files
        vcs = self._git()

        def text(commit: str, path: str) -> str | None:
            data = vcs.read_at(commit, path)
            return None if data is None else data.decode("utf-8", errors="replace")

        return {path: carry_over(path, text(self.base, path), new, text(best, path)) for path, new in files.items()}

    def _known(self, ident: str) -> str:
        ident = str(ident).strip()
        self._attached()
        with self._cond:
            view = self.view
            known = {e.id for e in [*view.history, *view.queued, *view.training]}
            known |= {q.experiment.id for q in view.questions} | {view.proposing_id}
            numbers = [int(known_id) for known_id in known if _ID.fullmatch(known_id)]
            known.add(f"{max(numbers, default=0) + 1:04d}")  # the next one (the baseline, at the start)
        if not _ID.fullmatch(ident) or ident not in known:
            raise KeylessError(f"no experiment {ident!r} in this night; history() lists them")
        return ident

    def _finished(self, ident: str) -> Experiment | None:
        return next((e for e in self.view.history if e.id == ident), None)

    def _where(self, ident: str) -> str:
        """Where an unfinished experiment stands (call with the condition held)."""
        view = self.view
        training = next((e for e in view.training if e.id == ident), None)
        if training is not None:
            share = view.progress_of(training, time.time())
            return f"{ident} is still training, {share:.0%} through run {max(1, len(training.runs) + 1)}; " \
                   "call wait again"
        if any(q.experiment.id == ident for q in view.questions):
            return f"{ident} waits for the person's approval; call wait again"
        queued = [e.id for e in view.queued]
        if ident in queued:
            return f"{ident} is queued ({queued.index(ident)} ahead of it); call wait again"
        return f"{ident} is being prepared; call wait again"

    def _doing(self) -> str:
        view = self.view
        parts = [f"{e.id} training" for e in view.training] + [f"{e.id} queued" for e in view.queued]
        if view.paused:
            parts.append("paused by the person")
        return ", ".join(parts) or str(view.state)

    def _verdict(self, done: Experiment) -> str:
        e = done.for_agent()
        metric = self.view.metric
        parts = [f"{e.id} {e.status}"]
        if e.metric is not None and e.status in Status.TRAINED:
            parts.append(f"{metric} {e.metric:.6f}")
        if e.gain_sigma is not None:
            parts.append(f"gain {e.gain_sigma:+.2f} sigma")
        if e.p_value is not None:
            parts.append(f"p {e.p_value:.3g}")
        if e.runs:
            parts.append(f"{len(e.runs)} run{'s' if len(e.runs) > 1 else ''}")
        text = ", ".join(parts) + "."
        if e.reason:
            text += f" Reason: {' '.join(e.reason.split()).rstrip('.')}."
        best = self.view.best
        if best is not None and best.metric is not None:
            text += f" Best now: {best.id} ({metric} {best.metric:.6f})."
        if e.status == Status.CRASH and e.crash_tail:
            tail = "\n".join(e.crash_tail.splitlines()[-CRASH_TAIL_LINES:])
            text += f"\nThe end of its log:\n{tail}\n"
        return text

    def _after_verdict(self) -> str:
        """A working copy with no edit yet follows the best; one with edits is left for the agent to propose."""
        edits = self.scratch.changes() if self.base else None
        if edits is not None and (edits.files or edits.problems):
            return " Your working copy holds unproposed edits; it was kept (propose carries them onto the best)."
        return " " + self._reset()
