"""What every command shares: the services, error printing, progress bars and walking folders."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from safehold.errors import SafeholdError

#: Width of output that goes to a file or a pipe: wide enough that no table column or line is ever cut or wrapped
#: (Rich would assume 80 columns), so what a script or a log captures is whole.
PIPE_WIDTH = 100_000


def console(*, stderr: bool = False) -> Console:
    """A Rich console for a command's output: the terminal's width on a terminal, no width limit otherwise."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)


err = console(stderr=True)


def program() -> str:
    """The command as the user ran it, for the commands we suggest next: ``.venv/bin/safehold`` from a checkout,
    ``safehold`` when it was found on PATH, ``python -m safehold`` when run as a module."""
    argv0 = sys.argv[0]
    if argv0.endswith("__main__.py"):
        return "python -m safehold"
    return argv0 if os.sep in argv0 else "safehold"


_services = None


def services(*, load_index: bool = True, create: bool = False):
    """This process's services, created once (the index is loaded only by commands that match).

    Only ``serve`` passes ``create``: every other command works on an existing store and fails with
    ``store.not_found`` rather than creating an empty one (with new keys) in whatever folder it ran from. Those
    commands build each service on first use, so one that reads the database never loads the matching kernels;
    the server builds all of them at start, to fail there on bad configuration."""
    global _services
    from safehold.services import Services

    if _services is None:
        _services = Services(load_index=False, create=create, lazy=not create)
    if load_index:
        _services.load_index()
    return _services


@contextmanager
def fail() -> Iterator[None]:
    """Turn a ``SafeholdError`` into ``error [code]: message`` and exit status 2."""
    try:
        yield
    except SafeholdError as exc:
        err.print(problem(exc), soft_wrap=True)  # unwrapped: paths and commands in messages stay copyable
        raise typer.Exit(2) from None


def problem(exc, prefix: str = "") -> Text:
    """``prefix error [code]: message`` as plain text (codes in brackets are not Rich markup)."""
    text = Text(prefix)
    text.append("error", style="red")
    text.append(f" [{exc.code}]: {exc.message}")
    return text


def progress(transient: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
        disable=not err.is_terminal,
    )


def collect_files(paths: list[Path]) -> list[Path]:
    """Files named and every file under folders named, in a stable order; missing paths are an error."""
    files: list[Path] = []
    for p in paths:
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs.sort()
                files.extend(Path(root) / n for n in sorted(names))
        else:
            raise SafeholdError("cli.path_not_found", f"No such file or folder: {p}")
    return files


@contextmanager
def open_output(path: Path) -> Iterator[BinaryIO]:
    """A file the user named for writing, ``-`` for standard output. The file appears whole or not at all: it is
    written beside its final name and moved there when the block ends without error (an interrupted export never
    leaves a truncated file that looks complete). A missing folder or a refusal is a clean ``cli.write_failed``."""
    if str(path) == "-":
        yield sys.stdout.buffer
        return
    partial = path.with_name(path.name + ".partial")
    try:
        f = open(partial, "wb", opener=lambda p, fl: os.open(p, fl, 0o600))  # noqa: SIM115 - closed below
    except OSError as exc:
        raise SafeholdError("cli.write_failed", f"Cannot write {path}: {exc.strerror}.") from None
    try:
        with f:
            yield f
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def open_input(path: Path) -> BinaryIO:
    """Open a file the user named for reading (binary): a missing, unreadable or folder path is a clean
    ``cli.path_not_found`` / ``cli.read_failed`` error naming it, never a traceback."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise SafeholdError("cli.path_not_found", f"No such file: {path}") from None
    except OSError as exc:
        raise SafeholdError("cli.read_failed", f"Cannot read {path}: {exc.strerror}.") from None
