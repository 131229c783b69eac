"""A tiny per-run shim that stays between the supervisor and the training command.

Usage (the runner builds this line)::

    python -I -S reaper.py [--grace S] [--parent PID] [--lc-ctype VALUE] [--caps drop|keep] -- /bin/sh -c COMMAND

Why it exists: a run may double-fork a helper, ``setsid`` it and close its
stdio faster than any sampling can see it; once its parent exits it belongs to
init and no tree walk, process group or pipe leads back to it. On Linux this
shim makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so
every orphan among its descendants, new session or not, is re-parented to the
shim instead of init. While the shim lives, every process of the run is its
descendant: the tree is closed and cannot be outrun.

Not cgroups: a cgroup would also contain the tree, but neither cgroup v1 nor
v2 is reliably writable by an unprivileged user on the machines this runs on
(the development box has a v1/v2 hybrid with nothing delegated), whereas
``prctl`` needs no privilege and no setup.

What it guarantees, on Linux:

* It runs the command as its only direct child, in its own process group
  (the runner starts the shim as a session leader), with default signal
  dispositions and an empty signal mask, and passes its environment on
  unchanged (see ``--lc-ctype`` for the one thing Python itself changes).
* It exits only once it has no child left (``waitpid`` says ``ECHILD``); as a
  subreaper that means no descendant is left at all. When the command ends on
  its own, whatever it left behind is ended: SIGTERM, ``--grace`` seconds,
  SIGKILL until nothing is left.
* SIGTERM, SIGHUP or SIGINT to the shim end the whole tree the same way.
* ``PR_SET_PDEATHSIG`` is SIGTERM: when the supervisor dies, even by SIGKILL,
  the shim is told and takes its tree down. SIGTERM and not SIGKILL, because a
  killed shim would orphan the tree to init. The kernel sends it when the
  *thread* that started the shim exits, so the supervisor must start it from a
  thread that outlives the run.
* Its exit status is the command's: the same code, or the same signal raised
  on itself, so the supervisor sees -N for a command ended by signal N.
* It is not dumpable (``PR_SET_DUMPABLE`` 0, as arsup itself is: see
  ``make_undumpable``), so a run cannot read its ``/proc/<pid>/environ`` or
  ``mem``, nor ptrace it, without ``CAP_SYS_PTRACE``.
* The command starts with no capability at all (``--caps drop``, the
  default): root keeps ``CAP_SYS_PTRACE``, which reads the environment of
  any process, arsup's included, dumpable or not. Where the shim may
  (``CAP_SETPCAP``, as root usually has), it empties its capability bounding
  set before the command starts, and it always empties its inheritable set
  (and so the ambient one), so the command, root or not, setuid or file
  capabilities or not, execs without any. The shim keeps its own: ending
  its descendants needs none, and nothing else runs in it. A root run stays
  uid 0: whatever root owns, or anyone may read, stays readable and writable
  to it (arsup's own installation too); what it loses is the overrides
  (another user's private files, ptrace, mounts, raw sockets, loading
  modules). ``--caps keep`` is for a command that drops them itself and
  needs them to do it: bubblewrap (``sandbox``, ``--cap-drop ALL``).

Elsewhere (no ``prctl``) the shim still forwards signals and cleans up what it
can find, but orphans escape to init as they would without it; the runner does
not use the shim there at all.

It is started for every run, so it imports only the standard library (and
little of it), never arsup: Python's start plus this module costs about
20 ms before the command starts.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # at run time ctypes is imported only where it is used: it costs 4 ms of every start
    import ctypes

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_CHILD_SUBREAPER = 36
_CAPABILITY_VERSION_3 = 0x20080522  # capget/capset: two 32-bit words per set
_ENDING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)  # ask the shim to end the run
_POLL_S = 0.01  # while waiting for signalled descendants to go
_RESCAN_S = 0.1  # during the grace, how often to look for (and SIGTERM) descendants forked since
_DEFAULT_GRACE_S = 5.0
_WATCHED = {signal.SIGCHLD, *_ENDING}  # kept blocked and taken with sigwaitinfo: no handler races


def main(argv: list[str]) -> NoReturn:
    """Run the command, end whatever it leaves, exit as it did; never returns.

    The signals the shim cares about stay blocked and are taken one at a time
    with ``sigwaitinfo``, so a signal can never fall between reaping the
    command and recording its status.
    """
    try:
        grace, parent, lc_ctype, keep_caps, command = _parse(argv)
    except ValueError as exc:
        _die(2, f"arsup reaper: {exc}")
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    reaped: dict[int, int] = {}
    first = signal.SIGTERM
    pid = 0
    if _take_charge(parent, keep_caps):
        pid = _spawn(command, lc_ctype)
        first = _wait_for(pid, reaped)
    _end_descendants(first, grace, reaped)
    if pid in reaped:
        _exit_like(reaped[pid])
    _exit_by_signal(first)  # the command never ran: end as the signal that stopped us would have


def _parse(argv: list[str]) -> tuple[float, int, str | None, bool, list[str]]:
    """Hand-rolled: argparse alone would add a third to the start-up time."""
    grace, parent, lc_ctype, keep_caps = _DEFAULT_GRACE_S, 0, None, False
    args = list(argv)
    while args and args[0] != "--":
        option = args.pop(0)
        if not args:
            raise ValueError(f"{option} needs a value")
        value = args.pop(0)
        if option == "--grace":
            grace = float(value)
        elif option == "--parent":
            parent = int(value)
        elif option == "--lc-ctype":
            lc_ctype = value
        elif option == "--caps" and value in ("drop", "keep"):
            keep_caps = value == "keep"
        else:
            raise ValueError(f"unknown option {option} {value}")
    if len(args) < 2:
        raise ValueError(
            "usage: reaper.py [--grace S] [--parent PID] [--lc-ctype VALUE] [--caps drop|keep] -- PROGRAM [ARG...]"
        )
    return grace, parent, lc_ctype, keep_caps, args[1:]


def make_undumpable(libc: ctypes.CDLL | None = None) -> None:
    """Keep this process's ``/proc/<pid>/environ``, ``mem`` and ptrace from every process without ``CAP_SYS_PTRACE``.

    A run is code an agent wrote, and by default the same user's: it may
    walk up its parents and read their environment, where arsup's API keys
    are (scrubbing ``os.environ`` does not clear that block). arsup calls
    this first thing (``arsup.cli.main``: the loop in the background too),
    the shim in ``_take_charge``; it is inherited by ``fork`` and reset by
    ``execve``, so a run itself is dumpable as usual. A side effect: no core
    dump of this process. Nothing happens where there is no ``prctl``.
    """
    if libc is None:
        libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def _libc() -> ctypes.CDLL | None:
    """The C library, for ``prctl`` and ``capset``; None without ``ctypes`` or ``prctl`` (not Linux)."""
    try:
        import ctypes  # noqa: F811 -- here, not at the top: the costliest import, and only useful on Linux

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl  # noqa: B018 -- AttributeError where there is none
    except (ImportError, OSError, AttributeError):
        return None
    return libc


def _take_charge(parent: int, keep_caps: bool) -> bool:
    """Become the run's subreaper and follow the supervisor into death; False if it is already dead.

    Also not dumpable, and unless ``keep_caps``, unable to pass on any
    capability (see the module docstring). Without ``prctl`` (not Linux)
    nothing is armed and the run goes ahead.
    """
    libc = _libc()
    if libc is None:
        return True
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    make_undumpable(libc)
    if not keep_caps:
        _drop_capabilities(libc)
    # If the supervisor died before PDEATHSIG was armed, nobody will ever tell us.
    return not parent or os.getppid() == parent


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """Empty the bounding and inheritable sets, so that no program this process starts gets a capability.

    ``PR_CAPBSET_DROP`` for each capability, up to the first the kernel does
    not know (``EINVAL``: past ``/proc/sys/kernel/cap_last_cap``). It fails
    at once (``EPERM``) without ``CAP_SETPCAP``: an unprivileged user's shim
    (whose command gains none at exec but from a setuid or file-capability
    program), or a container that took it away from root (then a root
    command gets the bounding set the container left, as without arsup).
    The inheritable set is lowered with ``capset``, which any process may
    do, and takes the ambient set down with it.
    """
    import ctypes

    cap = 0
    while libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)  # version, pid 0: this thread
    sets = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable; twice (capabilities 0-31, 32-63)
    if libc.capget(header, sets) == 0 and (sets[2] or sets[5]):
        sets[2] = sets[5] = 0
        libc.capset(header, sets)


def _spawn(command: list[str], lc_ctype: str | None) -> int:
    """Start the command with default signal handling and the environment we were given."""
    env = dict(os.environ)
    # Python's start-up sets LC_CTYPE=C.UTF-8 when the locale is C (PEP 538); undo that for the child.
    if lc_ctype is None:
        env.pop("LC_CTYPE", None)
    else:
        env["LC_CTYPE"] = lc_ctype
    try:
        return os.posix_spawnp(
            command[0],
            command,
            env,
            setsigmask=(),
            setsigdef=(*_WATCHED, signal.SIGPIPE, signal.SIGXFSZ),  # Python ignores the last two
        )
    except OSError as exc:
        _die(127, f"arsup reaper: cannot run {command[0]}: {exc}")


def _wait_for(pid: int, reaped: dict[int, int]) -> int:
    """Reap children (orphans re-parented to us too) until ``pid`` is reaped or a stop signal comes.

    Returns the signal to end the rest with: SIGTERM after a normal end, else the one received.
    """
    while pid not in reaped:
        signum = signal.sigwaitinfo(_WATCHED).si_signo
        if signum != signal.SIGCHLD:
            return signum
        _reap(reaped)
    return signal.SIGTERM


def _end_descendants(first: int, grace: float, reaped: dict[int, int]) -> None:
    """Signal every descendant with ``first``, wait ``grace``, SIGKILL until none is left.

    Done only when ``waitpid`` reports no child at all, which for a subreaper
    means no descendant: a process forked between a listing and a signal is
    found by the next listing, since it can only be re-parented to us. The
    wait statuses of the children reaped meanwhile go into ``reaped``.
    """
    signalled: set[int] = set()
    deadline = time.monotonic() + grace
    sig = first
    next_scan = 0.0
    while not _reap(reaped):
        now = time.monotonic()
        if sig != signal.SIGKILL and now >= deadline:
            sig, next_scan = signal.SIGKILL, 0.0
        if now >= next_scan:  # a scan reads all of /proc: not every round while the tree takes its grace
            if sig == signal.SIGKILL:
                signalled.clear()  # SIGKILL whatever is left, each scan: it cannot be ignored
            for pid in _descendants():
                if pid not in signalled:
                    _kill(pid, sig)
                    signalled.add(pid)
            next_scan = now + (_POLL_S if sig == signal.SIGKILL else _RESCAN_S)
        time.sleep(_POLL_S)


def _reap(reaped: dict[int, int]) -> bool:
    """Reap every exited child; True when no child is left."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False
        reaped[pid] = status


def _descendants() -> list[int]:
    """Pids of all our descendants, from /proc (a pid's parent is field 4 of its stat line)."""
    parents: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split(None, 2)  # the name in (...) may hold spaces
        if len(fields) >= 2:
            parents.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [os.getpid()]
    while todo:
        kids = parents.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass  # gone already


def _exit_like(status: int) -> NoReturn:
    """Exit with the command's wait status: its code, or death by its signal."""
    if os.WIFSIGNALED(status):
        _exit_by_signal(os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def _exit_by_signal(signum: int) -> NoReturn:
    """Die by ``signum``, so that the supervisor sees the same -N as without the shim."""
    if signum in (signal.SIGQUIT, signal.SIGILL, signal.SIGABRT, signal.SIGFPE, signal.SIGSEGV, signal.SIGBUS):
        import resource  # the command may have dumped core; the shim must not add one of its own

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])  # delivered here, if it was blocked
    time.sleep(1)  # it is delivered before this ends, unless it cannot kill (SIGCHLD, SIGSTOP...)
    os._exit(128 + signum)


def _die(code: int, message: str) -> NoReturn:
    print(message, file=sys.stderr, flush=True)
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
