"""Theme files: the shipped three load, a broken one is a problem (never a crash), names resolve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from arsup.tui.themes import DEFAULT_THEME, FALLBACK_THEME, load_themes, themes_dir
from tests.tui.conftest import drive


def test_shipped_themes_load() -> None:
    themes = load_themes()
    assert themes.problems == []
    assert {"dark", "light", "high-contrast"} <= set(themes.names) and themes.names[0] == DEFAULT_THEME
    light = next(t for t in themes.themes if t.name == "light")
    assert light.dark is False and light.primary.startswith("#")
    assert themes_dir().name == "themes"


def test_a_broken_file_falls_back_to_the_default_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "dark.toml").write_text((themes_dir() / "dark.toml").read_text())
    (tmp_path / "neon.toml").write_text('primary = "#00ff00"\nbackground = "not a colour"\n')
    (tmp_path / "bad.toml").write_text("primary = [")
    (tmp_path / "typo.toml").write_text('primary = "#fff"\nprimray = "#000"\n')
    themes = load_themes(tmp_path)
    assert themes.names == ["dark"]
    assert len(themes.problems) == 3 and any("neon.toml: background" in p for p in themes.problems)
    name, why = themes.choose("neon", ["dark", FALLBACK_THEME])
    assert name == "dark" and "neon.toml" in why and "using dark" in why
    name, why = themes.choose("nope", ["dark"])
    assert name == "dark" and "no theme 'nope'" in why
    assert themes.choose("", ["dark"]) == ("dark", "")
    assert themes.choose(FALLBACK_THEME, ["dark", FALLBACK_THEME]) == (FALLBACK_THEME, "")


def test_without_any_theme_file_textual_default_is_used(tmp_path: Path) -> None:
    themes = load_themes(tmp_path / "missing")
    assert themes.names == [] and themes.default() == FALLBACK_THEME
    assert themes.next_after(FALLBACK_THEME) == FALLBACK_THEME


def test_cycling() -> None:
    themes = load_themes()
    names = themes.names
    assert themes.next_after(names[-1]) == names[0] and themes.next_after(names[0]) == names[1]
    assert themes.next_after("nord") == names[0]


@pytest.mark.slow
def test_the_screen_falls_back_and_says_so(tmp_path: Path) -> None:
    from arsup.tui.app import SupervisorApp
    from arsup.tui.bridge import Bridge

    folder = tmp_path / "themes"
    folder.mkdir()
    (folder / "dark.toml").write_text((themes_dir() / "dark.toml").read_text())
    (folder / "neon.toml").write_text('primary = "#00ff00"\nsurface = 7\n')
    app = SupervisorApp(None, Bridge(), theme="neon", themes=load_themes(folder))
    said: list[str] = []
    app.notify = lambda message, **_: said.append(message)  # type: ignore[method-assign]

    async def go(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        assert app.theme == "dark"

    drive(app, go)
    assert any("neon.toml: surface" in s for s in said) and any("using dark" in s for s in said)
