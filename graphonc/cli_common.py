"""What every ``graphonc`` command shares: the global options, the consoles and error handling.

Its own module so that command groups defined elsewhere (``graphonc/radiomics/cli.py``) use
the same :class:`Settings` class and consoles as ``graphonc/cli.py`` without importing it
(which would be circular, and a second copy when it runs as ``python -m graphonc.cli``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import typer
from rich.console import Console

from graphonc.errors import GraphoncError, from_os_error

err_console = Console(stderr=True)
out_console = Console()


@dataclass
class Settings:
    """The global options (``graphonc -v/-q/--debug``), kept on the root Typer context."""

    verbose: bool = False
    quiet: bool = False
    debug: bool = False

    @property
    def progress(self) -> bool:
        return not self.quiet


def settings_of(ctx: typer.Context | None) -> Settings:
    root = ctx.find_root() if ctx is not None else None
    return root.obj if root is not None and isinstance(root.obj, Settings) else Settings()


def handles_errors(fn: Callable) -> Callable:
    """Turn GraphoncError into a one-line message and exit code 2 (traceback with --debug).

    An OSError that reaches here (disk full, permission denied on --out or an input) is the
    same kind of message, through :func:`graphonc.errors.from_os_error`: stages write into temp
    folders and rename, so there is nothing half-written to report.
    The wrapped command must take ``ctx: typer.Context`` (it carries the global options).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (GraphoncError, OSError) as exc:
            if settings_of(kwargs.get("ctx")).debug:
                raise
            if isinstance(exc, OSError):
                exc = from_os_error(exc)
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper
