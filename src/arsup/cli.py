"""Argument parsing only: builds the config, the engine and the front end, then hands over.

Heavy modules are imported inside the command functions so `arsup --help`
answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from arsup import __version__

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
EXIT_USAGE = 2


def default_tag() -> str:
    """autoresearch's convention: the date, e.g. nov28 (locale-independent)."""
    now = time.localtime()
    return f"{MONTHS[now.tm_mon - 1]}{now.tm_mday}"


def _add_loop_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", help="tuner (offline, default), llm (a model through litellm) or script:FILE")
    parser.add_argument("--model", help="the llm agent's model, e.g. anthropic/claude-sonnet-4-5 (or ARSUP_MODEL)")
    parser.add_argument("--api-base", metavar="URL", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--max-cost", type=float, metavar="USD", help="stop new proposals once the LLM spent this")
    parser.add_argument("--max-experiments", type=int, metavar="N", help="stop after N experiments (0: no limit)")
    parser.add_argument("--max-hours", type=float, metavar="H", help="stop starting experiments after H hours")
    parser.add_argument("--tag", help="run branch autoresearch/TAG (default: today's date, e.g. nov28)")
    parser.add_argument("--headless", action="store_true", help="plain output, one line per experiment")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arsup",
        description="The autoresearch supervisor: runs an autonomous ML-research loop and records every experiment.",
    )
    parser.add_argument("--version", action="version", version=f"arsup {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", type=Path, help="the research repo (default: the current folder)")

    init = commands.add_parser("init", parents=[where], help="write arsup.toml, detecting the layout")
    init.add_argument("--metric", help="metric name printed by the script (default val_bpb)")
    init.add_argument("--goal", choices=("minimize", "maximize"))
    init.add_argument("--run", metavar="CMD", help="training command; {python} is arsup's interpreter")
    init.add_argument("--editable", action="append", metavar="F", help="a file the agent may edit (repeatable)")
    init.add_argument("--protected", action="append", metavar="F", help="a file nobody may edit (repeatable)")
    init.add_argument("--time-budget", type=float, metavar="S", help="seconds of training per run")
    init.add_argument("--timeout", type=float, metavar="S", help="hard kill after S seconds")
    init.add_argument("--force", action="store_true", help="overwrite an existing arsup.toml")

    run = commands.add_parser("run", parents=[where], help="run the research loop in this repo")
    _add_loop_options(run)

    demo = commands.add_parser("demo", help="run the loop on a fresh copy of a sample project, offline")
    demo.add_argument("--dir", type=Path, help="where to put the copy: a new or empty folder (default: a temp folder)")
    _add_loop_options(demo)
    demo.add_argument("--sample", default="tinylm", help="sample project (default tinylm)")
    demo.add_argument("--time-budget", type=float, metavar="S", help="seconds of training per run")
    demo.set_defaults(max_experiments=None)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for flag, section, key in (
        ("agent", "agent", "kind"),
        ("model", "agent", "model"),
        ("api_base", "agent", "api_base"),
        ("max_cost", "budget", "max_cost_usd"),
    ):
        if getattr(args, flag) is not None:
            overrides.setdefault(section, {})[key] = getattr(args, flag)
    for key in ("max_experiments", "max_hours"):
        if getattr(args, key, None) is not None:
            overrides.setdefault("budget", {})[key] = getattr(args, key)
    if getattr(args, "time_budget", None) is not None:
        overrides.setdefault("project", {})["time_budget"] = args.time_budget
    return overrides


def cmd_init(args: argparse.Namespace) -> int:
    from arsup import config

    root = (args.dir or Path.cwd()).resolve()
    path = root / config.CONFIG_NAME
    if path.exists() and not args.force:
        print(f"arsup: {path} exists; edit it, or pass --force to overwrite", file=sys.stderr)
        return EXIT_USAGE
    data = config.detect(root)
    given = {
        "project": {
            "run": args.run,
            "editable": args.editable,
            "protected": args.protected,
            "time_budget": args.time_budget,
            "timeout": args.timeout,
        },
        "metric": {"name": args.metric, "goal": args.goal},
    }
    for section, values in given.items():
        data[section].update({k: v for k, v in values.items() if v is not None})
    if args.timeout is None and data["project"]["timeout"] < data["project"]["time_budget"]:
        data["project"]["timeout"] = 2 * data["project"]["time_budget"]
    config.validate(data, root, source="the detected config")
    path.write_text(config.to_toml(data), encoding="utf-8")
    print(f"arsup: wrote {path}")
    print(config.to_toml(data), end="")
    return 0


def _run_loop(root: Path, args: argparse.Namespace, overrides: dict[str, dict[str, Any]]) -> int:
    from arsup import config
    from arsup.core.agents import create_agent
    from arsup.core.engine import Engine
    from arsup.headless import run_headless

    cfg = config.load(root, overrides)
    engine = Engine(cfg, root, create_agent(cfg, root), tag=args.tag or default_tag())
    return run_headless(engine)


def cmd_run(args: argparse.Namespace) -> int:
    return _run_loop((args.dir or Path.cwd()).resolve(), args, _overrides(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from arsup.demo import create_demo_repo

    root = create_demo_repo(args.sample, args.dir)
    print(f"arsup: demo project {args.sample} in {root}")
    overrides = _overrides(args)
    if args.max_experiments is None:
        overrides.setdefault("budget", {})["max_experiments"] = 6
    return _run_loop(root, args, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from arsup.config import ConfigError
    from arsup.core.vcs import GitError

    try:
        return {"init": cmd_init, "run": cmd_run, "demo": cmd_demo}[args.command](args)
    except (ConfigError, GitError) as exc:
        print(f"arsup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
