"""The LLM researcher's prompt: rules and instructions, the code, the history, the notebook.

Only the history is ever shortened to fit the model's context, oldest first and
never the best result: program.md and the files are what the model must not
lose. Nothing from the environment goes in; the prompt is built from the
context the engine hands over and the agent's own notebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from arsup.core.agents.base import AgentContext
from arsup.core.agents.edits import FORMAT_REMINDER
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


@dataclass
class PromptParts:
    """What the agent adds to the engine's context."""

    editable: Sequence[str]
    protected: Sequence[str]
    notebook: str = ""
    crashed: Experiment | None = None  # the previous experiment, when the agent may fix it
    fixes_left: int = 0


def _metric_text(value: float | None) -> str:
    return "crash" if value is None else f"{value:.6f}"


def history_line(experiment: Experiment, baseline: float | None) -> str:
    delta = ""
    if experiment.metric is not None and baseline is not None and experiment.status in Status.TRAINED:
        delta = f" ({experiment.metric - baseline:+.6f} vs baseline)"
    hypothesis = " ".join(experiment.hypothesis.split())
    reason = f" [{' '.join(experiment.reason.split())[:160]}]" if experiment.status in (Status.CRASH, Status.INVALID) else ""
    metric = _metric_text(experiment.metric if experiment.status != Status.CRASH else None)
    return f"{experiment.id} {experiment.status:<7} {metric}{delta}  {hypothesis}{reason}"


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
    baseline = next((e.metric for e in context.history if e.status == Status.KEEP), None)
    shown = len(history)
    if context.history:
        lines = []
        if context.best is not None:
            lines.append(f"Best so far: {history_line(context.best, baseline)}")
        if shown < len(context.history):
            lines.append(f"({len(context.history) - shown} older experiments left out to fit the context)")
        lines.extend(history_line(e, baseline) for e in history)
        sections.append(f"## Experiments so far ({len(context.history)})\n" + "\n".join(lines))
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
