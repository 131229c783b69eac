"""The training's environment: credentials stay out, whatever their variable is called."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from arsup.core.runner import build_env


@pytest.mark.parametrize(
    "name",
    [
        "UV_INDEX_PRIVATE_PASSWORD",
        "UV_PUBLISH_PASSWD",
        "HF_DB_PASS",
        "CONDA_PGPASS",
        "HF_PASSPHRASE",
        "UV_CREDS",
        "HF_CREDENTIALS_FILE",
        "TORCH_AUTH",
        "HF_OAUTH_CLIENT",
        "HF_COOKIE",
        "XDG_SESSION_COOKIE",
        "CUDA_SESSION_ID",
        "HF_API_KEY",
        "UV_TOKEN",
    ],
)
def test_secret_looking_names_under_allowed_prefixes_do_not_pass(name: str) -> None:
    assert name not in build_env({name: "hunter2"})
    assert build_env({name: "hunter2"}, pass_env=[name])[name] == "hunter2"  # unless named exactly


def test_ordinary_names_still_pass() -> None:
    base = {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/src",
        "LD_LIBRARY_PATH": "/usr/lib/cuda",
        "UV_CACHE_DIR": "/cache/uv",
        "HF_HOME": "/cache/hf",
        "TORCHINDUCTOR_COMPILE_THREADS": "4",
        "UV_INDEX_URL": "https://pypi.example.org/simple",
        "HF_ENDPOINT": "https://hf-mirror.example.org",
        "UV_FIND_LINKS": "https://example.org/wheels/torch@2.5/",  # an @ in the path is no user part
    }
    assert build_env(base) == {**base, "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize(
    "value",
    [
        "https://user:pw@pypi.example.org/simple",
        "https://ghp_abc123@github.example.org/org/repo",  # a token as the user name
        "https://pypi.org/simple https://me:s3cr3t@private.example.org/simple",  # one of several
        "postgres://admin:p%40ss@db:5432/runs",
    ],
)
def test_values_with_url_credentials_do_not_pass(value: str) -> None:
    assert "UV_INDEX_URL" not in build_env({"UV_INDEX_URL": value})
    assert build_env({"UV_INDEX_URL": value}, pass_env=["UV_INDEX_URL"])["UV_INDEX_URL"] == value


@pytest.mark.slow
def test_a_child_started_with_the_built_env_sees_no_credentials() -> None:
    base = {**os.environ, "UV_INDEX_URL": "https://u:s3cr3t-9f@host/simple", "HF_DB_PASS": "s3cr3t-9f"}
    code = "import os; print(sorted(k for k, v in os.environ.items() if 's3cr3t-9f' in v))"
    out = subprocess.run([sys.executable, "-c", code], env=build_env(base), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
