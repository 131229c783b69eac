"""The lab folder a coding agent reads beside its scratch copy, and the prompt that sends it there.

The lab lies next to the scratch copy, never inside it: nothing in it can
become part of a proposal, and the scratch copy stays exactly the project's
tracked files. It holds what the LLM agent's prompt holds (built by the same
functions of ``prompt``), as files the agent opens when it needs them, and a
notebook it may rewrite, which the next proposal's lab gets back. Nothing
from ``.arsup`` goes in: the context is what the engine chose to show.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from arsup.core.agents.base import AgentContext
from arsup.core.agents.prompt import history_table, keep_rule
from arsup.core.experiment import Experiment

NOTEBOOK = "notebook.md"
NOTEBOOK_MAX_CHARS = 3000  # as the LLM agent's: what is handed on to the next proposal
LOGS_SHOWN = 5  # the latest runs whose log tails the lab holds

PROMPT = """\
You are an autonomous ML researcher. Your working directory is a scratch copy of the project \
at its best commit. Make exactly one experiment: one idea, as a change to the code.

Rules:
- Edit only these files: {editable}. Never edit: {protected}. Create no other file.
- Do not train, run the code, commit or touch git: a supervisor trains your change for \
{time_budget:g} seconds, measures {metric} ({direction} is better) and keeps it only if it wins.
- The random seed belongs to the supervisor (ARSUP_SEED): never change it.
- Add no new dependencies; do not repeat an experiment from the history.

Read the lab folder {lab} first:
- instructions.md: the research instructions (follow them)
- history.md: every experiment so far, the noise floor and the rule a change must pass to be kept
- notes.md: notes from the person supervising you (follow them)
- logs/: the last lines of the latest runs' logs
- curves/: the loss curves of the best's and the latest runs (fraction of training, loss), where the training prints its progress
- {notebook}: your lab notebook from earlier proposals; rewrite it (at most 12 short lines: what \
helped, what did not, what to try next) before you finish

When your edit is done, end your final message with one line:
HYPOTHESIS: <what you changed and why it should help>"""

CORRECTION = """\
Your change was refused: {reason}
The scratch copy still holds your change. Fix it (restore any file you may not edit), \
then end your final message with one line: HYPOTHESIS: <what you changed and why>"""


def write_lab(folder: Path, context: AgentContext, notebook: str) -> None:
    """Write the lab afresh into `folder` (emptied first): nothing of an earlier proposal's lab is left but the
    notebook the agent handed on."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "logs").mkdir(parents=True)
    (folder / "instructions.md").write_text(context.instructions, encoding="utf-8")
    (folder / "history.md").write_text(history_text(context), encoding="utf-8")
    notes = "".join(f"- {note}\n" for note in context.notes) or "(none)\n"
    (folder / "notes.md").write_text(notes, encoding="utf-8")
    (folder / NOTEBOOK).write_text(notebook, encoding="utf-8")
    for experiment in _with_logs(context.history):
        (folder / "logs" / f"{experiment.id}.log").write_text(experiment.crash_tail, encoding="utf-8")
    if context.last_crash_tail:
        (folder / "logs" / "last_crash.log").write_text(context.last_crash_tail, encoding="utf-8")
    (folder / "curves").mkdir()
    for experiment in _with_curves(context):
        for run in experiment.runs:
            if run.curve:
                rows = "".join(f"{fraction:.4f}\t{loss:.6g}\n" for fraction, loss in run.curve)
                path = folder / "curves" / f"{experiment.id}-seed{run.seed}.tsv"
                path.write_text("fraction\tloss\n" + rows, encoding="utf-8")


def read_notebook(folder: Path) -> str:
    """The notebook the agent left (capped), '' when it wrote none."""
    path = folder / NOTEBOOK
    return path.read_text(encoding="utf-8", errors="replace").strip()[:NOTEBOOK_MAX_CHARS] if path.is_file() else ""


def history_text(context: AgentContext) -> str:
    lines = [f"# Experiments so far ({len(context.history)})", "", keep_rule(context.noise, context.rule)]
    if context.best is not None:
        lines.append(f"Best so far: {context.best.id} ({context.metric} {context.best.metric})")
    if context.history:
        lines += ["", *history_table(context.history, context.history, context.metric)]
    if context.in_flight:
        lines += ["", "Proposed and not measured yet (do not repeat them):"]
        lines += [f"- {e.id} {' '.join(e.hypothesis.split())[:160]}" for e in context.in_flight]
    return "\n".join(lines) + "\n"


def prompt(context: AgentContext, lab: Path, editable: Sequence[str], protected: Sequence[str]) -> str:
    return PROMPT.format(
        editable=", ".join(editable),
        protected=", ".join(protected) or "(none)",
        time_budget=context.time_budget,
        metric=context.metric,
        direction="lower" if context.goal == "minimize" else "higher",
        lab=lab,
        notebook=NOTEBOOK,
    )


def _with_logs(history: list[Experiment]) -> list[Experiment]:
    return [e for e in history if e.crash_tail][-LOGS_SHOWN:]


def _with_curves(context: AgentContext) -> list[Experiment]:
    """The best and the latest experiments whose runs recorded a loss curve (the pruner's, `[prune]` on)."""
    latest = [e for e in context.history if any(run.curve for run in e.runs)][-LOGS_SHOWN:]
    best = [context.best] if context.best is not None and context.best.id not in {e.id for e in latest} else []
    return best + latest
