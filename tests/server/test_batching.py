from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from server.batching import Batcher


@dataclass(frozen=True)
class Job:
    key: str
    value: int


def test_concurrent_jobs_are_batched_by_key_and_answered_in_order() -> None:
    calls: list[list[Job]] = []
    threads: set[str] = set()

    def run(jobs: list[Job]) -> list[int]:
        calls.append(jobs)
        threads.add(threading.current_thread().name)
        return [j.value * 10 for j in jobs]

    async def main() -> list[int]:
        batcher: Batcher[Job, int] = Batcher(run, window_s=0.05, max_batch=8)
        batcher.start()
        jobs = [Job("a" if i % 2 else "b", i) for i in range(6)]
        out = await asyncio.gather(*(batcher.submit(j) for j in jobs))
        await batcher.stop()
        return list(out)

    assert asyncio.run(main()) == [0, 10, 20, 30, 40, 50]
    assert sorted(len(c) for c in calls) == [3, 3]
    assert all(len({j.key for j in c}) == 1 for c in calls)
    assert threads
    assert all(t.startswith("planner") for t in threads)


def test_max_batch_caps_a_batch() -> None:
    sizes: list[int] = []

    def run(jobs: list[Job]) -> list[int]:
        sizes.append(len(jobs))
        return [j.value for j in jobs]

    async def main() -> None:
        batcher: Batcher[Job, int] = Batcher(run, window_s=0.05, max_batch=3)
        batcher.start()
        await asyncio.gather(*(batcher.submit(Job("k", i)) for i in range(7)))
        await batcher.stop()

    asyncio.run(main())
    assert max(sizes) <= 3
    assert sum(sizes) == 7


def test_a_failing_run_fails_only_its_jobs_and_the_loop_goes_on() -> None:
    def run(jobs: list[Job]) -> list[int]:
        if any(j.value < 0 for j in jobs):
            raise ValueError("negative")
        return [j.value for j in jobs]

    async def main() -> int:
        batcher: Batcher[Job, int] = Batcher(run, window_s=0.0, max_batch=1)
        batcher.start()
        with pytest.raises(ValueError, match="negative"):
            await batcher.submit(Job("k", -1))
        ok = await batcher.submit(Job("k", 5))
        await batcher.stop()
        return ok

    assert asyncio.run(main()) == 5


def test_event_loop_stays_responsive_while_planning() -> None:
    release = threading.Event()

    def run(jobs: list[Job]) -> list[int]:
        release.wait(5)
        return [j.value for j in jobs]

    async def main() -> int:
        batcher: Batcher[Job, int] = Batcher(run, window_s=0.0, max_batch=1)
        batcher.start()
        pending = asyncio.ensure_future(batcher.submit(Job("k", 1)))
        ticks = 0
        for _ in range(5):  # the loop keeps running while the worker is blocked
            await asyncio.sleep(0.01)
            ticks += 1
        release.set()
        value = await pending
        await batcher.stop()
        return ticks + value

    assert asyncio.run(main()) == 6
