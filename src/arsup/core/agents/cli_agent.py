"""A coding-agent CLI (Claude Code, Codex, any command) as arsup's researcher: one proposal, one CLI call.

For each proposal the best commit's files go into a scratch copy and the lab
folder beside it (``lab``); the CLI runs there as a subprocess of arsup's
runner, so ``[agent] timeout`` and a stopped loop end its whole process tree;
what it changed in the scratch copy is the proposal. The invariants:

* The CLI works in a folder outside the project: it never sees ``.git`` or
  ``.arsup`` (the journal holds the holdout values), and nothing it does there
  is written anywhere until the engine's checks have passed it.
* Every changed file is proposed, so a change outside the editable files is
  refused by the engine with the file named; the refusal goes back to the CLI
  (its own session resumed when it has one, else a fresh call told why) at
  most ``max_corrections`` times, then the last attempt is returned and the
  engine records it invalid, as for the LLM agent.
* An agent that changed nothing is an invalid proposal, not a failure: a CLI
  that answered but made no edit is a bad experiment of a working agent, and
  the night goes on (the engine's reason: "the edit changes nothing").
* A failure the agent cannot get past raises ``CLIAgentError`` with one line
  saying what to do (install it, log in, fix the model); the engine ends the
  night with it. Rate limits are retried with backoff first.
* The CLI gets the person's own environment (its keys and login), unlike a
  training run, which gets the allow-list only.

Each CLI's command line and stream format are its ``Dialect``'s
(``claude_code``, ``codex``, ``command``); this module knows none of them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tempfile
import threading
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from arsup.core import runner
from arsup.core.agents import lab
from arsup.core.agents.base import TRANSCRIPT, AgentContext, Proposal
from arsup.core.agents.edits import parse_hypothesis
from arsup.core.agents.llm_client import Usage
from arsup.core.agents.scratch import Scratch
from arsup.core.experiment import Experiment

RETRY_BASE_S = 2.0  # the first wait after a rate limit; doubled each time, at most RETRY_MAX_S
RETRY_MAX_S = 60.0
KILL_GRACE_S = 2.0
_DETAIL_CHARS = 300
CALL = "arsup.call"  # the transcript's event opening each call: its command line, its session and workdir

_AUTH = re.compile(r"\b401\b|\b403\b|invalid.{0,12}api.?key|authenticat|unauthori[sz]ed|not logged in|/login|"
                   r"log ?in again|credential", re.IGNORECASE)
_RATE = re.compile(r"\b429\b|rate.?limit|too many requests|overloaded|\b529\b|quota", re.IGNORECASE)
_MODEL = re.compile(r"model.{0,80}(not.?found|does not exist|unknown|invalid|not supported|unsupported)|"
                    r"(unknown|invalid) model|not_found_error|issue with the selected model", re.IGNORECASE)


class CLIAgentError(Exception):
    """The CLI agent cannot make proposals; str() is one line saying why and what to do."""


class _Cancelled(Exception):
    """The loop stopped while the CLI worked: no proposal."""


@dataclass
class Invocation:
    """One call of the CLI: what a dialect needs to write its command line."""

    program: str  # the CLI's executable, found on PATH or given in [agent] command
    prompt: str
    prompt_file: Path  # the prompt, also as a file (beside the scratch copy)
    workdir: Path  # the scratch copy: the CLI's working directory
    lab: Path
    files: Sequence[str]  # the editable files, relative to workdir
    model: str = ""
    resume: str = ""  # the CLI's session to continue, "" for a fresh one
    allow_shell: bool = False
    hidden: Sequence[Path] = ()  # folders the agent must not read or write (the project itself)
    sandbox: tuple[str, ...] = ()  # what the CLI runs under (arsup's sandbox, see `Dialect.fence`); () for none


@dataclass
class Stream:
    """What one call said, read line by line as it came: what the person is shown, and what the agent keeps."""

    show: Callable[[str], None]
    workdir: Path | None = None  # paths under it are shown relative to it
    events: list[dict[str, Any]] = field(default_factory=list)  # the transcript: every line, parsed where JSON
    messages: list[str] = field(default_factory=list)  # the agent's own words, in order
    errors: list[str] = field(default_factory=list)  # what the CLI reported as an error (a retry's notice too)
    failed: bool = False  # the CLI said the call failed, whatever its exit code
    denials: list[str] = field(default_factory=list)  # tool calls its permission rules refused
    session: str = ""
    usage: Usage = field(default_factory=Usage)
    unpriced: str = ""  # why the cost is 0 although tokens were spent ("" when priced or free)
    wall_s: float = 0.0  # how long the CLI ran: the rest of a proposal's time is arsup's own

    def plain(self, line: str) -> None:
        """A line that is no event of the stream (a warning, an error on stderr): kept and shown as it is."""
        self.events.append({"type": "output", "text": line})
        self.show(line)

    def json(self, line: str) -> dict[str, Any] | None:
        """The line as an event (kept in the transcript), or None when it is not one (then kept as plain)."""
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self.plain(line)
            return None
        self.events.append(event)
        return event

    def shown_path(self, path: object) -> str:
        text = str(path)
        if self.workdir is not None and text.startswith(f"{self.workdir}/"):
            return text[len(str(self.workdir)) + 1 :]
        return text


class Dialect(Protocol):
    """One CLI's command line and stream format."""

    name: str  # the [agent] kind
    program: str  # the executable's usual name
    install: str  # what to do when it is missing: "install it with `...`"
    login: str  # how to log in, for the error when it is not
    resumes: bool  # it has sessions: a correction continues the session rather than starting afresh

    def fence(self, call: Invocation) -> tuple[str, ...]:
        """arsup's sandbox for the whole CLI (`sandbox.prefix`), () when the CLI fences itself."""

    def command(self, call: Invocation) -> str:
        """The shell command line (it knows `call.sandbox`: inside arsup's, a CLI's own is not needed)."""

    def read(self, line: str, stream: Stream) -> None:
        """Take one output line into the stream; never raises."""


