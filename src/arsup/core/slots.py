"""Where experiments run at the same time: one slot per GPU (or per CPU share), each in its own git worktree.

On an 8-GPU box one experiment at a time leaves 7 GPUs idle. With several
slots each runs its own candidate; they share one journal and one kept line.

Invariants:

* With one slot nothing changes: the candidate is written, committed and
  trained in the project folder, as always.
* With several, the project folder holds the kept line only: a candidate is
  written, committed (detached) and trained in its slot's worktree
  (`.arsup/worktrees/<slot>`), checked out at the best it started from; a
  keep fast-forwards the run branch. Files git ignores are not in a worktree:
  a project's data belongs outside the repository (autoresearch caches in
  `~/.cache`).
* A slot's runs see only its GPU: CUDA_VISIBLE_DEVICES names it (by UUID when
  found through NVML, which no renumbering changes), with
  CUDA_DEVICE_ORDER=PCI_BUS_ID so that an index means the same as nvidia-smi's.
* Worktrees hold nothing that is not in a commit or the journal: a killed
  arsup's are removed at the next start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from arsup.config import ExecutorConfig, SlotsConfig
from arsup.core import manifest, runner
from arsup.core.journal import STATE_DIR
from arsup.core.monitor import GpuReader
from arsup.core.vcs import Vcs

WORKTREES = "worktrees"  # under .arsup/
HOME = "main"  # the one slot that works in the project folder itself


@dataclass
class Slot:
    """One place a candidate is trained: its files, its git, its protected files' digests, its GPU."""

    name: str
    root: Path  # the project folder as this slot sees it
    vcs: Vcs
    manifest: manifest.Manifest
    env: dict[str, str]  # set for its runs (CUDA_VISIBLE_DEVICES)
    worktree: bool = False  # False: the project folder itself
    run: runner.RunHandle | None = None  # the run under way


def plan(
    config: SlotsConfig, environ: Mapping[str, str], find_gpus: Callable[[], list[str]], cluster_runs: int = 0
) -> list[tuple[str, dict[str, str]]]:
    """The slots to open, (name, environment) each; one slot means no worktree and the environment as set.

    With runs on a cluster (`cluster_runs`), the cluster hands out its GPUs: a slot per run at once."""
    if cluster_runs:
        return [(HOME, {})] if cluster_runs == 1 else [(f"ray{index}", {}) for index in range(cluster_runs)]
    if config.cpu:
        return [(f"cpu{index}", {"CUDA_VISIBLE_DEVICES": ""}) for index in range(config.cpu)]
    if config.gpus == "none":
        return [(HOME, {})]
    gpus = _gpus(config, environ, find_gpus)
    if config.gpus == "auto" and len(gpus) <= 1:
        return [(HOME, {})]
    order = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if len(gpus) == 1:
        return [(HOME, {"CUDA_VISIBLE_DEVICES": gpus[0], **order})]
    return [(f"gpu{index}", {"CUDA_VISIBLE_DEVICES": gpu, **order}) for index, gpu in enumerate(gpus)]


def devices(
    config: SlotsConfig, executor: ExecutorConfig, environ: Mapping[str, str] = os.environ,
    find_gpus: Callable[[], list[str]] | None = None,
) -> list[str]:
    """The GPUs the night's runs have, as the session record keeps them: ids or UUIDs as CUDA names them, [] on a
    CPU box or with CPU slots. A cluster's GPUs are not known here by name: "ray" stands for them."""
    if executor.kind == "ray":
        return ["ray"] if executor.gpus else []
    return [] if config.cpu else _gpus(config, environ, find_gpus or _found_gpus)


def _found_gpus() -> list[str]:
    reader = GpuReader()
    try:
        return reader.uuids()
    finally:
        reader.close()


def _gpus(config: SlotsConfig, environ: Mapping[str, str], find_gpus: Callable[[], list[str]]) -> list[str]:
    """The GPUs the runs see: the list configured, else those CUDA_VISIBLE_DEVICES leaves visible (all without it)."""
    if isinstance(config.gpus, list):
        return list(config.gpus)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    return [gpu.strip() for gpu in visible.split(",") if gpu.strip()] if visible is not None else find_gpus()


def carried_hypothesis(original: str, times: int, beat: str, kept: str, limit: int) -> str:
    """The hypothesis of a candidate carried onto a new best for the `times`-th time (see the engine's
    `_overtaken`): its own words and one suffix for the latest round, never one per round, so that a slow
    candidate overtaken all night does not grow without end; `original` is cut, never the suffix, to fit
    `limit` characters."""
    how = "again" if times == 1 else f"carried {times} times"
    suffix = f" ({how}: it beat {beat} while {kept} was kept)"
    room = limit - len(suffix)
    if len(original) > room:
        original = original[: room - 1] + "…"
    return original + suffix


def worktrees(project: Path) -> Path:
    return project / STATE_DIR / WORKTREES


def open_worktree(home: Vcs, project: Path, name: str, env: dict[str, str], commit: str, digests: dict[str, str]) -> Slot:
    """A slot's worktree at `commit`; the project folder inside it when the project is a subfolder."""
    path = worktrees(project) / name
    home.add_worktree(path, commit)
    root = path / home.prefix if home.prefix else path
    return Slot(name, root, Vcs(root), manifest.Manifest(root, dict(digests)), env, worktree=True)
