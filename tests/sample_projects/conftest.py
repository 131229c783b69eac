"""Fixtures for the sample-project tests: copy a sample, run its train.py as arsup would.

The runs are real subprocesses, kept short either by a one-second time cap or
by a small data budget written into the copy's prepare.py, so the tests check
what the supervisor depends on (exit code, summary block, `\\r` progress, a
clean work tree, a result that depends on the seed and not on the clock)
rather than a mocked version of it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "sample_projects"
RUN_TIMEOUT_S = 120  # generous: a loaded 2-core CI machine must not turn slowness into failure
SUMMARY_LINE = re.compile(r"^(\w+):\s+(\S+)$")


@dataclass
class TrainRun:
    """The outcome of one `python train.py` in a sample folder."""

    returncode: int
    stdout: str
    stderr: str
    changed: list[str]  # paths the run created, modified or deleted in its folder

    @property
    def losses(self) -> list[str]:
        """The training losses the progress line showed, as printed (`loss 5.5432`)."""
        return re.findall(r"\bloss (\S+)", self.stdout)

    @property
    def summary(self) -> dict[str, float]:
        """The `name: value` lines after the last `---` line (empty when there is none)."""
        lines = self.stdout.split("\n")
        if "---" not in lines:
            return {}
        start = len(lines) - lines[::-1].index("---")
        return {match[1]: float(match[2]) for line in lines[start:] if (match := SUMMARY_LINE.match(line))}


def _snapshot(folder: Path) -> dict[str, str]:
    """Every path under folder -> its content hash ("" for a folder), to see what a run wrote."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        for path in folder.rglob("*")
    }


@pytest.fixture
def sample_copy(tmp_path: Path) -> Callable[[str], Path]:
    """Copy a sample into tmp_path, so that a run or an edit cannot touch the repo."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(SAMPLES_DIR / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__")))

    return copy


def _run_train(folder: Path, budget_s: float = 1.0, seed: int = 0) -> TrainRun:
    """Run train.py the way arsup does: `{python} train.py` in the folder, time cap and seed in the env."""
    env = dict(os.environ, ARSUP_TIME_BUDGET=str(budget_s), ARSUP_SEED=str(seed))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the script itself must keep __pycache__ out of the tree
    before = _snapshot(folder)
    # Bytes, decoded by hand: text mode would turn the progress line's `\r` into `\n`.
    done = subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, timeout=RUN_TIMEOUT_S)
    after = _snapshot(folder)
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    return TrainRun(done.returncode, done.stdout.decode(), done.stderr.decode(), changed)


@pytest.fixture
def run_train() -> Callable[..., TrainRun]:
    """`run_train(folder, budget_s=1.0, seed=0)`: one real training run; budget_s is the time cap."""
    return _run_train


def _set_constant(path: Path, name: str, value: object) -> None:
    """Rewrite the top-level `NAME = ...` line of a copied sample file, as a one-line edit would."""
    text, count = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", path.read_text(), flags=re.MULTILINE)
    assert count == 1, f"no single top-level {name} in {path}"
    path.write_text(text)


@pytest.fixture
def set_constant() -> Callable[[Path, str, object], None]:
    """`set_constant(path, name, value)`: edit one constant of a copied sample file."""
    return _set_constant


def _hyperparameters(train_py: Path) -> dict[str, object]:
    """The top-level UPPER_CASE constants of train.py; literal_eval fails on anything but a plain literal."""
    constants = {}
    for node in ast.parse(train_py.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                constants[name] = ast.literal_eval(node.value)
    return constants


@pytest.fixture
def hyperparameters() -> Callable[[Path], dict[str, object]]:
    """`hyperparameters(train_py)`: the constants a tuner may change."""
    return _hyperparameters


@pytest.fixture
def load_prepare(sample_copy: Callable[[str], Path]) -> Callable[[str], ModuleType]:
    """`load_prepare(name)`: import a copy of a sample's prepare.py in this process.

    Both samples have a prepare.py, so each gets its own module name, and no
    bytecode is written next to it.
    """

    def load(name: str) -> ModuleType:
        path = sample_copy(name) / "prepare.py"
        spec = importlib.util.spec_from_file_location(f"sample_{name}_prepare", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        previous, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:
            spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = previous
        return module

    return load
