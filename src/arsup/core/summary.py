"""The figures of one night, folded from the journal: what `arsup report` draws, writes and prints.

One pass over a tag's experiments (and the verify/ablate events recorded
for it) gives everything a person asks the morning after and everything a
script or an agent reads from summary.json, so the chart, the Markdown and
the JSON can never disagree. Plain data, no drawing: the core stays free of
matplotlib as it is of Textual.

Decisions, where the figures could be read two ways:

* Rates are over the experiments that trained after the baseline (keeps,
  discards, crashes); an edit that never applied or a skipped proposal is
  counted, but it is not a trial of an idea on the hardware. A baseline
  that crashed (the wrong `[metric] name`, a script fixed and started
  again) is not a crash of the night's ideas either: it is counted apart,
  in `baseline_crashes`.
* GPU-hours are the runs' wall time summed: each run holds one slot (one
  GPU on a GPU box), confirmation seeds included; wall time is the first
  start to the last end. Imported logs carry no times: both are None.
* They are GPU-hours only where the runs had GPUs: `gpus_used` says so from
  the night's `session` records (their `gpus`, the slots' devices): True
  when any session had one, False when every session recorded none (a CPU
  box, CPU slots), None when a session does not say (an arsup before the
  record did, an imported results.tsv). The report calls them slot-hours
  unless True, and for None says that a slot is one GPU on a GPU box: the
  hours are right, the word GPU might not be. The JSON keys scripts read
  (`gpu_hours`, `gpu_hours_per_improvement`) keep their names.
* The gain of a kept change is against the best before it, which is what
  it had to beat.
* An agent's gain is the sum of its keeps' gains: its share of the way from
  the baseline to the best. Its dollars are its own proposals' (corrections
  included); the baseline and a person's commits belong to no agent.
* Every carry counts (slots: a candidate that beat a best replaced
  meanwhile runs again on the new one, maybe round after round); a kept
  change says how many rounds it was carried before it was kept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

from arsup.core import acceptance, load
from arsup.core.experiment import Experiment, Status, total_usage
from arsup.core.holdout import divergence

IMPORTED = "import"  # the agent of experiments read from another tool's results.tsv


@dataclass
class Point:
    """One experiment on the chart, in the order they finished."""

    id: str
    status: str
    metric: float | None
    best: float | None  # the running best once this one was decided
    hours: float | None  # since the night started, when it finished; None without times
    hypothesis: str
    holdout: float | None = None


@dataclass
class KeptChange:
    """One step of the kept line: what changed, what it gained, how sure we are."""

    id: str
    commit: str
    hypothesis: str
    metric: float
    std: float | None
    gain: float | None  # over the best before it, positive = better; None for the baseline
    gain_pct: float | None
    gain_sigma: float | None
    p_value: float | None
    seeds: int
    diff: str
    holdout: float | None = None  # its score on data the agent never saw ([holdout])
    verify: dict[str, Any] | None = None  # the latest `arsup verify` of its commit
    ablation: dict[str, Any] | None = None  # its row in the latest `arsup ablate`
    carried: int = 0  # how many times it was carried onto a newer best before it was kept (slots)


@dataclass
class AgentRow:
    """One researcher of the night (several take turns with `[agent] kind` a list): how it did, side by side."""

    agent: str
    proposed: int  # every record it made: trained, invalid and skipped
    trained: int
    kept: int
    gain: float  # its keeps' gains summed, positive = better
    cost_usd: float
    cost_per_keep: float | None


@dataclass
class Summary:
    tag: str
    metric: str
    goal: str
    source: str  # "arsup", or the results.tsv it was imported from
    experiments: int  # every record: trained, invalid and skipped
    trained: int  # after the baseline: keeps + discards + crashes
    kept: int  # improvements, the baseline not counted
    discarded: int
    crashed: int
    invalid: int
    skipped: int
    keep_rate: float | None
    crash_rate: float | None
    baseline: float | None
    best: float | None
    best_id: str
    gain: float | None  # best over baseline, positive = better
    gain_pct: float | None
    noise_sigma: float | None
    noise_runs: int
    started_at: float | None
    finished_at: float | None
    wall_hours: float | None
    gpu_hours: float | None  # slot-hours: GPU-hours where gpus_used
    cost_usd: float
    llm_calls: int
    cost_per_improvement: float | None
    gpu_hours_per_improvement: float | None
    gpus_used: bool | None = None  # the runs had GPUs (the session records); None: the journal does not say
    holdout_warning: str = ""  # the kept line improves val while the holdout gets worse
    carried: int = 0  # candidates run again on a newer best (slots), one per carry
    baseline_crashes: list[str] = field(default_factory=list)  # the baseline's attempts that crashed, by id
    noise_capped: int = 0  # time-capped runs left out of the noise floor
    capped: list[str] = field(default_factory=list)  # "0001: time-capped at 53% of the steps: compare with care"
    kept_changes: list[KeptChange] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    agents: list[AgentRow] = field(default_factory=list)  # the researchers, in the order they first proposed

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def summarize(
    tag: str, experiments: list[Experiment], metric: str, goal: str, events: Iterable[dict[str, Any]] = (),
    holdout_keeps: int = 3,
) -> Summary:
    """The night of `tag` from its experiments (journal order) and the journal's verify/ablate events;
    a holdout divergence is looked for over the last `holdout_keeps` keeps."""
    events = list(events)  # read twice: the checks and the sessions
    verified, ablated = _checks(tag, events)
    trained = [e for e in experiments if e.status in Status.TRAINED and not e.is_baseline]
    counts = {status: sum(e.status == status for e in experiments if not e.is_baseline) for status in Status.FINAL}
    kept = counts[Status.KEEP]
    baseline = next((e.metric for e in experiments if e.is_baseline and e.metric is not None), None)
    head = acceptance.head_of_line(experiments)
    best = head.metric if head else None
    gain = acceptance.gain(best, baseline, goal) if best is not None and baseline is not None else None
    noise = acceptance.noise(experiments, metric)
    times = [t for e in experiments for t in (e.started_at or e.proposed_at, e.finished_at) if t]
    started, finished = (min(times), max(times)) if times else (None, None)
    run_seconds = [run.wall_s for e in experiments for run in e.runs]
    gpu_hours = sum(run_seconds) / 3600 if any(run_seconds) else None
    usage = total_usage(experiments)
    imported = [e for e in experiments if e.agent == IMPORTED]
    kept_line = _kept_line(experiments, goal, verified, ablated)
    return Summary(
        tag=tag, metric=metric, goal=goal,
        source=imported[0].agent_data.get("source", "results.tsv") if imported else "arsup",
        experiments=len(experiments), trained=len(trained), kept=kept,
        discarded=counts[Status.DISCARD], crashed=counts[Status.CRASH],
        invalid=counts[Status.INVALID], skipped=counts[Status.SKIPPED],
        keep_rate=_ratio(kept, len(trained)), crash_rate=_ratio(counts[Status.CRASH], len(trained)),
        baseline=baseline, best=best, best_id=head.id if head else "",
        gain=gain, gain_pct=_percent(gain, baseline),
        noise_sigma=noise.sigma if noise else None, noise_runs=noise.runs if noise else 0,
        started_at=started, finished_at=finished,
        wall_hours=(finished - started) / 3600 if started is not None and finished is not None else None,
        gpu_hours=gpu_hours, cost_usd=usage["cost_usd"], llm_calls=int(usage["calls"]),
        cost_per_improvement=usage["cost_usd"] / kept if kept else None,
        gpu_hours_per_improvement=gpu_hours / kept if kept and gpu_hours is not None else None,
        gpus_used=_gpus_used(tag, events),
        holdout_warning=divergence(experiments, goal, holdout_keeps),
        carried=sum(_times_carried(e) > 0 for e in experiments),
        baseline_crashes=[e.id for e in experiments if e.is_baseline and e.status == Status.CRASH],
        noise_capped=noise.capped if noise else 0,
        capped=[f"{e.id}: {note}" for e in experiments if (note := load.note(e))],
        kept_changes=kept_line,
        points=_points(experiments, goal, started),
        agents=_agents(experiments, kept_line),
    )


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percent(gain: float | None, reference: float | None) -> float | None:
    return 100 * gain / abs(reference) if gain is not None and reference else None


def _checks(tag: str, events: Iterable[dict[str, Any]]) -> tuple[dict[str, dict], dict[str, dict]]:
    """The latest verify per commit and the latest ablation row per experiment id, for this tag."""
    verified: dict[str, dict] = {}
    ablated: dict[str, dict] = {}
    for event in events:
        if event.get("tag") != tag:
            continue
        if event.get("event") == "verify" and isinstance(event.get("commit"), str):
            verified[event["commit"]] = {k: event.get(k) for k in ("values", "mean", "std", "gain", "p_value", "crashes")}
        elif event.get("event") == "ablation" and isinstance(event.get("rows"), list):
            for row in event["rows"]:
                if isinstance(row, dict) and isinstance(row.get("id"), str):
                    ablated[row["id"]] = row
    return verified, ablated


def _gpus_used(tag: str, events: list[dict[str, Any]]) -> bool | None:
    """Whether the night's runs had GPUs, from its session records; None where one does not say."""
    recorded = [event.get("gpus") for event in events if event.get("event") == "session" and event.get("tag") == tag]
    if any(recorded):
        return True
    return False if recorded and all(isinstance(gpus, list) for gpus in recorded) else None


