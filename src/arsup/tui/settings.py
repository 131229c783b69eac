"""The screen's own settings in arsup.toml: `[keys]` (action id -> key) and `[ui] theme`.

They are read here, straight from the file, and tolerantly: the engine's
config does not need them, and a typo in a key map must not stop a research
night (it becomes a notice on the screen instead).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_NAME = "arsup.toml"


@dataclass
class UiSettings:
    keys: dict[str, str] = field(default_factory=dict)
    theme: str = ""
    problems: list[str] = field(default_factory=list)


def read_settings(root: Path) -> UiSettings:
    """`[keys]` and `[ui]` of `root/arsup.toml`; absent file or sections give the defaults."""
    path = root / CONFIG_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UiSettings()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return UiSettings(problems=[f"{CONFIG_NAME}: cannot read [keys] and [ui] ({exc})"])
    settings = UiSettings()
    keys = data.get("keys", {})
    if isinstance(keys, dict):
        settings.keys = {str(k): v for k, v in keys.items() if isinstance(v, str)}
        settings.problems += [
            f"[keys] {k}: must be a key name string, e.g. \"y\"" for k, v in keys.items() if not isinstance(v, str)
        ]
    else:
        settings.problems.append("[keys] must be a table of action = \"key\"")
    ui = data.get("ui", {})
    theme = ui.get("theme", "") if isinstance(ui, dict) else ""
    if isinstance(theme, str):
        settings.theme = theme
    else:
        settings.problems.append("[ui] theme must be a theme name string")
    return settings
