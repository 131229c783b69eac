"""The append-only ledger (`.arsup/journal.jsonl`) and autoresearch's `results.tsv`.

The journal is the source of truth: one JSON event a line, flushed and
fsync'd before the engine goes on, so a power cut or a kill -9 loses at most
the line being written. Each experiment event carries the whole record, so
the latest one per id rebuilds the experiment; results.tsv is an export that
can always be rewritten from it (`arsup rebuild`).

Invariants:

* An append starts on a fresh line: a line torn by a kill mid-write is closed
  first, so it costs only itself, never the record after it.
* Reading never raises on content: a line that is not JSON, not an event, or
  an experiment of the wrong shape is skipped; keys a newer arsup added are
  dropped and the record kept. Each is said once per read in
  `Journal.warnings` (with its line number) and logged once, unless the
  reader says them itself (the engine's notices): said once, not twice.
* A torn line stays torn forever, so the engine's start (and `arsup
  rebuild`), holding the repo lock, sets such lines aside: their exact bytes
  go to `journal.torn` and the journal is rewritten without them, atomically.
  Lines that are JSON but not arsup's stay where they are (a newer arsup may
  read them).
* Writing never raises a bare OSError: a state folder that cannot be written
  (read-only, full, a file where a folder belongs) is a `JournalError` naming
  the path, the OS's reason and the fix.
* A training run works in the same folder and could delete or rewrite the
  ledger; once `guard()` is called the journal remembers its own bytes and
  `repair()` puts them back, so no run can erase the record of the night.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from arsup.core.experiment import Experiment, Status

STATE_DIR = ".arsup"
JOURNAL_NAME = "journal.jsonl"
TORN_NAME = "journal.torn"  # the bytes of lines cut short mid-write, set aside so the journal parses again
RESULTS_NAME = "results.tsv"
OWN_PATHS = [f"/{STATE_DIR}/", f"/{RESULTS_NAME}"]  # arsup's files in a research repo, kept out of git

logger = logging.getLogger(__name__)

_FIXES = {
    errno.ENOSPC: "free some disk space (or point --dir at a repo on another disk) and start again",
    errno.EDQUOT: "free some of your disk quota and start again",
    errno.EACCES: "make it writable by this user (chmod u+w) or run arsup as its owner",
    errno.EPERM: "make it writable by this user (chmod u+w) or run arsup as its owner",
    errno.EROFS: "the file system is mounted read-only; work in a clone on a writable disk",
    errno.EEXIST: "a file stands where a folder belongs; move it away",
    errno.ENOTDIR: "a file stands where a folder belongs; move it away",
    errno.EISDIR: "a folder stands where a file belongs; move it away",
}


class JournalError(Exception):
    """arsup's own files cannot be written or read; the text names the path, the reason and the fix."""


@contextmanager
def _state_io(path: Path) -> Iterator[None]:
    """Turn an OSError on arsup's files into a JournalError a person can act on (exit code 2)."""
    try:
        yield
    except OSError as exc:
        fix = _FIXES.get(exc.errno or 0, "check the path and the disk")
        where = exc.filename or path
        raise JournalError(f"cannot use {where}: {exc.strerror or exc}; {fix}") from exc


