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
from arsup.core.policy import POLICIES
from arsup.core.reaper import make_undumpable
from arsup.samples import sample_names

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
EXIT_USAGE = 2


def default_tag() -> str:
    """autoresearch's convention: the date, e.g. nov28 (locale-independent)."""
    now = time.localtime()
    return f"{MONTHS[now.tm_mon - 1]}{now.tm_mday}"


def _add_loop_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agent", help="tuner (offline, default), llm (a model through litellm), script:FILE, claude-code, codex, "
        "command (the CLI in [agent] command) or external (proposals from your own session: arsup mcp); "
        "several, comma-separated, take turns (claude-code,codex)",
    )
    parser.add_argument("--model", help="the llm agent's model, e.g. anthropic/claude-sonnet-4-5 (or ARSUP_MODEL)")
    parser.add_argument("--api-base", metavar="URL", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--max-cost", type=float, metavar="USD", help="stop new proposals once the LLM spent this")
    parser.add_argument("--max-experiments", type=int, metavar="N", help="stop after N experiments (0: no limit)")
    parser.add_argument("--max-hours", type=float, metavar="H", help="stop starting experiments after H hours")
    parser.add_argument("--tag", help="run branch autoresearch/TAG (default: today's date, e.g. nov28)")
    parser.add_argument("--time-budget", type=float, metavar="S", help="seconds of training per run")
    parser.add_argument(
        "--headless", action="store_true",
        help="the loop in the foreground, one line per experiment (no screen; attachable, and steered by commands)",
    )
    parser.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # the background loop itself
    parser.add_argument("--policy", choices=POLICIES, help="when the loop asks you: auto, edits, runs or keeps")
    parser.add_argument("--theme", metavar="NAME", help="screen theme: dark (default), light, high-contrast")


# The loop options a screen passes on to the background loop it starts.
_LOOP_FLAGS = (
    ("agent", "--agent"), ("model", "--model"), ("api_base", "--api-base"), ("max_cost", "--max-cost"),
    ("max_experiments", "--max-experiments"), ("max_hours", "--max-hours"), ("policy", "--policy"),
    ("time_budget", "--time-budget"),
)


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The commands, each of whose `--help` opens with the line `arsup --help` lists it by."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        return super().add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The parser; read it with `parse_args`, which settles `--dir`.

    argparse copies every attribute a command's parser sets, defaults included,
    over the top level's: so a command's `--dir` has a dest of its own
    (`command_dir`), and the commands that repeat top-level options (run, demo,
    attach) leave out what was not given, or `arsup --dir X stop` and
    `arsup --agent llm run` would lose X and llm."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", dest="command_dir", type=Path, metavar="DIR",
                       help="the research repo (default: the current folder)")
    unset = argparse.SUPPRESS  # a command's option not given leaves the top level's value
    parser = argparse.ArgumentParser(
        prog="arsup",
        description="The autoresearch supervisor: runs an autonomous ML-research loop and records every experiment. "
        "Without a command, `arsup` is `arsup run` on screen; `arsup --browse` shows a run's history.",
    )
    parser.add_argument("--version", action="version", version=f"arsup {__version__}")
    parser.add_argument("--dir", type=Path, help="the research repo (default: the current folder)")
    _add_loop_options(parser)
    parser.add_argument("--browse", action="store_true", help="open the history of a run (--tag, default the latest)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", action=_Commands)

    init = commands.add_parser("init", parents=[where], help="write arsup.toml, detecting the layout")
    init.add_argument("--metric", metavar="NAME", help="the metric the training prints as `NAME: value` (default: "
                      "read from the prints of the editable and protected files, else val_bpb)")
    init.add_argument("--goal", choices=("minimize", "maximize"),
                      help="minimize or maximize (default: what the metric's name says: loss down, accuracy up)")
    init.add_argument("--run", metavar="CMD", help="training command; {python} is arsup's interpreter")
    init.add_argument("--editable", action="append", metavar="F", help="a file the agent may edit (repeatable)")
    init.add_argument("--protected", action="append", metavar="F", help="a file nobody may edit (repeatable)")
    init.add_argument("--time-budget", type=float, metavar="S", help="seconds of training per run")
    init.add_argument("--timeout", type=float, metavar="S", help="hard kill after S seconds")
    init.add_argument("--force", action="store_true", help="overwrite an existing arsup.toml")
    init.add_argument("--agent", default=unset, help="the researcher to write into [agent] kind: tuner, llm, "
                      "script:FILE, claude-code, codex, command or external (see run --agent)")
    init.add_argument("--model", default=unset, help="the model to write into [agent] model")

    run = commands.add_parser("run", parents=[where], argument_default=unset, help="run the research loop in this repo")
    _add_loop_options(run)

    verify = commands.add_parser("verify", parents=[where], help="re-run a commit (default: the best) with N seeds")
    verify.add_argument("commit", nargs="?", help="the commit to measure (default: the best of the run)")
    verify.add_argument("--seeds", type=int, default=3, metavar="N", help="runs with seeds seed..seed+N-1 (default 3)")
    verify.add_argument("--tag", help="the run (default: the latest in the journal)")

    ablate = commands.add_parser("ablate", parents=[where], help="measure what each kept change is worth")
    ablate.add_argument("--seeds", type=int, default=3, metavar="N", help="runs per ablation (default 3)")
    ablate.add_argument("--tag", help="the run (default: the latest in the journal)")

    rebuild = commands.add_parser("rebuild", parents=[where], help="rewrite results.tsv from the journal for one run")
    rebuild.add_argument("--tag", help="the run (default: the latest in the journal)")

    report = commands.add_parser("report", parents=[where], help="the night's chart, summary and results.tsv")
    report.add_argument("--tag", action="append", metavar="T",
                        help="the run (default: the latest); twice or more to compare nights side by side")
    report.add_argument("--out", type=Path, metavar="DIR", help="where to write (default .arsup/reports/TAG)")

    imports = commands.add_parser("import", parents=[where], help="a karpathy/autoresearch results.tsv into the journal")
    imports.add_argument("results", type=Path, help="the results.tsv to read")
    imports.add_argument("--tag", help="the tag to file it under (default: imported, imported2, ...)")

    export = commands.add_parser("export", parents=[where], help="finished experiments to MLflow (arsup[mlflow])")
    export.add_argument("tracker", choices=("mlflow",), help="the tracker: mlflow")
    export.add_argument("--tag", help="the run (default: the latest in the journal)")
    export.add_argument("--uri", help="tracking server or store (default: [export] mlflow_uri, "
                                      "$MLFLOW_TRACKING_URI, else .arsup/mlflow.db)")

    attach = commands.add_parser("attach", parents=[where], argument_default=unset,
                                 help="the screen on the loop running here")
    attach.add_argument("--theme", metavar="NAME", help="screen theme: dark (default), light, high-contrast")
    for name, text in (
        ("status", "what the loop here is doing (exit 3 when none runs)"),
        ("approve", "answer yes to the question the loop waits on"),
        ("skip", "answer no to the question the loop waits on"),
        ("kill", "kill the running training (a crash; the loop goes on)"),
        ("pause", "pause the loop after the current step"),
        ("resume", "resume a paused loop"),
    ):
        commands.add_parser(name, parents=[where], help=text)
    note = commands.add_parser("note", parents=[where], help="a note to the agent, in every prompt from now on")
    note.add_argument("text", nargs="+", help="the note")
    set_policy = commands.add_parser("policy", parents=[where], help="when the loop asks a person")
    set_policy.add_argument("name", choices=POLICIES, help="auto (never asks), edits (before each edit is "
                            "applied), runs (before each run) or keeps (before each keep)")
    stop = commands.add_parser("stop", parents=[where], help="stop the loop: now (the run is killed and recorded)")
    stop.add_argument("--after-run", action="store_true", help="let the current experiment finish first")

    mcp = commands.add_parser("mcp", parents=[where], help="keyless: the loop's tools (MCP, stdio) for your own agent "
                              "session")
    mcp.add_argument("--work", type=Path, metavar="DIR",
                     help="the working copy the agent edits (default: a folder of yours under the temp folder)")
    agent = commands.add_parser("agent", parents=[where], help="keyless: start your own Claude Code or Codex, set "
                                "up as the researcher (arsup mcp)")
    agent.add_argument("cli", choices=("claude", "codex"), help="claude (Claude Code) or codex")
    agent.add_argument("--no-start", action="store_true", help="write the configuration and print the command")
    hook = commands.add_parser("hook", parents=[where], help="an agent session's hook: stop (the night is not over)")
    hook.add_argument("event", choices=("stop",),
                      help="stop: Claude Code's and Codex's Stop hook, blocks a stop while the night runs")
    demo = commands.add_parser("demo", argument_default=unset,
                               help="run the loop on a fresh copy of a sample project, offline")
    demo.add_argument("--dir", dest="command_dir", type=Path, metavar="DIR", default=None,
                      help="where to put the copy: a new or empty folder (default: a temp folder)")
    _add_loop_options(demo)
    samples = sample_names()
    demo.add_argument("--sample", default="tinylm", choices=samples, metavar="NAME",
                      help=f"the sample project: {' or '.join(samples)} (default tinylm)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; `dir` is the folder given before or after the command (None: none given).

    Two different folders are a usage error: acting on either could stop the wrong loop."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = vars(args).pop("command_dir", None)
    if given is not None and args.dir is not None and given.resolve() != args.dir.resolve():
        parser.error(f"--dir names two folders, {args.dir} and {given}; give one")
    args.dir = args.dir or given
    if args.browse and args.command is not None:
        parser.error("--browse goes without a command: arsup --browse [--tag T]")
    return args


def _root(args: argparse.Namespace) -> Path:
    """The project folder a command acts on: --dir, else the current folder."""
    return (args.dir or Path.cwd()).resolve()


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
    if getattr(args, "policy", None) is not None:
        overrides.setdefault("policy", {})["approve"] = args.policy
    for key in ("max_experiments", "max_hours"):
        if getattr(args, key, None) is not None:
            overrides.setdefault("budget", {})[key] = getattr(args, key)
    if getattr(args, "time_budget", None) is not None:
        overrides.setdefault("project", {})["time_budget"] = args.time_budget
    return overrides


def cmd_init(args: argparse.Namespace) -> int:
    """arsup.toml from the layout, with the metric the training prints (read from its source, not run)."""
    from arsup import config
    from arsup.core.metric_names import choose

    root = _root(args)
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
        "agent": {"kind": args.agent, "model": args.model},
    }
    for section, values in given.items():
        data.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    scanned = data["project"]["editable"] + data["project"]["protected"]  # what the training runs
    metric = choose(root, scanned, args.metric, args.goal, data["metric"]["name"])
    data["metric"].update(name=metric.name, goal=metric.goal)
    if args.timeout is None and data["project"]["timeout"] < data["project"]["time_budget"]:
        data["project"]["timeout"] = 2 * data["project"]["time_budget"]
    config.validate(data, root, source="the detected config")
    path.write_text(config.to_toml(data), encoding="utf-8")
    print(f"arsup: wrote {path}")
    print(config.to_toml(data), end="")
    print(f"arsup: {metric.said}")
    return 0


