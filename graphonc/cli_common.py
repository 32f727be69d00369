"""What every ``graphonc`` command shares: the global options, the consoles and error handling.

Its own module so that command groups defined elsewhere (``graphonc/cli_radiomics.py``) use
the same :class:`Settings` class and consoles as ``graphonc/cli.py`` without importing it
(which would be circular, and a second copy when it runs as ``python -m graphonc.cli``).
"""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
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


# ------------------------------------------------------------------ options shared by the commands
# One object per option, reused by every command that takes it, so `--run`, `-k`, `--device`, …
# mean the same everywhere (-k is always a number of neighbours; folds are --folds).


class SearchDevice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


RUN_OPTION = typer.Option(..., "--run", "-r", help="Run folder made by build-graph, e.g. runs/metabric.")
K_OPTION = typer.Option(10, "-k", help="Number of neighbours.")
FOLDS_OPTION = typer.Option(5, "--folds", help="Patient-level stratified folds.")
REPEATS_OPTION = typer.Option(1, "--repeats", min=1, help="Repeated stratified CV: this many shuffles.")
FOLDS_FILE_OPTION = typer.Option(None, "--folds-file", help="CSV with columns patient_id, fold (and optionally "
                                 "repeat) to use instead of --folds/--repeats, e.g. <run>/eval/folds.csv; every "
                                 "run writes the folds it used there.")
EPOCHS_OPTION = typer.Option(None, "--epochs", help="Override the model's maximum number of epochs.")
MODEL_CONFIG_OPTION = typer.Option(None, "--config", "-c", help="Config whose model: section to use "
                                   "(default: the one the run was built from).")
MODEL_DIR_OPTION = typer.Option(None, "--model", help="Trained model folder (default <run>/model).")
DEVICE_OPTION = typer.Option(None, "--device", help="Where FAISS runs: auto (the GPU when CUDA and faiss-gpu are "
                             "there), cpu or gpu.")
TRAIN_DEVICE_OPTION = typer.Option(None, "--device", help="Where torch trains: auto (CUDA when present), cpu or cuda.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of tables.")
MUTATIONS_OPTION = typer.Option(None, "--mutations", help="Long mutation table that goes with a clinical table "
                                "of new patients.")
SAME_LABEL_OPTION = typer.Option(False, "--same-label", help="Only neighbours with the query's diagnosis label.")
TREATED_WITH_OPTION = typer.Option([], "--treated-with", help="Only neighbours who received this treatment "
                                   "(a Treatment node id; repeatable = all of them).")
ALIVE_AT_OPTION = typer.Option(None, "--alive-at", help="Only neighbours known alive at this many months.")
HAS_OUTCOME_OPTION = typer.Option(False, "--has-outcome", help="Only neighbours with a recorded outcome.")
BATCH_SIZE_OPTION = typer.Option(100_000, "--batch-size", help="Rows per Neo4j transaction.")
WORKERS_OPTION = typer.Option(2, "--workers", min=1, help="Concurrent Neo4j write streams per large table.")


def example(*commands: str) -> str:
    """A command's ``--help`` epilog: ``Example:`` and the command lines (shown after the options)."""
    return "Example:\n\n" + "\n\n".join(f"  $ {c}" for c in commands)


def one_run(positional: Path | None, option: Path | None, command: str) -> Path:
    """The run folder of a command that takes it positionally (older form) or as ``--run``."""
    if (positional is None) == (option is None):
        raise GraphoncError(f"give the run folder once: `graphonc {command} --run RUN` (or `graphonc {command} RUN`).")
    return positional if positional is not None else option
