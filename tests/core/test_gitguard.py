from __future__ import annotations

import os
from pathlib import Path

import pytest

from arsup.core.gitguard import GitPrint
from tests.conftest import git

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it


def _tree(folder: Path) -> dict[str, tuple[str, bytes, int]]:
    """Everything under a folder, symlinks not followed: what `restore` must bring back exactly."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[name] = ("link", os.readlink(path).encode(), 0)
        elif path.is_dir():
            found[name] = ("dir", b"", path.stat().st_mode)
        else:
            found[name] = ("file", path.read_bytes(), path.stat().st_mode)
    return found


def _print(project: Path) -> GitPrint:
    return GitPrint.take(project / ".git", project / ".git", "autoresearch/t1")


def test_an_untouched_git_folder_has_no_change(project: Path) -> None:
    git(project, "checkout", "-q", "-b", "autoresearch/t1")
    assert _print(project).changed() == []


def test_planted_hooks_config_and_attributes_are_named_and_undone(project: Path, tmp_path: Path) -> None:
    git(project, "checkout", "-q", "-b", "autoresearch/t1")
    dot_git = project / ".git"
    (dot_git / "hooks" / "shared").mkdir()
    os.symlink("../../train.py", dot_git / "hooks" / "shared" / "linked")
    before = _tree(dot_git)
    guard = _print(project)
    hook = dot_git / "hooks" / "post-commit"
    hook.write_text("#!/bin/sh\ntouch /tmp/owned\n")
    hook.chmod(0o755)
    (dot_git / "hooks" / "pre-commit.sample").chmod(0o777)
    (dot_git / "hooks" / "pre-push.sample").unlink()
    (dot_git / "hooks" / "planted").mkdir()
    (dot_git / "hooks" / "planted" / "deep").write_text("x")
    (dot_git / "hooks" / "shared" / "linked").unlink()
    os.symlink("/etc/passwd", dot_git / "hooks" / "shared" / "linked")
    (dot_git / "info" / "attributes").write_text("* filter=x\n")
    with open(dot_git / "config", "a") as handle:
        handle.write("[filter \"x\"]\n\tclean = touch /tmp/owned\n")
    (dot_git / "HEAD").write_text("ref: refs/heads/main\n")

    changed = guard.changed()
    assert changed == [
        ".git/HEAD", ".git/config", ".git/hooks/planted", ".git/hooks/post-commit",
        ".git/hooks/pre-commit.sample", ".git/hooks/pre-push.sample", ".git/hooks/shared/linked",
        ".git/info/attributes",
    ]
    guard.restore(changed)
    assert _tree(dot_git) == before
    assert guard.changed() == []


def test_a_folder_replaced_by_a_symlink_is_one_change_restored_whole(project: Path, tmp_path: Path) -> None:
    dot_git = project / ".git"
    before = _tree(dot_git / "hooks")
    guard = _print(project)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "pre-commit.sample").write_text("not read")
    (dot_git / "hooks").rename(tmp_path / "moved-hooks")
    os.symlink(outside, dot_git / "hooks")
    assert guard.changed() == [".git/hooks"]
    guard.restore([".git/hooks"])
    assert not (dot_git / "hooks").is_symlink() and _tree(dot_git / "hooks") == before
    assert (outside / "pre-commit.sample").read_text() == "not read"


def test_a_moved_branch_and_a_worktrees_own_head_are_seen(project: Path, tmp_path: Path) -> None:
    git(project, "checkout", "-q", "-b", "autoresearch/t1")
    (project / "train.py").write_text("LR = 0.1\n")
    git(project, "commit", "-qam", "second")
    slot = tmp_path / "slot"
    git(project, "worktree", "add", "-q", "--detach", str(slot), "HEAD")
    guard = GitPrint.take(project / ".git" / "worktrees" / "slot", project / ".git", "autoresearch/t1")
    git(slot, "update-ref", "refs/heads/autoresearch/t1", "HEAD~1")
    git(slot, "checkout", "-q", "--detach", "HEAD~1")
    assert guard.changed() == [".git/refs/heads/autoresearch/t1", ".git/worktrees/slot/HEAD"]
    guard.restore(guard.changed())
    assert git(project, "rev-parse", "autoresearch/t1") == git(project, "rev-parse", "HEAD")
    assert git(slot, "rev-parse", "HEAD") == git(project, "rev-parse", "HEAD")


def test_what_arsup_changed_itself_is_accepted(project: Path) -> None:
    git(project, "checkout", "-q", "-b", "autoresearch/t1")
    guard = _print(project)
    (project / "train.py").write_text("LR = 0.1\n")
    git(project, "commit", "-qam", "a keep, moved on by arsup")
    assert guard.changed() == [guard.branch_ref]
    guard.accept([guard.branch_ref])
    assert guard.changed() == []


def test_a_ref_folder_replaced_by_a_symlink_is_not_followed(project: Path, tmp_path: Path) -> None:
    git(project, "checkout", "-q", "-b", "autoresearch/t1")
    branch = git(project, "rev-parse", "HEAD")
    guard = _print(project)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "t1").write_text("0" * 40 + "\n")
    folder = project / ".git" / "refs" / "heads" / "autoresearch"
    (folder / "t1").unlink()
    folder.rmdir()
    os.symlink(outside, folder)
    assert guard.changed() == [".git/refs/heads/autoresearch"]
    guard.restore(guard.changed())
    assert not folder.is_symlink() and git(project, "rev-parse", "autoresearch/t1") == branch
    assert (outside / "t1").read_text() == "0" * 40 + "\n"
