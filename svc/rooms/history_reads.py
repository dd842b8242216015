"""One read of a room's history for the resumers that arrive together.

After a drop, thousands of clients resume the same room within a moment.  Each reading the
history on its own was thousands of identical broker reads at once (on Redis, thousands of
scripts each bringing the whole history back, queued behind the pool's connections: the
last of them ran out of time and their joins were closed with 4503).

So the reads of a room are batched, one in flight at a time: a resumer that has marked its
connection (resume.py) joins the batch that has *not started yet*; the first one of a batch
starts the reader for the next loop turn, and a resumer that arrives while a read is in
flight waits for the next batch, which starts when that read is done.  Every sharer was
marked before its batch's read started, which is all the seam needs (the history read
after a mark holds every event up to it).

A batch reads after the smallest ``since`` of its sharers; each sharer keeps the events
after its own.  When the history cannot serve the smallest (None: too short, expired), the
sharers with that ``since`` get None and the read is tried again for the rest.

The batch also carries memos for what its sharers make of it (resume.py): sharers with the
same ``since`` and the same mark get the same span of events and the same frames, each
built once (per sharer they were most of what a resume cost in a storm).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..broker import RoomHistory, calling_the_broker

__all__ = ["SharedHistory", "HistoryReads"]

#: The broker's ``room_history``: (room id, epoch, after) → RoomHistory or None.
ReadHistory = Callable[[str, str, int], Awaitable[RoomHistory | None]]


class SharedHistory:
    """What one sharer gets: the history after its own ``since`` (None: it cannot resume),
    and the memos of spans and replays made from the batch's read."""

    __slots__ = ("history", "replays", "_after", "_spans")

    def __init__(self, history: RoomHistory | None, after: int, replays: dict, spans: dict):
        self.history = history
        self._after = after  # each since is answered by one read of the batch
        #: (since, mark) → what resume.py built for it (or a future of it)
        self.replays = replays
        self._spans = spans

    def span(self, mark: int) -> list[tuple[int, object]]:
        """The history's events up to ``mark`` (the sharer's, from Room.mark), made once
        per batch for each ``since`` and mark: sharers that missed the same events share it."""
        key = (self._after, mark)
        events = self._spans.get(key)
        if events is None:
            events = self._spans[key] = [item for item in self.history.events if item[0] <= mark]
        return events


class _Batch:
    __slots__ = ("afters", "waiters")

    def __init__(self) -> None:
        self.afters: list[int] = []
        self.waiters: list[asyncio.Future[SharedHistory]] = []


class HistoryReads:
    """The room history reads of one hub: one in flight per (room, epoch)."""

    def __init__(self, read: ReadHistory):
        self._read = read
        #: (room id, epoch) → the batch that has not started yet
        self._waiting: dict[tuple[str, str], _Batch] = {}
        #: (room id, epoch) → the task reading its batches, one after another
        self._readers: dict[tuple[str, str], asyncio.Task] = {}
        #: broker reads made (for tests and figures: shared reads make fewer)
        self.reads = 0

    async def read(self, room_id: str, epoch: str, after: int) -> SharedHistory:
        """The history of ``room_id`` after ``after``, from a read that starts after now.

        Call it after marking the connection.  Raises what the broker raised."""
        key = (room_id, epoch)
        batch = self._waiting.get(key)
        if batch is None:
            batch = self._waiting[key] = _Batch()
        batch.afters.append(after)
        # A future of its own per sharer: one that gives up cancels only its own.
        waiter = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        if key not in self._readers:
            # create_task runs its first step on the next loop turn: everyone marked until
            # then is in the batch.
            self._readers[key] = asyncio.create_task(
                self._read_batches(key), name=f"history reads {room_id}"
            )
        return await waiter

    async def _read_batches(self, key: tuple[str, str]) -> None:
        batch = None
        try:
            while (batch := self._waiting.pop(key, None)) is not None:
                await self._answer(key, batch)
        finally:
            del self._readers[key]
            for unanswered in (batch, self._waiting.pop(key, None)):
                for waiter in unanswered.waiters if unanswered is not None else ():
                    if not waiter.done():  # cancelled (the hub closing): nobody waits forever
                        waiter.cancel()

    async def _answer(self, key: tuple[str, str], batch: _Batch) -> None:
        room_id, epoch = key
        replays: dict = {}
        spans: dict = {}
        pending = list(zip(batch.afters, batch.waiters, strict=True))
        while pending:
            lowest = min(after for after, _ in pending)
            self.reads += 1
            try:
                with calling_the_broker():
                    history = await self._read(room_id, epoch, lowest)
            except Exception as exc:  # noqa: BLE001 - every sharer hears it
                for _, waiter in pending:
                    if not waiter.done():
                        waiter.set_exception(exc)
                        waiter.exception()  # (a sharer that gave up never retrieves it)
                return
            rest = []
            tails: dict[int, RoomHistory] = {}  # since → the history after it, one per since
            for after, waiter in pending:
                if history is None and after == lowest:
                    answer = SharedHistory(None, after, replays, spans)
                elif history is None:
                    rest.append((after, waiter))
                    continue
                else:
                    tail = tails.get(after)
                    if tail is None:
                        tail = tails[after] = _after(history, after)
                    answer = SharedHistory(tail, after, replays, spans)
                if not waiter.done():
                    waiter.set_result(answer)
            pending = rest


def _after(history: RoomHistory, after: int) -> RoomHistory:
    if history.events and history.events[0][0] > after:
        return history  # the sharer asked for all of them (the batch's smallest since)
    return RoomHistory(
        history.epoch, history.seq, [(seq, event) for seq, event in history.events if seq > after]
    )
