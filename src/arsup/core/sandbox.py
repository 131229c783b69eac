"""Each run in its own mount and PID namespace (bubblewrap), where the machine allows one.

A training script is code an agent wrote, so a run must not reach what scores
it or what arsup keeps: ``prefix`` is the command line a run's shell goes
under. What holds inside, for a run in folder F (the project, or a slot's
worktree):

* The file system is read-only, but F, a private ``/tmp`` and the
  ``[sandbox] writable`` paths. Every ``.git`` and ``.arsup`` on the way from
  F up to ``/`` is hidden: an empty tmpfs over a folder, ``/dev/null`` over a
  file, which then cannot be opened (a bind is ``nodev``; a worktree's ``.git``
  names the main repository's, which is hidden too). Mount points cannot be
  removed or renamed, so a run cannot replace what hides them. Binds are listed outermost first, because a slot's worktree lies
  inside the project's hidden ``.arsup`` and must be bound after it.
* ``/proc`` is the new PID namespace's: arsup and the reaper are not in it.
  ``/dev`` is a minimal one with the GPUs' device nodes passed through;
  ``/sys`` is read-only (the drivers read it); no capability is kept, so
  nothing mounted can be unmounted from inside.
* bubblewrap is the reaper's child, never the runner's main process: the
  reaper's subreaper and tree kill (``runner``) cover the sandbox like any
  other descendant, and ``--die-with-parent`` takes it down with a reaper
  killed by SIGKILL. bubblewrap itself would die of the tree kill's SIGTERM
  and SIGKILL the run with it, cutting ``kill_grace`` short, so it runs with
  the ending signals ignored (coreutils' ``env --ignore-signal``) and the
  command gets them back (``env --default-signal``): the run alone takes the
  SIGTERM and its grace. Its exit status is the command's, but 128 + N for a
  command ended by signal N (``exit_code`` reads that back as -N).
* No ``--new-session``: the run has no controlling terminal to inject input
  into (the runner starts its own session, stdin ``/dev/null``), and staying
  in the reaper's process group keeps the group kill and a restart's
  recovery of the group working.

Whether bubblewrap works is probed once per process (a trivial sandbox that
runs ``true``); ``auto`` runs unsandboxed where it does not, and the engine
says so once per session (``warning``).
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # the config imports this module to check kind = "bwrap"; the runner, which imports it, needs no config
    from arsup.config import SandboxConfig

logger = logging.getLogger(__name__)

_HIDDEN = (".git", ".arsup")
_ENDING = "TERM,INT,HUP"  # the signals a tree kill or a reaper sends first; SIGKILL needs no help
_DEVICES = ("/dev/nvidia*", "/dev/kfd", "/dev/dri")  # NVIDIA's nodes (nvidia-caps, a folder, too), then AMD's
_PROBE_TIMEOUT_S = 10.0
_SILENCE = 'or set [sandbox] kind = "none" to silence this'
_USERNS_FIX = "sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0"


def prefix(
    settings: SandboxConfig, folder: Path, hide: Sequence[Path] = (), readable: Sequence[Path] = (),
) -> tuple[str, ...]:
    """The command line a run in ``folder`` goes under; empty when runs are not sandboxed. ``hide``: folders
    elsewhere whose ``.git`` and ``.arsup`` are hidden too (a coding agent's scratch copy lies outside the project);
    ``readable``: what the command runs from (a CLI's installation), kept visible where it lies under /tmp."""
    tool = _tool(settings)
    if tool is None:
        return ()
    hidden = [mount for other in hide for mount in _hide(other.resolve())]
    mounts = _mounts(settings, folder.resolve(), tuple(str(path) for path in readable))
    return (*_outer(tool, settings.network), *mounts, *hidden, "--", *_inner())


def warning(settings: SandboxConfig) -> str:
    """One line for the user when ``auto`` finds no working bubblewrap and runs go unsandboxed; else ""."""
    if settings.kind != "auto":
        return ""
    problem = problem_with(settings.network)
    if not problem:
        return ""
    if shutil.which("bwrap") is None:
        fix = "install bubblewrap (apt install bubblewrap)"
    elif problem.startswith("env "):
        fix = "install coreutils 8.31 or later"
    else:
        fix = f"where AppArmor restricts user namespaces, `{_USERNS_FIX}` allows them"
    return f"runs are not sandboxed: {problem}; {fix}, {_SILENCE}"


def problem_with(network: bool = True) -> str:
    """Why bubblewrap cannot sandbox a run on this machine, in a few words; "" when it can."""
    tool = shutil.which("bwrap")
    if tool is None:
        return "bubblewrap (bwrap) is not installed"
    return _probe(tool, shutil.which("env") or "env", network)


def exit_code(code: int) -> int:
    """A sandboxed run's exit code as the runner reports it: bubblewrap's 128 + N for signal N is -N."""
    return -(code - 128) if 128 < code <= 128 + 64 else code


def _tool(settings: SandboxConfig) -> str | None:
    """The bwrap to run under, or None: kind "none", or "auto" where it does not work."""
    if settings.kind == "none" or problem_with(settings.network):
        return None
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=None)
def _probe(tool: str, env: str, network: bool) -> str:
    """Run ``true`` in the sandbox's namespaces; "" when it worked, else why not in bwrap's (or env's) words.

    Cached by the programs found (``env`` is the one that ignores the ending signals, see the module
    docstring): a machine does not change its mind within a process, a PATH may."""
    argv = [*_outer(tool, network), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--", *_inner(), "true"]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot run ({exc})"
    if done.returncode == 0:
        return ""
    said = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    last = said[-1] if said else f"exit code {done.returncode}"
    if last.startswith("env:"):  # coreutils before 8.31: no --ignore-signal
        return f"env cannot run bwrap with signals ignored ({last})"
    return f"bwrap fails here ({last})"


def _outer(tool: str, network: bool) -> list[str]:
    """bubblewrap with the ending signals ignored, and the namespaces it makes."""
    argv = ["env", f"--ignore-signal={_ENDING}", tool, "--die-with-parent", "--unshare-pid", "--cap-drop", "ALL"]
    return argv if network else [*argv, "--unshare-net"]


def _inner() -> list[str]:
    """What the command runs under inside: the ending signals back to their defaults."""
    return ["env", f"--default-signal={_ENDING}"]


def _mounts(settings: SandboxConfig, folder: Path, readable: tuple[str, ...] = ()) -> list[str]:
    """The file system as the module docstring describes it, in the order bubblewrap must build it."""
    argv = ["--ro-bind", "/", "/", "--dev", "/dev"]
    for pattern in _DEVICES:
        for device in sorted(glob.glob(pattern)):
            argv += ["--dev-bind", device, device]
    argv += ["--proc", "/proc", "--tmpfs", "/tmp"]
    for path in _under_tmp((*_interpreter(), *readable)):  # the private /tmp would hide what the command runs
        argv += ["--ro-bind", path, path]
    for entry in settings.writable:
        path = Path(os.path.expanduser(entry)).resolve()
        try:
            path.mkdir(parents=True, exist_ok=True)  # a cache not made yet: its parent is read-only inside
        except OSError as exc:  # the run then finds it read-only, or missing, and says so in its log
            _unwritable(path, exc.strerror or str(exc))
            continue
        argv += ["--bind", str(path), str(path)]
    for ancestor in reversed(folder.parents):
        argv += _hide(ancestor)
    argv += ["--bind", str(folder), str(folder), *_hide(folder), "--chdir", str(folder)]
    return argv


def _interpreter() -> tuple[str, ...]:
    """arsup's Python installation (a venv in a fresh clone may lie under /tmp): what `{python}` names."""
    return sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))


def _under_tmp(paths: Sequence[str]) -> list[str]:
    """The outermost of ``paths`` that lie under /tmp (the private /tmp would hide them), as real paths."""
    found = {os.path.realpath(path) for path in paths}
    under = sorted(path for path in found if Path(path).is_relative_to("/tmp") and path != "/tmp")
    return [path for path in under if not any(Path(path).is_relative_to(other) for other in under if other != path)]


def _unwritable(path: Path, reason: str) -> None:
    """Say once per process, not once per run, that a writable path could not be made."""
    logger.warning("[sandbox] writable: cannot make %s (%s); runs cannot write there", path, reason)


def _hide(folder: Path) -> list[str]:
    """Binds that hide ``folder``'s ``.git`` and ``.arsup``, whichever of them exist."""
    argv: list[str] = []
    for name in _HIDDEN:
        path = folder / name
        if path.is_dir():
            argv += ["--tmpfs", str(path.resolve())]
        elif path.exists():
            argv += ["--ro-bind", "/dev/null", str(path.resolve())]
    return argv
