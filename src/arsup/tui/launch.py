"""Opening the screen from the command line: a live session, or browsing a run's history.

Problems with the repo are raised before the screen opens (the CLI prints
them as for headless mode); once it closes, the engine is stopped and waited
for whatever happened inside, so no training process outlives arsup.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

from arsup.config import Config, ConfigError
from arsup.core.agents.base import AgentContext, Proposal
from arsup.core.checks import last_tag
from arsup.core.engine import Engine
from arsup.core.experiment import Experiment
from arsup.core.monitor import Monitor
from arsup.core.service import ControlServer
from arsup.headless import locations, say
from arsup.tui import keys
from arsup.tui.app import STOP_WAIT_S, SupervisorApp
from arsup.tui.bridge import Bridge, LogToScreen
from arsup.tui.settings import read_settings


class NoProposals:
    """The agent of browse mode: the engine is only a window on the journal and never asks it."""

    name = "browse"

    def propose(self, context: AgentContext) -> Proposal | None:
        return None

    def observe(self, experiment: Experiment) -> None:
        """Nothing to learn: nothing runs."""


def _app(engine: Engine, bridge: Bridge, live: bool, theme: str) -> SupervisorApp:
    settings = read_settings(engine.root)
    key_map, problems = keys.keymap(settings.keys)
    return SupervisorApp(
        engine,
        bridge,
        live=live,
        monitor=Monitor(),
        theme=theme or settings.theme,
        key_map=key_map,
        notices=settings.problems + problems,
    )


def run_live(engine: Engine, theme: str = "", out: TextIO = sys.stdout) -> int:
    """Prepare the repo, run the loop on screen; 0 when it ended normally or was stopped, 1 on an error."""
    bridge = Bridge()
    server = ControlServer(engine, engine.root)  # the commands (`arsup status`, `approve`...) work beside the screen
    engine.subscribe(bridge)  # before prepare: it already says which branch and what was recovered
    engine.subscribe(server)
    engine.prepare()
    server.start()
    app = _app(engine, bridge, live=True, theme=theme)
    log_handler = LogToScreen(bridge)
    logging.getLogger("arsup").addHandler(log_handler)
    try:
        app.run()
    finally:
        logging.getLogger("arsup").removeHandler(log_handler)
        bridge.detach()
        if app.engine_started:
            engine.stop()  # a no-op after a normal quit; after a crash of the screen it ends the training
            engine.wait(STOP_WAIT_S)
        else:
            engine.close()
        server.stop()
    ended = bridge.ended
    if ended is not None:
        say(f"arsup: {'error: ' if ended.error else ''}{ended.reason}", out)
    say(locations(engine), out)
    if app.return_code:  # the screen itself failed; Textual has printed why
        return app.return_code
    if ended is not None and ended.error:
        return 1
    return 128 + app.signalled if app.signalled else 0


def run_browse(config: Config, root: Path, tag: str = "", theme: str = "") -> int:
    """Open a run's history without starting anything; ConfigError when there is nothing to show."""
    engine = Engine(config, root, NoProposals(), tag or last_tag(root))
    engine.load_history()
    if not engine.history:
        tags = sorted({e.tag for e in engine.journal.experiments()})
        raise ConfigError(f"no experiments for tag {engine.tag!r} in {engine.journal.path}; tags in the journal: {', '.join(tags)}")
    app = _app(engine, Bridge(), live=False, theme=theme)
    app.run()
    return 0
