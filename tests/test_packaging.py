"""Safehold beyond the checkout: the built wheel, installed into a fresh virtual environment, serves on its own.

The wheel is built offline from a copy of the sources (no build isolation: setuptools comes from the test
extras). The new environment gets the wheel alone; its third-party dependencies are borrowed from the running
environment through a path entry, so the test needs no network and still proves that everything Safehold's own
code needs at run time (templates, static files, term lists, schema, migrations) is inside the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.test_serve import _free_port, wait_until_serving

pytestmark = pytest.mark.slow

#: Files that must travel inside the wheel, as globs under ``safehold/``.
PACKAGE_DATA = (
    "web/templates/*.html",
    "web/static/console.js",
    "web/static/console.css",
    "store/migrations/env.py",
    "store/migrations/versions/0001_*.py",
    "reporting/cybertipline/cyber_tipline.xsd",
    "text/lists/*.csv",
    "transparency/templates/report.html",
)


def _run(*args, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, f"{args}: {out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src" / "safehold", src / "src" / "safehold",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", dist, src)  # fmt: skip
    (built,) = dist.glob("safehold-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", env_dir)
    _run(sys.executable, "-m", "pip", "--python", env_dir / "bin" / "python", "install", "--quiet", "--no-deps",
         "--no-index", wheel)  # fmt: skip
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run(env_dir / "bin" / "python", "-c", where).stdout.strip())
    # third-party packages from this environment; a plain path entry, so its editable safehold is not picked up
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def test_wheel_carries_package_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for pattern in PACKAGE_DATA:
        assert any(Path(n).match(f"safehold/{pattern}") for n in names), f"{pattern} missing from {wheel.name}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_installed_wheel_serves_with_per_user_home(venv, tmp_path):
    """From any folder, with no SAFEHOLD_HOME: the store goes to the per-user data directory."""
    # no PYTHONPATH either: the installed wheel, not a checkout on the path, must be what runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_") and k != "PYTHONPATH"}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "data"))
    safehold = venv / "bin" / "safehold"
    version = _run(safehold, "--version", cwd=tmp_path, env=env).stdout
    assert "safehold 0.1.0" in version
    _run(safehold, "db", "upgrade", cwd=tmp_path, env=env)
    home = tmp_path / "data" / "safehold"
    assert (home / "safehold.db").exists()
    assert str(home) in _run(safehold, "--version", cwd=tmp_path, env=env).stdout

    port = _free_port()
    server = subprocess.Popen([safehold, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, base)
        assert "password" in httpx.get(f"{base}/login").text.lower()  # templates
        assert httpx.get(f"{base}/console/static/console.css").status_code == 200  # static files
        assert httpx.get(f"{base}/docs").status_code == 200  # API reference
        token = next(
            w
            for w in _run(safehold, "apikey", "create", "--role", "platform", cwd=tmp_path, env=env).stdout.split()
            if w.startswith("sh_")
        )
        r = httpx.post(f"{base}/v1/search/check", json={"query": "pizza near me"},
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert r.status_code == 200 and r.json()["action"] == "allow", r.text  # bundled term lists
    finally:
        server.terminate()
        server.communicate(timeout=30)
