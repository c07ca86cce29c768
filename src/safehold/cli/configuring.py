"""The options of the commands that configure an outbound service (``safehold exchange``, ``safehold
screening``): settings as ``--setting KEY=VALUE`` or a JSON file, credentials as ``--credential KEY=VALUE`` or a JSON
file (never printed, never repeated in a message)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from safehold.cli.common import fail, open_input, open_output
from safehold.errors import SafeholdError

SettingOpt = Annotated[
    list[str] | None,
    typer.Option("--setting", "-s", help="KEY=VALUE (repeatable); a VALUE that is JSON is read as JSON."),
]
SettingsFile = Annotated[Path | None, typer.Option(help="The settings as a JSON object (merged under --setting).")]
CredentialOpt = Annotated[
    list[str] | None, typer.Option("--credential", help="KEY=VALUE (repeatable); never printed or logged.")
]
CredentialsFile = Annotated[Path | None, typer.Option(help="The credentials as a JSON object.")]


def _object(path: Path | None, what: str) -> dict:
    if path is None:
        return {}
    with open_input(path) as f:
        raw = f.read(1 << 20)
    try:
        data = json.loads(raw)
    except ValueError:
        raise SafeholdError("cli.invalid_json", f"{what} file {path} is not valid JSON.") from None
    if not isinstance(data, dict):
        raise SafeholdError("cli.invalid_json", f"{what} file {path} must hold a JSON object.")
    return data


def _pairs(items: list[str] | None, what: str, *, as_json: bool) -> dict:
    """``KEY=VALUE`` options as a dict. Setting values that parse as JSON are JSON (numbers, lists, true);
    credentials stay strings. The message never repeats a value (it may be a secret)."""
    found: dict = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise SafeholdError("cli.usage", f"Each {what} is KEY=VALUE (one had no '=' or no key).")
        if as_json:
            try:
                found[key.strip()] = json.loads(value)
                continue
            except ValueError:
                pass
        found[key.strip()] = value
    return found


def settings_from(setting: list[str] | None, settings_file: Path | None) -> dict | None:
    if not setting and settings_file is None:
        return None
    return {**_object(settings_file, "settings"), **_pairs(setting, "--setting", as_json=True)}


def credentials_from(credential: list[str] | None, credentials_file: Path | None) -> dict | None:
    if not credential and credentials_file is None:
        return None
    return {**_object(credentials_file, "credentials"), **_pairs(credential, "--credential", as_json=False)}


def write_stand_in_files(folder: Path, type_name: str, settings: dict, credentials: dict) -> dict[str, Path]:
    """Write a stand-in's ``TYPE-settings.json`` and ``TYPE-credentials.json`` into ``folder`` for the ``add``
    command that points a service at it; their paths by part."""
    files = {}
    for part, value in (("settings", settings), ("credentials", credentials)):
        files[part] = folder / f"{type_name}-{part}.json"
        with fail(), open_output(files[part]) as f:
            f.write(json.dumps(value, indent=2).encode() + b"\n")
    return files


def stop_on_sigterm() -> threading.Event:
    """An event set when the process is sent SIGTERM, for a foreground stand-in to wait on (Ctrl-C raises
    ``KeyboardInterrupt`` as usual)."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    return done
