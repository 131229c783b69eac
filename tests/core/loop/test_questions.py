"""Questions to the person: asked on one thread, answered from another, never left open."""

from __future__ import annotations

import threading
import time

from arsup.core import policy
from arsup.core.events import ApprovalRequested, Event, QuestionClosed, StateChanged
from arsup.core.experiment import Experiment
from arsup.core.loop.bus import EventBus
from arsup.core.loop.questions import Questions


def _asked(now: list[str], cancel: threading.Event | None = None, stopped: threading.Event | None = None):
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    questions = Questions(bus, lambda: now[0], stopped or threading.Event())
    answers: list[policy.Answer | None] = []
    experiment = Experiment(id="0001", tag="t", parent="p", hypothesis="h", agent="llm")
    asker = threading.Thread(target=lambda: answers.append(questions.ask(policy.RUN, experiment, cancel=cancel)))
    asker.start()
    deadline = time.monotonic() + 5
    while not any(isinstance(e, ApprovalRequested) for e in events) and time.monotonic() < deadline:
        time.sleep(0.01)
    return questions, events, answers, asker


def _question(events: list[Event]) -> ApprovalRequested:
    return next(e for e in events if isinstance(e, ApprovalRequested))


def test_a_policy_that_does_not_ask_approves_at_once_and_says_nothing() -> None:
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    answer = Questions(bus, lambda: "auto", threading.Event()).ask(policy.RUN, Experiment("1", "t", "p", "h", "a"))
    assert answer == policy.Answer(True) and events == []


def test_the_first_answer_wins_and_the_question_closes() -> None:
    questions, events, answers, asker = _asked(["runs"])
    asked = _question(events)
    assert isinstance(events[0], StateChanged) and asked.kind == policy.RUN
    assert questions.answer(asked.question_id, approved=False)
    asker.join(5)
    assert answers == [policy.Answer(False)]
    assert not questions.answer(asked.question_id, approved=True)  # closed: a late answer changes nothing
    assert events[-1] == QuestionClosed(asked.question_id, False)


def test_a_stop_or_a_cancel_ends_the_wait_with_no_answer() -> None:
    stopped = threading.Event()
    questions, events, answers, asker = _asked(["runs"], stopped=stopped)
    stopped.set()
    asker.join(5)
    assert answers == [None] and events[-1] == QuestionClosed(_question(events).question_id, None)
    cancel = threading.Event()
    questions, events, answers, asker = _asked(["runs"], cancel=cancel)
    cancel.set()
    asker.join(5)
    assert answers == [None]


def test_a_policy_changed_while_waiting_applies_at_once() -> None:
    now = ["runs"]
    questions, events, answers, asker = _asked(now)
    now[0] = "auto"
    asker.join(5)
    assert answers == [policy.Answer(True)]
