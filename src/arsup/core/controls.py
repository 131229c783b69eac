"""What a person can tell a running loop, as one small protocol.

The engine implements it in its own process; the socket client implements it
for a loop in another process. Front ends (the screen, the commands, tests)
depend on this protocol only, never on engine attributes, so the same screen
works in-process and attached.
"""

from __future__ import annotations

from typing import Protocol

# A note steers the agent in a sentence or a paragraph, and every note goes into every prompt for the rest of
# the night: 2,000 characters (about 500 tokens, a long paragraph) is room for any note a person writes, and
# keeps a pasted log or file (100 KB went in once) out of every prompt and the journal.
NOTE_MAX_CHARS = 2000


class Controls(Protocol):
    def answer(self, question_id: str, approved: bool, files: dict[str, str] | None = None) -> bool:
        """Approve or decline an open question (files: an edit as the person changed it)."""

    def kill(self) -> None:
        """Kill the running training; it is recorded as a crash and the loop goes on."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def add_note(self, text: str) -> None:
        """A note to the agent, in every prompt from the next one on (ValueError past NOTE_MAX_CHARS)."""

    def set_policy(self, name: str) -> None:
        """When to ask a person: auto, edits, runs or keeps (ValueError for another name)."""

    def stop(self) -> None:
        """Stop now: the training is killed and recorded."""

    def stop_after_run(self) -> None:
        """Let the current experiment finish, then stop."""
