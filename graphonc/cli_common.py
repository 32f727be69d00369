"""What every ``graphonc`` command shares: the global options, the consoles and error handling.

Its own module so that command groups defined elsewhere (``graphonc/radiomics/cli.py``) use
the same :class:`Settings` class and consoles as ``graphonc/cli.py`` without importing it
(which would be circular, and a second copy when it runs as ``python -m graphonc.cli``).
"""
from __future__ import annotations

import functools
import sys
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


def _is_neo4j_error(exc: Exception) -> bool:
    """Whether ``exc`` comes from the Neo4j driver (checked without importing it at start-up)."""
    neo = sys.modules.get("neo4j.exceptions")
    return neo is not None and isinstance(exc, (neo.Neo4jError, neo.DriverError))


def handles_errors(fn: Callable) -> Callable:
    """Turn GraphoncError into a one-line message and exit code 2 (traceback with --debug).

    An OSError that reaches here (disk full, permission denied on --out or an input) is the
    same kind of message, through :func:`graphonc.errors.from_os_error`: stages write into temp
    folders and rename, so there is nothing half-written to report. So is an error of the Neo4j
    driver after connecting (the server went away mid-load).
    The wrapped command must take ``ctx: typer.Context`` (it carries the global options).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if settings_of(kwargs.get("ctx")).debug:
                raise
            if isinstance(exc, OSError):
                exc = from_os_error(exc)
            elif _is_neo4j_error(exc):  # after connecting (a refused connection is already one line)
                lines = str(exc).strip().splitlines()
                exc = GraphoncError(f"Neo4j: {type(exc).__name__}: {lines[0][:300] if lines else ''}. Fix: check "
                                    "that the server is up and see its log; the command can be rerun.")
            elif not isinstance(exc, GraphoncError):
                raise
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper
