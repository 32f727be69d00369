"""The service's lanes (graphonc.serve.lanes): one thread each, explanations apart from queries."""
from __future__ import annotations

import asyncio
import threading

from graphonc.serve.lanes import Lanes


def test_a_lane_runs_its_work_one_at_a_time_on_one_thread():
    lanes = Lanes()
    running, overlap, threads = [0], [], set()
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            overlap.append(running[0])
            threads.add(threading.get_ident())
        sum(range(20_000))  # some Python work, long enough for a thread pool to interleave
        with lock:
            running[0] -= 1
        return i * i

    async def main():
        return await asyncio.gather(*(lanes.run(work, i) for i in range(40)))

    try:
        assert asyncio.run(main()) == [i * i for i in range(40)]  # every answer, in the caller's order
    finally:
        lanes.shutdown()
    assert max(overlap) == 1 and len(threads) == 1


def test_a_long_explanation_does_not_hold_up_the_quick_lane():
    lanes = Lanes()
    gate = threading.Event()

    async def main():
        explanation = asyncio.ensure_future(lanes.run(gate.wait, 30, explain=True))
        # the quick lane answers while the explain lane is still busy
        quick = await asyncio.wait_for(lanes.run(lambda: "neighbours"), timeout=10)
        busy = not explanation.done()
        gate.set()
        return quick, busy, await explanation

    try:
        assert asyncio.run(main()) == ("neighbours", True, True)
    finally:
        gate.set()
        lanes.shutdown()


def test_errors_raised_in_a_lane_reach_the_caller():
    lanes = Lanes()

    def bad():
        raise ValueError("no such patient")

    async def main():
        try:
            await lanes.run(bad)
        except ValueError as exc:
            return str(exc)

    try:
        assert asyncio.run(main()) == "no such patient"
    finally:
        lanes.shutdown()


def test_lanes_shut_down_serve_again():
    lanes = Lanes()

    async def ask():
        return await lanes.run(lambda: threading.current_thread().name)

    first = asyncio.run(ask())
    lanes.shutdown()  # the app's lifespan ends (a test client leaving its `with` block)
    second = asyncio.run(ask())  # served again: a fresh quick lane
    lanes.shutdown()
    assert first.startswith("graphonc-quick") and second.startswith("graphonc-quick")
