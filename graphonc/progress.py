"""Rich progress bars that can be switched off (``--quiet``, tests, non-terminals).

Library code receives a :class:`Progress`-like object instead of printing, so the same
function runs silently under pytest and with bars in the CLI.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

log = logging.getLogger("graphonc")


def make_progress(enabled: bool = True) -> Progress:
    """A rich Progress with the columns graphonc uses everywhere."""
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), disable=not enabled, transient=False)


class Stages:
    """A progress bar over named stages, with per-stage wall time recorded in ``timings``."""

    def __init__(self, names: list[str], title: str, enabled: bool = True) -> None:
        self.names = names
        self.title = title
        self.enabled = enabled
        self.timings: dict[str, float] = {}
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> "Stages":
        self._progress = make_progress(self.enabled)
        self._progress.__enter__()
        self._task = self._progress.add_task(self.title, total=len(self.names))
        return self

    def __exit__(self, *exc) -> None:
        assert self._progress is not None
        self._progress.__exit__(*exc)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        assert self._progress is not None and self._task is not None
        self._progress.update(self._task, description=f"{self.title}: {name}")
        t0 = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t0, 3)
        log.debug("%s: %s took %.2f s", self.title, name, self.timings[name])
        self._progress.advance(self._task)
