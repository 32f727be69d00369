"""The ``graphonc`` command line: thin Typer wrappers, one plain function per stage.

Errors a user can fix (:class:`graphonc.errors.GraphoncError`) print as one line and exit
with code 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from graphonc.errors import GraphoncError

app = typer.Typer(help="graphonc: patient-similarity graphs for oncology.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
err_console = Console(stderr=True)
out_console = Console()


@dataclass
class Settings:
    verbose: bool = False
    quiet: bool = False
    debug: bool = False

    @property
    def progress(self) -> bool:
        return not self.quiet


def _settings(ctx: typer.Context | None) -> Settings:
    root = ctx.find_root() if ctx is not None else None
    return root.obj if root is not None and isinstance(root.obj, Settings) else Settings()


def handles_errors(fn: Callable) -> Callable:
    """Turn GraphoncError into a one-line message and exit code 2 (traceback with --debug).

    The wrapped command must take ``ctx: typer.Context`` (it carries the global options).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GraphoncError as exc:
            if _settings(kwargs.get("ctx")).debug:
                raise
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@app.callback()
def main(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors; no progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    ctx.obj = Settings(verbose=verbose, quiet=quiet, debug=debug)
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", force=True,
                        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=debug)])
    for noisy in ("numexpr", "neo4j", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _counts_table(manifest: dict) -> Table:
    t = Table(title=f"run: cohort {manifest['cohort']}")
    t.add_column("kind")
    t.add_column("type")
    t.add_column("count", justify="right")
    for label, n in sorted(manifest["counts"]["nodes"].items()):
        t.add_row("node", label, f"{n:,}")
    for edge, n in sorted(manifest["counts"]["edges"].items()):
        t.add_row("edge", edge, f"{n:,}")
    return t


@app.command("build-graph")
@handles_errors
def build_graph_cmd(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="Cohort config YAML, e.g. configs/metabric.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write, e.g. runs/metabric."),
) -> None:
    """Build the heterogeneous patient graph of a cohort into a run folder (Parquet)."""
    from graphonc.graph.build import build_run

    settings = _settings(ctx)
    manifest = build_run(config, out, progress=settings.progress)
    if not settings.quiet:
        out_console.print(_counts_table(manifest))
        out_console.print(f"wrote {out} in {manifest['build_seconds']:.1f} s")


@app.command("info")
@handles_errors
def info_cmd(ctx: typer.Context, run: Path = typer.Argument(..., help="A run folder.")) -> None:
    """Show what a run folder holds: node and edge counts, pathway filtering, build details."""
    from graphonc.graph.run import GraphRun

    r = GraphRun.open(run)
    m = r.manifest
    out_console.print(_counts_table(m))
    pw = Table(title="pathways (kept = touch at least one mutated gene)")
    for col in ("source", "sets", "dropped_by_size", "dropped_no_mutated_gene", "kept"):
        pw.add_column(col, justify="left" if col == "source" else "right")
    for src, s in sorted(m.get("stats", {}).get("pathways", {}).items()):
        pw.add_row(src, *(f"{s[k]:,}" for k in ("sets", "dropped_by_size", "dropped_no_mutated_gene", "kept")))
    if pw.row_count:
        out_console.print(pw)
    out_console.print(f"graphonc {m['graphonc_version']}, config {m.get('config_file')} "
                      f"(sha256 {m['config_hash'][:12]}), built {m['built_at']} in {m['build_seconds']:.1f} s")


if __name__ == "__main__":  # pragma: no cover
    app()
