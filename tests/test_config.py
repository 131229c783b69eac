from __future__ import annotations

import re
from pathlib import Path

import pytest

from arsup import config
from tests.conftest import make_project


@pytest.mark.slow
def test_valid_config_loads_typed(project: Path) -> None:
    cfg = config.load(project)
    assert cfg.project.editable == ["train.py"]
    assert cfg.project.time_budget == 5.0
    assert cfg.metric.goal == "minimize"
    assert cfg.agent.kind == "tuner"
    assert cfg.budget.max_experiments == 0


@pytest.mark.slow
def test_overrides_apply(project: Path) -> None:
    cfg = config.load(project, {"budget": {"max_experiments": 3}, "agent": {"kind": "llm"}})
    assert cfg.budget.max_experiments == 3
    assert cfg.agent.kind == "llm"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ({"project": {"tim_budget": 3}}, None, "[project] tim_budget: unknown key"),
        ({"metric": {"goal": "max"}}, None, "[metric] goal"),
        ({"project": {"time_budget": "long"}}, None, "[project] time_budget"),
        ({"project": {"instructions": "missing.md"}}, None, "'missing.md' not found"),
        ({"project": {"editable": ["nope.py"]}}, None, "[project] editable: 'nope.py' matches no file"),
        ({"project": {"timeout": 1, "time_budget": 5}}, None, "timeout (1 s) is shorter than time_budget"),
        ({"metric": {"pattern": "no group"}}, None, "exactly one capture group"),
        ({"agent": {"kind": "gpt"}}, None, "must be one of tuner, llm, script:FILE"),
        ({"extra": {"x": 1}}, None, "[extra]: unknown key"),
        ({"project": {"editable": ["../x"]}}, None, "[project] editable: '../x' is outside the project folder"),
        ({"project": {"editable": ["/abs/train.py"]}}, None, "[project] editable: '/abs/train.py' is outside"),
        ({"project": {"protected": ["../prepare.py"]}}, None, "[project] protected: '../prepare.py' is outside"),
        ({"project": {"protected": ["/etc/passwd"]}}, None, "[project] protected: '/etc/passwd' is outside"),
        ({"project": {"instructions": "../outside.md"}}, None, "[project] instructions: '../outside.md' is outside"),
        ({"project": {"editable": ["a**b.py"]}}, None, "[project] editable: 'a**b.py' is not a valid path or glob"),
        ({"project": {"editable": [""]}}, None, "[project] editable: an empty path"),
        ({"project": {"time_budget": True}}, None, "[project] time_budget: must be a number, not true or false"),
        ({"project": {"seed": False}}, None, "[project] seed: must be a number"),
        ({"acceptance": {"baseline_runs": True}}, None, "[acceptance] baseline_runs: must be a number"),
        ({"budget": {"max_hours": True}}, None, "[budget] max_hours: must be a number"),
        ({"watchdog": {"abort_on": "loss: (nan"}}, None, "[watchdog] abort_on: not a valid regular expression"),
        ({"watchdog": {"abort_on": "FAIL|"}}, None, "[watchdog] abort_on: matches an empty line"),
        ({"watchdog": {"stall_s": -1}}, None, "[watchdog] stall_s"),
        ({"watchdog": {"crashes_in_a_row": 1.5}}, None, "[watchdog] crashes_in_a_row"),
        ({"watchdog": {"memory_gb": True}}, None, "[watchdog] memory_gb: must be a number"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, section: dict, values: None, expected: str) -> None:
    root = make_project(tmp_path / "repo", **section)
    with pytest.raises(config.ConfigError) as info:
        config.load(root)
    assert expected in str(info.value)


@pytest.mark.slow
def test_broken_toml_is_a_config_error(project: Path) -> None:
    (project / "arsup.toml").write_text("[project\nrun = ")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(project)


def test_missing_config_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="arsup init"):
        config.load(tmp_path)


