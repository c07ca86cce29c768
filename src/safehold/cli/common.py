"""What every command shares: the services, error printing, progress bars and walking folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from safehold.errors import SafeholdError

err = Console(stderr=True)


_services = None


def services(*, load_index: bool = True):
    """This process's services, created once (the index is loaded only by commands that match)."""
    global _services
    from safehold.services import Services

    if _services is None:
        _services = Services(load_index=False)
    if load_index:
        _services.load_index()
    return _services


@contextmanager
def fail() -> Iterator[None]:
    """Turn a ``SafeholdError`` into ``error [code]: message`` and exit status 2."""
    try:
        yield
    except SafeholdError as exc:
        err.print(problem(exc))
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
