"""The layers of docs/architecture.md hold: import-linter's contracts (``[tool.importlinter]`` in pyproject.toml)
are checked here, so CI fails on the first import that points up a layer (a service importing the API, a detector
importing the database), not only ``make lint``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    # The checkout's own source, whatever the venv has installed; the contracts are pyproject.toml's (found in the
    # working directory); no cache written into the checkout.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint), "--no-cache", "--no-logo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout
