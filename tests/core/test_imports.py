"""The engine is a library: importing it must not pull in the TUI; litellm, MLflow and matplotlib load only when used.

That no module of the core imports a front end or textual is an import-linter contract (`pyproject.toml`);
a contract cannot tell an import made when used from one made on import, so what loads is checked here.
"""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # imports arsup in a fresh Python process


def test_core_never_imports_textual_or_the_heavy_optional_ones() -> None:
    code = (
        "import sys, pkgutil, importlib, arsup.core\n"
        "for m in pkgutil.walk_packages(arsup.core.__path__, 'arsup.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted({'textual', 'litellm', 'mlflow', 'matplotlib'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
