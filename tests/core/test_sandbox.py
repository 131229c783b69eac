"""Tests for arsup.core.sandbox: real bubblewrap, real runs, a real engine.

Where bubblewrap cannot run here, the tests that need it are skipped (CI
installs it); the fallback of ``auto`` is tested with a fake ``bwrap`` that
fails the way AppArmor makes the real one fail.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from arsup.config import SandboxConfig
from arsup.core import runner, sandbox
from arsup.core.events import Notice
from arsup.core.experiment import Status
from tests.conftest import TOY_TRAIN, blocked_bwrap, git, make_engine, make_project, needs_bwrap, write_script
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # real runs, sandboxed, on git repositories

# Before the metric: what the run can see of arsup (JSON on one line). A hidden folder is an empty one
# (a mount point cannot be removed); a hidden file cannot be read.
LOOKS_AROUND = textwrap.dedent(
    """\
    import json, os
    names = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            names.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode())
        except OSError:
            pass
    seen = {
        "git": os.listdir(".git"), "arsup": os.listdir(".arsup"), "pids": len(names),
        "reaper": any("reaper.py" in name for name in names), "supervisor": os.path.exists(f"/proc/{SUPERVISOR}"),
    }
    print("SEEN " + json.dumps(seen))
    """
)


def _seen(log: Path) -> dict[str, object]:
    line = next(line for line in log.read_text().splitlines() if line.startswith("SEEN "))
    return json.loads(line.removeprefix("SEEN "))


def _sandboxed(tmp_path: Path, code: str, folder: Path | None = None, **settings: object) -> runner.RunOutcome:
    """``code`` run by this interpreter in ``folder`` (default tmp_path/work), under the sandbox of ``settings``."""
    folder = folder or tmp_path / "work"
    folder.mkdir(exist_ok=True)
    command = f"exec {shlex.quote(sys.executable)} -c {shlex.quote(textwrap.dedent(code))}"
    prefix = sandbox.prefix(SandboxConfig(kind="bwrap", **settings), folder)
    spec = runner.RunSpec(command, folder, tmp_path / "run.log", runner.build_env(os.environ), 20.0, 0.5, sandbox=prefix)
    return runner.run(spec)


@needs_bwrap
def test_a_sandboxed_run_sees_no_git_no_arsup_and_no_process_of_arsup(tmp_path: Path) -> None:
    train = LOOKS_AROUND.replace("SUPERVISOR", str(os.getpid())) + TOY_TRAIN
    root = make_project(tmp_path / "repo", train=train, sandbox={"kind": "bwrap"})
    protected = fingerprint(root, ["prepare.py"])
    engine, events = make_engine(root, write_script(root), max_experiments=1, acceptance={"mode": "greedy"})
    engine.run()

    baseline = engine.history[0]
    assert baseline.status == Status.KEEP and baseline.metric == pytest.approx(3.25)
    seen = _seen(Path(baseline.runs[0].log_path))
    assert seen == {"git": [], "arsup": [], "pids": seen["pids"], "reaper": False, "supervisor": False}
    assert seen["pids"] <= 3, "bwrap's init, the shell and the run at most"
    assert not [e for e in events if isinstance(e, Notice) and "sandbox" in e.text]
    assert_invariants(root, protected)


@needs_bwrap
def test_a_run_in_a_slots_worktree_sees_neither_its_git_file_nor_the_main_git(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    slot = root / ".arsup" / "worktrees" / "gpu0"
    git(root, "worktree", "add", "-q", "--detach", str(slot))
    code = f"""
        import os
        try:
            print(repr(open(".git").read()), os.listdir({str(root / ".git")!r}))
        except OSError as exc:
            print(exc.__class__.__name__, os.listdir({str(root / ".git")!r}))
        print(sorted(os.listdir({str(root / ".arsup")!r})))
        open("made-in-the-slot", "w").write("x")
    """
    outcome = _sandboxed(tmp_path, code, folder=slot)

    assert outcome.exit_code == 0, (tmp_path / "run.log").read_text()
    assert (tmp_path / "run.log").read_text().splitlines() == ["PermissionError []", "['worktrees']"]
    assert (slot / "made-in-the-slot").read_text() == "x", "the slot's own folder is writable"
    assert (slot / ".git").is_file() and (root / ".git" / "HEAD").is_file()


@needs_bwrap
def test_a_sandboxed_run_writes_only_its_folder_tmp_and_the_writable_paths(tmp_path: Path) -> None:
    cache = tmp_path / "cache"  # not made yet: the sandbox makes it
    beside = tmp_path / "beside.txt"
    code = f"""
        import os, sys
        def attempt(path):
            try:
                open(path, "w").write("x")
                return "wrote"
            except OSError as exc:
                return exc.__class__.__name__
        print(attempt({str(beside)!r}), attempt("/tmp/scratch"), attempt({str(cache / "c")!r}), attempt("here"))
        print(os.access(sys.prefix, os.W_OK), os.access(os.path.expanduser("~"), os.W_OK), os.access("/", os.W_OK))
    """
    outcome = _sandboxed(tmp_path, code, writable=[str(cache)])

    assert outcome.exit_code == 0, (tmp_path / "run.log").read_text()
    written, writable = (tmp_path / "run.log").read_text().splitlines()
    # beside.txt lies under /tmp, which is the run's own: the write lands there, never beside the folder.
    assert written == "wrote wrote wrote wrote" and not beside.exists()
    assert (cache / "c").read_text() == "x" and (tmp_path / "work" / "here").read_text() == "x"
    assert writable == "False False False", "the interpreter's folder, the home and / are read-only"


@needs_bwrap
def test_a_writable_path_that_cannot_be_made_is_left_out_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    outcome = _sandboxed(tmp_path, "print('trained')", writable=[str(tmp_path / "a-file" / "cache")])
    assert outcome.exit_code == 0 and (tmp_path / "run.log").read_text() == "trained\n"


@needs_bwrap
def test_network_false_leaves_the_run_without_the_machines_network(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
                print("reached")
            except OSError as exc:
                print(exc.__class__.__name__)
        """
        connected = _sandboxed(tmp_path, code)
        assert connected.exit_code == 0 and (tmp_path / "run.log").read_text().strip() == "reached"
        cut_off = _sandboxed(tmp_path, code, network=False)
    assert cut_off.exit_code == 0 and (tmp_path / "run.log").read_text().strip() == "ConnectionRefusedError"


