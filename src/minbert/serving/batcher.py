"""Dynamic micro-batching: concurrent requests share one model call.

Each request puts its items on a queue and awaits a future. One worker takes the first waiting
request, then keeps collecting until `max_batch` items or `max_wait_ms` have passed, runs the model
once in a single worker thread (so the event loop keeps accepting requests, and the model is never
called from two threads at once), and hands each request its own slice of the results. When a
batch fails, each of its requests is run again on its own: only the request that caused the failure
gets the error, never the good requests that happened to share its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class MicroBatcher:
    def __init__(
        self,
        run: Callable[[list[Any]], Sequence[Any]],
        executor: ThreadPoolExecutor,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
    ) -> None:
        self.run, self.executor = run, executor
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue[tuple[list[Any], asyncio.Future]] = asyncio.Queue()
        self.calls = 0  # model calls so far: fewer than requests when batching works
        self.items = 0
        self.worker: asyncio.Task | None = None

    async def submit(self, items: list[Any]) -> list[Any]:
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._work())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((items, future))
        return await future

    async def _collect(self) -> list[tuple[list[Any], asyncio.Future]]:
        group = [await self.queue.get()]
        size = len(group[0][0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while size < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                request = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                break
            group.append(request)
            size += len(request[0])
        return group

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = await self._collect()
            flat = [item for items, _ in group for item in items]
            try:
                results = await loop.run_in_executor(self.executor, self.run, flat)
            except Exception:  # one request may have poisoned the batch: run each alone, so only it fails
                for items, future in group:
                    try:
                        alone = await loop.run_in_executor(self.executor, self.run, items)
                    except Exception as e:
                        if not future.done():
                            future.set_exception(e)
                        continue
                    if not future.done():
                        future.set_result(list(alone))
                    self.calls += 1
                    self.items += len(items)
                continue
            self.calls += 1
            self.items += len(flat)
            start = 0
            for items, future in group:
                if not future.done():
                    future.set_result(list(results[start : start + len(items)]))
                start += len(items)
