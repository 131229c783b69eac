"""Open questions to the person: asked by the loop or the proposer, answered by any client.

`ask` runs on the loop, a slot or the proposer thread and waits there (so
each waits for its own answer); `answer` comes from any thread (a socket
client, the screen). `_lock` guards the question counter and the open
questions; the Future does the rest (the first answer wins).
"""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable

from arsup.core import policy
from arsup.core.events import ApprovalRequested, LoopState, QuestionClosed
from arsup.core.experiment import Experiment
from arsup.core.loop.bus import EventBus
from arsup.core.loop.flags import POLL_S


class Questions:
    def __init__(self, bus: EventBus, policy_now: Callable[[], str], stopped: threading.Event) -> None:
        self._bus = bus
        self._policy_now = policy_now  # read at each poll: a policy changed while waiting applies at once
        self._stopped = stopped
        self._lock = threading.Lock()
        self._count = 0
        self._open: dict[str, Future[policy.Answer]] = {}

    def ask(
        self, kind: str, experiment: Experiment, files: dict[str, str] | None = None,
        cancel: threading.Event | None = None, announce: bool = True,
    ) -> policy.Answer | None:
        """Approve by policy, or wait for a person; None when `cancel` (default: the stop) is set meanwhile
        or a client withdraws the question.

        A question about a queued proposal is asked while a run trains: it
        does not `announce` a state change (the loop is still training)."""
        if not policy.asks(self._policy_now(), kind):
            return policy.Answer(True)
        cancel = cancel or self._stopped
        future: Future[policy.Answer] = Future()
        with self._lock:
            self._count += 1
            question = f"q{self._count}"
            self._open[question] = future
        if announce:
            self._bus.state(LoopState.AWAITING_APPROVAL, kind)
        self._bus.emit(ApprovalRequested(kind, experiment.copy(), future, dict(files or {}), question))
        answer: policy.Answer | None = None
        try:
            while not cancel.is_set():
                try:
                    answer = future.result(timeout=POLL_S)
                    return answer
                except FutureTimeout:
                    if not policy.asks(self._policy_now(), kind):  # the policy changed while waiting
                        answer = policy.Answer(True)
                        return answer
                except CancelledError:  # withdrawn by a client
                    return None
            return None
        finally:
            future.cancel()
            with self._lock:
                self._open.pop(question, None)
            self._bus.emit(QuestionClosed(question, None if answer is None else answer.approved))

    def answer(self, question_id: str, approved: bool, files: dict[str, str] | None = None) -> bool:
        """Answer an open question; False when it is no longer open."""
        with self._lock:
            future = self._open.get(question_id)
        return future is not None and policy.settle(future, policy.Answer(approved, files))
