"""Runs a document's "## Walkthrough" shell block against a real ``safehold serve`` on an empty store, as a user
would paste it, edited only where a test cannot do what a person does (docs/safety.md, docs/transparency.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.test_serve import _free_port, wait_until_serving

REPO = Path(__file__).resolve().parents[1]


def walkthrough_script(doc: str, port: int, edits: dict[str, str]) -> str:
    """The shell block of ``docs/{doc}``'s Walkthrough as written, with ``edits`` (each must still be there), the
    server's port the test's, and ``safehold`` the test's Python."""
    text = (REPO / "docs" / doc).read_text(encoding="utf-8")
    [block] = re.findall(r"^## Walkthrough\n.*?```sh\n(.*?)```", text, flags=re.DOTALL | re.MULTILINE)
    for line, instead in {"safehold serve --port 8080 &\n": "\n", **edits}.items():
        assert line in block, f"the walkthrough no longer has: {line}"
        block = block.replace(line, instead)
    return 'safehold() { "$SAFEHOLD_PY" -m safehold "$@"; }\nset -u\n' + block.replace("8080", str(port))


def run_walkthrough(doc: str, home: Path, edits: dict[str, str], **environ: str) -> subprocess.CompletedProcess:
    """Start ``safehold serve`` on a free port with a fresh home (SQLite), run the walkthrough in bash from the
    checkout, stop the server; the shell's result."""
    env = {**os.environ, "SAFEHOLD_HOME": str(home), "SAFEHOLD_PY": sys.executable, **environ}
    env.pop("SAFEHOLD_DATABASE_URL", None)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "safehold", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}")
        return subprocess.run(["bash", "-c", walkthrough_script(doc, port, edits)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        server.terminate()
        server.communicate(timeout=30)
