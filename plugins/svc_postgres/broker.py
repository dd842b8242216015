"""``PostgresBroker``: changes, room messages and presence between svc processes, through
the database they already share (``LISTEN``/``NOTIFY``; nothing else to run).

Its own parts, each in its own module:

- a small aiopg pool, for presence statements, message read-backs and the NOTIFYs;
- :class:`~.publisher.Publisher`: one NOTIFY in flight at a time, everything handed
  over meanwhile batched into the next one (a burst of writes: few round trips);
- :class:`~.listener.Listener`: one LISTEN connection carrying every channel,
  re-opened with backoff when it dies, after which the hub hears ``on_gap``;
- :class:`~.presence.Presence`: the node's presence rows, heartbeat, expiry of
  silent nodes and goodbye;
- :mod:`.history`: room events numbered and kept (for resume) by the very statements
  that notify them.

What this node publishes reaches its own hub at once, without a round trip
(changes, and presence transitions before ``presence_join``/``presence_leave``
return); every notification names its node, so a node skips its own.  The wire
format, that skipping and delivery shielded from a failing hub are every pub/sub
broker's (:mod:`svc.broker.pubsub`); this module is the Postgres transport.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import replace

import aiopg

from svc.broker import (
    BrokerListener,
    BrokerMisconfigured,
    BrokerUnavailable,
    Change,
    PasswordSet,
    PresenceChange,
    RoomHistory,
    RoomMessage,
    calling_the_broker,
)
from svc.broker.probe import NotDelivering
from svc.broker.pubsub import (
    Event,
    PubSubBroker,
    decode,
    encode_change,
    encode_message,
    encode_password_set,
    load,
)
from svc.redact import scrub

from . import history, interest, messages, payloads, pooling
from . import pool as pg
from .errors import translated
from .listener import PROBE_CHANNEL, Listener
from .pool import TIMEOUT
from .prepared import on_connect
from .presence import CHANNEL as PRESENCE
from .presence import HEARTBEAT, Presence
from .publisher import Publisher
from .url import PostgresURL

log = logging.getLogger(__name__)

#: The broker's pool is small: presence statements and one NOTIFY at a time.
MAX_POOL_SIZE = 4
#: TCP keepalives on every connection, unless the URL sets its own: a path that
#: vanished without a reset is found in about 20 s by the kernel alone.
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "2",
}


#: Why start-up stops when LISTEN cannot work through the URL, and the fix.
NO_LISTEN = (
    "LISTEN does not deliver through this URL (a transaction pooler such as PgBouncer or"
    " Supavisor?): the Postgres broker needs a direct connection; set BROKER_URL to a"
    " direct postgres:// URL of the same database (DATABASE_URL may stay pooled), or to a"
    " redis:// URL"
)


class PostgresBroker(PubSubBroker):
    changes_delivered_at_publish = True  # no round trip for its own hub
    #: publish_message queues its message in the publisher (OneInFlight) before any await:
    #: concurrent calls keep their order, and a burst is numbered in one statement.
    messages_in_call_order = True

    def __init__(self, url: str):
        super().__init__(url)
        self._url = PostgresURL.parse(url)
        #: This instance's name: its connections' application_name and its presence node id.
        self.node_id = self._url.instance_name("-broker")
        self._dsn = self._url.dsn(self.node_id, **KEEPALIVES)
        self._pool: pg.Pool | None = None
        self._presence = Presence(
            self.node_id, self._fetch, self._announce_presence, self._history_size
        )
        self._publisher = Publisher(self.node_id, self._fetch, self._history_size)
        self._listener = Listener(
            self._connect,
            (payloads.CHANGES, payloads.MESSAGES, PRESENCE),
            self._deliver,
            self._gap,
            self._send_probe,
            self._url.probe_every,
        )
        self._housekeeping: asyncio.Task | None = None
        self._seq = itertools.count()
        #: Who is present anywhere: a change of anyone else is notified to nobody.
        self._present = interest.PresentUsers()
        #: Changes notified to nobody, in case their user's join elsewhere is heard late.
        self._held_back = interest.HeldBack()
        self._resends: set[asyncio.Task] = set()
        self._reload: asyncio.Future | None = None
        self.changes_unsent = 0
        self.changes_resent = 0

    @classmethod
    def check_url(cls, url: str) -> None:
        PostgresURL.parse(url)

    def __repr__(self) -> str:
        return f"<PostgresBroker {self._url.redacted} {self.node_id}>"

    # -- life cycle -------------------------------------------------------

    async def open(self, listener: BrokerListener) -> None:
        self.listener = listener
        try:
            with calling_the_broker(), translated(opening=True):
                await self._open()
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(scrub(f"{self._url.redacted}: {exc}", self.url)) from None
        except BrokerMisconfigured as exc:
            raise BrokerMisconfigured(scrub(f"{self._url.redacted}: {exc}", self.url)) from None
        log.info("postgres broker: %s, node %s", self._url.redacted, self.node_id)

    async def _open(self) -> None:
        if self._pool is None:
            # Before the pool's first connection: its session settings must not land on a
            # server connection a transaction pooler shares with other clients.
            if await pooling.transaction_pooled(self._connect):
                raise BrokerMisconfigured(NO_LISTEN)
            setup = on_connect(pooling.per_session(TIMEOUT + 1))
            size = min(self._url.pool_size, MAX_POOL_SIZE)
            self._pool = await pg.create(self._dsn, size, setup)
        await pg.migrate_schema(self._dsn)
        try:  # LISTEN first: nothing said after the register is missed
            await self._listener.start()
        except NotDelivering:
            # The listener's first proof (a NOTIFY to itself, svc.broker.probe) never came
            # back: LISTEN does not deliver through this URL.  A transaction pooler was told
            # apart already (pooling.py, in milliseconds); this catches whatever else stands
            # in the way, at start, rather than rooms that hear other processes only at
            # their periodic re-read with nothing saying so.
            raise BrokerMisconfigured(NO_LISTEN) from None
        await self._presence.register()
        await self._load_present()
        if self._housekeeping is None:
            self._housekeeping = asyncio.create_task(
                self._keep_house(), name="svc-postgres-housekeeping"
            )

    async def close(self) -> None:
        if self._reload is not None:
            self._reload.cancel()
        for task in list(self._resends):  # the rooms' periodic re-read repairs these
            task.cancel()
        task, self._housekeeping = self._housekeeping, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=TIMEOUT)
        await self._listener.stop()
        self.listener = None
        await self._publisher.drain()
        if self._pool is not None:
            try:  # goodbye: our members leave now, for everyone, not after NODE_TTL
                await self._presence.goodbye()
            except Exception as exc:  # noqa: BLE001 - the others expire us anyway
                log.warning("postgres broker: could not say goodbye (%s)", exc)
        pool, self._pool = self._pool, None
        await pg.terminate(pool)

    async def ping(self) -> dict[str, str]:
        down = []
        try:
            await self._fetch("SELECT 1", ())
        except BrokerUnavailable as exc:
            down.append(f"pool is down ({exc})")
        try:
            self._listener.check()
        except BrokerUnavailable as exc:
            down.append(str(exc))
        if down:
            raise BrokerUnavailable("; ".join(down))
        return {"pool": "ok", "listener": "ok"}

    def stats(self) -> dict[str, float]:
        return {
            "listener_up": float(self._listener.connected),
            "listener_reconnects": self._listener.reconnects,
            "listener_stalls": self._listener.probe.stalls,
            "notify_statements": self._publisher.statements,
            "notifications_sent": self._publisher.notifications,
            "changes_unsent": self.changes_unsent,
            "changes_resent": self.changes_resent,
        }

    # -- news ---------------------------------------------------------------

    async def publish_change(self, change: Change) -> None:
        self._open_hub()
        if not self._present.wants(change.user_id):
            self.deliver(lambda hub: hub.on_change(change))  # ours: at once, no round trip
            self.changes_unsent += 1  # connected nowhere: no room anywhere shows it...
            self._held_back.hold(change)  # ...unless a join made elsewhere is on its way
            return
        await self._send_change(change)

    async def _send_change(self, change: Change) -> None:
        """Notify ``change``, numbered in every room of its user, and hand it to our own hub
        with those numbers (its echo is skipped): after the round trip that numbers it."""
        try:
            numbers = await self._publisher.send(
                payloads.CHANGES, self._change_payload(change), key=change.user_id
            )
        except BaseException:
            self.deliver(lambda hub: hub.on_change(change))  # unnumbered, but shown here
            raise
        if numbers:
            seqs = {room: (epoch, seq) for room, (epoch, seq) in json.loads(numbers).items()}
            change = replace(change, seqs=seqs)
        self.deliver(lambda hub: hub.on_change(change))

    def _change_payload(self, change: Change) -> str:
        return encode_change(self.node_id, change, payloads.PAYLOAD_LIMIT)

    async def publish_message(self, message: RoomMessage) -> RoomMessage:
        self._open_hub()
        # The sequence number keeps two equal messages apart: Postgres folds identical
        # notifications of one transaction into one, and a batch is one transaction.
        payload = encode_message(self.node_id, message, next(self._seq))
        stored = len(payload) > payloads.PAYLOAD_LIMIT
        numbers = await self._publisher.send(payloads.MESSAGES, payload, stored, message.room_id)
        epoch, seq = history.numbers_of(numbers)
        return replace(message, epoch=epoch, seq=seq)

    async def publish_password_set(self, event: PasswordSet) -> None:
        self._open_hub()
        # On the messages' channel, shaped so the previous release drops it (pubsub.py).
        await self._publisher.send(payloads.MESSAGES, encode_password_set(self.node_id, event))

    # -- numbered room events (history.py) --------------------------------------------

    def _history_size(self) -> int:
        return self.history_size

    async def room_position(self, room_id: str) -> tuple[str, int]:
        row = await self._fetch(history.POSITION, (room_id,))
        if row is None:  # no event yet: its counter row (and epoch) is made now
            await self._fetch(history.CREATE, (room_id,), one=None)
            row = await self._fetch(history.POSITION, (room_id,))
        return row[0], int(row[1])

    async def room_history(self, room_id: str, epoch: str, after: int) -> RoomHistory | None:
        if not self.history_size:
            return None
        rows = await self._fetch(history.HISTORY, (after, self.history_ttl, room_id), one=False)
        if not rows:
            return None
        current, last = rows[0][0], int(rows[0][1])
        if current != epoch or not 0 <= after <= last:
            return None
        events = []
        for _, _, number, payload in rows:
            if number is None:
                continue
            try:
                event = decode(payload).item
            except ValueError:
                return None
            events.append((int(number), event))
        if len(events) != last - after:
            return None  # the history no longer holds all of them
        return RoomHistory(current, last, events)

    # -- presence -------------------------------------------------------------

    async def presence_join(self, room_id: str, user_id: str) -> None:
        self._open_hub()
        await self._presence.join(room_id, user_id)

    async def presence_leave(self, room_id: str, user_id: str) -> None:
        self._open_hub()
        await self._presence.leave(room_id, user_id)

    async def presence_members(
        self, room_id: str, after: str | None = None, limit: int = 100
    ) -> list[str]:
        return await self._presence.members(room_id, after, limit)

    async def presence_count(self, room_id: str) -> int:
        return await self._presence.count(room_id)

    # -- delivery ----------------------------------------------------------------

    async def _deliver(self, batch: list) -> None:
        """Notifications from the listener → the hub, in the order they came."""
        heard: list = []  # events, presence changes, and ids of stored messages
        stored_ids: list[int] = []
        for notify in batch:
            try:
                item = self._parse(notify.channel, notify.payload)
            except (ValueError, KeyError, TypeError):
                log.warning(
                    "postgres broker: ignoring a malformed notification on %s", notify.channel
                )
                continue
            if item is not None:
                heard.append(item)
                if isinstance(item, int):
                    stored_ids.append(item)
        stored = await self._read_messages(stored_ids) if stored_ids else {}
        for item in heard:
            if isinstance(item, int):
                item = stored.get(item)
                if item is None:
                    continue
            if isinstance(item, PresenceChange):
                self.deliver(lambda hub, change=item: hub.on_presence(change))
            else:
                self.dispatch(item)

    def _parse(self, channel: str, payload: str) -> Event | PresenceChange | int | None:
        """What a notification carries: an event, a presence change, or the id of a stored
        message (``{"n", "i"}``, made by ``svc_message_put``) to read back."""
        if channel == PRESENCE:
            change = self._presence.parse(payload)
            if change is None:
                return None
            self._present.apply(change)
            if change.present:
                held = self._held_back.release(change.user_id)
                if held is not None:
                    self._resend(held)
            return change
        if channel == payloads.CHANGES:
            if self.unwanted(payload):
                return None  # a change of a user with no member here: the hub would drop it
            return decode(payload, "c")
        if channel == payloads.MESSAGES:
            data = load(payload)
            if "i" not in data:
                return decode(data, "m")
            if data.get("n") == self.node_id:
                return None  # our own: no read-back
            return _row_id(data["i"])
        return None

    async def _read_messages(self, ids: list[int]) -> dict[int, Event]:
        try:
            rows = await self._fetch(messages.READ, (ids,), one=False)
        except BrokerUnavailable as exc:
            log.warning("postgres broker: lost %d stored room message(s) (%s)", len(ids), exc)
            return {}
        found = {}
        for row_id, body in rows:
            try:
                found[row_id] = decode(body, "m")
            except ValueError:
                log.warning("postgres broker: ignoring a malformed stored message %s", row_id)
        if len(found) < len(ids):
            log.warning(
                "postgres broker: %d stored room message(s) were gone", len(ids) - len(found)
            )
        return found

    def _resend(self, change: Change) -> None:
        """Notify a change held back (interest.py): its user's join elsewhere is heard only
        now, and that member's welcome may have read the record before the change."""
        self.changes_resent += 1
        # A repair, not a room event: unnumbered (no key), so it takes no number and stays
        # out of the history; the hubs that hear it apply it at once.  Our own hub had it.
        payload = self._change_payload(change)
        task = asyncio.ensure_future(self._publisher.send(payloads.CHANGES, payload))
        self._resends.add(task)
        task.add_done_callback(self._resent)

    def _resent(self, task: asyncio.Task) -> None:
        self._resends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "postgres broker: could not notify a change held back (%s); the rooms'"
                " next re-read shows it",
                task.exception(),
            )

    def _announce_presence(self, change: PresenceChange) -> None:
        self._present.apply(change)
        self.deliver(lambda hub: hub.on_presence(change))

    def _gap(self) -> None:
        self._present.forget()
        self._reload = asyncio.ensure_future(self._load_present())
        self.deliver(lambda hub: hub.on_gap())

    async def _load_present(self) -> None:
        """Who is present anywhere (see interest.py); on failure, everyone stays news
        (the housekeeping tries again)."""
        generation = self._present.generation
        try:
            rows = await self._fetch(interest.SNAPSHOT, (), one=False)
        except BrokerUnavailable as exc:
            log.warning("postgres broker: could not read who is present (%s)", exc)
            return
        self._present.add_snapshot(rows, generation)

    # -- background work ------------------------------------------------------------

    async def _keep_house(self) -> None:
        """Heartbeat, expiry of silent nodes, old stored messages: every HEARTBEAT seconds."""
        failing = False
        # Not ``while True``: close() forgets the task before cancelling it, and a
        # cancellation swallowed inside a driver must not keep a closed broker beating.
        while self._housekeeping is not None:
            await asyncio.sleep(HEARTBEAT)
            try:
                if await self._presence.beat():
                    self._gap()  # expired meanwhile: others' news may have passed us by
                await self._fetch(messages.CLEAN, (messages.KEEP,), one=None)
                ttl = self.history_ttl
                await self._fetch(history.SWEEP, (ttl, ttl), one=None)
                if not self._present.known:
                    await self._load_present()
            except BrokerUnavailable as exc:
                if not failing:  # one line per outage
                    log.warning("postgres broker: heartbeat failed (%s); retrying", exc)
                failing = True
            except Exception as exc:  # a bug must not stop the heartbeat for good
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "postgres broker housekeeping failed", "exception": exc}
                )
            else:
                if failing:
                    log.info("postgres broker: heartbeat is back")
                failing = False

    # -- the pool -----------------------------------------------------------------

    async def _connect(self) -> aiopg.Connection:
        with calling_the_broker():
            return await pg.connect(self._dsn)

    async def _fetch(self, sql: str, params, one: bool | None = True):
        """One statement on the pool (pool.run); trouble is BrokerUnavailable."""
        with calling_the_broker():
            return await pg.run(self._pool, sql, params, one)

    async def _send_probe(self, token: str) -> None:
        await self._fetch("SELECT pg_notify(%s, %s)", (PROBE_CHANNEL, token))

    def _open_hub(self) -> BrokerListener:
        if self.listener is None:
            raise RuntimeError("the broker is not open")
        return self.listener


def _row_id(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"not a stored message's id: {value!r}")
    return value
