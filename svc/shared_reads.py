"""Identical reads that arrive together, made once: for the storms a restart brings.

After a process restarts, its clients come back at once and read the same things: thousands
of ``GET /rooms/{room}/members`` pages, each the same query to the broker and storage.  Made
one by one they queue behind the broker's pooled connections until the last of them runs
out of time, on a broker that is perfectly healthy (a storm of them on Redis answered 503).

So a read of a key joins the batch of that key that has *not started yet*; the first of a
batch starts the reader on the next loop turn, one read per key is in flight at a time, and
those that arrive meanwhile make the next batch, read when that one is done.  A caller never
gets an answer read before it asked: a page read before a member left must not reach a
client whose welcome came after the leave (it would never hear that member leave).

Every caller of a batch gets the same value (shared: do not mutate it) or the same error.
A caller that gives up (cancelled) leaves the read to the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SharedReads"]

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class SharedReads(Generic[Key, Value]):
    """``read(key)`` for each key, once per batch of the callers that asked together."""

    def __init__(self, read: Callable[[Key], Awaitable[Value]], name: str):
        self._read = read
        self._name = name  # the reader tasks', as asyncio and py-spy show them
        #: key → the futures of the batch that has not started yet
        self._waiting: dict[Key, list[asyncio.Future[Value]]] = {}
        #: key → the task reading its batches, one after another
        self._readers: dict[Key, asyncio.Task] = {}
        #: reads made (for tests and figures: callers that asked together make one)
        self.reads = 0

    async def get(self, key: Key) -> Value:
        """``read(key)``, made after this call began, shared with those who asked with it."""
        batch = self._waiting.get(key)
        if batch is None:
            batch = self._waiting[key] = []
        # A future of its own per caller: one that gives up cancels only its own.
        waiter = asyncio.get_running_loop().create_future()
        batch.append(waiter)
        if key not in self._readers:
            # create_task runs its first step on the next loop turn: everyone who asks
            # until then is in the batch.
            self._readers[key] = asyncio.create_task(self._read_batches(key), name=self._name)
        return await waiter

    async def _read_batches(self, key: Key) -> None:
        batch: list[asyncio.Future[Value]] | None = None
        try:
            while (batch := self._waiting.pop(key, None)) is not None:
                self.reads += 1
                try:
                    value = await self._read(key)
                except Exception as exc:  # noqa: BLE001 - every caller of the batch hears it
                    for waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                            waiter.exception()  # (a caller that gave up never retrieves it)
                    continue
                for waiter in batch:
                    if not waiter.done():
                        waiter.set_result(value)
        finally:
            del self._readers[key]
            for unanswered in (batch, self._waiting.pop(key, None)):
                for waiter in unanswered or ():
                    if not waiter.done():  # cancelled (the app closing): nobody waits forever
                        waiter.cancel()
