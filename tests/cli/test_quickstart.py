"""docs/quickstart.md runs as written: every `safehold` command of steps 3, 4, 5 and 8 (banks, scanning,
allow-listing, term lists and the grooming model) is run here, in order, against the shipped `examples/`."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEPS = ("3", "4", "5", "8")


def quickstart_commands() -> list[list[str]]:
    """The arguments of each `.venv/bin/safehold …` line in the code blocks of the steps above."""
    text = (REPO / "docs" / "quickstart.md").read_text(encoding="utf-8")
    commands = []
    for section in re.split(r"^## ", text, flags=re.MULTILINE):
        if section.split(".", 1)[0] not in STEPS:
            continue
        for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
            for line in block.splitlines():
                if line.startswith(".venv/bin/safehold "):
                    commands.append(shlex.split(line, comments=True)[1:])
    return commands


def test_the_quickstart_runs_literally_on_the_examples(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    commands = quickstart_commands()
    assert ["bank", "add", "known-images", "examples/known/", "--category", "A2", "--source", "own"] in commands
    for args in commands:
        cli(*args)

    rows = [json.loads(line) for line in cli("scan", "examples/uploads/", "--json").stdout.splitlines()]
    verdicts = {Path(r["name"]).name: r["verdict"] for r in rows}
    assert verdicts == {
        "copy-of-shapes-1.jpg": "match",
        "damaged.jpg": "unhashable",
        "holiday.jpg": "no_match",
        "meme.jpg": "allowlisted",
    }
    banks = {b["name"]: b["entries"] for b in json.loads(cli("bank", "list", "--json").stdout)}
    assert banks == {"known-images": 6 + 6 + 3 + 2, "bad-urls": 3, "false-positives": 2}
    assert json.loads(cli("text", "search", "zorblat pack").stdout)["action"] == "block"