def _run_loop(root: Path, args: argparse.Namespace, overrides: dict[str, dict[str, Any]]) -> int:
    from arsup import config
    from arsup.core.agents import create_agent
    from arsup.core.loop import Engine

    cfg = config.load(root, overrides)  # a broken config is said here, before anything starts
    tag = args.tag or default_tag()
    if args.headless:
        from arsup.headless import run_headless

        return run_headless(Engine(cfg, root, create_agent(cfg, root), tag=tag), detached=args.detached)
    from arsup.background import ensure_loop

    loop_args = ["--tag", tag]
    for attribute, flag in _LOOP_FLAGS:
        value = overrides_value(args, attribute, overrides)
        if value is not None:
            loop_args += [flag, str(value)]
    pid, started = ensure_loop(root, loop_args)
    print(f"arsup: {'started the loop' if started else 'a loop already runs here; attaching to it'} (pid {pid}, "
          f"log {root / '.arsup' / 'loop.log'})", flush=True)
    return _attach(root, cfg, args.theme or "")


def overrides_value(args: argparse.Namespace, attribute: str, overrides: dict[str, dict[str, Any]]) -> Any:
    """A loop option as given, or as the command set it (the demo's experiment budget)."""
    value = getattr(args, attribute, None)
    if value is None and attribute == "max_experiments":
        value = overrides.get("budget", {}).get("max_experiments")
    return value


