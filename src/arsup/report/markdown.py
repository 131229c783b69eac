"""The night in words: the headline for the terminal and report.md for the morning (or a daily email)."""

from __future__ import annotations

import datetime
from arsup.core.journal import short_commit
from arsup.core.summary import KeptChange, Summary


def _num(value: float | None, spec: str = ".6f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def _when(epoch: float | None) -> str:
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M") if epoch else "–"


def _hours(hours: float | None) -> str:
    return "unknown (no times recorded)" if hours is None else f"{hours:.2f} h"


def _pvalue(p: float | None) -> str:
    return _num(p, ".3g")


def _improvement(gain: float | None, pct: float | None = None, over: str = "", named: bool = False) -> str:
    """A gain (positive = better, whatever the goal) as a reader takes it, never as a raw signed difference:
    `0.028214 (2.83%) over the baseline` (`improvement ...` when `named`), `worse by 0.012345 (1.23%) than ...`."""
    if gain is None:
        return f"not compared with {over}" if named and over else "–"
    amount = f"{abs(gain):.6f}" + (f" ({abs(pct):.2f}%)" if pct is not None else "")
    if gain < 0:
        return f"worse by {amount}" + (f" than {over}" if over else "")
    return ("improvement " if named else "") + amount + (f" over {over}" if over else "")


def _hours_name(summary: Summary) -> str:
    """What the runs' hours are: GPU-hours only where the session records say the runs had GPUs."""
    return "GPU-hours" if summary.gpus_used else "slot-hours"


def _hours_explained(summary: Summary) -> str:
    if summary.gpu_hours is None:
        return _hours(None)
    why = {True: "", False: "; the runs had no GPU",
           None: "; one slot is one GPU on a GPU box, and this journal does not say whether the runs had one"}
    return f"{_hours(summary.gpu_hours)} (training time summed over runs, seeds included{why[summary.gpus_used]})"


def headline(summary: Summary) -> str:
    """One line: where the night got to, from where, at what cost."""
    s = summary
    if s.best is None:
        return f"{s.tag}: {s.experiments} experiments, no successful run"
    gain = f"; {_improvement(s.gain, s.gain_pct, f'the baseline {s.baseline:.6f}', named=True)}" \
        if s.gain is not None and s.baseline is not None else ""
    hours = f", {s.gpu_hours:.2f} {_hours_name(s)}" if s.gpu_hours is not None else ""
    cost = f", ${s.cost_usd:.2f}" if s.llm_calls else ""
    failed = len(s.baseline_crashes)
    attempts = f", and {failed} baseline attempt{'s' if failed > 1 else ''} that crashed" if failed else ""
    return (f"{s.tag}: best {s.metric} {s.best:.6f} ({s.best_id}){gain}; "
            f"{s.experiments} experiments, {s.kept} kept, {s.crashed} crashed{attempts}{hours}{cost}")


def _baseline_crashes(s: Summary) -> str:
    """The baseline's failed attempts, apart from the ideas' crashes (a config or script fixed, then run again)."""
    if not s.baseline_crashes:
        return ""
    times = f"{len(s.baseline_crashes)} time{'s' if len(s.baseline_crashes) > 1 else ''}"
    when = "before it was measured" if s.baseline is not None else "and was never measured"
    return f"; the baseline crashed {times} {when} ({', '.join(s.baseline_crashes)})"


def _figures(s: Summary) -> list[tuple[str, str]]:
    per_kept = []
    if s.cost_per_improvement is not None and s.llm_calls:
        per_kept.append(f"${s.cost_per_improvement:.2f}")
    if s.gpu_hours_per_improvement is not None:
        per_kept.append(f"{s.gpu_hours_per_improvement:.2f} {_hours_name(s)}")
    best = next((k for k in s.kept_changes if k.id == s.best_id), None)
    return [
        ("metric", f"{s.metric} ({'lower' if s.goal == 'minimize' else 'higher'} is better)"),
        ("baseline", _num(s.baseline)),
        ("best", f"{_num(s.best)} ({s.best_id}, commit {short_commit(best.commit)})" if best else _num(s.best)),
        ("improvement", _improvement(s.gain, s.gain_pct, "the baseline")),
        ("experiments", f"{s.experiments} recorded; after the baseline {s.trained} trained: {s.kept} kept, "
                        f"{s.discarded} discarded, {s.crashed} crashed; {s.invalid} invalid, {s.skipped} skipped"
                        + _baseline_crashes(s)),
        ("keep rate", _num(None if s.keep_rate is None else 100 * s.keep_rate, ".1f") + " %"),
        ("crash rate", _num(None if s.crash_rate is None else 100 * s.crash_rate, ".1f") + " %"),
        ("wall time", _hours(s.wall_hours) + (f" ({_when(s.started_at)} to {_when(s.finished_at)})"
                                              if s.started_at else "")),
        (_hours_name(s), _hours_explained(s)),
        ("LLM spend", f"${s.cost_usd:.2f} over {s.llm_calls} calls" if s.llm_calls else "none (offline agent)"),
        ("per kept improvement", ", ".join(per_kept) or "–"),
        ("noise floor", f"sigma {s.noise_sigma:.6g} from {s.noise_runs} runs" if s.noise_sigma is not None
                        else "not measured (no commit ran twice)"),
        *([("time-capped", "; ".join(s.capped) + (f" ({s.noise_capped} left out of the noise floor)"
                                                  if s.noise_capped else ""))] if s.capped else []),
        *([("holdout", f"**warning: {s.holdout_warning}**" if s.holdout_warning else
                    "no divergence: the kept line's holdout scores follow its metric")]
          if any(k.holdout is not None for k in s.kept_changes) else []),
        *([("carried onto a newer best", f"{s.carried} times, {sum(k.carried > 0 for k in s.kept_changes)} of them "
                                         "kept (slots: a candidate that beat a best replaced meanwhile ran again "
                                         "on the new one)")]
          if s.carried else []),
        ("source", s.source),
    ]


def _check_lines(change: KeptChange) -> list[str]:
    lines = []
    if change.verify:
        v = change.verify
        versus = _improvement(v.get("gain"), over="the baseline", named=True)
        lines.append(f"- verified: mean {_num(v.get('mean'))} ± {_num(v.get('std'))} over "
                     f"{len(v.get('values') or {})} seeds; {versus}, p = {_pvalue(v.get('p_value'))}")
    if change.ablation:
        a = change.ablation
        lines.append(f"- ablated: {a['note']}" if a.get("note") else
                     f"- ablated: {_improvement(a.get('contribution'), over='the final best without it', named=True)}, "
                     f"p = {_pvalue(a.get('p_value'))}")
    return lines


def _table(rows: list[list[str]]) -> list[str]:
    cells = [[c.replace("|", "\\|") for c in row] for row in rows]
    return ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])] + [
        "| " + " | ".join(row) + " |" for row in cells[1:]
    ]


