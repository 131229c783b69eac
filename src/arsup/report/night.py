"""`arsup report`: one night (or several, side by side) into a folder a person or a script can read.

A night's folder holds progress.png, report.md, summary.json and
results.tsv in autoresearch's five columns; several tags get one folder
each under the output folder plus compare.png, compare.md and a
summary.json listing every night. Nothing here changes the repo: the
report reads the journal only, so it is safe while a loop runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from arsup import config
from arsup.core import importing, journal
from arsup.core.experiment import Experiment
from arsup.core.summary import Summary, summarize
from arsup.report import chart, markdown


@dataclass
class Written:
    summaries: list[Summary]
    out: Path
    files: list[Path] = field(default_factory=list)


def default_out(root: Path, tags: list[str]) -> Path:
    return root / journal.STATE_DIR / "reports" / "-vs-".join(tags)


def _night(
    ledger: journal.Journal, tag: str, events: list[dict], project: config.Config | None,
) -> tuple[Summary, list[Experiment]]:
    experiments = ledger.experiments_of(tag)
    metric, goal = importing.metric_of(events, tag, project)
    keeps = (project.holdout if project is not None else config.HoldoutConfig()).diverge_keeps
    return summarize(tag, experiments, metric, goal, events, keeps), experiments


def _write_night(summary: Summary, experiments: list[Experiment], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "progress.png", out / "report.md", out / "summary.json", out / journal.RESULTS_NAME]
    chart.draw_night(summary, files[0])
    files[1].write_text(markdown.night_markdown(summary, files[0].name), encoding="utf-8")
    files[2].write_text(json.dumps(summary.to_json(), indent=2) + "\n", encoding="utf-8")
    files[3].write_text(journal.results_text(summary.metric, experiments), encoding="utf-8")
    return files


def write_report(root: Path, tags: list[str], out: Path | None = None) -> Written:
    """Each tag's night into `out` (default .arsup/reports/<tags>); JournalError for a tag with no experiments."""
    ledger = journal.Journal(root)
    events = ledger.events()
    project = config.load_if_present(root)  # once for every night
    nights = [_night(ledger, tag, events, project) for tag in tags]
    out = out or default_out(root, tags)
    written = Written([summary for summary, _ in nights], out)
    if len(nights) == 1:
        written.files = _write_night(*nights[0], out)
        return written
    for summary, experiments in nights:
        written.files += _write_night(summary, experiments, out / summary.tag)
    both = [out / "compare.png", out / "compare.md", out / "summary.json"]
    chart.draw_overlay(written.summaries, both[0])
    both[1].write_text(markdown.comparison_markdown(written.summaries, both[0].name), encoding="utf-8")
    nights_json = {"nights": [s.to_json() for s in written.summaries]}
    both[2].write_text(json.dumps(nights_json, indent=2) + "\n", encoding="utf-8")
    written.files = both + written.files
    return written
