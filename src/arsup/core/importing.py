"""`arsup import`: a karpathy/autoresearch results.tsv into the journal, to browse and report old nights.

autoresearch's log is five tab-separated columns (commit, the metric,
memory_gb, status, description), written by an agent, so it is read the
way agents write it: the literal `baseline` in the commit column,
statuses in either case, commits of a clone this repo never saw.

Invariants:

* All or nothing: every row is read and checked before the first journal
  line is written; a bad row is a `BadLog` naming the file, the line and
  what was expected, and the journal is left as it was.
* Linear and streaming: the file is read twice, a row at a time (checked,
  then recorded in batches), and git is asked through two processes kept
  open, so a million rows take no more memory than a thousand. A git
  process per row cost milliseconds each, more as the importer's memory
  grew; a million rows did not finish in ten minutes.
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
from typing import Any, Callable, Iterable, Iterator

import git

from arsup import config
from arsup.core import journal
from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.metric_names import goal_of
from arsup.core.summary import IMPORTED
from arsup.core.vcs import GitError, Vcs

STATUSES = (Status.KEEP, Status.DISCARD, Status.CRASH)
DEFAULT_TAG = "imported"


class BadLog(Exception):
    """The file is not a results.tsv arsup can read; the text names the line and the fix."""


@dataclass(frozen=True)
class Imported:
    """What an import recorded: `count` experiments of `tag`, ids `first` to `last`."""

    tag: str
    count: int
    first: str
    last: str


@dataclass(frozen=True)
class Row:
    line: int
    commit: str
    value: float
    memory_gb: float
    status: str
    description: str


def read_results(path: Path) -> tuple[str, Iterator[Row]]:
    """The metric's name (the header's second column) and the rows, read and checked one at a time:
    a bad row is a BadLog when the iteration comes to it, a header alone one at the end."""
    lines = _lines(path)
    _, first = next(lines, (1, None))
    header = first.split("\t") if first is not None else []
    if len(header) < 5 or header[0].strip().lower() != "commit" or header[3].strip().lower() != "status":
        lines.close()
        raise BadLog(
            f"{path} line 1: not autoresearch's results.tsv header "
            f"(commit, <metric>, memory_gb, status, description, tab-separated); got {first[:80]!r}"
            if first is not None else f"{path} is empty: a results.tsv starts with its header line"
        )
    return header[1].strip(), _rows(path, lines)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines with their numbers, without line ends, read as they are asked for."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                yield number, line.rstrip("\n")
    except OSError as exc:
        raise BadLog(f"cannot read {path}: {exc.strerror or exc}") from None


def _rows(path: Path, lines: Iterator[tuple[int, str]]) -> Iterator[Row]:
    empty = True
    for number, line in lines:
        if line.strip():
            empty = False
            yield _row(path, number, line)
    if empty:
        raise BadLog(f"{path} holds a header and no experiments")


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


def _no_diff(parent: str, commit: str) -> str:
    return ""


def to_experiments(
    rows: Iterable[Row], tag: str, metric: str, first_number: int, source: str,
    diff: Callable[[str, str], str] = _no_diff,
) -> Iterator[Experiment]:
    """The rows as records of `tag`, as they come: the first row is the baseline (autoresearch's first run),
    a keep moves the line on. `diff(parent, commit)` gives a change's diff where both commits are in this repo."""
    parent = ""
    for number, row in enumerate(rows, first_number):
        crashed = row.status == Status.CRASH
        metrics = {"peak_vram_mb": row.memory_gb * 1024}
        if not crashed:
            metrics[metric] = row.value
        run = RunResult(seed=0, log_path="", metrics=dict(metrics), crash_reason=row.description if crashed else "")
        yield Experiment(
            id=f"{number:04d}", tag=tag, parent=parent, hypothesis=row.description or "-", agent=IMPORTED,
            commit=row.commit, diff=diff(parent, row.commit) if parent else "", status=row.status,
            reason=f"imported from {Path(source).name} line {row.line}", metric=None if crashed else row.value,
            metrics=metrics, runs=[run], crash_tail=row.description if crashed else "",
            agent_data={"source": source}, is_baseline=number == first_number,
        )
        if row.status == Status.KEEP:
            parent = row.commit


def free_tag(tags: set[str]) -> str:
    """`imported`, or `imported2`, `imported3`... the first not in `tags` (the journal's)."""
    number = 1
    while (tag := DEFAULT_TAG + (str(number) if number > 1 else "")) in tags:
        number += 1
    return tag


def import_results(root: Path, path: Path, tag: str = "") -> Imported:
    """Read `path`, then record its rows in the journal under `tag` (default: the first free `imported`).

    Where `root` is the clone the night ran in, each kept change gets its diff from git."""
    metric, rows = read_results(path)
    for _ in rows:  # the first pass: every row checked before the journal is touched
        pass
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
        tag, first = _tag_and_first_number(ledger, tag)
        source = str(path.resolve())
        diff = functools.partial(_diff, repo, functools.lru_cache(1024)(repo.commit_of)) if repo else _no_diff
        experiments = to_experiments(read_results(path)[1], tag, metric, first, source, diff)
        count = ledger.record_all("import", {"tag": tag, "source": source, "metric": metric}, experiments)
        return Imported(tag, count, f"{first:04d}", f"{first + count - 1:04d}")
    finally:
        lock.release()
        if repo is not None:
            repo.close()


def _tag_and_first_number(ledger: journal.Journal, tag: str) -> tuple[str, int]:
    """The tag to import under (refused if the journal holds it) and the first id, from one read of the journal."""
    known = ledger.experiments()
    tags = {e.tag for e in known}
    tag = tag or free_tag(tags)
    if tag in tags:
        raise BadLog(f"the journal already holds tag {tag!r}; import under another name with --tag")
    return tag, ledger.next_number(known)


def _diff(repo: Vcs, commit_of: Callable[[str], str | None], parent: str, commit: str) -> str:
    """The change from `parent` to `commit`, or "" where this repo lacks either.

    `commit_of` is the repo's, remembered: every row until the next keep has the same parent."""
    parent_hash, commit_hash = commit_of(parent), commit_of(commit)
    if parent_hash is None or commit_hash is None:
        return ""
    try:
        return repo.diff_commits(parent_hash, commit_hash)
    except (GitError, git.GitCommandError):
        return ""


def metric_of(events: Iterable[dict[str, Any]], tag: str, project: config.Config | None) -> tuple[str, str]:
    """The metric and goal to read `tag` by: an imported file's own metric and the goal its name says
    (autoresearch minimises: val_bpb), else the project's.

    An imported log needs no arsup.toml (`project` None), and is not read by the project's metric where there is
    one: a night of val_bpb is not a night of the project's accuracy."""
    names = [e.get("metric") for e in events if e.get("event") == "import" and e.get("tag") == tag]
    imported = names[-1] if names and isinstance(names[-1], str) else ""
    if imported:
        return imported, goal_of(imported) or "minimize"
    settings = project.metric if project is not None else config.MetricConfig()
    return settings.name, settings.goal


def is_imported(events: Iterable[dict[str, Any]], tag: str) -> bool:
    """Whether `tag` was read from a results.tsv (and so needs no arsup.toml to be browsed or reported)."""
    return any(e.get("event") == "import" and e.get("tag") == tag for e in events)
