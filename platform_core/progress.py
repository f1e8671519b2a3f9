"""Progress display for long steps (rich), shared by every stage.

The console interprets no markup: messages carry user text (file names, column names such as `properties[ash]`,
error details) that must print literally. Our own styling goes through `styled`, never through `[tags]`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

console = Console(stderr=True, markup=False, highlight=False)
_held = threading.local()  # .lines: this thread's result lines, while it runs `held()`


@contextmanager
def held() -> Iterator[list[Text]]:
    """In this thread, bars and spinners show nothing and result lines are kept in the yielded list instead of
    printed: for a stage run alongside another one's live display (rich shows one at a time), whose lines are
    printed when the stage that waits for it begins."""
    _held.lines = lines = []
    try:
        yield lines
    finally:
        _held.lines = None


def _holding() -> list[Text] | None:
    return getattr(_held, "lines", None)


def styled(text: str, style: str) -> Text:
    """`text`, literally, in `style` (e.g. "red", "bold", "dim")."""
    return Text(text, style=style)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A bar of `total` steps; yields a function that advances it by one."""
    if _holding() is not None:
        yield lambda: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)


@contextmanager
def step(description: str) -> Iterator[None]:
    """A spinner for a step whose length is unknown."""
    if _holding() is not None:
        yield
        return
    with console.status(styled(f"{description}…", "bold")):
        yield


def done(message: str) -> None:
    """The one result line a stage ends with."""
    line = Text.assemble(("✔", "green"), " ", message)
    if (lines := _holding()) is not None:
        lines.append(line)
    else:
        console.print(line, soft_wrap=True)  # a path is not cut in two


def new_app(doc: str | None) -> typer.Typer:
    """A package's CLI sub-app; the root `platform` CLI mounts it. pretty_exceptions off: PlatformError is shown
    by the root as one line, anything else is a bug worth a plain traceback."""
    return typer.Typer(add_completion=False, no_args_is_help=True, help=doc, pretty_exceptions_enable=False)
