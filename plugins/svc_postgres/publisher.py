"""NOTIFY, batched: what is published while a NOTIFY is in flight goes out with the next one.

One statement is in flight at a time (:class:`svc.broker.pubsub.OneInFlight`).
Notifications handed over meanwhile wait and then leave together, in one statement
(one round trip, one transaction), so a burst of writes costs a few round trips, not one each, and
every node receives them in the order they were handed over.  ``send``
returns once its own notification is sent.

A message too big for a payload is stored by ``svc_message_put`` (see
:mod:`.messages`) in that same statement, and its row id is what is notified.

A message (keyed by its room) and a change (keyed by its user) are numbered in that same
statement too (``svc_publish``, :mod:`.history`): ``send`` returns the numbers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from svc.broker.pubsub import OneInFlight

#: (channel, payload, stored, key): one notification handed over
Item = tuple[str, str, bool, "str | None"]

#: Notifies in array order, numbering what has a key (history.py): the numbers, per item.
SEND = (
    "SELECT svc_publish(%s, %s::text[], %s::text[], %s::boolean[], %s::text[])"
    " FROM svc_room_keeping(%s) AS k"
)


class Publisher:
    def __init__(
        self,
        node_id: str,
        fetch: Callable[[str, tuple], Awaitable],
        keeping: Callable[[], int] = lambda: 100,
    ):
        self._node_id = node_id
        self._fetch = fetch
        #: ROOM_HISTORY of this node, read at each statement
        self._keeping = keeping
        self._batches: OneInFlight[Item, str | None] = OneInFlight(
            self._send_batch, "svc-postgres-notify"
        )
        #: For /metrics: statements sent, and the notifications they carried.
        self.statements = 0
        self.notifications = 0

    async def send(
        self, channel: str, payload: str, stored: bool = False, key: str | None = None
    ) -> str | None:
        """Notify ``payload`` on ``channel`` (``stored``: through ``svc_messages``), numbered
        in the room ``key`` (a message) or the rooms of the user ``key`` (a change); returns
        once it is sent, with its numbers (svc_publish's answer), or None."""
        return await self._batches.add((channel, payload, stored, key))

    async def drain(self) -> None:
        """Wait until everything handed over has been sent (or failed)."""
        await self._batches.drain()

    async def _send_batch(self, batch: list[Item]) -> list[str | None]:
        channels = [item[0] for item in batch]
        payloads = [item[1] for item in batch]
        stored = [item[2] for item in batch]
        keys = [item[3] for item in batch]
        row = await self._fetch(
            SEND, (self._node_id, channels, payloads, stored, keys, self._keeping())
        )
        self.statements += 1
        self.notifications += len(batch)
        return row[0]
