"""How every front end words a question: one phrasing for the screen, the printer and `arsup status`."""

from __future__ import annotations

from concurrent.futures import Future

from arsup.core import policy
from arsup.core.events import ApprovalRequested
from arsup.core.experiment import Experiment
from arsup.output import describe_question, waiting_line

BASELINE = Experiment("0001", "t", "c0", "baseline", "arsup", is_baseline=True)
WIDER = Experiment("0002", "t", "c0", "a   wider\n model " + "x" * 200, "llm")


def test_a_question_names_what_is_asked_and_which_experiment() -> None:
    assert describe_question(ApprovalRequested(policy.RUN, BASELINE, Future(), {}, "q1")) == "train 0001 (the baseline)?"
    edit = describe_question(ApprovalRequested(policy.EDIT, WIDER, Future(), {}, "q2"))
    assert edit.startswith("commit the edit of 0002 ('a wider model xxx") and len(edit) < 160  # one line, cut short
    assert describe_question(ApprovalRequested(policy.KEEP, WIDER, Future(), {}, "q3")).startswith("keep 0002 (")


def test_the_waiting_line_says_how_to_answer() -> None:
    line = waiting_line(ApprovalRequested(policy.RUN, BASELINE, Future(), {}, "q1"))
    assert line == "waiting: train 0001 (the baseline)? answer with `arsup approve` or `arsup skip`"
