"""Progress display for long steps (rich), shared by every stage.

The console interprets no markup: messages carry user text (file names, column names such as `properties[ash]`,
error details) that must print literally. Our own styling goes through `styled`, never through `[tags]`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

console = Console(stderr=True, markup=False, highlight=False)


def styled(text: str, style: str) -> Text:
    """`text`, literally, in `style` (e.g. "red", "bold", "dim")."""
    return Text(text, style=style)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A bar of `total` steps; yields a function that advances it by one."""
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
    with console.status(styled(f"{description}…", "bold")):
        yield


def done(message: str) -> None:
    """The one result line a stage ends with."""
    console.print(Text.assemble(("✔", "green"), " ", message), soft_wrap=True)  # a path is not cut in two


def new_app(doc: str | None) -> typer.Typer:
    """A package's CLI sub-app; the root `platform` CLI mounts it. pretty_exceptions off: PlatformError is shown
    by the root as one line, anything else is a bug worth a plain traceback."""
    return typer.Typer(add_completion=False, no_args_is_help=True, help=doc, pretty_exceptions_enable=False)
