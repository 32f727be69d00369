"""Where a request's work runs: two single-thread lanes per server process.

A request's work is mostly Python with many small calls into torch, FAISS and pandas that
release the interpreter lock. Run in uvicorn's thread pool, concurrent requests took turns on
the lock at every such call: with 8 clients a new patient's similar cost 30 ms of CPU instead
of 19 ms alone, and its p99 was twice its median (METABRIC; docs/serve.md, Speed). A lane is one
thread: requests in a lane run one after the other, each at its single-request cost, while
the event loop keeps accepting, checking tokens and answering cheap lookups.

- ``quick``: similar patients (cohort and new), profiles, reports without an explanation:
  milliseconds each.
- ``explain``: anything with an explanation (integrated gradients, up to seconds), so a long
  explanation never holds up the quick lane's queries.

``serve --workers N`` gives each process its own two lanes.
"""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import Request


class Lanes:
    """The quick and the explain lane of one process."""

    def __init__(self) -> None:
        self.quick = ThreadPoolExecutor(1, thread_name_prefix="graphonc-quick")
        self.explain = ThreadPoolExecutor(1, thread_name_prefix="graphonc-explain")

    async def run(self, fn: Callable[..., Any], *args: Any, explain: bool = False, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the explain lane if ``explain``, else in the quick lane."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.explain if explain else self.quick,
                                          functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self.quick.shutdown(wait=False, cancel_futures=True)
        self.explain.shutdown(wait=False, cancel_futures=True)


def lanes(request: Request) -> Lanes:
    return request.app.state.lanes


__all__ = ["Lanes", "lanes"]