@needs_bwrap
def test_a_sandboxed_run_keeps_its_grace_and_its_exit_status(tmp_path: Path) -> None:
    by_signal = _sandboxed(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGUSR1)")
    assert by_signal.exit_code == -10, "bubblewrap's 128 + N is read back as -N"
    graceful = """
        import signal, sys, time
        def leave(*_):
            time.sleep(0.3)  # longer than a SIGTERM to bubblewrap would leave it
            print("saved", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, leave)
        time.sleep(60)
    """
    folder = tmp_path / "work"
    command = f"exec {shlex.quote(sys.executable)} -c {shlex.quote(textwrap.dedent(graceful))}"
    prefix = sandbox.prefix(SandboxConfig(kind="bwrap"), folder)
    spec = runner.RunSpec(command, folder, tmp_path / "run.log", runner.build_env(os.environ), 1.5, 2.0, sandbox=prefix)
    outcome = runner.run(spec)
    assert outcome.timed_out and outcome.exit_code == 3
    assert (tmp_path / "run.log").read_text() == "saved\n"


@needs_bwrap
def test_a_sandboxed_run_past_its_timeout_is_ended_with_all_it_started(tmp_path: Path) -> None:
    train = "import subprocess, time\nfor _ in range(5):\n    subprocess.Popen(['sleep', '300'])\nprint('started', flush=True)\ntime.sleep(300)\n"
    root = make_project(tmp_path / "repo", train=train, project={"timeout": 5}, sandbox={"kind": "bwrap"})
    protected = fingerprint(root, ["prepare.py"])
    engine, _ = make_engine(root, write_script(root), max_experiments=1, acceptance={"mode": "greedy"})
    engine.run()

    baseline = engine.history[0]
    assert baseline.status == Status.CRASH and "timed out after 5 s" in baseline.reason
    assert_invariants(root, protected)


