"""[keys] and [ui] read from arsup.toml, tolerant of their absence and of mistakes."""

from __future__ import annotations

from pathlib import Path

from arsup.tui.settings import read_settings


def test_absent(tmp_path: Path) -> None:
    settings = read_settings(tmp_path)
    assert (settings.keys, settings.theme, settings.problems) == ({}, "", [])


def test_read(tmp_path: Path) -> None:
    toml = '[project]\nrun = "x"\n[keys]\napprove = "y"\nkill = 3\n[ui]\ntheme = "light"\n'
    (tmp_path / "arsup.toml").write_text(toml)
    settings = read_settings(tmp_path)
    assert settings.keys == {"approve": "y"} and settings.theme == "light"
    assert settings.problems == ['[keys] kill: must be a key name string, e.g. "y"']


def test_broken_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "arsup.toml").write_text("[keys\n")
    assert read_settings(tmp_path).problems[0].startswith("arsup.toml: cannot read")
    (tmp_path / "arsup.toml").write_text('keys = "a"\n[ui]\ntheme = 1\n')
    assert len(read_settings(tmp_path).problems) == 2
