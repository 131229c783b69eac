"""What the screen looks like, pinned as SVG snapshots (update with `pytest tests/tui --snapshot-update`).

Every screen is built from a fixed sequence of events posted through the
bridge, a fixed clock and fixed GPU samples, so a snapshot changes only
when the screen does. There is no loop and no repository: the screen's
controls only record what they are asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from arsup.core import policy
from arsup.core.events import (
    AgentText,
    ApprovalRequested,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    ProposalQueued,
    Proposing,
    RunOutput,
    SessionStarted,
    StateChanged,
)
from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.monitor import GpuSample, HostSample, Sample
from arsup.tui.app import SupervisorApp
from arsup.tui.bridge import Bridge
from arsup.tui.panes.gpu import GpuPane
from arsup.tui.panes.header import HeaderPane
from arsup.tui.panes.history import HistoryPane
from tests.tui.conftest import RecordingControls, drive, show_tab

pytestmark = pytest.mark.slow  # Textual apps, rendered and compared as SVG

T0 = 1_764_300_000.0
SIZES = {"wide": (120, 40), "narrow": (80, 24)}
DIFF = """diff --git a/train.py b/train.py
--- a/train.py
+++ b/train.py
@@ -12,7 +12,7 @@ BATCH_SIZE = 32
 WIDTH = 128
 DEPTH = 4
-LR = 0.0005  # peak AdamW learning rate
+LR = 0.0012  # peak AdamW learning rate
 WARMUP_STEPS = 16
 FINAL_LR_FRAC = 0.143
"""
LOG = [
    "seed 0",
    "\x1b[1;32mcompiling\x1b[0m model: 4 layers, width 128",
    "[/usr/bin] [bold]x  <- printed by the script, shown as is",
    "step 100/1000  loss 3.912  lr 0.00060",
    "step 200/1000  loss 3.101  lr 0.00120",
    "step 300/1000  loss 2.655  lr 0.00118",
    "step 400/1000  loss 2.402  lr 0.00112",
]


class Clock:
    """A settable clock, so elapsed time and training progress read the same in every run."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def experiment(
    number: int, status: str, metric: float | None, parent: int, hypothesis: str, **extra: Any
) -> Experiment:
    return Experiment(
        id=f"{number:04d}",
        tag="nov28",
        parent=f"{parent:04d}aaa" + "0" * 33,
        commit=f"{number:04d}aaa" + "0" * 33,
        hypothesis=hypothesis,
        agent="llm",
        status=status,
        metric=metric,
        metrics={"peak_vram_mb": 2048.0} if metric is not None else {},
        runs=[RunResult(seed=0, log_path="run.log", wall_s=31.0)] if metric is not None else [],
        **extra,
    )


HISTORY = [
    experiment(1, Status.KEEP, 2.636343, 1, "baseline", is_baseline=True),
    experiment(2, Status.DISCARD, 3.650369, 1, "lower LR: 0.0005 -> 0.000397 [slower warmup]", diff=DIFF),
    experiment(3, Status.KEEP, 2.189082, 1, "shorter warmup: WARMUP_STEPS 20 -> 16", diff=DIFF),
    experiment(4, Status.CRASH, None, 3, "double the width", reason="killed by user"),
    experiment(5, Status.KEEP, 2.174567, 3, "FINAL_LR_FRAC 0.1 -> 0.365", diff=DIFF),
    experiment(6, Status.INVALID, None, 5, "swap GELU for ReLU", reason="SEARCH matched nothing"),
    experiment(7, Status.KEEP, 2.024059, 5, "FINAL_LR_FRAC 0.365 -> 0.143", diff=DIFF,
               agent_data={"notebook": "- warmup matters more than peak LR\n- width 128 is memory-bound"}),
]
RUNNING = experiment(8, Status.RUNNING, None, 7, "a 2.4x higher peak LR fits more steps in the budget", diff=DIFF)
RUNNING.started_at = T0 + 700


def session_events() -> list[Event]:
    events: list[Event] = [SessionStarted(
        "nov28", "autoresearch/nov28", HISTORY[0].commit, 0, project="/home/me/tinylm", metric="val_bpb",
        goal="minimize", time_budget=30, policy="runs", agent="llm", model="anthropic/claude-sonnet-4-5",
    )]
    best = None
    for done in HISTORY:
        if done.status == Status.KEEP:
            best = done
        events.append(ExperimentFinished(done, best))
    events += [
        Proposing("0008"),
        AgentText("0008", "NOTEBOOK:\n- warmup matters more than peak LR\nHYPOTHESIS: a 2.4x higher peak LR"),
        ExperimentStarted(RUNNING),
        StateChanged("training", "0008"),
        RunOutput("0008", LOG, partial="step 420/1000  loss 2.371"),
    ]
    return events


def samples() -> list[Sample]:
    """Two minutes of a busy H100, then now."""
    out = []
    for tick in range(80):
        util = float((tick * 37) % 100) if tick < 20 else 97.0
        gpu = GpuSample(0, "NVIDIA H100 80GB HBM3", util, 40_000 + tick * 400, 81_559, 72, 412, 700)
        host = HostSample(cpu_pct=float(20 + tick % 7), ram_used_mb=5_100, ram_total_mb=15_600)
        out.append(Sample(T0 + tick * 1.5, [gpu], host, ""))
    return out


