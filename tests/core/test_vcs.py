from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from arsup.core.vcs import GitError, Vcs
from tests.conftest import git, make_project


def test_not_a_repo_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not in a git repository"):
        Vcs(tmp_path)


@pytest.mark.slow
def test_empty_repo_is_a_clear_error(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    vcs = Vcs(tmp_path)
    with pytest.raises(GitError, match="no commit yet"):
        vcs.head()
    vcs.close()


@pytest.mark.slow
def test_branch_commit_ref_and_reset_touch_only_our_files(project: Path) -> None:
    (project / "notes.txt").write_text("the user's own work\n")
    git(project, "add", "notes.txt")  # staged by the user: must not be swept into our commit
    vcs = Vcs(project)
    branch, created = vcs.start_branch("nov28")
    assert (branch, created) == ("autoresearch/nov28", True)
    parent = vcs.head()
    (project / "train.py").write_text("LR = 0.1\n")
    (project / "extra.py").write_text("X = 1\n")
    commit = vcs.commit(["extra.py", "train.py"], "arsup 0001: try")
    assert git(project, "show", "--name-only", "--format=", commit).split() == ["extra.py", "train.py"]
    vcs.set_ref("nov28", "0001", commit)
    vcs.reset_to(parent, ["extra.py", "train.py"])
    assert vcs.head() == parent
    assert (project / "train.py").read_text().startswith("import math")
    assert not (project / "extra.py").exists()
    assert git(project, "rev-parse", "refs/arsup/nov28/0001") == commit
    assert git(project, "status", "--porcelain") == "A  notes.txt"
    assert vcs.start_branch("nov28") == ("autoresearch/nov28", False)
    vcs.close()


@pytest.mark.slow
def test_changed_files_sees_modified_and_untracked(project: Path) -> None:
    vcs = Vcs(project)
    assert vcs.changed_files(["train.py", "prepare.py"]) == []
    (project / "prepare.py").write_text("DATA = 'changed'\n")
    assert vcs.changed_files(["train.py", "prepare.py"]) == ["prepare.py"]
    vcs.close()


@pytest.mark.slow
def test_commit_without_git_identity(project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    vcs = Vcs(project)
    (project / "train.py").write_text("LR = 0.2\n")
    commit = vcs.commit(["train.py"], "arsup 0001: no identity")
    assert git(project, "log", "-1", "--format=%an <%ae>", commit) == "arsup <arsup@localhost>"
    vcs.close()


@pytest.mark.slow
def test_exclude_is_idempotent(project: Path) -> None:
    vcs = Vcs(project)
    vcs.exclude(["/.arsup/", "/results.tsv"])
    vcs.exclude(["/.arsup/", "/results.tsv"])
    text = (project / ".git" / "info" / "exclude").read_text()
    assert text.count("/.arsup/") == 1
    (project / "results.tsv").write_text("x")
    (project / ".arsup").mkdir()
    (project / ".arsup" / "journal.jsonl").write_text("{}")
    assert git(project, "status", "--porcelain") == ""
    vcs.close()


def _planted_hook(path: Path, marker: Path) -> None:
    """A hook that leaves a marker holding what it could steal from arsup's environment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "hook $OPENAI_API_KEY" >> {marker}\ncat\n')
    path.chmod(0o755)


@pytest.mark.slow
def test_arsups_git_runs_no_hook_of_the_repository(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    marker = tmp_path / "stolen"
    hooks = project / ".git" / "hooks"
    for name in ("pre-commit", "post-commit", "post-checkout", "post-merge", "reference-transaction"):
        _planted_hook(hooks / name, marker)
    vcs = Vcs(project)
    vcs.start_branch("t1")
    parent = vcs.head()
    (project / "train.py").write_text("LR = 0.1\n")
    commit = vcs.commit(["train.py"], "arsup 0001: try")
    vcs.set_ref("t1", "0001", commit)
    vcs.reset_to(parent, ["train.py"])
    vcs.fast_forward(commit)
    vcs.checkout_detached(parent)
    assert not marker.exists(), marker.read_text()
    elsewhere = tmp_path / "hooks-elsewhere"
    _planted_hook(elsewhere / "post-commit", marker)
    git(project, "config", "core.hooksPath", str(elsewhere))
    vcs.checkout_detached(commit)
    (project / "train.py").write_text("LR = 0.2\n")
    vcs.commit(["train.py"], "arsup 0002: again")
    vcs.close()
    assert not marker.exists(), marker.read_text()


@pytest.mark.slow
def test_arsups_git_runs_no_filter_and_no_fsmonitor_of_the_repository(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    marker = tmp_path / "stolen"
    _planted_hook(tmp_path / "filter.sh", marker)
    _planted_hook(tmp_path / "fsmonitor.sh", marker)
    (project / ".git" / "info").mkdir(exist_ok=True)
    (project / ".git" / "info" / "attributes").write_text("* filter=x diff=x\n")
    git(project, "config", "filter.x.clean", f"{tmp_path / 'filter.sh'} | sed s/0.1/0.9/")
    git(project, "config", "filter.x.smudge", str(tmp_path / "filter.sh"))
    git(project, "config", "filter.x.required", "true")
    git(project, "config", "diff.x.textconv", str(tmp_path / "filter.sh"))
    git(project, "config", "core.fsmonitor", str(tmp_path / "fsmonitor.sh"))
    vcs = Vcs(project)
    parent = vcs.head()
    (project / "train.py").write_text("LR = 0.1\n")
    assert vcs.changed_files(["train.py"]) == ["train.py"]
    assert vcs.modified(["train.py"]) == ["train.py"]
    commit = vcs.commit(["train.py"], "arsup 0001: try")
    assert "+LR = 0.1" in vcs.diff(parent, commit)
    assert vcs.read_at(commit, "train.py") == b"LR = 0.1\n", "a filter changed what was committed"
    vcs.reset_to(parent, ["train.py"])
    vcs.archive(commit)
    vcs.close()
    assert not marker.exists(), marker.read_text()


@pytest.mark.slow
def test_the_kept_open_lookups_answer_as_resolve_and_diff_do(tmp_path: Path) -> None:
    top = tmp_path / "repo"
    (top / "project").mkdir(parents=True)
    (top / "outside.txt").write_text("not the project's\n")
    (top / "project" / "train.py").write_text("".join(f"LINE_{n} = {n}\n" for n in range(20)))
    git(top, "init", "-q")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "one")
    git(top, "mv", "project/train.py", "project/model.py")  # a rename, which `git diff` finds and diff-tree must too
    (top / "project" / "model.py").write_text((top / "project" / "model.py").read_text().replace("= 3\n", "= 33\n"))
    (top / "outside.txt").write_text("changed\n")
    git(top, "commit", "-qam", "two")
    vcs = Vcs(top / "project")
    try:
        one, two = vcs.resolve("HEAD~1"), vcs.resolve("HEAD")
        assert [vcs.commit_of(rev) for rev in ("HEAD~1", two[:7], "fedcba9", "baseline")] == [one, two, None, None]
        for parent, commit in [(one, two), (two, one), (two, two)]:
            assert vcs.diff_commits(parent, commit) == vcs.diff(parent, commit)
        assert "rename to model.py" in vcs.diff_commits(one, two) and "outside" not in vcs.diff_commits(one, two)
    finally:
        vcs.close()


@pytest.mark.slow
def test_a_repository_planted_in_the_project_folder_is_not_the_one_arsups_git_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    top = tmp_path / "mono"
    make_project(top / "lm")
    shutil.rmtree(top / "lm" / ".git")
    git(top, "init", "-q", "-b", "main")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "monorepo")
    root = top / "lm"
    vcs = Vcs(root)
    parent = vcs.head()
    git(root, "init", "-q")  # what a run in the project folder could do: a repository of its own, with a hook
    marker = tmp_path / "stolen"
    _planted_hook(root / ".git" / "hooks" / "post-commit", marker)
    (root / "train.py").write_text("LR = 0.1\n")
    commit = vcs.commit(["train.py"], "arsup 0001: try")
    assert git(top, "rev-parse", "HEAD") == commit and vcs.is_ancestor(parent, commit)
    assert vcs.changed_files(["train.py"]) == []
    vcs.close()
    assert not marker.exists(), marker.read_text()
