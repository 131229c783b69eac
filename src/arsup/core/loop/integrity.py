"""After every run: put back what the run changed that it must not, and say whether that makes it a crash.

The run is code an agent wrote: it may rewrite a protected file, replace an
editable file with a symlink, plant a git hook or move the run branch. What
it changed is kept as evidence under the run's folder, then restored; a run
that changed what scores it (a protected file, arsup's ledger) or `.git` is
a crash.

Called on the loop or a slot's thread, around each of its runs. The
fingerprints of `.git` (one per slot with a run under way) and what one
slot's check found in the `.git` the slots share are guarded by the kept
line's lock, `line.recording()`: a keep moves the run branch under that lock
and tells every fingerprint (`branch_moved`), so a fingerprint never takes
arsup's own move for the run's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from arsup.config import Config
from arsup.core import gitguard, journal
from arsup.core.editing import may_edit
from arsup.core.events import Notice
from arsup.core.experiment import Cause, Experiment
from arsup.core.loop.bus import EventBus
from arsup.core.loop.limits import Limits
from arsup.core.loop.line import KeptLine
from arsup.core.slots import Slot

TAMPERED = "protected file modified at run time"  # how a run that changed what scores it ends
GIT_CHANGED = "the run changed"  # how a run that changed `.git` (a hook, config, a ref) ends


class RunGuard:
    def __init__(
        self, config: Config, log: journal.Journal, line: KeptLine, limits: Limits, bus: EventBus,
        reserved: list[str], reassert_lock: Callable[[], None],
    ) -> None:
        self.config, self.journal, self.line, self.limits, self.bus = config, log, line, limits, bus
        self.reserved = reserved
        self._reassert_lock = reassert_lock  # the repo lock's file, which a run may have removed
        self.results_path = log.root / journal.RESULTS_NAME
        self._prints: dict[str, gitguard.GitPrint] = {}  # slot name -> its `.git` before the run under way
        self._seen: dict[str, list[str]] = {}  # slot name -> shared `.git` changes found while its run trained

    def before_run(self, slot: Slot, branch: str) -> None:
        """Fingerprint the slot's `.git`, after arsup's last git call for the run: what differs later is the run's."""
        with self.line.recording():
            git_dir, common_dir, leads = slot.vcs.git_dirs()
            self._prints[slot.name] = gitguard.GitPrint.take(git_dir, common_dir, branch, leads)

    def branch_moved(self) -> None:
        """arsup moved the run branch (a keep in a slot), not the runs under way (the recorder calls it, under the
        line's lock)."""
        for guard in self._prints.values():
            guard.accept([guard.branch_ref])

    def after_run(self, experiment: Experiment, slot: Slot) -> tuple[Cause, str] | None:
        """Undo what a run changed that it must not; the cause and the crash reason when it touched what
        scores it or `.git`.

        `.git` first, before any git command (a planted fsmonitor or config acts
        on the first one); then the editable files, whatever the run made of them,
        before the checks that read files."""
        planted = self._undo_git_changes(experiment, slot)
        project, vcs = self.config.project, slot.vcs
        rewritten = [
            path for path in vcs.modified(project.editable)
            if path not in slot.manifest.digests
            and may_edit(slot.root, path, project.editable, project.protected, self.reserved, follow=False)
        ]
        if rewritten:
            made = ", ".join(_what_the_run_made(slot.root, path) for path in rewritten)
            kept = self._keep_evidence(experiment, rewritten, slot.root)
            vcs.restore(rewritten, vcs.head())
            self.bus.notice(f"experiment {experiment.id}: the run {made}; restored (its version: {kept})", "warning")
        with self.line.recording():
            changed = slot.manifest.changed() + self._repair_own_files()
        if not changed:
            return (Cause.GIT_CHANGED, planted) if planted else None
        self._keep_evidence(experiment, [path for path in changed if path in slot.manifest.digests], slot.root)
        tracked = vcs.tracked(changed)
        vcs.restore([path for path in changed if path in tracked], vcs.head())
        lost = [path for path in changed if path not in tracked and path in slot.manifest.digests]
        what = ", ".join(changed)
        if lost:
            self.limits.fail(
                f"the run of experiment {experiment.id} changed protected files git does not hold "
                f"({', '.join(lost)}); arsup cannot restore them: put them back and restart"
            )
        self.bus.emit(Notice(
            f"TAMPERING: the run of experiment {experiment.id} modified {what}; "
            + ("restored; " if not lost else "")
            + "the experiment counts as a crash",
            "error",
        ))
        return Cause.TAMPERED, "; ".join(reason for reason in (f"{TAMPERED}: {what}", planted) if reason)

    def _undo_git_changes(self, experiment: Experiment, slot: Slot) -> str:
        """Put back what the run changed in `.git` (a hook, config, attributes, a ref, HEAD) from the
        fingerprint taken before it, its version kept; the crash reason, or "" when it changed nothing there."""
        with self.line.recording():  # a keep in another slot moves the run branch, and says so to this fingerprint
            before = self._prints.pop(slot.name)
            changed = before.changed()
            shared = before.shared(changed)  # slots share them: a run that trained beside this one may be the cause
            beside = [name for name, other in self._prints.items() if any(not other.holds(n) for n in shared)]
            for name in beside:  # (a fingerprint that holds the change already was taken after it was made)
                self._seen.setdefault(name, []).extend(shared)
            seen = self._seen.pop(slot.name, [])
            if not changed and not seen:
                return ""
            what = ", ".join(sorted({*changed, *seen}))
            kept = self._keep_evidence(experiment, changed, before.top)
            try:
                before.restore(changed)
                undone = f"restored (its version: {kept})" if changed else "restored"
            except OSError as exc:
                undone = f"arsup could not put it back ({exc.strerror or exc})"
                self.limits.fail(
                    f"the run of experiment {experiment.id} changed {what} and {undone}: restore it and restart"
                )
            for other in self._prints.values():
                other.accept(shared)
            who = " (or a run training beside it: slots share .git)" if seen or beside else ""
        self.bus.emit(Notice(
            f"TAMPERING: the run of experiment {experiment.id} changed {what}{who}; {undone}; "
            "the experiment counts as a crash",
            "error",
        ))
        return f"{GIT_CHANGED} {what}{who}"

    def _repair_own_files(self) -> list[str]:
        """Put back arsup's ledger, lock and results.tsv if something changed them; the ledger if it was.

        Only the ledger counts as tampering: results.tsv is an export a person may
        open and save, so it is rewritten from the journal with a warning."""
        self._reassert_lock()
        history = self.line.history()
        expected = journal.results_text(self.config.metric.name, history)
        try:
            current = self.results_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != expected:
            journal.write_results(self.results_path, self.config.metric.name, history)
            self.bus.notice(f"{journal.RESULTS_NAME} was changed outside arsup; rewritten from the journal", "warning")
        return [f"{journal.STATE_DIR}/{journal.JOURNAL_NAME}"] if self.journal.repair() else []

    def _keep_evidence(self, experiment: Experiment, paths: list[str], root: Path) -> Path:
        """Keep what a run left where it must not change anything, before it is restored: nothing is lost.

        A file is copied; a symlink is kept as its target's text (`<name>.symlink`),
        never followed; a folder is moved aside whole (it must go anyway). The
        evidence of an earlier run of the same experiment is replaced."""
        folder = self.journal.run_dir(experiment.id) / "changed-at-run-time"
        for path in paths:
            source = root / path
            target = folder / (f"{path}.symlink" if source.is_symlink() else path)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                target.write_text(os.readlink(source), encoding="utf-8", errors="surrogateescape")
            elif source.is_dir():
                shutil.move(source, target)
            elif source.is_file():
                target.write_bytes(source.read_bytes())
        return folder


def _what_the_run_made(root: Path, path: str) -> str:
    """What a run made of a tracked editable file, in words: `rewrote train.py`, `deleted train.py`, ..."""
    target = root / path
    if target.is_symlink():
        return f"replaced {path} with a symlink to {os.readlink(target)}"
    if target.is_dir():
        return f"replaced {path} with a folder"
    return f"rewrote {path}" if target.exists() else f"deleted {path}"
