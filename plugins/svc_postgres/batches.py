"""One statement in flight at a time: what is handed over meanwhile goes in the next batch.

Notifications (:mod:`.publisher`) and presence joins (:mod:`.presence`) are both written
this way, so a burst costs a few round trips, not one each, and batches leave in the order
their items were handed over.  Each caller waits for the batch that carries its item and
gets that item's own result; when the statement fails, every caller of the batch gets the
same error, and when the writer is cancelled (the broker closing), nobody waits forever.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from svc.storage import Unavailable

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Writes one batch; returns each item's result, in order (or None: every result is None).
Write = Callable[[list[Item]], Awaitable[Sequence[Result] | None]]


class _Batch(Generic[Item, Result]):
    __slots__ = ("items", "done")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.done: asyncio.Future[Sequence[Result] | None] = (
            asyncio.get_running_loop().create_future()
        )


class OneInFlight(Generic[Item, Result]):
    def __init__(self, write: Write, name: str, most: int | None = None):
        self._write = write
        self._name = name  # the writer task's, as asyncio and py-spy show it
        #: items per batch, at most (None: no limit)
        self._most = most
        self._waiting: deque[_Batch[Item, Result]] = deque()
        self._writing: asyncio.Task | None = None

    async def add(self, item: Item) -> Result | None:
        """Write ``item`` with whatever else is waiting; its result once written."""
        waiting = self._waiting
        if not waiting or (self._most is not None and len(waiting[-1].items) >= self._most):
            waiting.append(_Batch())
        batch = waiting[-1]
        index = len(batch.items)
        batch.items.append(item)
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_all(), name=self._name)
        # Shielded: a caller that gives up must not cancel the others' statement.
        results = await asyncio.shield(batch.done)
        return None if results is None else results[index]

    async def drain(self) -> None:
        """Wait until everything handed over has been written (or has failed)."""
        if self._writing is not None:
            await asyncio.gather(asyncio.shield(self._writing), return_exceptions=True)

    async def _write_all(self) -> None:
        batch = None
        try:
            while self._waiting:
                batch = self._waiting.popleft()
                try:
                    results = await self._write(batch.items)
                except Exception as exc:  # noqa: BLE001 - every caller of the batch hears it
                    _fail(batch, exc)
                else:
                    batch.done.set_result(results)
        finally:
            self._writing = None
            for unwritten in (batch, *self._waiting):  # cancelled: nobody may wait forever
                if unwritten is not None and not unwritten.done.done():
                    _fail(unwritten, Unavailable("the broker closed before writing this"))
            self._waiting.clear()


def _fail(batch: _Batch, exc: BaseException) -> None:
    batch.done.set_exception(exc)
    batch.done.exception()  # retrieved: its callers may have gone