def _kept_line(
    experiments: list[Experiment], goal: str, verified: dict[str, dict], ablated: dict[str, dict],
) -> list[KeptChange]:
    line: list[KeptChange] = []
    before: float | None = None
    for e in experiments:
        if e.status != Status.KEEP or e.metric is None:
            continue
        gain = acceptance.gain(e.metric, before, goal) if before is not None else None
        line.append(KeptChange(
            id=e.id, commit=e.commit, hypothesis=" ".join(e.hypothesis.split()), metric=e.metric,
            std=e.metric_std, gain=gain, gain_pct=_percent(gain, before), gain_sigma=e.gain_sigma,
            p_value=e.p_value, seeds=len(e.runs), diff=e.diff, holdout=e.holdout,
            verify=verified.get(e.commit), ablation=ablated.get(e.id), carried=_times_carried(e),
        ))
        before = e.metric
    return line


def _agents(experiments: list[Experiment], kept_line: list[KeptChange]) -> list[AgentRow]:
    gains = {change.id: change.gain for change in kept_line if change.gain is not None}
    mine: dict[str, list[Experiment]] = {}
    for e in experiments:
        if not e.is_baseline and not e.by_person:
            mine.setdefault(e.agent, []).append(e)
    rows = []
    for agent, made in mine.items():
        kept = [e for e in made if e.status == Status.KEEP]
        cost = total_usage(made)["cost_usd"]
        rows.append(AgentRow(
            agent=agent, proposed=len(made), trained=sum(e.status in Status.TRAINED for e in made), kept=len(kept),
            gain=sum(gains.get(e.id, 0.0) for e in kept), cost_usd=cost,
            cost_per_keep=cost / len(kept) if kept else None,
        ))
    return rows


def _times_carried(experiment: Experiment) -> int:
    """The rounds it was carried (an older arsup journaled only `again_of`: one)."""
    data = experiment.agent_data
    return int(data.get("carried", 1)) if "again_of" in data else 0


def _points(experiments: list[Experiment], goal: str, started: float | None) -> list[Point]:
    points: list[Point] = []
    best: float | None = None
    for e in experiments:
        if e.status not in Status.TRAINED:
            continue
        if e.status == Status.KEEP and e.metric is not None:
            best = e.metric if best is None or acceptance.is_better(e.metric, best, goal) else best
        hours = (e.finished_at - started) / 3600 if started is not None and e.finished_at else None
        metric = None if e.status == Status.CRASH else e.metric
        points.append(Point(e.id, e.status, metric, best, hours, " ".join(e.hypothesis.split()), e.holdout))
    return points