def _rewrite(path: Path, text: str) -> None:
    with _state_io(path), open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _append(path: Path, text: str) -> str:
    """Append whole lines; a torn last line (a kill mid-write) is ended first so `text` stays whole.

    Returns what was written (`text`, after a newline when one was needed)."""
    with _state_io(path), open(path, "a+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        if end:
            handle.seek(end - 1)
            if handle.read(1) != b"\n":
                text = "\n" + text
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    return text


def _load(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        raise ValueError("not JSON (cut short by a crash or a full disk mid-write?)") from None


def _parse(line: str, dropped: list[str]) -> tuple[dict[str, Any], Experiment | None]:
    """One journal line -> its event and, for an experiment event, the record; ValueError if unusable."""
    event = _load(line)
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise ValueError("not an arsup event (a JSON object with an \"event\" name)")
    if event["event"] != "experiment":
        return event, None
    return event, Experiment.from_json(event.get("experiment"), dropped)


class Journal:
    """The ledger of one research repo; every tag's experiments share it, ids are unique across tags."""

    def __init__(self, root: Path, log_warnings: bool = True) -> None:
        self.root = root
        self.dir = root / STATE_DIR
        self.path = self.dir / JOURNAL_NAME
        self.warnings: list[str] = []  # what the last read skipped or trimmed, one line each
        self._log_warnings = log_warnings  # False where the reader says `warnings` itself
        self._expected: bytes | None = None  # the bytes the ledger must hold, once guarded
        self._writing = threading.RLock()  # the loop, its slots and the control thread all append
        with _state_io(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)

    def run_dir(self, experiment_id: str) -> Path:
        path = self.dir / "runs" / experiment_id
        with _state_io(path):
            path.mkdir(parents=True, exist_ok=True)
        return path

    def append(self, event: str, **data: Any) -> None:
        self._write([{"event": event, "time": round(time.time(), 3), **data}])

    def _write(self, records: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records)
        with self._writing:
            written = _append(self.path, text)
            if self._expected is not None:
                self._expected += written.encode("utf-8")

    def guard(self) -> None:
        """From now on, remember the ledger's bytes so that `repair` can put them back."""
        with _state_io(self.path):
            self._expected = self.path.read_bytes() if self.path.is_file() else b""

    def repair(self) -> bool:
        """Put the ledger back as arsup wrote it if anything else deleted or changed it; True if it did."""
        if self._expected is None:
            return False
        with self._writing:
            with _state_io(self.path):
                try:
                    if self.path.read_bytes() == self._expected:
                        return False
                except FileNotFoundError:
                    pass
                self.dir.mkdir(parents=True, exist_ok=True)
            logger.warning("%s was changed outside arsup; restoring it from arsup's own copy", self.path)
            with _state_io(self.path), open(self.path, "wb") as handle:
                handle.write(self._expected)
                handle.flush()
                os.fsync(handle.fileno())
        return True

    def record(self, experiment: Experiment) -> None:
        self.append("experiment", experiment=experiment.to_json())

    def record_all(self, event: str, data: dict[str, Any], experiments: Iterable[Experiment], batch: int = 500) -> int:
        """An event and the records it brings, all or none; how many records were written.

        An import brings millions: the records are taken as they come and
        written `batch` lines at a time. If anything fails before the last
        one (a bad row `experiments` finds late, a full disk, Ctrl-C), the
        journal is cut back to the length it had, under the lock that keeps
        other writers of this process out meanwhile."""
        now = round(time.time(), 3)
        lines = [{"event": event, "time": now, **data}]
        count = 0
        with self._writing:
            with _state_io(self.path):
                length = self.path.stat().st_size if self.path.is_file() else 0
            expected = self._expected
            try:
                for experiment in experiments:
                    lines.append({"event": "experiment", "time": now, "experiment": experiment.to_json()})
                    count += 1
                    if len(lines) == batch:
                        self._write(lines)
                        lines = []
                self._write(lines)
            except BaseException:
                if self.path.is_file():  # it may not be, where none was and nothing got written
                    with _state_io(self.path), open(self.path, "r+b") as handle:
                        handle.truncate(length)
                        os.fsync(handle.fileno())
                self._expected = expected
                raise
        return count

    def events(self) -> list[dict[str, Any]]:
        """Every readable event, in order; what could not be read is in `warnings`."""
        return [event for event, _ in self._read()]

    def experiments(self, tag: str | None = None) -> list[Experiment]:
        """The latest state of each experiment, in the order they were first recorded."""
        latest: dict[str, Experiment] = {}
        for _, experiment in self._read():
            if experiment is not None and (tag is None or experiment.tag == tag):
                latest[experiment.id] = experiment
        return list(latest.values())

    def experiments_of(self, tag: str) -> list[Experiment]:
        """`experiments(tag)` for a command that needs some: none is an error that lists the tags there are."""
        experiments = self.experiments(tag)
        if not experiments:
            tags = sorted({e.tag for e in self.experiments()})
            raise JournalError(
                f"no experiments of tag {tag!r} in {self.path}; tags in the journal: {', '.join(tags) or 'none'}"
            )
        return experiments

    def unmeasured(self) -> dict[str, str]:
        """Experiments a loop left running when it stopped on a full disk or a lost cluster (and not recorded
        since), with what stopped it: a restart measures them again."""
        marked: dict[str, str] = {}
        for event in self.events():
            if event.get("event") == "unmeasured":
                marked[str(event.get("experiment"))] = str(event.get("reason") or "")
            elif event.get("event") == "experiment" and isinstance(event.get("experiment"), dict):
                marked.pop(str(event["experiment"].get("id")), None)
        return marked

    def next_number(self, experiments: Iterable[Experiment] | None = None) -> int:
        """Ids are numbers, unique across tags, so run folders and refs never collide.

        `experiments`: the journal's, where the caller has just read them (saves a read)."""
        numbers = [int(e.id) for e in (self.experiments() if experiments is None else experiments) if e.id.isdigit()]
        return max(numbers, default=0) + 1

    def _read(self) -> list[tuple[dict[str, Any], Experiment | None]]:
        """Parse every line; `warnings` is replaced by this read's, and only new ones are logged."""
        if not self.path.is_file():
            return []
        with _state_io(self.path):
            lines = self.path.read_text(encoding="utf-8", errors="replace").split("\n")  # as set_aside_torn counts
        read: list[tuple[dict[str, Any], Experiment | None]] = []
        warnings: list[str] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            dropped: list[str] = []
            try:
                read.append(_parse(line, dropped))
            except ValueError as exc:
                warnings.append(f"{self.path} line {number}: skipped, {exc}")
                continue
            if dropped:
                warnings.append(
                    f"{self.path} line {number}: kept, without keys this arsup does not know "
                    f"(written by a newer arsup?): {', '.join(dropped)}"
                )
        for warning in warnings:
            if self._log_warnings and warning not in self.warnings:
                logger.warning(warning)
        self.warnings = warnings
        return read

    def set_aside_torn(self) -> list[str]:
        """Move the lines that are not JSON at all (cut short by a kill or a full disk) into `journal.torn`;
        what was done, one line for each.

        Only where nothing else appends: under the repo lock, before the loop
        starts. The torn bytes are appended to the side file, each after a
        line naming its line number, and fsync'd first; then the journal
        without them is written to a temp file, fsync'd and renamed over it.
        A kill between the two sets a line aside twice, never loses it. Where
        that cannot be written (the full disk that tore them), the lines stay
        and the one line returned says why."""
        if not self.path.is_file():
            return []
        with self._writing:
            with _state_io(self.path):
                data = self.path.read_bytes()
            lines = data.split(b"\n")
            torn = [number for number, line in enumerate(lines, 1) if line.strip() and not _is_json(line)]
            if not torn:
                return []
            side = self.dir / TORN_NAME
            try:
                self._move_torn(lines, torn, side)
            except JournalError as exc:
                return [f"{self.path} line {', '.join(map(str, torn))}: not JSON, left where it is: {exc}"]
        return [
            f"{self.path} line {number}: not JSON (cut short by a crash or a full disk mid-write?); "
            f"its {len(lines[number - 1])} bytes were moved to {side}"
            for number in torn
        ]

    def _move_torn(self, lines: list[bytes], torn: list[int], side: Path) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        moved = b"".join(
            f"# {JOURNAL_NAME} line {number} ({len(lines[number - 1])} bytes), set aside {stamp}:\n".encode()
            + lines[number - 1] + b"\n"
            for number in torn
        )
        with _state_io(side), open(side, "ab") as handle:
            handle.write(moved)
            handle.flush()
            os.fsync(handle.fileno())
        gone = set(torn)
        kept = b"\n".join(line for number, line in enumerate(lines, 1) if number not in gone)
        if kept and not kept.endswith(b"\n"):
            kept += b"\n"  # the torn line was the last
        temp = self.path.with_name(JOURNAL_NAME + ".tmp")
        with _state_io(temp):
            with open(temp, "wb") as handle:
                handle.write(kept)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
            folder = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(folder)  # the rename itself survives a power cut
            finally:
                os.close(folder)
        if self._expected is not None:
            self._expected = kept


def _is_json(line: bytes) -> bool:
    try:
        _load(line.decode("utf-8", errors="replace"))
    except ValueError:
        return False
    return True


def last_tag(root: Path) -> str:
    """The tag of the most recently recorded experiment, for commands run without --tag."""
    experiments = Journal(root).experiments()
    if not experiments:
        raise JournalError(f"no arsup run in {root} yet: the journal is empty; run `arsup` first")
    return experiments[-1].tag


class RepoBusy(Exception):
    """Another arsup is working in this repo; two loops on one work tree would wreck each other."""


class RepoLock:
    """An exclusive lock on `.arsup/lock`, held while arsup changes the work tree; gone with the process."""

    def __init__(self, root: Path) -> None:
        self.path = root / STATE_DIR / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        with _state_io(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RepoBusy(
                f"another arsup (pid {holder}) is working in {self.path.parent.parent}; "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def reassert(self) -> None:
        """Take the lock again when its file was deleted or replaced (a run removed `.arsup/`),
        or a second arsup could start beside this one."""
        if self._fd is None:
            return
        try:
            same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            self.release()
            self.acquire()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def results_header(metric: str) -> str:
    return f"commit\t{metric}\tmemory_gb\tstatus\tdescription\n"


def results_row(experiment: Experiment) -> str:
    """One row exactly as autoresearch writes it; a crash reads 0.000000 and 0.0."""
    crashed = experiment.status == Status.CRASH
    value = 0.0 if crashed or experiment.metric is None else experiment.metric
    vram_mb = 0.0 if crashed else experiment.metrics.get("peak_vram_mb", 0.0)
    description = " ".join(experiment.hypothesis.split()) or "-"
    return f"{short_commit(experiment.commit)}\t{value:.6f}\t{vram_mb / 1024:.1f}\t{experiment.status}\t{description}\n"


def short_commit(commit: str) -> str:
    """A hash's first 7 characters; anything else (autoresearch's literal `baseline`) as it is."""
    return commit[:7] if re.fullmatch(r"[0-9a-f]{7,40}", commit) else commit


def results_text(metric: str, experiments: Iterable[Experiment]) -> str:
    """results.tsv as the journal's experiments make it (only those that trained get a row)."""
    return results_header(metric) + "".join(results_row(e) for e in experiments if e.status in Status.TRAINED)


def write_results(path: Path, metric: str, experiments: Iterable[Experiment]) -> int:
    """Rewrite results.tsv from the journal's experiments; the rows written."""
    text = results_text(metric, experiments)
    _rewrite(path, text)
    return text.count("\n") - 1


def append_result(path: Path, metric: str, experiment: Experiment) -> None:
    if not path.is_file() or path.stat().st_size == 0:
        _rewrite(path, results_header(metric))
    _append(path, results_row(experiment))


def other_results_tag(path: Path, experiments: Iterable[Experiment], tag: str) -> str:
    """The tag whose rows results.tsv holds when they are not `tag`'s, else "".

    autoresearch keeps one results.tsv per run branch, so a session of a new
    tag rewrites it; this lets the engine say whose rows it replaces. A row is
    `tag`'s when any of the tag's experiments has its commit (a new tag's
    baseline may share the commit of an older one's); rows the journal does
    not know are nobody's.
    """
    if not path.is_file():
        return ""
    with _state_io(path):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]
    tags: dict[str, list[str]] = {}
    for experiment in experiments:
        if experiment.commit:
            tags.setdefault(experiment.commit[:7], []).append(experiment.tag)
    for line in lines:
        owners = tags.get(line.split("\t", 1)[0], [])
        if owners and tag not in owners:
            return owners[-1]
    return ""
