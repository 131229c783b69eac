"""`arsup demo`: a fresh copy of a sample project, made a git repo, ready for the loop."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from arsup.config import ConfigError
from arsup.core.vcs import Vcs
from arsup.samples import sample_names, sample_projects_dir

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".arsup", "results.tsv")


def create_demo_repo(sample: str, target: Path | None) -> Path:
    """Copy `sample` into `target` (or a new temp folder) and commit it on branch main."""
    source = sample_projects_dir() / sample
    if not (source / "arsup.toml").is_file():
        raise ConfigError(f"no sample project {sample!r}; choose one of: {', '.join(sample_names())}")
    if target is None:
        target = Path(tempfile.mkdtemp(prefix=f"arsup-demo-{sample}-"))
    elif target.exists() and any(target.iterdir()):
        raise ConfigError(f"--dir {target} exists and is not empty; give a new or empty folder")
    shutil.copytree(source, target, ignore=_IGNORED, dirs_exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(target)], check=True)
    vcs = Vcs(target)
    try:
        files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file() and ".git" not in p.parts)
        vcs.commit(files, f"the {sample} sample project")
    finally:
        vcs.close()
    return target.resolve()
