"""Notice edits to the research instructions (program.md) and arsup.toml while a run goes on.

Editors rarely rewrite a file in place: many write a temporary file and rename
it over the original, or delete the original and create it anew, and a single
save can raise half a dozen events. So the watcher watches the *folders*
holding the files (a watch on the file itself would die with the replaced
inode), keeps only events naming a watched file (as source or rename
destination), waits for a burst to settle, and then reports a file only if its
bytes really changed, so `touch` or re-saving identical text reports nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

logger = logging.getLogger(__name__)
# watchdog logs an error when events race its own shutdown; harmless, and it would land on the screen.
logging.getLogger("watchdog").setLevel(logging.CRITICAL)

# Opened / closed-without-writing events are left out: reading a file to hash it raises them,
# and counting them would make the watcher re-check its own reads forever.
CONTENT_EVENTS = frozenset(
    {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_DELETED, EVENT_TYPE_CLOSED}
)
OBSERVER_TIMEOUT_S = 0.1  # how long watchdog's threads block between checks for stop: keeps stop() prompt
JOIN_TIMEOUT_S = 2.0

_ABSENT = ""  # the digest of a file that does not exist


def _key(path: str | bytes | Path) -> str:
    """One spelling per path, so an event's path and a watched path compare equal."""
    return os.path.normpath(os.path.abspath(os.fsdecode(path)))


def _digest(path: str) -> str | None:
    """SHA-256 of the file's bytes; _ABSENT when it doesn't exist; None when it can't be read now."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return _ABSENT
    except OSError as exc:
        logger.warning("cannot read watched file %s: %s", path, exc)
        return None


class _Relay(FileSystemEventHandler):
    """Passes the paths of content-changing events on; runs on watchdog's thread, so does no I/O."""

    def __init__(self, note: Callable[[str], None]) -> None:
        self._note = note

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in CONTENT_EVENTS:
            return
        self._note(_key(event.src_path))
        if event.dest_path:  # a rename: the file may be the one renamed over (atomic save)
            self._note(_key(event.dest_path))


class FileWatcher:
    """Calls `on_change(path)` once per real change of a watched file, from a worker thread.

    A change is reported `debounce_s` after the last event of a burst, and only
    when the file's content differs from what it was at `start()` or at the
    last report; deleting a file counts as a change, and so does creating it.
    Changes still waiting out their debounce when `stop()` is called are
    dropped. A watcher is started once; make a new one to watch again.
    """

    def __init__(self, paths: Iterable[Path], on_change: Callable[[Path], None], debounce_s: float = 0.5) -> None:
        if debounce_s < 0:
            raise ValueError(f"debounce must be >= 0 s, got {debounce_s}")
        self._paths = {_key(p): Path(p) for p in paths}
        self._on_change = on_change
        self._debounce_s = debounce_s
        self._digests: dict[str, str] = {}
        self._due: dict[str, float] = {}  # path -> monotonic time its burst is over
        self._cond = threading.Condition()
        self._stopping = False
        self._observer: BaseObserver | None = None
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        """Take the files' current content as the baseline and start watching their folders.

        Raises OSError when a folder doesn't exist, RuntimeError when started twice.
        """
        if self._observer is not None:
            raise RuntimeError("FileWatcher.start() called twice")
        for key in self._paths:
            digest = _digest(key)
            self._digests[key] = _ABSENT if digest is None else digest
        observer = Observer(timeout=OBSERVER_TIMEOUT_S)
        relay = _Relay(self._note)
        for folder in sorted({os.path.dirname(key) for key in self._paths}):
            observer.schedule(relay, folder, recursive=False)
        observer.start()  # raises here, before anything else runs, when a folder is missing
        self._observer = observer
        self._worker = threading.Thread(target=self._run, name="arsup-file-watch", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop watching and join both threads; pending changes are not reported."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=JOIN_TIMEOUT_S)
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=JOIN_TIMEOUT_S)

    def _note(self, key: str) -> None:
        """An event touched `key`: (re)start its debounce if it is watched."""
        if key not in self._paths:
            return
        with self._cond:
            self._due[key] = time.monotonic() + self._debounce_s
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    ready = [key for key, due in self._due.items() if due <= now]
                    if ready:
                        break
                    self._cond.wait(min(self._due.values()) - now if self._due else None)
                for key in ready:
                    del self._due[key]
            for key in ready:
                self._check(key)

    def _check(self, key: str) -> None:
        """Report `key` if its content changed since the last report."""
        digest = _digest(key)
        if digest is None or digest == self._digests[key]:
            return
        self._digests[key] = digest
        try:
            self._on_change(self._paths[key])
        except Exception:
            logger.exception("file-change callback failed for %s", key)
