"""NOTIFY, batched: what is published while a NOTIFY is in flight goes out with the next one.

One statement is in flight at a time (:class:`svc.broker.pubsub.OneInFlight`).
Notifications handed over meanwhile wait and then leave together, in one statement
(one round trip, one transaction), so a burst of writes costs a few round trips, not one each, and
every node receives them in the order they were handed over.  ``send``
returns once its own notification is sent.

A message too big for a payload is stored by ``svc_message_put`` (see
:mod:`.messages`) in that same statement, and its row id is what is notified.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from svc.broker.pubsub import OneInFlight

#: Evaluated row by row in array order: the notifications leave in that order.
SEND = (
    "SELECT count(pg_notify(c, CASE WHEN s THEN svc_message_put(%s, p) ELSE p END))"
    " FROM unnest(%s::text[], %s::text[], %s::boolean[]) AS t(c, p, s)"
)


class Publisher:
    def __init__(self, node_id: str, execute: Callable[[str, tuple], Awaitable[None]]):
        self._node_id = node_id
        self._execute = execute
        self._batches: OneInFlight[tuple[str, str, bool], None] = OneInFlight(
            self._send_batch, "svc-postgres-notify"
        )
        #: For /metrics: statements sent, and the notifications they carried.
        self.statements = 0
        self.notifications = 0

    async def send(self, channel: str, payload: str, stored: bool = False) -> None:
        """Notify ``payload`` on ``channel`` (``stored``: through ``svc_messages``); returns
        once it is sent."""
        await self._batches.add((channel, payload, stored))

    async def drain(self) -> None:
        """Wait until everything handed over has been sent (or failed)."""
        await self._batches.drain()

    async def _send_batch(self, batch: list[tuple[str, str, bool]]) -> None:
        channels = [channel for channel, _, _ in batch]
        payloads = [payload for _, payload, _ in batch]
        stored = [flag for _, _, flag in batch]
        await self._execute(SEND, (self._node_id, channels, payloads, stored))
        self.statements += 1
        self.notifications += len(batch)