def test_detect_autoresearch_layout(tmp_path: Path) -> None:
    for name in ("program.md", "train.py", "prepare.py", "uv.lock"):
        (tmp_path / name).write_text("")
    data = config.detect(tmp_path)
    assert data["project"]["editable"] == ["train.py"]
    assert data["project"]["protected"] == ["prepare.py"]
    assert data["project"]["run"] == "uv run train.py"
    assert (data["project"]["time_budget"], data["project"]["timeout"]) == (300, 600)
    assert data["metric"]["name"] == "val_bpb" and data["metric"]["goal"] == "minimize"
    (tmp_path / "uv.lock").unlink()
    assert config.detect(tmp_path)["project"]["run"] == "{python} train.py"


def test_toml_round_trip(tmp_path: Path) -> None:
    for name in ("program.md", "train.py", "prepare.py"):
        (tmp_path / name).write_text("")
    data = config.detect(tmp_path)
    data["project"]["env"] = {"CUDA_VISIBLE_DEVICES": "0"}
    data["project"]["run"] = 'python "train.py" --x \\y'
    (tmp_path / "arsup.toml").write_text(config.to_toml(data))
    cfg = config.load(tmp_path)
    assert cfg.project.env == {"CUDA_VISIBLE_DEVICES": "0"}
    assert cfg.project.run == 'python "train.py" --x \\y'


@pytest.mark.slow
def test_watchdog_defaults_and_values(project: Path) -> None:
    watchdog = config.load(project).watchdog
    assert (watchdog.stall_s, watchdog.memory_gb, watchdog.max_log_mb, watchdog.crashes_in_a_row) == (0, 0, 1024, 3)
    set_ = config.load(project, {"watchdog": {"stall_s": 120, "memory_gb": 60, "abort_on": "", "max_log_mb": 0}})
    assert (set_.watchdog.stall_s, set_.watchdog.memory_gb, set_.watchdog.abort_on, set_.watchdog.max_log_mb) == (
        120, 60, "", 0
    )


@pytest.mark.parametrize(
    ("line", "aborts"),
    [
        ("FAIL", True),  # autoresearch's fast fail
        ("step 00011 (3.2%) | loss: 3.215400 | lrm: 1.00 | dt: 301ms    FAIL", True),  # after a \r progress line
        ("step 00012 | loss: nan", True),
        ("step 00012/00400 | loss nan | lr 1.00e-03", True),  # tinylm's format
        ("val_loss: NaN", True),
        ("Loss = -nan", True),
        ("val_bpb:          0.950000", False),
        ("loss: 2.310000 | nano_batches: 4", False),
        ("using nanoGPT-style init", False),
        ("step 00012 | loss: 3.21 | grad nan count 0", False),
        ("failed to import flash_attn; using sdpa", False),
        ("FAILOVER to the second GPU", False),
    ],
)
def test_default_abort_on_matches_failures_only(line: str, aborts: bool) -> None:
    assert bool(re.search(config.WatchdogConfig().abort_on, line)) is aborts


@pytest.mark.slow
def test_numbers_still_accept_ints_for_floats(project: Path) -> None:
    cfg = config.load(project, {"project": {"time_budget": 7, "timeout": 8.5}, "acceptance": {"baseline_runs": 4}})
    assert (cfg.project.time_budget, cfg.project.timeout, cfg.acceptance.baseline_runs) == (7.0, 8.5, 4)


@pytest.mark.slow
def test_a_ray_executor_without_ray_installed_names_the_extra(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    assert config.load(project, {"executor": {"kind": "ray"}}).executor.kind == "ray"  # installed with the tests
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(config.ConfigError, match=r"\[executor\] kind: .*pip install 'arsup\[ray\]'"):
        config.load(project, {"executor": {"kind": "ray"}})


@pytest.mark.slow
def test_sandbox_bwrap_where_bwrap_is_missing_is_a_config_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(project / "no-such-folder"))
    with pytest.raises(config.ConfigError) as raised:
        config.load(project, {"sandbox": {"kind": "bwrap"}})
    assert str(raised.value).endswith(
        '[sandbox]: kind = "bwrap" but bubblewrap (bwrap) is not installed; install bubblewrap (apt install '
        'bubblewrap) and allow it, or set kind = "auto" to run unsandboxed where it cannot run'
    )


