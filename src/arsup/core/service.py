"""The loop's control channel: a Unix socket in `.arsup/` that screens and commands attach to.

A loop serves `.arsup/control.sock` for as long as it runs. A client that
connects gets a snapshot (the events a view needs to show the session as it
is now), then a line `{"live": true}`, then every event as it happens, as
JSON lines (`wire`). It sends controls as JSON lines too and gets a reply to
each. The rules this module keeps:

* Only the loop's own user may attach: the socket is mode 0600 in a folder
  only arsup writes, and each peer's uid is checked (SO_PEERCRED). No TCP.
* A client never slows or stops the loop: events are encoded once and queued
  per client; a client whose queue overflows, or that goes away, is dropped.
* The snapshot and the live stream never overlap or leave a gap: both are
  taken under one lock.
* A question is answered by the first answer from any client; every client
  then sees `QuestionClosed`.
* A client acts only on the loop of the project it was pointed at: the hello
  line names the loop's project, and a client refuses another one (a run can
  plant `.arsup/control.sock`, or `.arsup`, as a link to another repo's loop).
* A control line that is not one (not JSON, nested too deep, a field of the
  wrong type) gets an error reply; it never raises in the loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arsup.core import wire
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
    ProposalQueued,
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
from arsup.core.journal import STATE_DIR

if TYPE_CHECKING:  # not at run time: the agents package loads the config's models, too slow for `arsup hook`
    from arsup.core.agents.external import ExternalAgent

logger = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
REPLAY_LOG_LINES = 500  # of the running experiment's log, for a screen that attaches mid-run
REPLAY_NOTICES = 20
CLIENT_QUEUE = 10_000  # lines queued for one client before it counts as stuck and is dropped
_PATH_MAX = 100  # sun_path is 108 bytes; longer paths go through /proc/self/fd


def socket_path(root: Path) -> Path:
    return root / STATE_DIR / SOCKET_NAME


@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    """An AF_UNIX address for `path`, even one longer than sun_path allows (Linux: via the folder's fd)."""
    if len(os.fsencode(path)) < _PATH_MAX:
        yield str(path)
        return
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


class Replay:
    """Folds the loop's events into what an attaching client must see first, in order.

    Several experiments may be under way at once: one per busy slot training,
    the next being proposed (or queued) meanwhile; each keeps its own events
    and the end of its own log."""

    def __init__(self) -> None:
        self.started: SessionStarted | None = None
        self.finished: list[ExperimentFinished] = []
        self.training: dict[str, list[Event]] = {}  # by experiment: started, its runs
        self.logs: dict[str, tuple[deque[str], str]] = {}  # by experiment: its last lines, its partial line
        self.proposing: Proposing | None = None
        self.agent_text: AgentText | None = None
        self.queued: dict[str, ProposalQueued] = {}
        self.state: StateChanged | None = None
        self.policy: PolicyChanged | None = None
        self.pause: Paused | Resumed | None = None
        self.after_run: StopAfterRunAsked | None = None
        self.notes: list[str] = []  # this night's notes to the agent; those from `notes_read` on wait for a prompt
        self.notes_read = 0
        self.questions: dict[str, ApprovalRequested] = {}
        self.notices: deque[Notice] = deque(maxlen=REPLAY_NOTICES)
        self.ended: SessionEnded | None = None

    def add(self, event: Event) -> None:
        match event:
            case SessionStarted():
                self.started, self.finished = event, []
            case Proposing():
                self.proposing, self.agent_text = event, None
                self.notes_read = len(self.notes)  # its prompt has every note so far
            case NoteAdded():
                self.notes.append(event.text)
                if event.read:
                    self.notes_read = len(self.notes)
            case StopAfterRunAsked():
                self.after_run = event
            case AgentText():
                text = (self.agent_text.text if self.agent_text else "") + event.text
                self.agent_text = AgentText(event.experiment_id, text)
            case ProposalQueued():
                self.queued[event.experiment.id] = event
            case ExperimentStarted():
                self.training[event.experiment.id] = [event]
                self.logs[event.experiment.id] = (deque(maxlen=REPLAY_LOG_LINES), "")
                self._settled(event.experiment.id)
            case RunStarted() if event.experiment_id in self.training:
                self.training[event.experiment_id].append(event)
            case RunOutput() if event.experiment_id in self.logs:
                lines, _ = self.logs[event.experiment_id]
                lines.extend(event.lines)
                self.logs[event.experiment_id] = (lines, event.partial)
            case ExperimentFinished():
                self.finished.append(event)
                self._settled(event.experiment.id)
                self.training.pop(event.experiment.id, None)
                self.logs.pop(event.experiment.id, None)
            case StateChanged():
                self.state = event
            case PolicyChanged():
                self.policy = event
            case Paused() | Resumed():
                self.pause = event
            case ApprovalRequested():
                self.questions[event.question_id] = event
            case QuestionClosed():
                self.questions.pop(event.question_id, None)
            case Notice():
                self.notices.append(event)
            case SessionEnded():
                self.ended = event

    def _settled(self, experiment_id: str) -> None:
        """The experiment is no longer a proposal: started, or finished before it ran."""
        self.queued.pop(experiment_id, None)
        if self.proposing is not None and self.proposing.experiment_id == experiment_id:
            self.proposing = self.agent_text = None

    def events(self) -> list[Event]:
        out: list[Event] = [self.started] if self.started else []
        out += [event for event in (self.policy, self.pause, self.after_run) if event is not None]
        out += self.finished
        for experiment_id, started in self.training.items():  # oldest first: the newest is the one followed
            out += started
            lines, partial = self.logs[experiment_id]
            if lines or partial:
                out.append(RunOutput(experiment_id, list(lines), partial))
        out += list(self.queued.values())
        out += [event for event in (self.proposing, self.agent_text) if event is not None]
        # the notes after the proposal: replayed before it, its Proposing would mark them all read
        out += [NoteAdded(text, read=number < self.notes_read) for number, text in enumerate(self.notes)]
        out += list(self.notices)
        if self.state:
            out.append(self.state)
        out += list(self.questions.values())
        if self.ended:
            out.append(self.ended)
        return out


class _Client:
    """One attached peer: a queue drained by its own writer thread, and a reader of its controls."""

    def __init__(self, conn: socket.socket, server: ControlServer) -> None:
        self.conn = conn
        self.server = server
        self.queue: queue.Queue[bytes | None] = queue.Queue(CLIENT_QUEUE)
        self.closed = threading.Event()

    def send(self, line: bytes) -> bool:
        """Queue a line; False when the client is stuck (then it is dropped)."""
        try:
            self.queue.put_nowait(line)
            return True
        except queue.Full:
            return False

    def write_loop(self) -> None:
        try:
            while (line := self.queue.get()) is not None:
                self.conn.sendall(line)
        except OSError:
            pass
        finally:
            self.close()

    def read_loop(self) -> None:
        try:
            with self.conn.makefile("rb") as lines:
                for line in lines:
                    self.send(wire.dumps({"reply": self.server.handle(line)}))
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.server.forget(self)
            with contextlib.suppress(OSError):
                self.conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(None)


class ControlServer:
    """Serves one loop: subscribe it to the engine, then `start()`; `stop()` when the loop has ended.

    `proposals`: the loop's agent when it is external (`[agent] kind = "external"`): clients hand it proposals
    with the control "propose"; any other loop refuses that control."""

    def __init__(self, controls: Controls, root: Path, proposals: ExternalAgent | None = None) -> None:
        self.controls = controls
        self.proposals = proposals
        self.root = root.resolve()
        self.path = socket_path(root)
        self.replay = Replay()
        self._lock = threading.Lock()
        self._clients: list[_Client] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    # -- the engine's side ---------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """The engine subscriber: remember, then send to every client (never blocks on a client)."""
        line = wire.dumps({"event": wire.encode(event)})
        with self._lock:
            self.replay.add(event)
            stuck = [client for client in self._clients if not client.send(line)]
        for client in stuck:
            logger.warning("a client of %s fell too far behind; dropped it", self.path)
            client.close()

    # -- the socket's side -----------------------------------------------------------

    def start(self) -> None:
        """Listen; a socket left by a loop that died is replaced (the caller holds the repo lock)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # born 0600: no window in which another user could connect
        try:
            with _address(self.path) as address:
                listener.bind(address)
        finally:
            os.umask(old_umask)
        listener.listen(16)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name="arsup-control", daemon=True)
        self._thread.start()

    def stop(self, flush_s: float = 2.0) -> None:
        """Stop listening; give clients `flush_s` to receive what was sent (the session's end)."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
            self.path.unlink(missing_ok=True)
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(queue.Full):
                client.queue.put(None, timeout=flush_s)
        for client in clients:
            client.closed.wait(flush_s)
            client.close()

    def _accept_loop(self) -> None:
        while self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if not _same_user(conn):
                with contextlib.suppress(OSError):
                    conn.sendall(wire.dumps({"refused": "only the user running the loop may attach"}))
                conn.close()
                continue
            self._attach(conn)

    def _attach(self, conn: socket.socket) -> None:
        client = _Client(conn, self)
        with self._lock:
            for event in self.replay.events():
                client.send(wire.dumps({"event": wire.encode(event)}))
            client.send(wire.dumps({"live": True, "pid": os.getpid(), "root": str(self.root)}))
            self._clients.append(client)
        threading.Thread(target=client.write_loop, name="arsup-client-out", daemon=True).start()
        threading.Thread(target=client.read_loop, name="arsup-client-in", daemon=True).start()

    def forget(self, client: _Client) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def handle(self, line: bytes) -> dict[str, Any]:
        """Carry out one control line; the reply says whether it was done and, if not, why."""
        try:
            message = wire.loads(line)
        except wire.WireError as exc:
            return {"ok": False, "error": str(exc)}
        name = message.get("control")
        reply: dict[str, Any] = {"id": message.get("id"), "control": name, "ok": True, "error": ""}
        controls = self.controls
        try:
            match name:
                case "answer":
                    if not controls.answer(_text(message, "question_id", "a question id"),
                                           bool(message.get("approved")), message.get("files")):
                        reply.update(ok=False, error="that question is no longer open (answered or withdrawn)")
                case "kill" | "pause" | "resume" | "stop" | "stop_after_run":
                    getattr(controls, name)()
                case "note":
                    controls.add_note(_text(message, "text", "a note"))
                case "policy":
                    controls.set_policy(_text(message, "name", "a policy"))
                case "propose":
                    reply.update(self._propose(message))
                case "tell" if self.proposals is not None:  # the session outside, for the person (arsup hook)
                    self.proposals.tell(_text(message, "text", "a notice"))
                case _:
                    reply.update(ok=False, error=f"unknown control {name!r}")
        except ValueError as exc:
            reply.update(ok=False, error=str(exc))
        return reply


    def _propose(self, message: dict[str, Any]) -> dict[str, Any]:
        """A client's proposal for an external agent: what became of it (its id, a refusal, or busy)."""
        if self.proposals is None:
            return {"ok": False, "error": 'this loop\'s agent makes its own proposals; only a loop with [agent] kind = '
                                          '"external" takes them from a client (arsup mcp starts one)'}
        files = message.get("files")
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ValueError("files must map each path to its new text")
        return self.proposals.offer(_text(message, "hypothesis", "a hypothesis"), files).reply()


def _text(message: dict[str, Any], key: str, what: str) -> str:
    """A control's text field; ValueError for another type (a nested list would reach the engine as its repr)."""
    value = message.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text")
    return value


def _same_user(conn: socket.socket) -> bool:
    """The peer runs as this process's user (Linux SO_PEERCRED; elsewhere the 0600 socket must do)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


class LoopNotRunning(Exception):
    """No loop serves this project."""


class ControlRefused(ValueError):
    """The loop refused a control (an unknown policy), or did not answer (it is gone)."""


class ControlClient:
    """A connection to a loop; implements `Controls` by sending them, and hands events to `on_event`.

    An approval that arrives gets a local future; setting its result (a screen
    does) sends the answer, and a `QuestionClosed` from the loop (another
    client answered first, or the loop withdrew it) cancels it.
    """

    def __init__(self, root: Path, on_event: Callable[[Event], None] | None = None, timeout: float = 5.0) -> None:
        self.root = root.resolve()
        self.path = socket_path(root)
        self.on_event = on_event
        self.timeout = timeout
        self.loop_pid = 0
        self._sock: socket.socket | None = None
        self._lines: Any = None
        self._send_lock = threading.Lock()
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._next_id = 0
        self._questions: dict[str, ApprovalRequested] = {}
        self._reader: threading.Thread | None = None
        self.closed = threading.Event()

    def connect(self) -> list[Event]:
        """Attach and return the snapshot; LoopNotRunning when no loop of this project answers here."""
        if self.path.is_symlink():
            raise LoopNotRunning(f"no arsup loop runs in {self.root}: {self.path} is a symbolic link "
                                 "(arsup never makes one; remove it)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            with _address(self.path) as address:
                sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise LoopNotRunning(f"no arsup loop runs in {self.root}") from exc
        self._sock, self._lines = sock, sock.makefile("rb")
        snapshot: list[Event] = []
        while True:
            message = self._read()
            if message is None:
                raise LoopNotRunning(f"the loop in {self.root} closed the connection")
            if "refused" in message:
                raise LoopNotRunning(str(message["refused"]))
            if message.get("live"):
                self._check_root(message.get("root"))
                self.loop_pid = int(message.get("pid", 0))
                break
            if "event" in message:
                snapshot.append(self._arrived(wire.decode(message["event"])))
        sock.settimeout(None)
        return snapshot

    def _check_root(self, served: object) -> None:
        """The loop reached serves this project, as it says (a loop of an older arsup does not say)."""
        if served is not None and Path(str(served)).resolve() != self.root:
            self.close()
            raise LoopNotRunning(f"no arsup loop runs in {self.root}: {self.path} leads to the loop of {served}")

    def start(self) -> None:
        """Read the live stream in a thread, passing each event to `on_event`."""
        self._reader = threading.Thread(target=self._read_loop, name="arsup-attach", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self.closed.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()

    # -- Controls ------------------------------------------------------------------

    def answer(self, question_id: str, approved: bool, files: dict[str, str] | None = None) -> bool:
        return bool(self.request("answer", question_id=question_id, approved=approved, files=files)["ok"])

    def kill(self) -> None:
        self._must("kill")

    def pause(self) -> None:
        self._must("pause")

    def resume(self) -> None:
        self._must("resume")

    def add_note(self, text: str) -> None:
        self._must("note", text=text)

    def set_policy(self, name: str) -> None:
        self._must("policy", name=name)

    def stop(self) -> None:
        self._must("stop")

    def stop_after_run(self) -> None:
        self._must("stop_after_run")

    def propose(self, hypothesis: str, files: dict[str, str], timeout: float) -> dict[str, Any]:
        """Hand an external loop a proposal: the reply's experiment (its id), refused (why) or busy (the loop is not
        asking now); `timeout`: how long the loop may take (ExternalAgent's ACCEPT_S and SETTLE_S, and more)."""
        reply = self.request("propose", timeout=timeout, hypothesis=hypothesis, files=files)
        if not reply["ok"]:
            raise ControlRefused(reply["error"])
        return reply

    def _must(self, control: str, **args: Any) -> None:
        """A control that must be carried out: ControlRefused says why it was not (a screen shows it)."""
        reply = self.request(control, **args)
        if not reply["ok"]:
            raise ControlRefused(reply["error"])

    def request(self, control: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Send one control and wait for its reply, up to `timeout` (default: the client's); the reader thread
        must run, or this reads itself."""
        with self._send_lock:
            self._next_id += 1
            ident = self._next_id
            box: queue.Queue[dict[str, Any]] = queue.Queue(1)
            self._replies[ident] = box
            assert self._sock is not None, "connect() first"
            self._sock.sendall(wire.dumps({"control": control, "id": ident, **args}))
        if self._reader is None:  # a one-shot command: read until the reply comes
            while box.empty():
                message = self._read()
                if message is None:
                    break
                self._route(message)
        try:
            return box.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            return {"ok": False, "error": "the loop did not answer"}
        finally:
            self._replies.pop(ident, None)

    # -- reading ---------------------------------------------------------------------

    def _read(self) -> dict[str, Any] | None:
        try:
            line = self._lines.readline()
        except (OSError, ValueError):
            return None
        return wire.loads(line) if line else None

    def _read_loop(self) -> None:
        while (message := self._read()) is not None:
            self._route(message)
        self.closed.set()
        if self.on_event is not None:  # the loop went away: the view must know
            self.on_event(SessionEnded("the loop closed the connection", error=False))

    def _route(self, message: dict[str, Any]) -> None:
        if "reply" in message:
            box = self._replies.get(message["reply"].get("id"))
            if box is not None:
                box.put(message["reply"])
        elif "event" in message:
            try:
                event = self._arrived(wire.decode(message["event"]))
            except wire.WireError as exc:
                logger.warning("ignored a line from the loop: %s", exc)
                return
            if self.on_event is not None:
                self.on_event(event)

    def _arrived(self, event: Event) -> Event:
        """Tie a question to the loop: answering it here sends the answer; a close there cancels it."""
        if isinstance(event, ApprovalRequested):
            self._questions[event.question_id] = event
            event.future.add_done_callback(lambda future, asked=event: self._answered(asked, future))
        elif isinstance(event, QuestionClosed):
            asked = self._questions.pop(event.question_id, None)
            if asked is not None:
                asked.future.cancel()
        return event

    def _answered(self, asked: ApprovalRequested, future: Any) -> None:
        if future.cancelled() or self.closed.is_set():
            return
        answer = future.result()
        threading.Thread(
            target=self.answer, args=(asked.question_id, answer.approved, answer.files), daemon=True
        ).start()
