"""The `.git` files a run could plant code in or move the kept line with, fingerprinted like protected files.

A training run may write anywhere the researcher may: a hook, an fsmonitor
or a filter in `.git/config`, a moved run branch, a rewritten HEAD. arsup's
own git is disarmed (see vcs), but a planted file must not stay behind for the
person's git either, and a moved ref would silently drop keeps. So:

* The fingerprint is taken right before a run and compared right after it,
  before arsup runs any git command: reading it needs no git at all.
* It holds the bytes, not digests: these files are small (config, HEAD, the
  run branch's ref, packed-refs, hooks/, info/; for a linked worktree its own
  HEAD, config.worktree, commondir and gitdir), and they are put back from
  memory, with git neither asked nor trusted.
* Nothing in `.git` is followed: a symlink is an entry of its own (its target
  is what it holds), so a run cannot make arsup read or write outside `.git`.
* A change is reported at the highest name that changed: a hooks/ folder a
  run replaced with a symlink is one change, restored with all it held.
* Slots' worktrees share the common folder: a change there may be any run's
  that trained meanwhile (`shared` tells them apart from a worktree's own).
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

FILES = ("config", "config.worktree", "HEAD", "packed-refs")  # in the repository's common folder
TREES = ("hooks", "info")  # folders held whole, at any depth
WORKTREE_FILES = ("HEAD", "config.worktree", "commondir", "gitdir")  # in a linked worktree's own folder


@dataclass(frozen=True)
class Entry:
    """What one name in `.git` was: a file's bytes and mode, a symlink's target, a folder, or nothing."""

    kind: str  # "file", "link", "dir", "other" (a fifo, say) or "absent"
    data: bytes = b""
    mode: int = 0


ABSENT = Entry("absent")
RESIZED = Entry("file", mode=-1)  # a file whose size alone says it is not the one fingerprinted


def _entry(path: Path, want: Entry | None = None) -> Entry:
    """The entry at `path` now, without following a symlink; a file's bytes are read only where its size
    matches `want`'s (a run that wrote a large file there need not be read whole)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return ABSENT
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        return Entry("link", os.fsencode(os.readlink(path)))
    if stat.S_ISDIR(info.st_mode):
        return Entry("dir", mode=mode)
    if not stat.S_ISREG(info.st_mode):
        return Entry("other", mode=mode)
    if want is not None and (want.kind != "file" or len(want.data) != info.st_size):
        return RESIZED
    with open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NOFOLLOW)) as handle:
        return Entry("file", handle.read(), mode)


def _walk(top: Path, name: str) -> dict[str, Entry]:
    """`name` and, where it is a real folder, everything under it, by name relative to `top`."""
    found = {name: _entry(top / name)}
    if found[name].kind == "dir":
        for child in sorted(os.listdir(top / name)):
            found.update(_walk(top, f"{name}/{child}"))
    return found


class GitPrint:
    """The `.git` files of one work tree as they were before a run."""

    def __init__(self, top: Path, base: str, own: str, branch: str) -> None:
        self.top = top  # the folder holding the repository's `.git`: names read `.git/hooks/post-commit`
        self.base = base  # the common folder's name there (`.git`)
        self.own = own  # a linked worktree's own folder (`.git/worktrees/gpu0`), "" for the main work tree
        self.branch_ref = f"{base}/refs/heads/{branch}"
        self.trees = [f"{base}/{tree}" for tree in TREES]
        self.entries: dict[str, Entry] = {}

    @classmethod
    def take(cls, git_dir: Path, common_dir: Path, branch: str, leads: list[Path] | None = None) -> GitPrint:
        """The fingerprint of the common folder, of `git_dir` where it is a linked worktree's own, and of
        `leads`: paths outside them that would lead git elsewhere (a worktree's `.git` file, say)."""
        common = common_dir.resolve()
        top = common.parent
        own = git_dir.resolve().relative_to(top).as_posix() if git_dir.resolve() != common else ""
        taken = cls(top, common.name, own, branch)
        names = [f"{taken.base}/{name}" for name in FILES] + [taken.branch_ref]
        names += [f"{own}/{name}" for name in WORKTREE_FILES] if own else []
        folders = {"/".join(name.split("/")[:depth]) for name in names for depth in range(2, name.count("/") + 1)}
        names += sorted(folders)  # `.git/refs/heads`, ...: one a run made a symlink leads nothing outside
        names += [os.path.relpath(lead, top) for lead in leads or []]
        taken.entries = {name: _entry(top / name) for name in names}
        for tree in taken.trees:
            taken.entries.update(_walk(top, tree))
        return taken

    def shared(self, names: list[str]) -> list[str]:
        """Those of these names that every work tree of the repository shares (the common folder's, but
        a worktree's own folder)."""
        return [n for n in names if n.startswith(self.base + "/") and not (self.own and n.startswith(self.own + "/"))]

    def changed(self) -> list[str]:
        """The names that differ now (added ones included), each at the highest name that changed."""
        differ: list[str] = []
        for name in sorted(self.entries):  # a folder before what it holds: nothing under a changed one is read
            if not any(name.startswith(above + "/") for above in differ):
                if _entry(self.top / name, self.entries[name]) != self.entries[name]:
                    differ.append(name)
        for tree in self.trees:
            if tree not in differ and self.entries[tree].kind == "dir":
                differ += [name for name in _walk(self.top, tree) if name not in self.entries]
        return sorted(name for name in differ if not any(name.startswith(above + "/") for above in differ))

    def restore(self, names: list[str]) -> None:
        """Put these names back as they were: what is there now is removed, the fingerprint's bytes written
        (a folder with everything it held). OSError when the file system refuses."""
        for name in names:
            path = self.top / name
            if _entry(path).kind == "dir":
                shutil.rmtree(path)
            elif _entry(path) != ABSENT:
                path.unlink()
            for under in sorted(key for key in self.entries if key == name or key.startswith(name + "/")):
                self._write(under)

    def _write(self, name: str) -> None:
        entry, path = self.entries[name], self.top / name
        if entry.kind == "absent" or entry.kind == "other":
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            path.mkdir(exist_ok=True)
        elif entry.kind == "link":
            os.symlink(os.fsdecode(entry.data), path)
            return
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            with open(path, "wb", opener=lambda at, _: os.open(at, flags, 0o600)) as handle:
                handle.write(entry.data)
        os.chmod(path, entry.mode)

    def holds(self, name: str) -> bool:
        """Whether this fingerprint holds `name` as it is now: it was taken after that change was made."""
        return name in self.entries and _entry(self.top / name, self.entries[name]) == self.entries[name]

    def accept(self, names: list[str]) -> None:
        """These names are as they must be now (arsup moved the run branch for a keep, or put back what
        another slot's run changed): no run's change."""
        for name in names:
            for key in [key for key in self.entries if key.startswith(name + "/")]:
                del self.entries[key]
            self.entries.update(_walk(self.top, name))
