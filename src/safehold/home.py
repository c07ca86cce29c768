"""Where this process's store lives: the home folder (keys, index snapshots, the SQLite file) and the database URL.

The home is resolved the way users expect of a service, not from the current folder (a command run elsewhere
must never silently start an empty store with new keys):

1. ``SAFEHOLD_HOME`` if set;
2. else the checkout's ``var/`` when Safehold runs from a source checkout (``make run``, ``pip install -e``),
   found from this file's location, never from the current folder;
3. else the per-user data folder, ``$XDG_DATA_HOME/safehold`` or ``~/.local/share/safehold``.

Deliberately light (standard library only): ``safehold --version`` reports the store in use without loading the
settings, the database layer or anything else.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: This file is ``<checkout>/src/safehold/home.py`` in a source checkout.
_CHECKOUT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Home:
    path: Path
    #: Why this folder, for messages: which of the three rules chose it.
    reason: str


def checkout_root() -> Path | None:
    """The source checkout this package runs from (its pyproject.toml names ``safehold``), or None when
    installed from a wheel."""
    try:
        with open(_CHECKOUT / "pyproject.toml", "rb") as f:
            name = tomllib.load(f).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return _CHECKOUT if name == "safehold" else None


def resolve_home(env: Mapping[str, str] = os.environ) -> Home:
    """The home this process uses when the settings name none (see the module's docstring for the order)."""
    if env.get("SAFEHOLD_HOME"):
        return Home(Path(env["SAFEHOLD_HOME"]).expanduser().resolve(), "set by SAFEHOLD_HOME")
    root = checkout_root()
    if root is not None:
        return Home(root / "var", f"the var/ folder of the source checkout at {root}")
    data = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser()
    return Home(
        (data / "safehold").resolve(),
        "the per-user data folder: SAFEHOLD_HOME is not set and Safehold does not run from a source checkout",
    )


def explain(home: Path, env: Mapping[str, str] = os.environ) -> str:
    """Why ``home`` is this process's home: the rule that chose it, or that it was given in the settings."""
    resolved = resolve_home(env)
    return resolved.reason if resolved.path == home else "given in the settings"


def sqlite_url(home: Path) -> str:
    """The embedded default database: a SQLite file in the home."""
    return f"sqlite:///{home / 'safehold.db'}"


def database_url(home: Path, env: Mapping[str, str] = os.environ) -> str:
    """``SAFEHOLD_DATABASE_URL`` if set, else the embedded default (what ``Settings.effective_database_url`` is
    without loading the settings)."""
    return env.get("SAFEHOLD_DATABASE_URL") or sqlite_url(home)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or SQLite in memory."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1] if "///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def masked_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, safe to print. Up to the last ``@``: a password
    may hold one, and hiding too much beats showing a secret."""
    return re.sub(r"^([\w+.-]+://[^:/@]*:).*@", r"\1***@", url)


#: The process umask of ``safehold serve`` and every CLI command: what Safehold creates is its owner's alone
#: (files 0600, folders 0700). Files under the home are also created with explicit modes (``private_opener``).
OWNER_ONLY_UMASK = 0o077


def owner_only() -> int:
    """Make every file this process creates from now on owner-only; returns the previous umask."""
    return os.umask(OWNER_ONLY_UMASK)


def private_opener(path: str | os.PathLike, flags: int) -> int:
    """``open(..., opener=private_opener)``: a new file is created 0600 whatever the umask."""
    return os.open(path, flags, 0o600)


def unique_suffix() -> str:
    """``host-pid-random`` for temporary and retired file names: several servers may share one home (on a network
    file system), and a pid alone is only unique on its own machine."""
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def create_home(path: Path) -> None:
    """Create the home (and its parents) if missing; the home itself owner-only, as it holds the keys."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
