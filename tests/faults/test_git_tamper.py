"""A run must not plant code in `.git` that arsup's git would run, nor move the kept line, nor leave a
tracked file it replaced with a symlink, a folder or nothing.

The `.git` cases run unsandboxed (`NO_SANDBOX`): inside bubblewrap the run cannot see `.git` at all, so
they are the checks that hold where it is missing; one case checks that bubblewrap keeps a plant out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.core.events import Notice
from arsup.core.experiment import Status
from tests.conftest import edit, git, make_engine, make_project, needs_bwrap, results_rows, write_script
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories

SECRET = "sk-must-not-leave-arsup"
NO_SANDBOX = {"sandbox": {"kind": "none"}}


def plant(path: str, text: str, mode: int = 0o644) -> str:
    """Lines of Python a training script runs to write `path` (relative to the project) at run time."""
    return (
        f"import os\nos.makedirs(os.path.dirname({path!r}) or '.', exist_ok=True)\n"
        f"open({path!r}, 'a').write({text!r})\nos.chmod({path!r}, {mode:#o})"
    )


def thief(marker: Path) -> str:
    """A shell command that records what it could steal from whoever runs it, and leaves a child behind."""
    return f'echo "ran with key=$OPENAI_API_KEY" >> {marker}; (sleep 300 &) ; cat'


def git_files(root: Path) -> dict[str, bytes]:
    """The `.git` files a run could plant code in, as bytes."""
    dot_git = root / ".git"
    files = {name: (dot_git / name).read_bytes() for name in ("config", "HEAD") if (dot_git / name).exists()}
    for folder in ("hooks", "info"):
        for path in sorted((dot_git / folder).rglob("*")):
            files[path.relative_to(dot_git).as_posix()] = b"dir" if path.is_dir() else path.read_bytes()
    return files


def planted_hook(marker: Path) -> tuple[str, str]:
    return plant(".git/hooks/post-commit", f"#!/bin/sh\n{thief(marker)}\n", 0o755), ".git/hooks/post-commit"


def planted_hooks_path(marker: Path) -> tuple[str, str]:
    elsewhere = marker.parent / "elsewhere"
    code = plant(f"{elsewhere}/post-commit", f"#!/bin/sh\n{thief(marker)}\n", 0o755)
    return code + "\n" + plant(".git/config", f"[core]\n\thooksPath = {elsewhere}\n"), ".git/config"


def planted_filter(marker: Path) -> tuple[str, str]:
    attributes = plant(".git/info/attributes", "*.py filter=x\n")
    config = plant(".git/config", f"[filter \"x\"]\n\tclean = {thief(marker)}\n\trequired = true\n")
    return attributes + "\n" + config, ".git/config, .git/info/attributes"


def planted_fsmonitor(marker: Path) -> tuple[str, str]:
    script = marker.parent / "fsmonitor.sh"
    code = plant(str(script), f"#!/bin/sh\n{thief(marker)}\n", 0o755)
    return code + "\n" + plant(".git/config", f"[core]\n\tfsmonitor = {script}\n"), ".git/config"


@pytest.mark.parametrize("planter", [planted_hook, planted_hooks_path, planted_filter, planted_fsmonitor])
def test_what_a_run_plants_in_git_is_never_run_and_is_undone(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planter
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    marker = tmp_path / "stolen"
    code, named = planter(marker)
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(
        project,
        {"hypothesis": "plant code in .git", "edits": edit("LR = 0.0001", "LR = 0.003\n" + code)},
        {"hypothesis": "honest LR change", "edits": edit("LR = 0.0001", "LR = 0.002")},
    )
    engine, events = make_engine(project, script, **NO_SANDBOX)
    before = git_files(project)
    engine.run()

    assert not marker.exists(), marker.read_text()
    baseline, planted, honest = engine.history
    assert (planted.status, planted.reason) == (Status.CRASH, f"the run changed {named}")
    assert honest.status == Status.KEEP, "the loop goes on after a plant"
    assert git_files(project) == before
    evidence = project / ".arsup" / "runs" / planted.id / "changed-at-run-time"
    assert (evidence / named.split(", ")[0]).is_file()
    alarms = [e.text for e in events if isinstance(e, Notice) and e.level == "error"]
    assert any(named in text and planted.id in text for text in alarms)
    assert_invariants(project, protected)


@needs_bwrap
@pytest.mark.parametrize("planter", [planted_hook, planted_filter])
def test_inside_bubblewrap_what_a_run_plants_never_reaches_git(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planter
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    marker = tmp_path / "stolen"
    code, _ = planter(marker)
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(
        project,
        {"hypothesis": "plant code in .git", "edits": edit("LR = 0.0001", "LR = 0.003\n" + code)},
        {"hypothesis": "honest", "edits": edit("WIDTH = 64", "WIDTH = 64\nLR = 0.002")},
    )
    engine, _ = make_engine(project, script, sandbox={"kind": "bwrap"})
    before = git_files(project)
    engine.run()

    assert not marker.exists(), marker.read_text()
    assert [e.status for e in engine.history] == [Status.KEEP, Status.KEEP, Status.DISCARD]
    assert git_files(project) == before
    assert_invariants(project, protected)


MOVE_BRANCH_BACK = "import subprocess\nsubprocess.run(['git', 'update-ref', 'refs/heads/autoresearch/t1', 'HEAD~2'])"


def test_a_run_that_moves_the_run_branch_is_a_crash_and_the_kept_line_stays(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(
        project,
        {"hypothesis": "a first keep", "edits": edit("LR = 0.0001", "LR = 0.001")},
        {"hypothesis": "drop the keep", "edits": edit("WIDTH = 64", "WIDTH = 64\nLR = 0.003\n" + MOVE_BRANCH_BACK)},
        {"hypothesis": "honest", "edits": edit("WIDTH = 64", "WIDTH = 64\nLR = 0.002")},
    )
    engine, _ = make_engine(project, script, **NO_SANDBOX)
    engine.run()

    baseline, first, mover, honest = engine.history
    assert first.status == Status.KEEP
    assert (mover.status, mover.reason) == (Status.CRASH, "the run changed .git/refs/heads/autoresearch/t1")
    assert honest.status == Status.KEEP and honest.parent == first.commit
    assert git(project, "rev-parse", "autoresearch/t1") == honest.commit
    assert [row[3] for row in results_rows(project)] == ["keep", "keep", "crash", "keep"]
    assert_invariants(project, protected)


def test_a_run_that_rewrites_head_is_a_crash_and_later_proposals_still_apply(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    rewrite = "open('.git/HEAD', 'w').write('ref: refs/heads/main\\n')"
    script = write_script(
        project,
        {"hypothesis": "point HEAD elsewhere", "edits": edit("LR = 0.0001", "LR = 0.003\n" + rewrite)},
        {"hypothesis": "honest", "edits": edit("LR = 0.0001", "LR = 0.002")},
        {"hypothesis": "honest again", "edits": edit("WIDTH = 64", "WIDTH = 64\nLR = 0.004")},
    )
    engine, _ = make_engine(project, script, **NO_SANDBOX)
    engine.run()

    baseline, rewriter, honest, again = engine.history
    assert (rewriter.status, rewriter.reason) == (Status.CRASH, "the run changed .git/HEAD")
    assert [honest.status, again.status] == [Status.KEEP, Status.KEEP], again.reason
    assert git(project, "symbolic-ref", "HEAD") == "refs/heads/autoresearch/t1"
    assert_invariants(project, protected)


REPLACE_TRAIN = {
    "a symlink": ("os.remove('train.py'); os.symlink('prepare.py', 'train.py')", "train.py.symlink", "a symlink"),
    "a folder": ("os.remove('train.py'); os.mkdir('train.py'); open('train.py/x', 'w').write('x')", "train.py/x",
                 "a folder"),
    "nothing": ("os.remove('train.py')", "", "deleted"),
}


@pytest.mark.parametrize("made", list(REPLACE_TRAIN))
def test_a_tracked_file_a_run_replaces_is_restored_and_the_next_start_goes_on(project: Path, made: str) -> None:
    code, kept, said = REPLACE_TRAIN[made]
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(project, {"hypothesis": f"train.py becomes {made}", "edits": edit(
        "LR = 0.0001", f"LR = 0.003\nimport os\n{code}"
    )})
    engine, events = make_engine(project, script)
    engine.run()

    baseline, replaced = engine.history
    assert (project / "train.py").is_file() and not (project / "train.py").is_symlink()
    assert (project / "train.py").read_bytes() == git(project, "show", "HEAD:train.py").encode() + b"\n"
    evidence = project / ".arsup" / "runs" / replaced.id / "changed-at-run-time"
    if kept:
        assert (evidence / kept).is_file()
    if made == "a symlink":
        assert (evidence / kept).read_text() == "prepare.py"
    warnings = [e.text for e in events if isinstance(e, Notice) and "train.py" in e.text]
    assert any(said in text and replaced.id in text for text in warnings), warnings
    assert_invariants(project, protected)
    again, _ = make_engine(project, write_script(project), max_experiments=1)  # no dirty tree refused
    again.close()


def _night(project: Path, *entries: dict) -> list:
    engine, _ = make_engine(project, write_script(project, *entries))
    engine.run()
    return engine.history


def test_a_branch_moved_back_between_nights_is_not_a_persons_commit(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    baseline, first = _night(project, {"hypothesis": "a keep", "edits": edit("LR = 0.0001", "LR = 0.001")})
    git(project, "reset", "-q", "--hard", "HEAD~1")
    engine, events = make_engine(project, write_script(project), max_experiments=1)
    engine.run()

    assert [e.agent for e in engine.history] == ["arsup", "script"], "nothing was measured as a person's"
    assert git(project, "rev-parse", "autoresearch/t1") == first.commit
    said = [e.text for e in events if isinstance(e, Notice)]
    assert any("not a descendant" in text and first.id in text for text in said), said
    assert_invariants(project, protected)


def test_arsups_own_crashed_commit_on_the_branch_is_never_adopted(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    history = _night(
        project,
        {"hypothesis": "a keep", "edits": edit("LR = 0.0001", "LR = 0.001")},
        {"hypothesis": "a crash", "edits": edit("WIDTH = 64", "WIDTH = 64\nraise SystemExit(3)")},
        {"hypothesis": "does not apply", "edits": edit("LR = 0.5", "LR = 0.6")},  # the crash is not the last
    )
    first, crashed = history[1], history[2]
    assert crashed.status == Status.CRASH
    git(project, "update-ref", "refs/heads/autoresearch/t1", crashed.commit)  # as a full disk left it
    git(project, "reset", "-q", "--hard")
    engine, events = make_engine(project, write_script(project), max_experiments=1)
    engine.run()

    assert all(e.agent != "person" for e in engine.history)
    assert git(project, "rev-parse", "autoresearch/t1") == first.commit
    assert git(project, "rev-parse", f"refs/arsup/t1/{crashed.id}") == crashed.commit
    said = [e.text for e in events if isinstance(e, Notice)]
    assert any(f"arsup's own commit of experiment {crashed.id}" in text for text in said), said
    assert_invariants(project, protected)


def test_a_foreign_commit_beside_the_best_is_set_aside_not_adopted(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    baseline, first = _night(project, {"hypothesis": "a keep", "edits": edit("LR = 0.0001", "LR = 0.001")})
    git(project, "checkout", "-q", "--detach", baseline.commit)
    (project / "train.py").write_text((project / "train.py").read_text().replace("WIDTH = 64", "WIDTH = 65"))
    git(project, "commit", "-qam", "beside the best")
    beside = git(project, "rev-parse", "HEAD")
    git(project, "checkout", "-q", "-B", "autoresearch/t1", beside)
    engine, events = make_engine(project, write_script(project), max_experiments=1)
    engine.run()

    assert all(e.agent != "person" for e in engine.history)
    assert git(project, "rev-parse", "autoresearch/t1") == first.commit
    assert git(project, "rev-parse", f"refs/arsup/t1/moved-{beside[:7]}") == beside
    said = [e.text for e in events if isinstance(e, Notice)]
    assert any(f"refs/arsup/t1/moved-{beside[:7]}" in text for text in said), said
    assert_invariants(project, protected)


# Run in a slot's worktree: a hook in the folder all worktrees share, and this worktree's HEAD moved.
SLOT_PLANTS = (
    "import os, subprocess, time\n"
    "time.sleep({wait})\n"
    "common = subprocess.run(['git', 'rev-parse', '--git-common-dir'], capture_output=True, text=True).stdout.strip()\n"
    "hook = os.path.join(common, 'hooks', 'post-commit')\n"
    "open(hook, 'w').write('#!/bin/sh\\n{thief}\\n'); os.chmod(hook, 0o755)\n"
    "subprocess.run(['git', 'update-ref', '--no-deref', 'HEAD', 'HEAD~1'])"
)


def _slots_night(tmp_path: Path, wait: float, *more: dict) -> tuple[Path, dict[str, str], dict, dict[str, bytes]]:
    """Two slots: a quick honest keep beside a slow run that plants in `.git` after `wait` seconds."""
    from tests.core.test_slots import TWO_GAINS, TWO_SLOTS

    root = make_project(tmp_path / "repo", train=TWO_GAINS, **TWO_SLOTS, **NO_SANDBOX)
    protected = fingerprint(root, ["prepare.py"])
    plants = SLOT_PLANTS.format(wait=wait, thief=thief(tmp_path / "stolen"))
    script = write_script(
        root,
        {"hypothesis": "turn on A", "edits": edit("A = 0", "A = 1")},  # quick (0.5 s)
        {"hypothesis": "plant", "edits": edit("B = 0", "B = 1\n" + plants)},
        *more,
    )
    engine, _ = make_engine(root, script, **TWO_SLOTS, **NO_SANDBOX)
    before = git_files(root)
    engine.run()
    assert not (tmp_path / "stolen").exists(), (tmp_path / "stolen").read_text()
    return root, protected, {e.hypothesis.split(" (")[0]: e for e in engine.history}, before


def test_a_slots_run_that_plants_in_the_shared_git_folder_is_caught_and_a_later_keep_is_not_blamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    root, protected, by_name, before = _slots_night(
        tmp_path, 3.0, {"hypothesis": "turn on C", "edits": edit("C = 0", "C = 1")},  # done before the plant too
    )
    assert by_name["turn on A"].status == Status.KEEP, {name: (e.status, e.reason) for name, e in by_name.items()}
    assert by_name["turn on C"].status == Status.DISCARD
    planted = by_name["plant"]
    assert (planted.status, planted.reason) == (
        Status.CRASH, f"the run changed .git/hooks/post-commit, .git/worktrees/{planted.slot}/HEAD",
    )
    assert git_files(root) == before
    assert_invariants(root, protected)


def test_a_plant_in_the_shared_git_folder_crashes_every_run_that_trained_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    root, protected, by_name, before = _slots_night(tmp_path, 0.0)
    honest, planted = by_name["turn on A"], by_name["plant"]
    assert (honest.status, planted.status) == (Status.CRASH, Status.CRASH), "which run planted it cannot be told"
    assert honest.reason == "the run changed .git/hooks/post-commit (or a run training beside it: slots share .git)"
    assert planted.reason.startswith("the run changed .git/hooks/post-commit, .git/worktrees/")
    assert git_files(root) == before
    assert_invariants(root, protected)


def test_a_repository_a_run_plants_in_a_project_below_the_top_is_a_crash_and_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    marker = tmp_path / "stolen"
    top = tmp_path / "mono"
    make_project(top / "lm")
    shutil.rmtree(top / "lm" / ".git")
    git(top, "init", "-q", "-b", "main")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "monorepo")
    root = top / "lm"
    protected = fingerprint(root, ["prepare.py"])
    own_repo = "import subprocess\nsubprocess.run(['git', 'init', '-q'])\n" + planted_hook(marker)[0]
    script = write_script(
        top,  # beside the repository, not in it
        {"hypothesis": "a repository of its own", "edits": edit("LR = 0.0001", "LR = 0.003\n" + own_repo)},
        {"hypothesis": "honest", "edits": edit("LR = 0.0001", "LR = 0.002")},
    )
    engine, _ = make_engine(root, script)
    engine.run()

    assert not marker.exists(), marker.read_text()
    baseline, planted, honest = engine.history
    assert (planted.status, planted.reason) == (Status.CRASH, "the run changed lm/.git")
    assert honest.status == Status.KEEP and git(top, "rev-parse", "HEAD") == honest.commit
    assert not (root / ".git").exists()
    assert (root / ".arsup" / "runs" / planted.id / "changed-at-run-time" / "lm" / ".git" / "hooks").is_dir()
    assert_invariants(root, protected)