def test_auto_where_bwrap_is_blocked_says_so_once_and_runs_unsandboxed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{blocked_bwrap(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}")
    train = LOOKS_AROUND.replace("SUPERVISOR", str(os.getpid())) + TOY_TRAIN
    root = make_project(tmp_path / "repo", train=train, sandbox={"kind": "auto"})
    protected = fingerprint(root, ["prepare.py"])
    engine, events = make_engine(root, write_script(root), max_experiments=1)  # the confirm rule: 5 runs
    engine.run()

    said = [e.text for e in events if isinstance(e, Notice) and "sandbox" in e.text]
    assert said == [
        "runs are not sandboxed: bwrap fails here (bwrap: setting up uid map: Permission denied); where AppArmor "
        "restricts user namespaces, `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0` allows them, "
        'or set [sandbox] kind = "none" to silence this'
    ]
    baseline = engine.history[0]
    assert baseline.status == Status.KEEP and len(baseline.runs) == 5
    assert all("HEAD" in _seen(Path(run.log_path))["git"] for run in baseline.runs), "unsandboxed: the run sees .git"
    assert_invariants(root, protected)


def test_auto_where_env_cannot_ignore_signals_names_coreutils(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bubblewrap runs with the ending signals ignored through coreutils' env (8.31 and later): an older one says so."""
    old = tmp_path / "bin"
    old.mkdir()
    (old / "env").write_text("#!/bin/sh\necho \"env: unrecognized option '$1'\" >&2\nexit 125\n")
    (old / "env").chmod(0o755)
    (old / "bwrap").symlink_to("/bin/true")  # found, so the blame is env's
    monkeypatch.setenv("PATH", f"{old}{os.pathsep}{os.environ['PATH']}")

    assert sandbox.warning(SandboxConfig(kind="auto")) == (
        "runs are not sandboxed: env cannot run bwrap with signals ignored (env: unrecognized option "
        "'--ignore-signal=TERM,INT,HUP'); install coreutils 8.31 or later, or set [sandbox] kind = \"none\" to silence this"
    )
    assert sandbox.prefix(SandboxConfig(kind="auto"), tmp_path) == ()



@needs_bwrap
def test_an_arsup_whose_python_lies_under_tmp_runs_its_sandboxed_runs_with_that_python(tmp_path: Path) -> None:
    # A fresh clone in /tmp has its venv there: the run's private /tmp hid the {python} of every sandboxed run.
    if not tmp_path.is_relative_to("/tmp"):
        pytest.skip(f"the test's folder {tmp_path} is not under /tmp")
    import subprocess
    import sysconfig

    import arsup

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # this venv sees arsup and its dependencies where the test's own venv has them
    (Path(purelib) / "arsup-under-test.pth").write_text(
        f"{Path(arsup.__file__).parents[1]}\n{sysconfig.get_paths()['purelib']}\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    code = textwrap.dedent(
        """\
        import os, shlex, sys
        from pathlib import Path
        from arsup.config import SandboxConfig
        from arsup.core import runner, sandbox
        work = Path(sys.argv[1])
        command = f"exec {shlex.quote(sys.executable)} -c 'import sys; print(\\"val_bpb: 1.0\\", sys.prefix)'"
        spec = runner.RunSpec(command, work, work.parent / "run.log", runner.build_env(os.environ), 20.0, 0.5,
                              sandbox=sandbox.prefix(SandboxConfig(kind="bwrap"), work))
        print("EXIT", runner.run(spec).exit_code)
        """
    )
    said = subprocess.run([python, "-c", code, str(work)], capture_output=True, text=True, timeout=60)
    assert "EXIT 0" in said.stdout, said.stdout + said.stderr
    assert f"val_bpb: 1.0 {venv}" in (tmp_path / "run.log").read_text()  # the venv's own interpreter ran it


@needs_bwrap
def test_what_a_command_runs_from_stays_visible_where_it_lies_under_tmp(tmp_path: Path) -> None:
    # A coding agent's CLI installed in a clone under /tmp (.agent-clis): the private /tmp hid it (exit 127).
    if not tmp_path.is_relative_to("/tmp"):
        pytest.skip(f"the test's folder {tmp_path} is not under /tmp")
    tool = tmp_path / "installed" / "bin" / "hello"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho hello from the installation\n")
    tool.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()

    def run(readable: list[Path]) -> runner.RunOutcome:
        prefix = sandbox.prefix(SandboxConfig(kind="bwrap"), work, readable=readable)
        spec = runner.RunSpec(f"exec {tool}", work, tmp_path / "run.log", runner.build_env(os.environ), 20.0, 0.5,
                              sandbox=prefix)
        return runner.run(spec)

    assert run([]).exit_code == 127  # hidden by the private /tmp
    assert run([tmp_path / "installed"]).exit_code == 0
    assert "hello from the installation" in (tmp_path / "run.log").read_text()
