"""What every ``graphonc`` command shares: the global options, the consoles and error handling.

Its own module so that command groups defined elsewhere (``graphonc/radiomics/cli.py``) use
the same :class:`Settings` class and consoles as ``graphonc/cli.py`` without importing it
(which would be circular, and a second copy when it runs as ``python -m graphonc.cli``).
"""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Callable

import typer
from rich.console import Console
from rich.text import Text

from graphonc.errors import GraphoncError, from_os_error

err_console = Console(stderr=True)
out_console = Console()

#: Characters a terminal acts on: C0 controls (ESC, CR, newline, …), DEL, C1 controls (a single
#: byte 0x9b is a CSI on some terminals) and the bidirectional overrides that reorder what is shown.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(ch: re.Match) -> str:
    code = ord(ch.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def term(*parts: object, sep: str = "") -> Text:
    """Data for the terminal: rich ``Text`` that shows ``parts`` literally, joined by ``sep``.

    Every value printed from data (ids, labels, column names, Cypher results, error messages)
    goes through here. ``Text`` is never parsed as rich markup (``[/]``, ``[link=…]``) or emoji
    codes, and each control character is shown as its escape (``\\x1b``) instead of reaching the
    terminal. ``sep`` is the caller's own (e.g. a newline between items of one cell).
    """
    return Text(sep.join(_CONTROL.sub(_visible, "" if p is None else str(p)) for p in parts))


class TermSafeLogs(logging.Filter):
    """Log records as plain text with control characters shown escaped (:func:`term`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = term(record.getMessage()).plain, None
        return True


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
            err_console.print(Text("error:", style="bold red"), term(exc), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except Exception as exc:
            # the Neo4j driver's errors after a connection was made (server gone mid-load, a
            # transaction refused): one line, like the connection errors Neo4jSettings.driver() raises
            if not type(exc).__module__.startswith("neo4j") or settings_of(kwargs.get("ctx")).debug:
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            err_console.print(Text("error:", style="bold red"),
                              term(f"Neo4j: {type(exc).__name__}: {first}. Fix: check the server "
                                   "(`graphonc neo4j status`) and rerun; a load resumes where it stopped."),
                              highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper
