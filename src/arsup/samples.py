"""The sample projects `arsup demo` copies: where they are and their names.

Apart from `arsup.demo` (which imports git) so that `arsup demo --help` can list them without importing
anything heavy."""

from __future__ import annotations

from pathlib import Path


def sample_projects_dir() -> Path:
    """Installed wheels carry the samples inside the package; a source checkout has them at the top."""
    packaged = Path(__file__).parent / "_sample_projects"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "sample_projects"


def sample_names() -> list[str]:
    return sorted(p.name for p in sample_projects_dir().iterdir() if (p / "arsup.toml").is_file())