@pytest.mark.slow
def test_sandbox_writable_paths_lie_outside_the_project(project: Path) -> None:
    cfg = config.load(project, {"sandbox": {"writable": ["/data/cache", "~/.cache/torch"]}})
    assert cfg.sandbox.writable == ["/data/cache", "~/.cache/torch"] and cfg.sandbox.network
    assert config.SandboxConfig().kind == "auto" and config.SandboxConfig().writable == ["~/.cache", "~/.triton"]
    with pytest.raises(config.ConfigError, match=r"\[sandbox\] writable: 'data' is relative; the project folder is writable"):
        config.load(project, {"sandbox": {"writable": ["data"]}})


def test_the_screen_names_the_model_of_an_llm_or_a_cli_agent_and_none_for_the_tuner(tmp_path: Path) -> None:
    shown = {
        kind: config.AgentConfig(kind=kind, model="anthropic/claude-sonnet-4-5").shown_model
        for kind in ("llm", "claude-code", "codex", "command", "tuner")
    }
    assert shown == {"llm": "anthropic/claude-sonnet-4-5", "claude-code": "anthropic/claude-sonnet-4-5",
                     "codex": "anthropic/claude-sonnet-4-5", "command": "anthropic/claude-sonnet-4-5", "tuner": ""}


@pytest.mark.slow
def test_several_agents_take_a_list_and_tables_of_their_own(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    with (root / "arsup.toml").open("a") as toml:
        toml.write('\n[agent]\nkind = ["claude-code", "codex"]\nmodel = "sonnet"\n\n'
                   '[agent.codex]\nmodel = "gpt-5-codex"\ncommand = "/opt/codex/bin/codex"\n')
    agent = config.load(root).agent
    assert agent.kinds == ["claude-code", "codex"] and agent.kind == "claude-code"
    assert [agent.model_for(k) for k in agent.kinds] == ["sonnet", "gpt-5-codex"]
    assert [agent.command_for(k) for k in agent.kinds] == ["", "/opt/codex/bin/codex"]  # claude: found on PATH
    assert agent.shown_model == "sonnet / gpt-5-codex"


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ({"kind": ["claude-code", "gpt"]}, "'gpt': must be one of tuner, llm, script:FILE"),
        ({"kind": []}, "names no agent"),
        ({"kind": ["codex", "codex"]}, "an agent is named twice"),
        ({"kind": ["external", "codex"]}, "external takes no turns with other agents"),
        ({"kind": "codex", "claude-code": {"model": "x"}}, "[agent.claude-code] is set but 'claude-code' is not in"),
    ],
)
def test_a_bad_list_of_agents_names_what_is_wrong(agent: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        config.AgentConfig(**agent)


def test_one_agent_on_the_command_line_or_several_separated_by_commas() -> None:
    assert config.AgentConfig(kind="codex").kinds == ["codex"]
    assert config.AgentConfig(kind="claude-code, codex").kinds == ["claude-code", "codex"]
    single = config.AgentConfig(kind="command", command="aider --yes {files}")
    assert single.command_for("command") == "aider --yes {files}" and single.shown_model == ""


def test_a_coding_agent_gets_longer_than_one_model_call_unless_the_timeout_is_set() -> None:
    both = config.AgentConfig(kind="llm,claude-code")
    assert (both.timeout_for("llm"), both.timeout_for("claude-code")) == (300.0, 1800.0)
    assert config.AgentConfig(kind="codex", timeout=60).timeout_for("codex") == 60.0
