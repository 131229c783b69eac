"""The LLM researcher's prompt: rules and instructions, the code, the history, the notebook.

Only the history is ever shortened to fit the model's context, oldest first and
never the best result: program.md and the files are what the model must not
lose. Nothing from the environment goes in; the prompt is built from the
context the engine hands over and the agent's own notebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from arsup.core.acceptance import Noise, Rule
from arsup.core.agents.base import AgentContext
from arsup.core.agents.edits import FORMAT_REMINDER
from arsup.core.changes import describe_place, place
from arsup.core.experiment import Experiment, Status

SYSTEM = """\
You are an autonomous ML researcher. You improve a training script by running one \
experiment at a time: you state a hypothesis, make the code change that tests it, and \
a supervisor trains the code for a fixed time budget, measures the metric, and keeps \
your change only if the result is better.

Rules:
- Edit only these files: {editable}. Never edit: {protected}.
- Add no new dependencies: use only what the code already imports.
- The metric is {metric}; {direction} is better. Every run gets the same fixed budget \
(at most {time_budget:g} seconds of wall-clock time, enforced by the supervisor), so a \
change that makes each step slower must win by learning more per step.
- Simplicity counts: a tiny gain that adds ugly complexity is not worth keeping; \
removing code for an equal result is a win.
- The random seed belongs to the supervisor (it sets ARSUP_SEED for every run). \
It is not a hyperparameter: never change it.
- One idea per experiment, so that a result can be credited to it. Do not repeat an \
experiment from the history; the supervisor refuses repeats.

Reply in exactly this format:
NOTEBOOK:
<your lab notebook, at most 12 short lines: what helped, what did not, ideas refuted, \
ideas to try; update it with the latest result>
HYPOTHESIS: <one line: what you change and why it should help>
<one or more SEARCH/REPLACE blocks>

{format_reminder}
If the previous experiment crashed and the idea still looks sound, you may fix it: \
start the hypothesis with "FIX:" and make the complete change again, with the fix.

The research instructions (program.md) follow.

{instructions}"""


CIRCLING_TOLD = 3  # experiments in a row on one place before the prompt says so


@dataclass
class PromptParts:
    """What the agent adds to the engine's context."""

    editable: Sequence[str]
    protected: Sequence[str]
    notebook: str = ""
    crashed: Experiment | None = None  # the previous experiment, when the agent may fix it
    fixes_left: int = 0


def _metric_text(experiment: Experiment) -> str:
    return "-" if experiment.metric is None or experiment.status == Status.CRASH else f"{experiment.metric:.6f}"


def _one_line(text: str, limit: int = 160) -> str:
    return " ".join(text.split())[:limit]


def keep_rule(noise: Noise | None, rule: Rule | None) -> str:
    """The noise floor and what it means for the next proposal, in the numbers the decision will use."""
    if noise is None:
        floor = "Noise floor: not measured yet (no code has run twice)."
    elif noise.sigma == 0:
        floor = f"Noise floor: none ({noise.runs} runs of the same code gave the same values: the runs are deterministic)."
        noise = None
    else:
        floor = (f"Noise floor: sigma {noise.sigma:.6g} from {noise.runs} runs "
                 "(two runs of the same code differ by about this much).")
    if rule is None:
        return floor
    if rule.mode == "greedy":
        return f"{floor} Any gain over the best is kept, so a gain under the noise floor may be luck."
    margin = f"more than about {rule.threshold_sigma * noise.sigma:.6g} ({rule.threshold_sigma:g} sigma)" if noise \
        else "any amount"
    needed = rule.mean_bar(noise.sigma if noise else 0.0, rule.confirm_runs)
    effect = f", by at least {needed:.6g} on average" if needed else ""
    second = (f" (a borderline result runs on up to {rule.max_runs} seeds, alpha split over the two looks)"
              if rule.max_runs > rule.confirm_runs else "")
    return (f"{floor} To be kept, a change must beat the best by {margin} in its first run, "
            f"then win a paired test over {rule.confirm_runs} seeds (p < {rule.alpha:g}){effect}{second}. "
            "Changes smaller than the noise cannot be told apart from luck: aim for bigger effects.")


def _evidence(experiment: Experiment) -> str:
    parts = []
    if experiment.gain_sigma is not None:
        parts.append(f"{experiment.gain_sigma:+.1f} sigma")
    if experiment.p_value is not None:
        parts.append(f"p {experiment.p_value:.3g}")
    return ", ".join(parts) or "-"


