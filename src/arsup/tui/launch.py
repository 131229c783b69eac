"""Opening the screen from the command line: attached to a running loop, or browsing a run's history.

The screen never runs the loop: the loop is a process of its own and the
screen attaches to its control socket, so closing the screen (or losing the
terminal) leaves it running. Browse mode feeds the same screen the journal
instead, with nothing to act on.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from arsup.config import CONFIG_NAME, Config, ConfigError, NotifyConfig
from arsup.core.controls import Controls
from arsup.core.events import Event, Notice, SessionStarted
from arsup.core.experiment import Status
from arsup.core.journal import Journal, last_tag
from arsup.core.monitor import Monitor
from arsup.core.service import ControlClient
from arsup.core.summary import IMPORTED
from arsup.output import locations, say
from arsup.tui import keys
from arsup.tui.app import SupervisorApp
from arsup.tui.bridge import Bridge, LogToScreen


def screen(
    cfg: Config | None,
    bridge: Bridge,
    controls: Controls | None,
    theme: str = "",
    on_ready: Callable[[], None] | None = None,
    monitor: Monitor | None = None,
) -> SupervisorApp:
    """The app as the command line opens it: theme, keys and alerts from the config (the defaults where the
    folder has none: an imported night is browsed anywhere), a monitor of this machine."""
    key_map, problems = keys.keymap(cfg.keys if cfg is not None else {})
    return SupervisorApp(
        controls,
        bridge,
        on_ready=on_ready,
        monitor=monitor or Monitor(),
        theme=theme or (cfg.ui.theme if cfg is not None else ""),
        key_map=key_map,
        notices=problems,
        notify=cfg.notify if cfg is not None else NotifyConfig(),
    )


def run_attached(root: Path, cfg: Config, theme: str = "", out: TextIO = sys.stdout) -> int:
    """Attach the screen to the loop serving `root` until the person leaves or the loop ends.

    Raises LoopNotRunning when no loop serves `root`. Returns 0 after a
    detach or a normal end, 1 when the loop ended on an error, 128+N after
    signal N (SIGTERM, or SIGHUP: the terminal closed), which detaches too.
    """
    bridge = Bridge()
    client = ControlClient(root, on_event=bridge)
    log_handler = LogToScreen(bridge)
    try:
        for event in client.connect():  # the snapshot: held by the bridge until the first frame
            bridge(event)
        app = screen(cfg, bridge, client, theme, on_ready=client.start)  # the live feed starts after the snapshot
        logging.getLogger("arsup").addHandler(log_handler)
        try:
            app.run()
        finally:
            logging.getLogger("arsup").removeHandler(log_handler)
            bridge.detach()
        ended = bridge.ended  # before closing: a closed connection would read as one more end
    finally:
        client.close()
    if app.detached:
        say(
            f"arsup: detached; the loop goes on (pid {client.loop_pid}). "
            "`arsup attach` to come back, `arsup stop` to end it.",
            out,
        )
    elif ended is not None:
        say(f"arsup: {'error: ' if ended.error else ''}{ended.reason}", out)
        say(locations(root), out)
    if app.return_code:  # the screen itself failed (Textual has printed why), or the loop ended on an error
        return app.return_code
    if ended is not None and ended.error and not app.detached:  # "arsup: error:" above is never followed by 0
        return 2 if ended.state_folder else 1
    return 128 + app.signalled if app.signalled else 0


def journal_session(cfg: Config | None, root: Path, tag: str) -> list[Event]:
    """The events that show a run's history from the journal: what a loop would say on starting.

    An imported night is shown by its own metric, goal and ids, and needs no arsup.toml (`cfg` None); a night
    of arsup's is read by the project's config. Raises ConfigError, naming the tags there are, when the tag has
    no finished experiment, or when a night of arsup's has no config to read it by."""
    from arsup.core.holdout import divergence
    from arsup.core.importing import is_imported, metric_of
    from arsup.core.vcs import branch_name  # GitPython: only browsing needs it, not every attach

    journal = Journal(root, log_warnings=False)  # shown as notices, once
    history = [e for e in journal.experiments(tag) if e.status in Status.FINAL]
    if not history:
        tags = sorted({e.tag for e in journal.experiments()})
        raise ConfigError(f"no experiments for tag {tag!r} in {journal.path}; tags in the journal: {', '.join(tags)}")
    events = journal.events()
    metric, goal = metric_of(events, tag, cfg)
    run: dict[str, Any]
    if is_imported(events, tag):  # nothing of the project's config applies to a night another tool ran
        run = {"time_budget": 0.0, "policy": "auto", "agent": IMPORTED, "model": "", "holdout_keeps": 0}
    elif cfg is None:
        raise ConfigError(f"no {CONFIG_NAME} in {root}; run `arsup init` there first (only an imported night "
                          "is browsed without one)")
    else:
        run = {"time_budget": cfg.project.time_budget, "policy": cfg.policy.approve, "agent": cfg.agent.kind,
               "model": cfg.agent.shown_model, "holdout_keeps": cfg.holdout.warn_keeps}
    started = SessionStarted(
        tag, branch_name(tag), "", resumed=len(history), project=str(root),  # no head: browsing never reads git
        metric=metric, goal=goal, history=history, **run,
    )
    notices = [Notice(warning, "warning") for warning in journal.warnings]
    if started.holdout_keeps and (diverging := divergence(history, goal, started.holdout_keeps)):
        notices.append(Notice(f"holdout: {diverging}", "warning"))
    return [started, *notices]


def browse_app(cfg: Config | None, root: Path, tag: str = "", theme: str = "", monitor: Monitor | None = None,
               ) -> SupervisorApp:
    """The screen over a run's history (the latest tag by default); ConfigError when there is nothing to show."""
    bridge = Bridge()
    for event in journal_session(cfg, root, tag or last_tag(root)):
        bridge(event)
    return screen(cfg, bridge, None, theme, monitor=monitor)


def run_browse(cfg: Config | None, root: Path, tag: str = "", theme: str = "") -> int:
    """Open a run's history without starting anything; ConfigError when there is nothing to show."""
    browse_app(cfg, root, tag, theme).run()
    return 0
