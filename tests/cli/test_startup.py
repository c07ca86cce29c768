"""Start-up cost of the CLI: a command loads only the modules it uses (bench/cli_startup.py has the timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: What `--help` must never import: each costs 0.1-0.5 s at every start.
HEAVY = ("numpy", "numba", "sqlalchemy", "pydantic", "alembic", "httpx", "safehold.services", "safehold.config")

_PROBE = """
import json, sys
from safehold.cli.main import app
try:
    app(sys.argv[1:], prog_name="safehold")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in json.loads(HEAVY) if m in sys.modules]}))
"""


def _loaded(env: dict, *args: str) -> tuple[int, list[str]]:
    """Run a command in a fresh interpreter; its exit status and which of ``HEAVY`` it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.replace("HEAVY", repr(json.dumps(HEAVY))), *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["code"], answer["loaded"]


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    return {**env, "SAFEHOLD_HOME": str(tmp_path / "store")}


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_nothing_heavy(env, args):
    code, loaded = _loaded(env, *args)
    assert code in (0, None)
    assert loaded == []


@pytest.mark.parametrize("args", [["bank", "--help"], ["scan", "--help"], ["terms", "--help"]])
def test_a_command_help_imports_nothing_heavy_of_ours(env, args):
    code, loaded = _loaded(env, *args)
    assert code in (0, None)
    assert set(loaded) <= {"pydantic"}  # Typer converts a command's parameters with pydantic: its own import


def test_a_database_command_does_not_load_the_matching_kernels(env):
    assert subprocess.run([sys.executable, "-m", "safehold", "db", "upgrade"], env=env, timeout=120).returncode == 0
    for args in (["apikey", "list"], ["bank", "list"], ["user", "list"]):
        code, loaded = _loaded(env, *args)
        assert code in (0, None)
        assert "numba" not in loaded and "numpy" not in loaded and "httpx" not in loaded, (args, loaded)