def history_table(shown: Sequence[Experiment], history: Sequence[Experiment], metric: str) -> list[str]:
    """One line per experiment: id, status, metric, change vs the best it started from, the evidence,
    the recorded secondary metrics (time, steps, memory: speed against learning), the hypothesis."""
    kept = {e.commit: e.metric for e in history if e.status == Status.KEEP and e.metric is not None}
    extras = list(dict.fromkeys(key for e in shown for key in e.metrics if key != metric))
    rows = [["id", "status", metric, "vs parent", "evidence", *extras, "hypothesis"]]
    for e in shown:
        parent = kept.get(e.parent)
        has_value = e.metric is not None and e.status in (Status.KEEP, Status.DISCARD)
        delta = f"{e.metric - parent:+.6f}" if has_value and parent is not None and not e.is_baseline else "-"
        note = f" [{_one_line(e.reason)}]" if e.status in (Status.CRASH, Status.INVALID, Status.SKIPPED) else ""
        values = [f"{e.metrics[key]:.4g}" if key in e.metrics else "-" for key in extras]
        rows.append([e.id, e.status, _metric_text(e), delta, _evidence(e), *values, _one_line(e.hypothesis) + note])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]


def system_message(context: AgentContext, parts: PromptParts) -> str:
    return SYSTEM.format(
        editable=", ".join(parts.editable),
        protected=", ".join(parts.protected) or "(none)",
        metric=context.metric,
        direction="lower" if context.goal == "minimize" else "higher",
        time_budget=context.time_budget,
        format_reminder=FORMAT_REMINDER,
        instructions=context.instructions.strip(),
    )


def user_message(context: AgentContext, parts: PromptParts, history: Sequence[Experiment]) -> str:
    sections = []
    for path, text in context.files.items():
        sections.append(f"## {path} (current, on the best line)\n```python\n{text.rstrip()}\n```")
    if context.history:
        lines = [keep_rule(context.noise, context.rule)]
        if context.best is not None:
            best = context.best
            lines.append(f"Best so far: {best.id} keep {_metric_text(best)}  {_one_line(best.hypothesis)}")
        if len(history) < len(context.history):
            lines.append(f"({len(context.history) - len(history)} older experiments left out to fit the context)")
        if history:
            lines.extend(history_table(history, context.history, context.metric))
        sections.append(f"## Experiments so far ({len(context.history)})\n" + "\n".join(lines))
    if len(context.circling) >= CIRCLING_TOLD:
        where = describe_place(place(context.circling[-1].diff))
        listed = "\n".join(
            f"- {e.id} {e.status} {_metric_text(e)}  {_one_line(e.hypothesis)}" for e in context.circling
        )
        sections.append(
            f"## You are going in circles\nYour last {len(context.circling)} experiments all changed the same place "
            f"({where}):\n{listed}\nTrying more values there is unlikely to teach you anything new. "
            "Change something else: another part of the model, the optimizer, the data pipeline or the schedule."
        )
    if parts.notebook:
        sections.append(f"## Your lab notebook\n{parts.notebook.strip()}")
    if parts.crashed is not None:
        crashed = parts.crashed
        advice = (
            f"You may fix it ({parts.fixes_left} fix{'es' if parts.fixes_left != 1 else ''} left for this idea) "
            "or move on to a new idea."
            if parts.fixes_left
            else "This idea has had its fixes: move on to a different idea."
        )
        sections.append(
            f"## The previous experiment crashed: {crashed.reason}\n{advice}\n"
            f"Its change:\n```diff\n{crashed.diff.strip()}\n```\n"
            f"The last lines of its log:\n```\n{crashed.crash_tail.strip()}\n```"
        )
    elif context.last_crash_tail:
        sections.append(f"## The last crash's log tail\n```\n{context.last_crash_tail.strip()}\n```")
    if context.notes:
        sections.append("## Notes from the person supervising you (follow them)\n" + "\n".join(f"- {n}" for n in context.notes))
    sections.append("Update your notebook with the latest result, then propose the next experiment.")
    return "\n\n".join(sections)


def build_messages(
    context: AgentContext,
    parts: PromptParts,
    count_tokens: Callable[[list[dict[str, str]]], int],
    budget_tokens: int,
    max_history: int | None = None,
) -> list[dict[str, str]]:
    """The messages, with as much recent history as fits in `budget_tokens` (and `max_history`)."""
    system = {"role": "system", "content": system_message(context, parts)}
    history = list(context.history)
    if max_history is not None:
        history = history[len(history) - max_history :] if max_history else []

    def messages(kept: int) -> list[dict[str, str]]:
        recent = history[len(history) - kept :] if kept else []
        return [system, {"role": "user", "content": user_message(context, parts, recent)}]

    if count_tokens(messages(len(history))) <= budget_tokens:
        return messages(len(history))
    low, high = 0, len(history)  # find the most recent entries that fit
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(messages(middle)) <= budget_tokens:
            low = middle
        else:
            high = middle - 1
    return messages(low)
