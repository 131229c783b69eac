"""Whether a proposal may be written, and what it would write: the engine's refusals, before anything is touched.

Planning reads files through a Snapshot of a commit (never the work tree a
run may be changing) and the kept line (what was tried, what is queued); it
writes nothing. Called on the proposer thread (a new proposal, a person's
edit of one, the agent's own `check`) and on slot threads (a proposal carried
onto a best that moved on); it keeps no state of its own, so it needs no lock.
"""

from __future__ import annotations

from pathlib import Path

from arsup.config import Config
from arsup.core import changes as changes_
from arsup.core import manifest
from arsup.core.agents.base import Proposal
from arsup.core.agents.edits import EditError
from arsup.core.editing import carry_over, decode_text, may_edit, plan_changes
from arsup.core.loop.line import KeptLine
from arsup.core.vcs import Vcs


class Snapshot:
    """A commit's files read through git: a proposal made while a run trains sees the best, not the run's tree."""

    def __init__(self, vcs: Vcs, commit: str) -> None:
        self.vcs, self.commit = vcs, commit
        self._bytes: dict[str, bytes | None] = {}

    def _read(self, path: str) -> bytes | None:
        if path not in self._bytes:
            self._bytes[path] = self.vcs.read_at(self.commit, path)
        return self._bytes[path]

    def text(self, path: str) -> str | None:
        """The text to edit (EditError when it is not UTF-8), None when the commit lacks the file."""
        data = self._read(path)
        return None if data is None else decode_text(path, data)

    def shown(self, path: str) -> str | None:
        """The text as the agent is shown it: undecodable bytes replaced, never refused."""
        data = self._read(path)
        return None if data is None else data.decode("utf-8", errors="replace")


class EditPlanner:
    def __init__(self, config: Config, root: Path, reserved: list[str], line: KeptLine) -> None:
        self.config, self.root, self.reserved, self.line = config, root, reserved, line

    def editable_files(self, vcs: Vcs) -> list[str]:
        """What the agent is shown: files it may edit that git tracks (never an ignored .env)."""
        project = self.config.project
        candidates = [
            path for path in manifest.expand(self.root, project.editable)
            if may_edit(self.root, path, project.editable, project.protected, self.reserved)
        ]
        tracked = vcs.tracked(candidates)
        return [path for path in candidates if path in tracked]

    def plan(self, proposal: Proposal, base: Snapshot, own: str = "") -> dict[str, str]:
        """The files a new proposal would write on `base`, or EditError saying why the engine refuses it; `own`:
        the queued record it replaces (a person's version of it), which it may repeat."""
        changes, candidate = self._checked(proposal, base)
        self._refuse_repeats(candidate, own=own)
        return changes

    def carry(self, experiment_id: str, hypothesis: str, changes: dict[str, str], made_on: Snapshot,
              here: Snapshot, again: bool) -> dict[str, str]:
        """A proposal's change carried from `made_on` onto a new best, hunk by hunk (see `carry_over`), and
        checked again; it may set what its own queued record sets, and `again` (a candidate measured once
        already) what was measured before."""
        merged = {path: carry_over(path, made_on.text(path), text, here.text(path)) for path, text in changes.items()}
        carried, candidate = self._checked(Proposal(hypothesis, files=merged), here)
        if not again:
            self._refuse_repeats(candidate, own=experiment_id)
        return carried

    def _checked(self, proposal: Proposal, base: Snapshot) -> tuple[dict[str, str], changes_.Signature]:
        """The edit's files and what it sets, refused when it writes nowhere it may or sets only a seed."""
        project = self.config.project
        changes = plan_changes(self.root, proposal, project.editable, project.protected, self.reserved, base.text)
        if not changes:
            raise EditError("the edit changes nothing")
        self._check_writable(sorted(changes), base.vcs)
        candidate = signature(changes, base)
        if candidate.only_seeds:
            raise EditError(
                "this edit changes only a seed; the supervisor owns seeds (ARSUP_SEED) and repeats runs "
                "with several of them, so a new seed is not an experiment: change something else"
            )
        return changes, candidate

    def _refuse_repeats(self, candidate: changes_.Signature, own: str) -> None:
        """EditError when the edit sets what a finished experiment, or a queued one other than `own`, set."""
        repeated = changes_.find_repeat(candidate, self.line.history())
        if repeated is not None:
            metric = "crashed" if repeated.metric is None else f"{self.config.metric.name} {repeated.metric:.6f}"
            raise EditError(
                f"this repeats experiment {repeated.id} ({repeated.status}, {metric}: {repeated.hypothesis!r}), "
                f"which set {candidate.describe()}; propose something not tried yet"
            )
        for other, queued, pending in self.line.pending():
            if other != own and changes_.same_idea(candidate, pending):
                raise EditError(
                    f"this repeats experiment {other} ({queued.hypothesis!r}, not measured yet: it is queued or training), "
                    f"which set {candidate.describe()}; propose something else"
                )

    def refusal(self, proposal: Proposal, base: Snapshot) -> str:
        """Why the engine would refuse the proposal, '' when it would take it (the agent's own check)."""
        try:
            self.plan(proposal, base)
        except EditError as exc:
            return str(exc)
        return ""

    def _check_writable(self, paths: list[str], vcs: Vcs) -> None:
        """Refuse paths a reset could not give back: ignored by git, or there but never committed."""
        ignored = sorted(vcs.ignored(paths))
        if ignored:
            raise EditError(
                f"{', '.join(ignored)}: ignored by git (.gitignore or .git/info/exclude); "
                "arsup never writes a file git ignores. Edit a tracked file instead."
            )
        existing = [path for path in paths if (self.root / path).exists()]
        untracked = sorted(set(existing) - vcs.tracked(existing))
        if untracked:
            raise EditError(
                f"{', '.join(untracked)}: exists but is not tracked by git; arsup edits committed files "
                "and creates new ones, never a file it could not restore."
            )


def signature(changes: dict[str, str], base: Snapshot) -> changes_.Signature:
    """What an edit sets, as the repeat checks compare it."""
    return changes_.signature(changes_.diff_texts({path: base.text(path) for path in changes}, changes))
