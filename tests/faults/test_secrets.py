"""A run is hostile: it walks up its parents' /proc entries for the secrets arsup keeps from it (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import TOY_TRAIN, make_project, needs_bwrap, results_rows, write_script
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories

# What a thief prints: every NAME=value its ancestors' environment blocks and stacks give away,
# up to the arsup that started it; or, for each file, the error that stopped it.
SNOOP = TOY_TRAIN + r'''
import re

def _stack(pid):
    with open(f"/proc/{pid}/maps") as maps:
        start, end = next(
            [int(x, 16) for x in line.split()[0].split("-")] for line in maps if line.rstrip().endswith("[stack]")
        )
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(start)
        return mem.read(end - start)

def _snoop():
    pid = os.getppid()
    while pid > 1:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        who = "arsup" if b"-m\0arsup\0" in cmdline else "reaper" if b"reaper.py" in cmdline else "other"
        for name, read in (("environ", lambda: open(f"/proc/{pid}/environ", "rb").read()), ("mem", lambda: _stack(pid))):
            try:
                data = read()
            except OSError as exc:
                print(f"snoop {who} {name}: {type(exc).__name__}", flush=True)
            else:
                found = sorted(set(re.findall(rb"[A-Z][A-Z_]{2,}=[^\0\n]*", data)))
                print(f"snoop {who} {name}: read", *found, flush=True)
        if who == "arsup":
            return
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])

_snoop()
'''

SECRETS = {
    "OPENAI_API_KEY": f"sk-fake-{uuid.uuid4().hex}",
    "HF_TOKEN": f"hf_fake{uuid.uuid4().hex}",
    "DATABASE_URL": f"postgres://arsup:pw{uuid.uuid4().hex}@db.example/night",
}

KINDS = ["none", pytest.param("bwrap", marks=needs_bwrap)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_reads_no_secret_from_its_parents_proc_entries(tmp_path: Path, kind: str) -> None:
    """arsup and the reaper are not dumpable and the run holds no capability (root keeps CAP_SYS_PTRACE
    otherwise); in a sandbox the run does not even see them."""
    root = make_project(tmp_path / "repo", train=SNOOP, sandbox={"kind": kind})
    protected = fingerprint(root, ["prepare.py"])
    command = [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{write_script(root)}",
               "--max-experiments", "1"]
    done = subprocess.run(command, cwd=root, env={**os.environ, **SECRETS}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    log = (root / ".arsup" / "runs" / "0001" / "run.log").read_text()
    for name, value in SECRETS.items():
        assert value not in log, f"the run read {name}"
        assert value not in done.stdout + done.stderr
    if kind == "none":  # the walk reached both, and was refused: the test is not vacuous
        for who in ("reaper", "arsup"):
            assert f"snoop {who} environ: PermissionError" in log, log
            assert f"snoop {who} mem: PermissionError" in log, log
    else:
        assert "snoop arsup" not in log and "snoop reaper" not in log, log  # not in the run's PID namespace
    assert [row[3] for row in results_rows(root)] == ["keep"]  # the thief still gets measured
    assert_invariants(root, protected)