def one_line(text: str, limit: int = _DETAIL_CHARS) -> str:
    return " ".join(str(text).split())[:limit]


def quoted(argv: Sequence[str]) -> str:
    return shlex.join([str(arg) for arg in argv])


class Workspace:
    """Where one proposal is made, outside the project (no .git, no .arsup above it): the scratch copy the CLI
    works in, the lab beside it, and the CLI's session of this workspace's previous proposal."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="arsup-agent-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.base, True)
        self.scratch = Scratch(self.base / "work")
        self.lab = self.base / "lab"
        self.session = ""  # for session = "resume": the next proposal made here continues it
        self.calls = 0


class CLIAgent:
    """The proposal loop around a dialect. Calls may come from several proposer threads at once (one per slot):
    each is made in a workspace of its own, borrowed for the call; a call alone always gets the same one."""

    lanes = 64  # calls at once: as many as the loop has slots, in practice

    def __init__(
        self,
        dialect: Dialect,
        editable: Sequence[str],
        protected: Sequence[str],
        *,
        program: str = "",
        model: str = "",
        timeout: float = 300.0,
        session: str = "fresh",
        allow_shell: bool = False,
        retries: int = 6,
        max_corrections: int = 2,
        hidden: Sequence[Path] = (),
    ) -> None:
        self.dialect, self.name = dialect, dialect.name
        self.editable, self.protected = list(editable), list(protected)
        self.program = program or dialect.program
        self.model, self.timeout, self.session, self.allow_shell = model, timeout, session, allow_shell
        self.retries, self.max_corrections, self.hidden = retries, max_corrections, list(hidden)
        self._told_unpriced = False
        self.workspace = Workspace()  # the first; a second call at once gets one of its own
        self._free = [self.workspace]
        self._free_lock = threading.Lock()

    # -- the protocol -----------------------------------------------------------

    def propose(self, context: AgentContext) -> Proposal | None:
        program = self.find_program()
        with self._free_lock:
            here = self._free.pop() if self._free else Workspace()
        try:
            return self._propose(program, here, context)
        finally:
            with self._free_lock:
                self._free.append(here)

    def observe(self, experiment: Experiment) -> None:
        """Nothing to update: the lab is written from the history for each proposal."""

    # -- helpers -----------------------------------------------------------------

    def _propose(self, program: str, here: Workspace, context: AgentContext) -> Proposal | None:
        here.scratch.reset(context.export)
        lab.write_lab(here.lab, context, self._notebook(context.history))
        usage, calls, transcript, denials = Usage(), [], [], []
        resume = here.session if self.session == "resume" else ""
        text = lab.prompt(context, here.lab, self.editable, self.protected)
        try:
            for correction in range(self.max_corrections + 1):
                purpose = "correction" if correction else "proposal"
                stream = self._call(program, here, text, resume, context, purpose)
                usage.add(stream.usage)
                calls.append({"purpose": purpose, "session": stream.session, "cli_s": round(stream.wall_s, 3),
                              **asdict(stream.usage)})
                transcript += stream.events
                denials += stream.denials
                resume = stream.session if self.dialect.resumes else ""
                proposal, reason = self._proposal(here, stream, context)
                if not reason or correction == self.max_corrections:
                    break
                text = lab.CORRECTION.format(reason=reason)
                if not self.dialect.resumes:  # a fresh call: it must be told the whole task again
                    text = lab.prompt(context, here.lab, self.editable, self.protected) + "\n\n" + text
        except _Cancelled:
            return None
        here.session = resume
        proposal.meta = {
            "model": self.model,
            "usage": asdict(usage),
            "calls": calls,
            "corrections": correction,
            "notebook": lab.read_notebook(here.lab),
            "session": resume,
            "denials": denials,
            TRANSCRIPT: transcript,
        }
        return proposal

    def find_program(self) -> str:
        """The CLI's path; CLIAgentError saying how to install it when it is not there (asked at the start, and
        again at each call: a PATH or an install may change during a night)."""
        found = shutil.which(self.program)
        if found is None:
            raise CLIAgentError(
                f"{self.name}: `{self.program}` is not installed or not on PATH; {self.dialect.install}"
            )
        return found

    def _notebook(self, history: list[Experiment]) -> str:
        mine = [e for e in history if e.agent == self.name]
        return next((e.agent_data["notebook"] for e in reversed(mine) if e.agent_data.get("notebook")), "")

    def _proposal(self, here: Workspace, stream: Stream, context: AgentContext) -> tuple[Proposal, str]:
        """The proposal in the scratch copy, and why it would be refused ("" when it would not)."""
        changes = here.scratch.changes()
        hypothesis = next((h for m in reversed(stream.messages) if (h := parse_hypothesis(m))), "")
        files = changes.files
        if not files and not changes.problems and context.files:
            # Nothing changed: an editable file as it was, which the engine refuses as "the edit changes nothing".
            path = next(iter(context.files))
            files = {path: context.files[path]}
        proposal = Proposal(hypothesis=hypothesis or "(no hypothesis)", files=files)
        missing = "" if hypothesis else "your final message has no `HYPOTHESIS:` line"
        reason = "; ".join(r for r in (missing, changes.refusal(), context.check(proposal)) if r)
        return proposal, reason

    def _call(
        self, program: str, here: Workspace, text: str, resume: str, context: AgentContext, purpose: str
    ) -> Stream:
        """One call, retried with backoff while the API says it is rate limited."""
        for attempt in range(self.retries + 1):
            stream, failure = self._run(program, here, text, resume, context)
            if not failure:
                return stream
            if not _RATE.search(failure) or attempt == self.retries:
                raise CLIAgentError(self._explain(failure, stream, attempt))
            delay = min(RETRY_BASE_S * 2**attempt, RETRY_MAX_S)
            context.notify(f"{self.name}: rate limited ({one_line(failure, 120)}); trying again in {delay:g} s")
            if context.cancel.wait(delay):
                raise _Cancelled()
            if purpose == "proposal":  # start the task again from the best commit
                here.scratch.reset(context.export)
        raise AssertionError("unreachable")

    def _run(
        self, program: str, here: Workspace, text: str, resume: str, context: AgentContext
    ) -> tuple[Stream, str]:
        """Run the CLI once; the stream and what went wrong ("" when it answered)."""
        here.calls += 1
        prompt_file = here.base / "prompt.md"
        prompt_file.write_text(text, encoding="utf-8")
        call = Invocation(
            program=program, prompt=text, prompt_file=prompt_file, workdir=here.scratch.folder, lab=here.lab,
            files=list(context.files), model=self.model, resume=resume, allow_shell=self.allow_shell,
            hidden=self.hidden,
        )
        call.sandbox = self.dialect.fence(call)
        command = self.dialect.command(call)
        # One line per message or tool call: the screen joins what it is sent, as it joins an LLM's tokens.
        stream = Stream(show=lambda line: context.on_text(line + "\n"), workdir=here.scratch.folder)
        stream.events.append({"type": CALL, "command": command, "resume": resume, "workdir": str(here.scratch.folder)})

        def on_output(lines: list[str], partial: str) -> None:
            for line in lines:
                if line.strip():
                    self.dialect.read(line, stream)

        spec = runner.RunSpec(
            command=command, cwd=here.scratch.folder, log_path=here.base / f"call-{here.calls}.log",
            env=dict(os.environ), timeout=self.timeout, kill_grace=KILL_GRACE_S, sandbox=call.sandbox,
        )
        job = runner.Run(spec, on_output)
        done = threading.Event()
        watcher = threading.Thread(target=_kill_on, args=(context.cancel, done, job), daemon=True)
        job.start()
        watcher.start()
        try:
            outcome = job.wait()
        finally:
            done.set()
            watcher.join()
        if outcome.killed and context.cancel.is_set():
            raise _Cancelled()
        if outcome.start_error:
            raise CLIAgentError(f"{self.name}: cannot start the CLI: {outcome.start_error}")
        if outcome.timed_out:
            raise CLIAgentError(
                f"{self.name}: no answer within [agent] timeout = {self.timeout:g} s; the CLI and every process "
                "it started were killed"
            )
        stream.wall_s = outcome.wall_s
        self._price(stream, context)
        if outcome.exit_code != 0:
            said = stream.errors[-1] if stream.errors else _last_output(stream)
            return stream, f"exit code {outcome.exit_code}: {said}" if said else f"exit code {outcome.exit_code}"
        if stream.failed:
            return stream, stream.errors[-1] if stream.errors else "the CLI reported a failure"
        return stream, ""

    def _price(self, stream: Stream, context: AgentContext) -> None:
        if stream.unpriced and not self._told_unpriced:
            self._told_unpriced = True
            context.notify(f"{self.name}: {stream.unpriced}; its calls are recorded with a cost of 0 USD")

    def _explain(self, failure: str, stream: Stream, attempt: int) -> str:
        detail = one_line(failure)
        if _AUTH.search(failure):
            return f"{self.name}: not logged in, or the API key was refused ({detail}); {self.dialect.login}"
        if _MODEL.search(failure):
            model = f"the model {self.model!r}" if self.model else "its default model"
            return f"{self.name}: {model} does not exist or is not available ({detail}); check [agent] model"
        if _RATE.search(failure):
            return f"{self.name}: still rate limited after {attempt + 1} tries ({detail})"
        if failure.startswith("exit code 127"):
            return f"{self.name}: the command was not found ({detail}); check [agent] command"
        return f"{self.name}: the CLI failed ({detail})"


def _kill_on(cancel: threading.Event, done: threading.Event, job: runner.Run) -> None:
    """End the CLI's tree when the loop stops; return when the call is over."""
    while not done.is_set():
        if cancel.wait(0.1):
            job.kill("the loop stopped")
            return


def _last_output(stream: Stream) -> str:
    plain = [e["text"] for e in stream.events if e.get("type") == "output" and e.get("text", "").strip()]
    return one_line(plain[-1]) if plain else ""
