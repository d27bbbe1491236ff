"""Dynamic micro-batching: concurrent requests share one model call, fairly.

Each request waits in line with its items and a future. One worker builds a batch of up to
`max_batch` items from everything waiting (collecting for at most `max_wait_ms` after the first
arrival), runs the model once in a single worker thread (so the event loop keeps accepting requests,
and the model is never called from two threads at once), and hands each request its results when
all its items are done.

Fair shares: a batch gives every waiting request an equal share of its slots, so a 256-text request
is split over several batches and a one-text request that arrives meanwhile rides in the next batch
instead of waiting behind all of it (head-of-line blocking).

`queued` tells how many items wait, so the server can bound its queue (503 with Retry-After when
full) instead of letting latency grow without limit.

Isolated failures: when a batch fails, each of its requests is run again on its own, so only the
request that caused the failure gets the error, never the good requests that shared its batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Waiting:
    """One request in line: its items, how many have been handed to batches, and its results so far."""

    items: list[Any]
    future: asyncio.Future
    taken: int = 0
    results: list[Any] = field(default_factory=list)

    @property
    def left(self) -> int:
        return len(self.items) - self.taken


class MicroBatcher:
    def __init__(
        self,
        run: Callable[[list[Any]], Sequence[Any]],
        executor: ThreadPoolExecutor,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """`on_batch(texts)` is told the size of every batch the model runs (the server's metrics)."""
        self.run, self.executor, self.on_batch = run, executor, on_batch
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.line: deque[Waiting] = deque()
        self.arrived = asyncio.Event()
        self.calls = 0  # model calls so far: fewer than requests when batching works
        self.items = 0
        self.worker: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        """Items waiting for a batch (the ones in the running batch excluded)."""
        return sum(waiting.left for waiting in self.line)

    async def submit(self, items: list[Any]) -> list[Any]:
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._work())
        waiting = Waiting(list(items), asyncio.get_running_loop().create_future())
        self.line.append(waiting)
        self.arrived.set()
        return await waiting.future

    async def _wait_for_arrivals(self, deadline: float | None) -> bool:
        """Wait until a request arrives (or the deadline passes: False)."""
        self.arrived.clear()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self.arrived.wait(), None if deadline is None else max(0.0, deadline - loop.time()))
        except TimeoutError:
            return False
        return True

    async def _collect(self) -> list[tuple[Waiting, list[Any]]]:
        """The next batch: (request, its items in this batch) with equal shares for everyone waiting."""
        self.line = deque(w for w in self.line if not w.future.done())  # clients that went away
        while not any(w.left for w in self.line):
            await self._wait_for_arrivals(None)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while sum(w.left for w in self.line) < self.max_batch and await self._wait_for_arrivals(deadline):
            pass
        shares: dict[int, int] = {}
        free = self.max_batch
        while free:
            hungry = [w for w in self.line if w.left - shares.get(id(w), 0) > 0]
            if not hungry:
                break
            share = max(1, free // len(hungry))
            for w in hungry:
                take = min(share, w.left - shares.get(id(w), 0), free)
                shares[id(w)] = shares.get(id(w), 0) + take
                free -= take
                if not free:
                    break
        batch = []
        for w in self.line:
            if shares.get(id(w)):
                batch.append((w, w.items[w.taken : w.taken + shares[id(w)]]))
                w.taken += shares[id(w)]
        self.line = deque(w for w in self.line if w.left)
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            flat = [item for _, items in batch for item in items]
            if self.on_batch is not None:
                self.on_batch(len(flat))
            try:
                results = list(await loop.run_in_executor(self.executor, self.run, flat))
            except Exception:  # one request may have poisoned the batch: run each alone, so only it fails
                results = None
            self.calls += 1
            start = 0
            for waiting, items in batch:
                part = None if results is None else results[start : start + len(items)]
                start += len(items)
                if part is None and not waiting.future.done():
                    try:
                        part = list(await loop.run_in_executor(self.executor, self.run, items))
                        self.calls += 1
                    except Exception as e:
                        waiting.future.set_exception(e)
                        self.line = deque(w for w in self.line if w is not waiting)
                        continue
                if waiting.future.done():  # failed in an earlier batch, or its client went away
                    self.line = deque(w for w in self.line if w is not waiting)
                    continue
                assert part is not None
                waiting.results.extend(part)
                self.items += len(items)
                if len(waiting.results) == len(waiting.items):
                    waiting.future.set_result(waiting.results)
