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
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import Request


class Lanes:
    """The quick and the explain lane of one process (each thread started on first use, so an app
    served again after a shutdown, as a test client may do, gets fresh lanes)."""

    def __init__(self) -> None:
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def _pool(self, name: str) -> ThreadPoolExecutor:
        with self._lock:
            if name not in self._pools:
                self._pools[name] = ThreadPoolExecutor(1, thread_name_prefix=f"graphonc-{name}")
            return self._pools[name]

    async def run(self, fn: Callable[..., Any], *args: Any, explain: bool = False, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the explain lane if ``explain``, else in the quick lane."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool("explain" if explain else "quick"),
                                          functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


def lanes(request: Request) -> Lanes:
    return request.app.state.lanes


__all__ = ["Lanes", "lanes"]
