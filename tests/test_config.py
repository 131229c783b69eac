from __future__ import annotations

from pathlib import Path

import pytest

from arsup import config
from tests.conftest import make_project


def test_valid_config_loads_typed(project: Path) -> None:
    cfg = config.load(project)
    assert cfg.project.editable == ["train.py"]
    assert cfg.project.time_budget == 5.0
    assert cfg.metric.goal == "minimize"
    assert cfg.agent.kind == "tuner"
    assert cfg.budget.max_experiments == 0


def test_overrides_apply(project: Path) -> None:
    cfg = config.load(project, {"budget": {"max_experiments": 3}, "agent": {"kind": "llm"}})
    assert cfg.budget.max_experiments == 3
    assert cfg.agent.kind == "llm"


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
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, section: dict, values: None, expected: str) -> None:
    root = make_project(tmp_path / "repo", **section)
    with pytest.raises(config.ConfigError) as info:
        config.load(root)
    assert expected in str(info.value)


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