def screen(theme: str = "") -> tuple[SupervisorApp, Bridge, Clock]:
    bridge, clock = Bridge(), Clock()
    return SupervisorApp(RecordingControls(), bridge, clock=clock, theme=theme), bridge, clock


def feed(bridge: Bridge, clock: Clock, events: list[Event]) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause()  # the bridge attaches after the first frame; samples before that are dropped
        clock.now = T0 + 712.6  # 12.6 s into a 30 s run: 42%
        for sample in samples():
            bridge.sampled(sample)
        for event in events:
            bridge(event)
        await pilot.pause(0.3)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare: Any, size: str) -> None:
    app, bridge, clock = screen()
    assert snap_compare(app, terminal_size=SIZES[size], run_before=feed(bridge, clock, session_events()))


@pytest.mark.parametrize("theme", ["light", "high-contrast"])
def test_themes(snap_compare: Any, theme: str) -> None:
    app, bridge, clock = screen(theme=theme)
    assert snap_compare(app, terminal_size=SIZES["wide"], run_before=feed(bridge, clock, session_events()))


@pytest.mark.parametrize("size", SIZES)
def test_approval_modal(snap_compare: Any, size: str) -> None:
    app, bridge, clock = screen()
    proposed = experiment(8, Status.PROPOSED, None, 7, RUNNING.hypothesis, diff=DIFF)
    events = session_events()[:-3] + [
        StateChanged("awaiting approval", policy.RUN),
        ApprovalRequested(policy.RUN, proposed, Future(), {}),
    ]
    assert snap_compare(app, terminal_size=SIZES[size], run_before=feed(bridge, clock, events))


REPLY = [
    "NOTEBOOK:\n- warmup matters more than peak LR\n- width 128 is memory-bound\n",
    "- [untested] a higher peak LR with the shorter warmup\n",
    "HYPOTHESIS: a 2.4x higher peak LR fits more steps in the budget\n\ntrain.py\n```python\n",
    "<<<<<<< SEARCH\nLR = 0.0005  # peak AdamW learning rate\n=======\n",
    "LR = 0.0012  # peak AdamW learning rate\n>>>>>>> REPLACE\n",
]


def test_hypothesis_streaming(snap_compare: Any) -> None:
    app, bridge, clock = screen()
    events = session_events()[:-4] + [StateChanged("proposing", "llm")] + [AgentText("0008", part) for part in REPLY]
    assert snap_compare(app, terminal_size=SIZES["narrow"], run_before=feed(bridge, clock, events))


@pytest.mark.parametrize("tab", ["tab-table", "tab-chart"])
def test_history_tabs(snap_compare: Any, tab: str) -> None:
    app, bridge, clock = screen()
    fed = feed(bridge, clock, session_events())

    async def run_before(pilot: Pilot[Any]) -> None:
        await fed(pilot)
        await show_tab(pilot, app, tab)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZES["wide"], run_before=run_before)


def slots_events() -> list[Event]:
    """Two GPUs, each training its own candidate since the session started; the next one queued."""
    events = session_events()[:-3]
    first = events[0]
    assert isinstance(first, SessionStarted)
    events[0] = dataclasses.replace(first, started_at=T0 + 600)
    other = experiment(9, Status.RUNNING, None, 7, "weight decay 0.1 -> 0.05", diff=DIFF)
    other.started_at = T0 + 705
    queued = experiment(10, Status.PROPOSED, None, 7, "a deeper model: 4 -> 6 layers")
    return events + [
        ExperimentStarted(RUNNING, "gpu0"),
        ExperimentStarted(other, "gpu1"),
        ProposalQueued(queued),
        StateChanged("training", "0009"),
        RunOutput("0009", LOG, partial="step 420/1000  loss 2.371"),
    ]


def test_two_slots(snap_compare: Any) -> None:
    app, bridge, clock = screen()
    assert snap_compare(app, terminal_size=SIZES["wide"], run_before=feed(bridge, clock, slots_events()))


def test_two_slots_say_which_gpu_trains_what() -> None:
    app, bridge, clock = screen()

    async def go(pilot: Pilot[Any]) -> None:
        await feed(bridge, clock, slots_events())(pilot)
        assert app.main.query_one(GpuPane).border_subtitle == "gpu0 0008  gpu1 0009"
        header = str(app.main.query_one(HeaderPane).render())
        assert "duty gpu0 11% · gpu1 7%" in header  # 12.6 of 112.6 s, 7.6 of 112.6 s
        tree = app.main.query_one(HistoryPane).experiment_tree
        assert sorted(tree._running_nodes) == ["0008", "0009"]
        live = str(app.main.query_one("#hypothesis-text", Static).render())
        assert "gpu0 0008" in live and "next 0010  a deeper model" in live

    drive(app, go, size=SIZES["wide"])