def night_markdown(summary: Summary, chart: str) -> str:
    s = summary
    lines = [f"# arsup report: {s.tag}", "", f"**{headline(s)}**", "", f"![{s.tag}]({chart})", ""]
    lines += _table([["", ""]] + [[f"**{k}**", v] for k, v in _figures(s)])
    if len(s.agents) > 1:
        lines += ["", "## Agents", "", "They took turns, one proposal each, on the same problem and noise floor.", ""]
        lines += _table([["agent", "proposed", "trained", "kept", "improvement", "cost", "per keep"]] + [
            [a.agent, str(a.proposed), str(a.trained), str(a.kept), _improvement(a.gain), f"${a.cost_usd:.2f}",
             f"${a.cost_per_keep:.2f}" if a.cost_per_keep is not None else "–"]
            for a in s.agents
        ])
    lines += ["", "## Kept changes", ""]
    if not s.kept_changes:
        lines.append("No change was kept.")
    else:
        holdout = any(k.holdout is not None for k in s.kept_changes)
        carried = any(k.carried for k in s.kept_changes)
        lines += _table([["id", "commit", s.metric, *(["holdout"] if holdout else []), "improvement", "sigma",
                          "p", "seeds", *(["carried"] if carried else []), "hypothesis"]] + [
            [k.id, short_commit(k.commit), _num(k.metric), *([_num(k.holdout)] if holdout else []),
             _improvement(k.gain, k.gain_pct), _num(k.gain_sigma, ".1f"), _pvalue(k.p_value),
             str(k.seeds), *([str(k.carried)] if carried else []), k.hypothesis]
            for k in s.kept_changes
        ])
    for change in s.kept_changes:
        lines += ["", f"### {change.id} {change.hypothesis}", ""]
        lines += _check_lines(change)
        if change.diff:
            fence = "````" if "```" in change.diff else "```"
            lines += ["", f"{fence}diff", change.diff.rstrip("\n"), fence]
        else:
            lines.append("The baseline: the code as it was." if change.gain is None
                         else "No diff recorded (its commit is not in this repo).")
    return "\n".join(lines) + "\n"


def comparison_markdown(summaries: list[Summary], chart: str) -> str:
    lines = [f"# arsup report: {' vs '.join(s.tag for s in summaries)}", "", f"![comparison]({chart})", ""]
    header = ["", *(s.tag for s in summaries)]
    figures = [dict(_figures(s)) for s in summaries]  # some rows only some nights have (holdout, carried)
    keys = dict.fromkeys(key for night in figures for key in night)
    lines += _table([header] + [[f"**{k}**", *(night.get(k, "–") for night in figures)] for k in keys])
    lines += ["", "Each night's own report: " + ", ".join(f"[{s.tag}]({s.tag}/report.md)" for s in summaries)]
    return "\n".join(lines) + "\n"

