"""A real terminal for tests: a private tmux server, driven by `send-keys` and read with `capture-pane`.

What Pilot cannot check, a person's terminal can: the console script, the terminal driver, an interactive
CLI's own prompts. The server is private (`-L`), never the person's own tmux, and inherits the test's
environment (HOME and the agent variables the fixtures set).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

EXIT_MARK = "ARSUP-EXIT="


class Tmux:
    """One detached 120x40 session on a private server (never the person's own tmux)."""

    def __init__(self, command: str, cwd: Path, name: str = "main") -> None:
        self.socket = f"arsup-test-{os.getpid()}-{name}"
        self.captures: list[str] = []
        self._tmux("new-session", "-d", "-s", "arsup", "-x", "120", "-y", "40", "-c", str(cwd), command)

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        return result.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "arsup")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "arsup", *keys)

    def wait_for(self, *texts: str, timeout: float = 90) -> str:
        """The screen once it shows every one of `texts`; fails showing the last screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(text in screen for text in texts):
                self.captures.append(screen)
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed {texts}; it shows:\n{screen}")
            time.sleep(0.25)

    def close(self) -> None:
        self._tmux("kill-server")
