"""Git for the research loop: the run branch, one commit per experiment, attempt refs, resets.

Only the files an experiment changed are ever staged and committed (a pathspec
commit, never `git add -A`), and a reset touches only those files, so a
person's unrelated work in the same repo is never swept in or thrown away.
Every attempt stays reachable under `refs/arsup/<tag>/<id>` after its branch
moved on. GitPython is not thread-safe: one thread owns a `Vcs` at a time.

The project may live in a subfolder of the repository: git runs in the
project folder, so pathspecs given and paths returned are relative to the
project, never to the repository's top.

arsup's git runs nothing the repository names: a training run can write
`.git/hooks/`, `.git/config` and `.git/info/attributes`, and git would run a
post-commit hook (`--no-verify` does not skip it), an fsmonitor or a clean
filter with arsup's whole environment, API keys included. Every call goes
with `DISARMED` and with each filter driver the config names emptied; the
engine's `.git` fingerprint (gitguard) finds and undoes what a run planted.
The repository is the one found when the `Vcs` was made (GIT_DIR is set), not
one a run planted in the project folder later.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import git

ARSUP_IDENTITY = {
    "GIT_AUTHOR_NAME": "arsup",
    "GIT_AUTHOR_EMAIL": "arsup@localhost",
    "GIT_COMMITTER_NAME": "arsup",
    "GIT_COMMITTER_EMAIL": "arsup@localhost",
}


# Config given on every git call of arsup's (as `-c`, above every config file a run could write).
DISARMED = (
    "core.hooksPath=/dev/null",  # no hook at all, wherever hooks/ or core.hooksPath points
    "core.fsmonitor=false",  # an fsmonitor is a command git runs whenever it reads the index
    "commit.gpgSign=false",  # gpg.program is a command too
    "gc.auto=0",  # an auto gc outlives the call in the background and repacks the refs the fingerprint holds
    "maintenance.auto=false",
    "core.quotePath=false",  # paths printed as they are named
)


_DIFF_OPTIONS = ("--relative", "--no-color", "--no-ext-diff", "--no-textconv")  # project paths, plain text
_DIFF_END = "::arsup-diff-end::"


class GitError(Exception):
    """A git state the user must resolve; the text says how."""


def branch_name(tag: str) -> str:
    return f"autoresearch/{tag}"


class Vcs:
    def __init__(self, root: Path) -> None:
        try:
            self.repo = git.Repo(root, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise GitError(
                f"{root} is not in a git repository; run `git init` and commit your files first"
            ) from None
        self.root = root.resolve()
        top = Path(self.repo.working_tree_dir or root).resolve()
        self.top = top  # the work tree's top: the project folder, or a folder above it
        self.prefix = self.root.relative_to(top).as_posix() if self.root != top else ""
        self.git = git.Git(self.root)  # runs in the project folder: pathspecs are project-relative
        # The repository found now, never one discovered later: a run may plant a `.git` in the project
        # folder, or rewrite a worktree's `.git` file to point elsewhere.
        self.git.update_environment(GIT_DIR=str(Path(self.repo.git_dir).resolve()), GIT_WORK_TREE=str(top))
        self.git.set_persistent_git_options(c=list(DISARMED))
        self.git.set_persistent_git_options(c=[*DISARMED, *self._emptied_filters()])
        self._identity_env: dict[str, str] | None = None
        self._differ: git.Git.AutoInterrupt | None = None  # diff_commits' diff-tree, started on first use

    def _emptied_filters(self) -> list[str]:
        """Each filter driver the config names (any scope), emptied: git then runs none of them.

        Attributes choose a driver by name and a run can write attributes, so
        every driver configured counts; a driver a run adds to the
        repository's config is undone by the fingerprint before git runs."""
        status, out, _ = self.git.config(
            "--name-only", "-z", "--get-regexp", r"^filter\.", with_extended_output=True, with_exceptions=False,
        )
        keys = out.split("\0") if status == 0 else []  # 1: no filter is configured
        names = {key.split(".", 1)[1].rsplit(".", 1)[0] for key in keys if key.count(".") >= 2}
        emptied = ("clean=", "smudge=", "process=", "required=false")
        return [f"filter.{name}.{key}" for name in sorted(names) for key in emptied]

    def _from_top(self, path: str) -> str:
        """A path git printed relative to the repository's top, made relative to the project."""
        return path[len(self.prefix) + 1 :] if self.prefix and path.startswith(self.prefix + "/") else path

    def git_dirs(self) -> tuple[Path, Path, list[Path]]:
        """This work tree's own git folder, the repository's common one (the same outside a linked worktree),
        and the paths that would lead a git run here elsewhere: a linked worktree's `.git` file, and the
        `.git` a project below the top must not have."""
        own, common = Path(self.repo.git_dir).resolve(), Path(self.repo.common_dir).resolve()
        leads = ([self.top / ".git"] if own != common else []) + ([self.root / ".git"] if self.prefix else [])
        return own, common, leads

    def close(self) -> None:
        if self._differ is not None:
            self._differ.proc.stdin.close()
            try:
                self._differ.wait()
            except git.GitCommandError:
                pass  # it failed a request already, which said so (diff_commits' GitError)
            self._differ = None
        self.git.clear_cache()  # commit_of's cat-file
        self.repo.close()

    def head(self) -> str:
        try:
            return self.git.rev_parse("HEAD")
        except git.GitCommandError:
            raise GitError(f"the repository in {self.root} has no commit yet; commit your files first") from None

    def branch_exists(self, branch: str) -> bool:
        return bool(self.git.branch("--list", branch).strip())

    def current_branch(self) -> str:
        return self.git.rev_parse("--abbrev-ref", "HEAD")

    def changed_files(self, pathspecs: list[str], untracked: bool = True) -> list[str]:
        """Files under these pathspecs that differ from HEAD, or (with `untracked`) are not committed at all."""
        if not pathspecs:
            return []
        which = "--untracked-files=all" if untracked else "--untracked-files=no"
        out = self.git.status("--porcelain", "-z", which, "--", *pathspecs)
        entries = out.split("\0")
        changed, index = [], 0
        while index < len(entries):
            entry = entries[index]
            index += 1
            if len(entry) < 4:
                continue
            changed.append(self._from_top(entry[3:]))
            if entry[0] in "RC":  # a rename is followed by its old path
                index += 1
        return changed

    def tracked(self, paths: list[str]) -> set[str]:
        """Which of these project-relative paths git tracks."""
        if not paths:
            return set()
        out = self.git.ls_files("-z", "--", *paths)
        return {path for path in out.split("\0") if path}

    def ignored(self, paths: list[str]) -> set[str]:
        """Which of these paths git ignores (.gitignore, info/exclude); tracked files never are."""
        if not paths:
            return set()
        status, out, err = self.git.check_ignore("--", *paths, with_extended_output=True, with_exceptions=False)
        if status not in (0, 1):  # 1: none of them is ignored
            raise GitError(f"git check-ignore failed: {err.strip()}")
        return {path for path in out.splitlines() if path}

    def commit_message(self, rev: str) -> str:
        return self.git.log("-1", "--format=%s", rev)

    def is_ancestor(self, ancestor: str, rev: str) -> bool:
        try:
            self.git.merge_base("--is-ancestor", ancestor, rev)
            return True
        except git.GitCommandError:
            return False

    def exclude(self, patterns: list[str]) -> None:
        """Keep arsup's own files out of `git status` without touching a tracked file.

        Patterns are anchored at the project folder (``/name``), which may be below the top."""
        if self.prefix:
            patterns = [f"/{self.prefix}{p}" if p.startswith("/") else p for p in patterns]
        exclude = Path(self.repo.common_dir) / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        present = exclude.read_text(encoding="utf-8").splitlines() if exclude.is_file() else []
        missing = [p for p in patterns if p not in present]
        if missing:
            with open(exclude, "a", encoding="utf-8") as handle:
                prefix = "" if not present or present[-1] == "" else "\n"
                handle.write(prefix + "# arsup\n" + "\n".join(missing) + "\n")

    def start_branch(self, tag: str) -> tuple[str, bool]:
        """Check out the run branch, creating it at HEAD; an existing one is resumed, never reset."""
        branch = branch_name(tag)
        head = self.head()
        created = not self.branch_exists(branch)
        try:
            if created:
                self.git.checkout("-b", branch, head)
            elif self.current_branch() != branch:
                self.git.checkout(branch)
        except git.GitCommandError as exc:
            raise GitError(f"cannot check out {branch}: {exc.stderr.strip()}") from None
        return branch, created

    def _commit_env(self) -> dict[str, str]:
        """An arsup identity for machines where git has none (fresh GPU boxes often don't)."""
        if self._identity_env is None:
            try:
                self.git.var("GIT_AUTHOR_IDENT")
                self.git.var("GIT_COMMITTER_IDENT")
                self._identity_env = {}
            except git.GitCommandError:
                self._identity_env = dict(ARSUP_IDENTITY)
        return self._identity_env

    def commit(self, files: list[str], message: str) -> str:
        """Commit exactly these files (new ones included) and return the new commit."""
        self.git.add("--", *files)
        self.git.commit("--no-verify", "-q", "-m", message, "--", *files, env=self._commit_env())
        return self.head()

    def diff(self, parent: str, commit: str, context: int = 3) -> str:
        return self.git.diff(parent, commit, *_DIFF_OPTIONS, f"-U{context}")

    def resolve(self, rev: str) -> str:
        try:
            return self.git.rev_parse("--verify", f"{rev}^{{commit}}")
        except git.GitCommandError:
            raise GitError(f"{rev!r} is not a commit in {self.root}") from None

    def commit_of(self, rev: str) -> str | None:
        """`resolve` for callers with thousands of revisions (an import): the full hash, or None where
        `rev` names no commit here.

        One `git cat-file --batch-check` is kept open for them: a process per
        call costs milliseconds, and more as the caller's memory grows."""
        try:
            return self.git.get_object_header(f"{rev}^{{commit}}")[0].decode()
        except ValueError:  # missing, ambiguous, or no answer at all
            return None

    def diff_commits(self, parent: str, commit: str) -> str:
        """`diff` of two commits given by full hash (`commit_of`), through one `git diff-tree --stdin` kept open.

        Each request is followed by a line that is no object name, which
        diff-tree echoes once the diff is out: the end of the answer. `-M`:
        diff-tree is plumbing and does not read `diff.renames` as `git diff` does."""
        if self._differ is None:
            self._differ = self.git.diff_tree(
                "--stdin", "-p", "-M", "--no-commit-id", *_DIFF_OPTIONS, "-U3", istream=subprocess.PIPE, as_process=True
            )
        stdin, stdout = self._differ.proc.stdin, self._differ.proc.stdout
        try:
            stdin.write(f"{commit} {parent}\n{_DIFF_END}\n".encode())  # a commit, then the parent to compare it with
            stdin.flush()
        except BrokenPipeError:
            raise GitError(f"git diff-tree ended in {self.root}") from None
        lines = []
        while (line := stdout.readline()) != f"{_DIFF_END}\n".encode():
            if not line:
                raise GitError(f"git diff-tree ended while comparing {parent[:7]} with {commit[:7]} in {self.root}")
            lines.append(line)
        return b"".join(lines).decode("utf-8", errors="replace").removesuffix("\n")  # as `diff` returns it

    def modified(self, pathspecs: list[str]) -> list[str]:
        """Tracked files under these pathspecs whose work-tree bytes differ from HEAD (deleted ones too)."""
        if not pathspecs:
            return []
        out = self.git.diff("--name-only", "--relative", "HEAD", "--", *pathspecs)
        return [line for line in out.splitlines() if line]

    def unstage(self, files: list[str]) -> None:
        """Take these files out of the index again (after a commit that failed half way)."""
        try:
            self.git.reset("-q", "--", *files)
        except git.GitCommandError as exc:
            raise GitError(f"cannot unstage {', '.join(files)}: {exc.stderr.strip()}") from None

    def files_differing(self, a: str, b: str, pathspecs: list[str]) -> list[str]:
        out = self.git.diff("--name-only", "--relative", a, b, "--", *pathspecs)
        return [line for line in out.splitlines() if line]

    def revert_in_work_tree(self, patch: str) -> None:
        """Undo a change in the work tree only (for ablations); GitError when later edits overlap it.

        The patch should have no context lines (`diff(..., context=0)`), so that a
        later change to a neighbouring line does not block the revert."""
        with tempfile.NamedTemporaryFile("w", suffix=".patch", dir=self.repo.git_dir, delete=False) as handle:
            handle.write(patch if patch.endswith("\n") else patch + "\n")
        try:
            directory = [f"--directory={self.prefix}"] if self.prefix else []  # patch paths are project-relative
            self.git.apply("-R", "--unidiff-zero", "--whitespace=nowarn", *directory, handle.name)
        except git.GitCommandError as exc:
            raise GitError(f"the change does not revert cleanly: {exc.stderr.strip()}") from None
        finally:
            os.unlink(handle.name)

    def add_worktree(self, path: Path, commit: str) -> None:
        """A second work tree of this repository at `path`, detached at `commit` (a slot works there)."""
        try:
            self.git.worktree("add", "-q", "-f", "--detach", str(path), commit)
        except git.GitCommandError as exc:
            raise GitError(f"cannot create the work tree {path}: {exc.stderr.strip()}") from None

    def remove_worktrees(self, under: Path) -> None:
        """Remove every work tree of this repository inside `under` (a killed arsup's slots), then prune."""
        listing = self.git.worktree("list", "--porcelain")
        for line in listing.splitlines():
            path = Path(line.removeprefix("worktree ")) if line.startswith("worktree ") else None
            if path is not None and path.resolve().is_relative_to(under.resolve()):
                self.git.worktree("remove", "-f", "-f", str(path))
        self.git.worktree("prune")

    def checkout_detached(self, commit: str) -> None:
        """Put this work tree on `commit` (tracked files as it holds them; what runs left untracked stays)."""
        self.git.checkout("-q", "-f", "--detach", commit)

    def fast_forward(self, commit: str) -> None:
        """Move the checked-out branch and the work tree on to `commit`, a descendant of HEAD."""
        try:
            self.git.merge("-q", "--ff-only", commit)
        except git.GitCommandError as exc:
            raise GitError(f"cannot move the run branch on to {commit[:7]}: {exc.stderr.strip()}") from None

    def move_branch(self, commit: str) -> None:
        """Put the checked-out branch on `commit`, changing only the files that differ between the two
        (`reset --keep`: a person's unrelated uncommitted work stays, and one in the way is refused)."""
        try:
            self.git.reset("-q", "--keep", commit)
        except git.GitCommandError as exc:
            raise GitError(f"cannot move the run branch to {commit[:7]}: {exc.stderr.strip()}") from None

    def set_ref(self, tag: str, experiment_id: str, commit: str) -> None:
        self.git.update_ref(f"refs/arsup/{tag}/{experiment_id}", commit)

    def export(self, commit: str, folder: Path) -> None:
        """The project folder as `commit` holds it, written into `folder`: tracked files only (no .git, no .arsup,
        nothing ignored), no link or path out of the folder. A coding agent's scratch copy."""
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(self.archive(commit))) as tree:
            tree.extractall(folder, filter="data")

    def archive(self, commit: str) -> bytes:
        """The project folder as `commit` holds it, as a tar (what a run on another host works in)."""
        status, out, err = self.git.archive(
            "--format=tar", commit,
            with_extended_output=True, with_exceptions=False, strip_newline_in_stdout=False, stdout_as_string=False,
        )
        if status != 0:
            raise GitError(f"git archive {commit[:7]} failed: {err.decode(errors='replace').strip()}")
        return out

    def read_at(self, commit: str, path: str) -> bytes | None:
        """A file's bytes as `commit` holds it (a proposal is planned against the best, not the tree); None if absent."""
        status, out, _ = self.git.cat_file(
            "blob", f"{commit}:./{path}",
            with_extended_output=True, with_exceptions=False, strip_newline_in_stdout=False, stdout_as_string=False,
        )
        return out if status == 0 else None

    def _in_commit(self, commit: str, path: str) -> bool:
        try:
            self.git.cat_file("-e", f"{commit}:./{path}")
            return True
        except git.GitCommandError:
            return False

    def restore(self, files: list[str], commit: str) -> None:
        """Put these files (work tree and index) back as they are in `commit`; delete ones it lacks."""
        for path in files:
            if self._in_commit(commit, path):
                self.git.checkout(commit, "--", path)
            else:
                self.git.rm("--cached", "-q", "--ignore-unmatch", "--", path)
                (self.root / path).unlink(missing_ok=True)

    def reset_to(self, parent: str, files: list[str]) -> None:
        """Move the branch back to `parent` and restore only the files the attempt changed."""
        self.git.reset("--soft", parent)
        self.restore(files, parent)