def _attach(root: Path, cfg: Any, theme: str) -> int:
    from arsup.tui.launch import run_attached

    return run_attached(root, cfg, theme=theme)


def cmd_attach(args: argparse.Namespace) -> int:
    """The screen on the loop running here (exit 3 when none runs)."""
    from arsup import config
    from arsup.core.service import LoopNotRunning
    from arsup.remote import EXIT_NO_LOOP

    root = _root(args)
    try:
        return _attach(root, config.load(root), args.theme or "")
    except LoopNotRunning as exc:
        print(f"arsup: {exc}; start one with `arsup` or `arsup run --headless`", file=sys.stderr)
        return EXIT_NO_LOOP


def cmd_run(args: argparse.Namespace) -> int:
    return _run_loop(_root(args), args, _overrides(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from arsup.demo import create_demo_repo

    root = create_demo_repo(args.sample, args.dir)
    print(f"arsup: demo project {args.sample} in {root}")
    overrides = _overrides(args)
    if args.max_experiments is None:
        overrides.setdefault("budget", {})["max_experiments"] = 6
    return _run_loop(root, args, overrides)


def cmd_verify(args: argparse.Namespace) -> int:
    return _check(args, "verify")


def cmd_ablate(args: argparse.Namespace) -> int:
    return _check(args, "ablate")


def _check(args: argparse.Namespace, kind: str) -> int:
    from arsup import config
    from arsup.core import checks, journal
    from arsup.report.checks import ablation_lines, verify_lines

    if args.seeds < 1:
        raise config.ConfigError("--seeds must be at least 1")
    root = _root(args)
    cfg = config.load(root)
    tag = args.tag or journal.last_tag(root)
    progress = lambda line: print(f"arsup: {line}", flush=True)  # noqa: E731
    if kind == "verify":
        lines = verify_lines(checks.verify(cfg, root, tag, args.commit, args.seeds, progress), cfg.metric.name)
    else:
        lines = ablation_lines(checks.ablate(cfg, root, tag, args.seeds, progress), cfg.metric.name)
    print("\n".join(lines))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    """results.tsv holds one run's rows (autoresearch's convention); this brings back any run's."""
    from arsup import config
    from arsup.core import journal

    root = _root(args)
    cfg = config.load(root)
    ledger = journal.Journal(root, log_warnings=False)  # said here, once
    path = root / journal.RESULTS_NAME
    lock = journal.RepoLock(root)
    lock.acquire()  # a loop appending rows meanwhile would interleave with this rewrite; none sets lines aside
    try:
        set_aside = ledger.set_aside_torn()
        tag = args.tag or journal.last_tag(root)
        experiments = ledger.experiments_of(tag)
        for warning in [*set_aside, *ledger.warnings]:
            print(f"arsup: warning: {warning}", file=sys.stderr)
        rows = journal.write_results(path, cfg.metric.name, experiments)
    finally:
        lock.release()
    print(f"arsup: wrote {rows} rows of tag {tag} to {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from arsup.core import journal
    from arsup.report.markdown import headline
    from arsup.report.night import write_report

    root = _root(args)
    written = write_report(root, args.tag or [journal.last_tag(root)], args.out.resolve() if args.out else None)
    for summary in written.summaries:
        print(f"arsup: {headline(summary)}")
    print(f"arsup: wrote {', '.join(path.name for path in written.files[:4])}"
          f"{' and more' if len(written.files) > 4 else ''} to {written.out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from arsup.core.importing import import_results

    root = _root(args)
    imported = import_results(root, args.results, args.tag or "")
    tag = imported.tag
    print(f"arsup: imported {imported.count} experiments from {args.results} as tag {tag} "
          f"({imported.first}-{imported.last}); `arsup report --tag {tag}` or `arsup --browse --tag {tag}`")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Finished experiments to the team's tracker; what is there already is skipped."""
    from arsup import config
    from arsup.core import importing, journal
    from arsup.core.mlflow_export import MlflowExport, tracking_uri

    root = _root(args)
    ledger = journal.Journal(root)
    tag = args.tag or journal.last_tag(root)
    experiments = ledger.experiments_of(tag)
    project = config.load_if_present(root)
    uri = tracking_uri(root, args.uri or (project.export.mlflow_uri if project is not None else ""))
    exported = MlflowExport(uri, importing.metric_of(ledger.events(), tag, project)[0]).export(experiments)
    print(f"arsup: exported {exported} new of {len(experiments)} experiments of tag {tag} to MLflow "
          f"experiment arsup/{tag} at {uri}; browse them with `mlflow ui --backend-store-uri {uri}`")
    return 0


def cmd_remote(args: argparse.Namespace) -> int:
    """A command for the loop running in this project (see arsup.remote)."""
    from arsup.remote import run_command

    root = _root(args)
    command = "stop_after_run" if args.command == "stop" and args.after_run else args.command
    text = " ".join(args.text) if args.command == "note" else getattr(args, "name", "")
    return run_command(root, command, text)


def cmd_mcp(args: argparse.Namespace) -> int:
    """The keyless tools on stdio; the loop is started in the background (agent external) on first use."""
    from arsup.keyless import KeylessError
    from arsup.mcp_server import serve

    try:
        return serve(_root(args), args.work)
    except KeylessError as exc:
        print(f"arsup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_agent(args: argparse.Namespace) -> int:
    """Your interactive CLI in a folder set up for keyless mode: its config written, then it starts there."""
    import shlex

    from arsup import config
    from arsup.keyless_agent import prepare, start

    root = _root(args)
    setup = prepare(args.cli, root, config.load(root))
    print(f"arsup: {args.cli} is set up in {setup.folder}; the working copy is {setup.work}; "
          f"`arsup attach --dir {root}` shows the loop beside it", flush=True)
    if args.no_start:
        print(f"cd {shlex.quote(str(setup.folder))} && {shlex.join(setup.argv)}")
        return 0
    return start(setup)


def cmd_hook(args: argparse.Namespace) -> int:
    """The Stop hook: whatever goes wrong, the agent may stop (a broken hook must never hold a session)."""
    from arsup.hook import max_idle_blocks, stop_hook

    root = _root(args)
    if not sys.stdin.isatty():
        sys.stdin.read()  # the session's JSON: the loop, not the session, says whether the night is over
    return stop_hook(root, max_idle_blocks(root))


def cmd_browse(args: argparse.Namespace) -> int:
    from arsup import config
    from arsup.tui.launch import run_browse

    root = _root(args)  # an imported night is browsed where there is no arsup.toml, as it is reported
    return run_browse(config.load_if_present(root), root, tag=args.tag or "", theme=args.theme or "")


def main(argv: Sequence[str] | None = None) -> int:
    make_undumpable()  # first: a run must not read this process's environment (the API keys) in /proc
    args = parse_args(argv)
    command = "browse" if args.browse else args.command or "run"
    if command == "hook":  # before the imports below: a hook answers in well under 200 ms
        return cmd_hook(args)
    from arsup.config import ConfigError
    from arsup.background import LoopFailed
    from arsup.core.importing import BadLog
    from arsup.core.journal import JournalError, RepoBusy
    from arsup.core.mlflow_export import ExportError
    from arsup.core.vcs import GitError

    commands = {
        "init": cmd_init, "run": cmd_run, "demo": cmd_demo, "browse": cmd_browse, "attach": cmd_attach,
        "verify": cmd_verify, "ablate": cmd_ablate, "rebuild": cmd_rebuild, "report": cmd_report,
        "import": cmd_import, "export": cmd_export, "mcp": cmd_mcp, "hook": cmd_hook, "agent": cmd_agent,
        **dict.fromkeys(("status", "approve", "skip", "kill", "pause", "resume", "note", "policy", "stop"), cmd_remote),
    }
    try:
        return commands[command](args)
    except KeyboardInterrupt:  # the checks' runs were killed before this got here
        print("\narsup: stopped", file=sys.stderr)
        return 130
    except (ConfigError, GitError, RepoBusy, JournalError, BadLog, ExportError) as exc:
        print(f"arsup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LoopFailed as exc:
        print(f"arsup: the loop did not start: {exc}", file=sys.stderr)
        return exc.exit_code
