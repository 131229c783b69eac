"""`arsup import`: a karpathy/autoresearch results.tsv into the journal, to browse and report old nights.

autoresearch's log is five tab-separated columns (commit, the metric,
memory_gb, status, description), written by an agent, so it is read the
way agents write it: the literal `baseline` in the commit column,
statuses in either case, commits of a clone this repo never saw.

Invariants:

* All or nothing: every row is read and checked before the first journal
  line is written; a bad row is a `BadLog` naming the file, the line and
  what was expected, and the journal is left as it was.
* An imported tag is its own: importing into a tag the journal already has
  is refused, and the engine refuses to continue an imported tag (there is
  no run branch behind it).
* The rows come back out as they went in: the report's results.tsv of an
  imported tag is the imported file, row for row.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import git

from arsup import config
from arsup.core import journal
from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.summary import IMPORTED
from arsup.core.vcs import GitError, Vcs

STATUSES = (Status.KEEP, Status.DISCARD, Status.CRASH)
DEFAULT_TAG = "imported"


class BadLog(Exception):
    """The file is not a results.tsv arsup can read; the text names the line and the fix."""


@dataclass(frozen=True)
class Row:
    line: int
    commit: str
    value: float
    memory_gb: float
    status: str
    description: str


def read_results(path: Path) -> tuple[str, list[Row]]:
    """The metric's name (the header's second column) and the rows, each checked."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise BadLog(f"cannot read {path}: {exc.strerror or exc}") from None
    header = lines[0].split("\t") if lines else []
    if len(header) < 5 or header[0].strip().lower() != "commit" or header[3].strip().lower() != "status":
        raise BadLog(
            f"{path} line 1: not autoresearch's results.tsv header "
            f"(commit, <metric>, memory_gb, status, description, tab-separated); got {lines[0][:80]!r}"
            if lines else f"{path} is empty: a results.tsv starts with its header line"
        )
    rows = [_row(path, number, line) for number, line in enumerate(lines[1:], 2) if line.strip()]
    if not rows:
        raise BadLog(f"{path} holds a header and no experiments")
    return header[1].strip(), rows


def _row(path: Path, number: int, line: str) -> Row:
    cells = line.split("\t")
    where = f"{path} line {number}"
    if len(cells) < 4:
        raise BadLog(f"{where}: {len(cells)} tab-separated columns, expected 5: {line[:80]!r}")
    commit, value, memory, status = (cell.strip() for cell in cells[:4])
    status = status.lower()
    if status not in STATUSES:
        raise BadLog(f"{where}: status {cells[3].strip()!r}, expected one of {', '.join(STATUSES)} (any case)")
    if not commit:
        raise BadLog(f"{where}: the commit column is empty")
    return Row(number, commit, _number(where, "the metric", value), _number(where, "memory_gb", memory or "0"),
               status, " ".join(" ".join(cells[4:]).split()))


def _number(where: str, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadLog(f"{where}: {column} is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise BadLog(f"{where}: {column} is {text!r}; a crashed run is written 0.000000 with status crash")
    return value


def to_experiments(
    rows: list[Row], tag: str, metric: str, first_number: int, source: str,
    diff: Callable[[str, str], str] = lambda parent, commit: "",
) -> list[Experiment]:
    """The rows as records of `tag`: the first row is the baseline (autoresearch's first run), a keep
    moves the line on. `diff(parent, commit)` gives a change's diff where both commits are in this repo."""
    experiments = []
    parent = ""
    for number, row in enumerate(rows, first_number):
        crashed = row.status == Status.CRASH
        metrics = {"peak_vram_mb": row.memory_gb * 1024}
        if not crashed:
            metrics[metric] = row.value
        run = RunResult(seed=0, log_path="", metrics=dict(metrics), crash_reason=row.description if crashed else "")
        experiments.append(Experiment(
            id=f"{number:04d}", tag=tag, parent=parent, hypothesis=row.description or "-", agent=IMPORTED,
            commit=row.commit, diff=diff(parent, row.commit) if parent else "", status=row.status,
            reason=f"imported from {Path(source).name} line {row.line}", metric=None if crashed else row.value,
            metrics=metrics, runs=[run], crash_tail=row.description if crashed else "",
            agent_data={"source": source}, is_baseline=not experiments,
        ))
        if row.status == Status.KEEP:
            parent = row.commit
    return experiments


def free_tag(ledger: journal.Journal) -> str:
    """`imported`, or `imported2`, `imported3`... the first the journal does not hold."""
    tags = {e.tag for e in ledger.experiments()}
    number = 1
    while (tag := DEFAULT_TAG + (str(number) if number > 1 else "")) in tags:
        number += 1
    return tag


def import_results(root: Path, path: Path, tag: str = "") -> list[Experiment]:
    """Read `path`, then record its rows in the journal under `tag` (default: the first free `imported`).

    Where `root` is the clone the night ran in, each kept change gets its diff from git."""
    metric, rows = read_results(path)
    try:
        repo: Vcs | None = Vcs(root)
    except GitError:
        repo = None
    else:
        repo.exclude(journal.OWN_PATHS)
    lock = journal.RepoLock(root)
    lock.acquire()  # a loop appending meanwhile would interleave ids
    try:
        ledger = journal.Journal(root)
        tag = tag or free_tag(ledger)
        if any(e.tag == tag for e in ledger.experiments()):
            raise BadLog(f"the journal already holds tag {tag!r}; import under another name with --tag")
        source = str(path.resolve())
        diff = functools.partial(_diff, repo) if repo else lambda parent, commit: ""
        experiments = to_experiments(rows, tag, metric, ledger.next_number(), source, diff)
        ledger.record_all("import", {"tag": tag, "source": source, "metric": metric}, experiments)
        return experiments
    finally:
        lock.release()
        if repo is not None:
            repo.close()


def _diff(repo: Vcs, parent: str, commit: str) -> str:
    """The change from `parent` to `commit`, or "" where this repo lacks either."""
    try:
        return repo.diff(repo.resolve(parent), repo.resolve(commit))
    except (GitError, git.GitCommandError):
        return ""


def metric_of(events: Iterable[dict[str, Any]], tag: str, project: config.Config | None) -> tuple[str, str]:
    """The metric and goal to read `tag` by: an imported file's own metric, else the project's.

    An imported autoresearch log needs no arsup.toml (`project` None): val_bpb-style metrics are minimised."""
    names = [e.get("metric") for e in events if e.get("event") == "import" and e.get("tag") == tag]
    imported = names[-1] if names and isinstance(names[-1], str) else ""
    settings = project.metric if project is not None else config.MetricConfig()
    return imported or settings.name, settings.goal
