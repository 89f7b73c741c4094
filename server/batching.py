"""Dynamic batching: concurrent plan requests for one model are planned in one call.

Requests wait at most ``window_s`` for company (up to ``max_batch``); while the
worker thread plans one batch, new requests queue up and form the next one, so
throughput grows with load. Planning runs in a single worker thread, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


class Keyed(Protocol):
    """A job that says which others it can be batched with."""

    @property
    def key(self) -> Hashable:
        """Jobs with equal keys may run in one call."""
        ...


J = TypeVar("J", bound=Keyed)


class Batcher(Generic[J, R]):
    """Gathers jobs from concurrent coroutines and runs them in batches in a worker thread."""

    def __init__(
        self,
        run: Callable[[list[J]], Sequence[R]],
        window_s: float,
        max_batch: int,
        on_queue_depth: Callable[[int], None] = lambda _: None,
        on_batch: Callable[[int], None] = lambda _: None,
    ) -> None:
        if max_batch < 1 or window_s < 0:
            raise ValueError(f"need max_batch >= 1 and window_s >= 0, got {max_batch}, {window_s}")
        self._run = run
        self._window_s = window_s
        self._max_batch = max_batch
        self._on_queue_depth = on_queue_depth
        self._on_batch = on_batch
        self._queue: asyncio.Queue[tuple[J, asyncio.Future[R]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="planner")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        """Stop the loop, fail the waiting jobs and shut the worker thread down."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, job: J) -> R:
        """Queue ``job`` and wait for its result (exceptions of the run are re-raised)."""
        if self._task is None:
            raise RuntimeError("batcher is not started")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((job, fut))
        self._on_queue_depth(self._queue.qsize())
        return await fut

    async def _gather(self) -> list[tuple[J, asyncio.Future[R]]]:
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._window_s
        while len(batch) < self._max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        self._on_queue_depth(self._queue.qsize())
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            groups: dict[Hashable, list[tuple[J, asyncio.Future[R]]]] = defaultdict(list)
            for item in batch:
                groups[item[0].key].append(item)
            for items in groups.values():
                live = [(j, f) for j, f in items if not f.cancelled()]
                if not live:
                    continue
                self._on_batch(len(live))
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._run, [j for j, _ in live]
                    )
                except Exception as exc:  # the run's error belongs to its requests
                    log.exception("planning batch of %d failed", len(live))
                    for _, fut in live:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), res in zip(live, results, strict=True):
                    if not fut.done():
                        fut.set_result(res)
