"""arsup's own time per proposal around a coding agent's CLI call: the real Claude Code against a scripted API.

One night of a baseline and N proposals (20; `--smoke`: 3) in a real engine,
the agent `claude-code`: the real CLI (tests/agent_clis.py finds it in
`.agent-clis/`, from tools/install-agent-clis) talking to the scripted
Anthropic server of tests/agent_servers.py on 127.0.0.1, HOME a temporary
folder, no key of the caller's. Each proposal is three model turns: Read
train.py, Edit its own constant C{i} (so none is a repeat and a keep never
stops the next one applying), and the `HYPOTHESIS:` line; each run is one
awk line (no Python start), greedy acceptance.

arsup's time per proposal is the proposal's wall time (`propose_s`: the CLI
found on PATH, the scratch copy of the best commit, the lab folder, the
prompt, the stream read, the diff and the engine's checks of it) minus the
CLI's own time. The CLI's time is measured twice: as arsup records it
(`calls[].cli_s`, from the process start to its exit, the runner's reaper
included) and by stamps the CLI's own command writes (a wrapper that stamps
the time, runs `claude`, stamps again): the figure is propose_s minus the
stamped time, so the reaper's start counts as arsup's. Goal: median under
300 ms. Exits 1 when there is no Claude Code CLI or the night did not train
every proposal.
"""

from __future__ import annotations

import os
import statistics
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from common import ROOT, SUM_OF_CONSTANTS, constants, make_repo, median, parser, require, trained

sys.path.insert(0, str(ROOT))
from arsup import config  # noqa: E402
from arsup.core.agents import create_agent  # noqa: E402
from arsup.core.agents.cli_agent import CLIAgent  # noqa: E402
from arsup.core.loop import Engine  # noqa: E402
from tests.agent_clis import INSTALL_HINT, find_cli, offline_env  # noqa: E402
from tests.agent_servers import AnthropicServer, answer, tool  # noqa: E402

GOAL_MS = 300.0
TAG = "bench"


def stamped(claude: Path, stamps: Path) -> Path:
    """A `claude` that stamps its start and end into `stamps`: the CLI's own time, as its command saw it."""
    folder = Path(tempfile.mkdtemp(prefix="arsup-bench-cli-"))
    wrapper = folder / "claude"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"date +%s.%N | sed 's/^/start /' >> '{stamps}'\n"
        f"'{claude}' \"$@\"\nstatus=$?\n"
        f"date +%s.%N | sed 's/^/end /' >> '{stamps}'\n"
        "exit $status\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def night(claude: Path, proposals: int) -> tuple[list[dict[str, float]], list[float]]:
    """The night's proposals (propose_s, cli_s as recorded) and the stamped CLI time of each call, in order."""
    monkeypatch = pytest.MonkeyPatch()
    offline_env(monkeypatch, Path(tempfile.mkdtemp(prefix="arsup-bench-home-")))
    stamps = Path(tempfile.mkdtemp(prefix="arsup-bench-stamps-")) / "stamps"
    stamps.write_text("")
    try:
        with AnthropicServer() as server:
            monkeypatch.setenv("ANTHROPIC_API_KEY", "fake")
            monkeypatch.setenv("ANTHROPIC_BASE_URL", server.origin)
            monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")
            root = make_repo(constants(proposals), SUM_OF_CONSTANTS)
            overrides = {
                "budget": {"max_experiments": proposals + 1}, "acceptance": {"mode": "greedy"},
                "agent": {"kind": "claude-code", "command": str(stamped(claude, stamps)), "timeout": 120},
            }
            cfg = config.load(root, overrides)
            agent = create_agent(cfg, root)
            require(isinstance(agent, CLIAgent), f"[agent] kind = claude-code made a {type(agent).__name__}")
            assert isinstance(agent, CLIAgent)
            train = agent.workspace.scratch.folder / "train.py"  # one slot: every proposal is made in this one
            for i in range(proposals):
                server.push(tool("Read", file_path=str(train)),
                            tool("Edit", file_path=str(train), old_string=f"C{i} = 0.0", new_string=f"C{i} = -0.01"),
                            answer(f"Done.\nHYPOTHESIS: C{i} to -0.01"))
            engine = Engine(cfg, root, agent, tag=TAG)
            engine.prepare()
            engine.run()
            experiments = [e for e in trained(root, TAG, proposals) if not e.is_baseline]
    finally:
        monkeypatch.undo()
    recorded = [{"propose_s": e.propose_s, "cli_s": sum(c["cli_s"] for c in e.agent_data["calls"]),
                 "calls": len(e.agent_data["calls"])} for e in experiments]
    require(all(r["calls"] == 1 for r in recorded), "a proposal needed a correction: the script no longer fits")
    lines = [line.split() for line in stamps.read_text().splitlines()]
    starts = [float(t) for kind, t in lines if kind == "start"]
    ends = [float(t) for kind, t in lines if kind == "end"]
    require(len(starts) == len(ends) == proposals, f"{len(starts)} CLI starts and {len(ends)} ends for {proposals}")
    return recorded, [end - start for start, end in zip(starts, ends)]


def _quartiles(values: list[float]) -> str:
    low, *_, high = statistics.quantiles(values, n=4) if len(values) >= 4 else sorted(values)
    return f"{low:.0f}-{high:.0f}"


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument("--proposals", type=int, default=20, help="proposals in the night (default 20; --smoke: 3)")
    args = arguments.parse_args()
    proposals = 3 if args.smoke else args.proposals
    claude = find_cli("claude")
    require(claude is not None, f"no Claude Code CLI (no .agent-clis/, none on PATH): {INSTALL_HINT}")
    assert claude is not None
    recorded, cli_own = night(claude, proposals)
    propose = [r["propose_s"] * 1000 for r in recorded]
    cli_ms = [s * 1000 for s in cli_own]
    arsup_ms = [p - c for p, c in zip(propose, cli_ms)]
    around = [r["propose_s"] * 1000 - r["cli_s"] * 1000 for r in recorded]  # by arsup's own record alone
    spawn = [r["cli_s"] * 1000 - c for r, c in zip(recorded, cli_ms)]
    print(f"{proposals} proposals of the real Claude Code ({os.path.realpath(claude)}) against the scripted API; "
          "medians, quartiles in brackets")
    print(f"proposal wall time {median(propose):7.0f} ms ({_quartiles(propose)}); the CLI's own "
          f"{median(cli_ms):7.0f} ms ({_quartiles(cli_ms)})")
    print(f"arsup's time around the CLI: {median(arsup_ms):.0f} ms ({_quartiles(arsup_ms)}), "
          f"{median(arsup_ms) / median(propose):.1%} of a proposal; goal under {GOAL_MS:.0f} ms")
    print(f"  of which the process start and reaper (cli_s minus the stamped time): {median(spawn):.0f} ms; "
          f"propose_s - cli_s as journaled: {median(around):.0f} ms")


if __name__ == "__main__":
    main()
