"""NOTIFY, batched: what is published while a NOTIFY is in flight goes out with the next one.

One statement is in flight at a time.  Notifications handed over meanwhile
wait and then leave together, in one statement (one round trip, one
transaction), so a burst of writes costs a few round trips, not one each, and
every node receives them in the order they were handed over.  ``send``
returns once its own notification is sent.

A message too big for a payload is stored by ``svc_message_put`` (see
:mod:`.messages`) in that same statement, and its row id is what is notified.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from svc.storage import Unavailable

#: Evaluated row by row in array order: the notifications leave in that order.
SEND = (
    "SELECT count(pg_notify(c, CASE WHEN s THEN svc_message_put(%s, p) ELSE p END))"
    " FROM unnest(%s::text[], %s::text[], %s::boolean[]) AS t(c, p, s)"
)


@dataclass
class _Batch:
    channels: list[str] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    stored: list[bool] = field(default_factory=list)
    sent: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Publisher:
    def __init__(self, node_id: str, execute: Callable[[str, tuple], Awaitable[None]]):
        self._node_id = node_id
        self._execute = execute
        self._next: _Batch | None = None
        self._flushing: asyncio.Task | None = None
        #: For /metrics: statements sent, and the notifications they carried.
        self.statements = 0
        self.notifications = 0

    async def send(self, channel: str, payload: str, stored: bool = False) -> None:
        """Notify ``payload`` on ``channel`` (``stored``: through ``svc_messages``)."""
        batch = self._next
        if batch is None:
            batch = self._next = _Batch()
        batch.channels.append(channel)
        batch.payloads.append(payload)
        batch.stored.append(stored)
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush(), name="svc-postgres-notify")
        # Shielded: a caller that gives up must not cancel the others' statement.
        await asyncio.shield(batch.sent)

    async def drain(self) -> None:
        """Wait until everything handed over has been sent (or failed)."""
        if self._flushing is not None:
            await asyncio.gather(asyncio.shield(self._flushing), return_exceptions=True)

    async def _flush(self) -> None:
        batch = None
        try:
            while self._next is not None:
                batch, self._next = self._next, None
                try:
                    await self._execute(
                        SEND, (self._node_id, batch.channels, batch.payloads, batch.stored)
                    )
                except Exception as exc:  # noqa: BLE001 - every sender of the batch hears it
                    _fail(batch, exc)
                else:
                    self.statements += 1
                    self.notifications += len(batch.channels)
                    batch.sent.set_result(None)
        finally:
            self._flushing = None
            for unsent in (batch, self._next):  # cancelled: nobody may wait forever
                if unsent is not None and not unsent.sent.done():
                    _fail(unsent, Unavailable("the broker closed before sending"))
            self._next = None


def _fail(batch: _Batch, exc: BaseException) -> None:
    batch.sent.set_exception(exc)
    batch.sent.exception()  # retrieved: its senders may have gone
