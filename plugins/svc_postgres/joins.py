"""Presence joins, batched: joins asked for while a batch is being written go in the next.

One statement is in flight at a time, as for notifications (:mod:`.publisher`).  Each join
waits for the batch that carries it and gets its own answer (whether its user just became
present); when the statement fails, every join of its batch fails with the same error.

A batch holds at most ``most`` joins (4).  Bigger batches wrote a crowd faster but let it
in all at once: welcomes and presence frames for dozens of joiners left together, faster
than clients read them, and the server's memory after 2,000 joins grew from 18 KB to
170 KB per socket with batches of 32 (bench/README.md, "Joining a room").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from svc.storage import Unavailable

#: (rooms, users) → for each, whether that user just became present in that room.
WriteJoins = Callable[[list[str], list[str]], Awaitable[list[bool]]]


class _Batch:
    __slots__ = ("rooms", "users", "done")

    def __init__(self) -> None:
        self.rooms: list[str] = []
        self.users: list[str] = []
        self.done: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()


class JoinBatcher:
    def __init__(self, write: WriteJoins, most: int = 4):
        self._write = write
        #: joins per statement, at most
        self._most = most
        self._waiting: deque[_Batch] = deque()
        self._writing: asyncio.Task | None = None

    async def join(self, room_id: str, user_id: str) -> bool:
        """Write one join; True when ``user_id`` just became present in ``room_id``."""
        if not self._waiting or len(self._waiting[-1].rooms) >= self._most:
            self._waiting.append(_Batch())
        batch = self._waiting[-1]
        index = len(batch.rooms)
        batch.rooms.append(room_id)
        batch.users.append(user_id)
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_all(), name="svc-postgres-joins")
        # Shielded: a joiner that gives up must not cancel the others' statement.
        return (await asyncio.shield(batch.done))[index]

    async def _write_all(self) -> None:
        batch = None
        try:
            while self._waiting:
                batch = self._waiting.popleft()
                try:
                    joined = await self._write(batch.rooms, batch.users)
                except Exception as exc:  # noqa: BLE001 - every joiner of the batch hears it
                    _fail(batch, exc)
                else:
                    batch.done.set_result(joined)
        finally:
            self._writing = None
            for unwritten in (batch, *self._waiting):  # cancelled: nobody may wait forever
                if unwritten is not None and not unwritten.done.done():
                    _fail(unwritten, Unavailable("the broker closed before writing the join"))
            self._waiting.clear()


def _fail(batch: _Batch, exc: BaseException) -> None:
    batch.done.set_exception(exc)
    batch.done.exception()  # retrieved: its joiners may have gone
