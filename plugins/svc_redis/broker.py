"""``RedisBroker``: changes, room messages and presence between svc processes through Redis.

Everything crosses on one pub/sub channel, in the wire format of
:mod:`svc.broker.pubsub` (which also skips this node's own messages and shields
delivery), so every process sees every event in one order.  Presence lives in
sorted sets and is changed only by the Lua scripts of :mod:`.scripts`, which
decide "first holder anywhere" and "last one" atomically and publish the
transition in the same step.

Own presence transitions are delivered from the channel too, like everyone
else's: ``presence_join``/``presence_leave`` wait (at most ``timeout``) until
theirs has come back, so every event published before it has been delivered
first and the caller's welcome counts it.  If it does not come back (the
pub/sub connection is down) it is delivered directly and its late echo is
dropped.

Every Redis command is bounded by ``timeout`` (2 s by default); an error
becomes ``BrokerUnavailable``.  Changes and messages are published in call order
by :mod:`.publisher`, which also fails at once while Redis is known to be
down (the hubs' re-reads repair what was not announced).

Presence of a process that dies without ``close`` is expired by the others:
each process pushes its own deadline ahead every ``heartbeat`` seconds and,
in the same script, expires the processes whose deadline has passed (the
process that expires one logs one line naming it).

After Redis lost its state (a restart) or expired this process (a long
outage), the process re-joins every pair it holds in bulk: a few scripts of
``REJOIN_PER_SCRIPT`` pairs each, one round trip apiece, whose announcements
are delivered to this process's own hub at once (their echoes are dropped),
never one round trip and one echo per member.

The pub/sub connection proves it delivers (:mod:`svc.broker.probe`): every
``probe_every`` seconds the process publishes a token on its own probe channel
and the subscriber must hand it back in time, else readiness names
``broker.pubsub`` and the connection is re-opened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable
from dataclasses import replace

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from svc.broker import (
    BrokerListener,
    BrokerMisconfigured,
    BrokerUnavailable,
    Change,
    PasswordSet,
    PresenceChange,
    RoomHistory,
    RoomMessage,
)
from svc.broker.probe import DeliveryProbe
from svc.broker.pubsub import (
    Event,
    PubSubBroker,
    decode,
    encode_change,
    encode_message,
    encode_password_set,
    encode_presence,
    load,
)

from . import scripts
from .publisher import Publisher
from .subscriber import Subscriber
from .url import RedisURL

log = logging.getLogger(__name__)

#: Dead processes one heartbeat expires at most (each may hold many members).
EXPIRE_PER_BEAT = 10
#: Pairs one re-join script holds: a few hundred microseconds of Redis each, so a
#: process with thousands of members is back in a few round trips without holding
#: Redis for long in any one of them.
REJOIN_PER_SCRIPT = 500
#: A change whose payload would be larger than this travels as id and version only.
MAX_CHANGE = 64 * 1024

_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class RedisBroker(PubSubBroker):
    #: publish_message queues its script in the publisher (OneInFlight) before any await:
    #: concurrent calls keep their order, and a burst goes in one pipeline.
    messages_in_call_order = True

    def __init__(self, url: str):
        super().__init__(url)
        self._url = RedisURL.parse(url)
        prefix = self._url.prefix
        self._channel = f"{prefix}:bus"
        self._nodes_key = f"{prefix}:nodes"
        #: This process's node id: distinct per instance, readable by an operator.
        host = socket.gethostname()[:32] or "host"
        self.node_id = f"{host}-{os.getpid()}-{secrets.token_hex(4)}"
        self._held_key = f"{prefix}:held:{self.node_id}"
        self._probe_channel = f"{prefix}:probe:{self.node_id}"
        self._probe: DeliveryProbe | None = None
        self._client: aioredis.Redis | None = None
        self._sub_client: aioredis.Redis | None = None
        self._subscriber: Subscriber | None = None
        self._heartbeat: asyncio.Task | None = None
        self._scripts: dict[str, object] = {}
        #: (room, user) → this instance's connections (Redis only knows "held or not").
        self._held: dict[tuple[str, str], int] = {}
        #: own presence transitions waiting for their echo: sequence number → future
        self._seq = 0
        self._waiting: dict[int, asyncio.Future] = {}
        #: own transitions delivered directly (no echo in time): their late echo is dropped
        self._delivered_directly: set[int] = set()
        self._rejoining: asyncio.Task | None = None
        self._publisher: Publisher | None = None
        #: Whether this node ever registered (so close has presence to remove).
        self._registered = False
        self._rejoins = 0
        self._malformed = 0
        #: pairs whose join or leave failed midway: Redis may hold them though we do not
        self._unsure: set[tuple[str, str]] = set()
        self._closing = False

    @classmethod
    def check_url(cls, url: str) -> None:
        RedisURL.parse(url)

    def __repr__(self) -> str:
        return f"<RedisBroker {self._url.redacted} node {self.node_id}>"

    # -- life cycle -------------------------------------------------------

    async def open(self, listener: BrokerListener) -> None:
        if self._client is not None:
            return
        self._closing = False
        url = self._url
        common = dict(
            socket_timeout=url.timeout,
            socket_connect_timeout=url.timeout,
            # No retries inside redis-py: a command is bounded by one timeout, and we decide.
            retry=Retry(NoBackoff(), 0),
            client_name=f"svc-{self.node_id}",
            **url.connection_kwargs,
        )
        connection_class = aioredis.SSLConnection if url.tls else aioredis.Connection
        common.pop("ssl", None)
        pool = aioredis.BlockingConnectionPool(
            max_connections=url.max_connections,
            timeout=url.timeout,
            connection_class=connection_class,
            **common,
        )
        self._client = aioredis.Redis(connection_pool=pool)
        sub_pool = aioredis.ConnectionPool(
            max_connections=2, connection_class=connection_class, **common
        )
        self._sub_client = aioredis.Redis(connection_pool=sub_pool)
        self._scripts = {
            name: self._client.register_script(getattr(scripts, name))
            for name in (
                "JOIN",
                "LEAVE",
                "REGISTER",
                "HEARTBEAT",
                "GOODBYE",
                "REJOIN",
                "MESSAGE",
                "CHANGE",
                "POSITION",
                "HISTORY",
            )
        }
        self.listener = listener
        self._publisher = Publisher(self._client, self._channel, url.timeout, url.address)
        self._probe = DeliveryProbe(
            f"redis: pub/sub connection to {url.address}",
            self._send_probe,
            lambda: self._subscriber is not None and self._subscriber.reopen(),
            lambda: self._subscriber is not None and self._subscriber.connected,
            every=url.probe_every,
        )
        self._subscriber = Subscriber(
            self._sub_client,
            self._channel,
            self._probe_channel,
            self._on_payload,
            self._probe.heard,
            self._back,
            ping_every=url.heartbeat,
            silence=url.heartbeat + 2 * url.timeout,
            where=url.address,
        )
        self._subscriber.on_subscribed = self._probe.kick
        try:
            await self._bounded(self._client.ping())
            await self._subscriber.start()
            await self._probe.start()
            await self._register()
        except AuthenticationError as exc:
            await self.close()
            raise BrokerMisconfigured(f"redis {url.redacted}: {exc}") from None
        except ResponseError as exc:  # e.g. a database number the server does not have
            await self.close()
            raise BrokerMisconfigured(f"redis {url.redacted}: {exc}") from None
        except _ERRORS as exc:
            await self.close()
            raise BrokerUnavailable(f"redis {url.redacted}: {_describe(exc)}") from None
        except BrokerUnavailable as exc:  # the probe: subscribed, but nothing comes back
            await self.close()  # (so the next open starts again from nothing)
            raise BrokerUnavailable(f"redis {url.redacted}: pub/sub {exc}") from None
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="svc-redis-heartbeat")
        log.info("redis: %s, node %s, prefix %s", url.redacted, self.node_id, url.prefix)

    async def close(self) -> None:
        client = self._client
        if client is None or self._closing:
            return  # closed, or being closed by another call
        self._closing = True
        tasks = [t for t in (self._heartbeat, self._rejoining) if t is not None]
        self._heartbeat = self._rejoining = None
        probe, self._probe = self._probe, None
        if probe is not None:
            await probe.stop()
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a cancel that redis-py swallows ends the loop at its next check
            await asyncio.wait(tasks, timeout=self._url.timeout + 1)
        self._client = None
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.close()
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            await subscriber.stop()
        self.listener = None
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
        self._held.clear()
        registered, self._registered = self._registered, False
        try:  # goodbye: our members leave now, not after node_ttl
            if registered:  # (an open that failed earlier left nothing behind)
                goodbye = self._scripts["GOODBYE"]
                await asyncio.wait_for(
                    goodbye(
                        args=[self._url.prefix, self._channel, self.node_id, *self._keeping()],
                        client=client,
                    ),
                    self._url.timeout,
                )
        except _ERRORS as exc:  # the others expire us anyway
            log.warning("redis: could not remove presence node %s (%s)", self.node_id, exc)
        sub_client, self._sub_client = self._sub_client, None
        for each in (client, sub_client):
            if each is not None:
                await each.aclose(close_connection_pool=True)

    def stats(self) -> dict[str, float]:
        """For /metrics (``svc_broker_<name>``)."""
        subscriber, publisher = self._subscriber, self._publisher
        return {
            "redis_subscribed": float(subscriber is not None and subscriber.connected),
            "redis_reconnects": subscriber.reconnects if subscriber is not None else 0,
            "redis_publish_batches": publisher.batches if publisher is not None else 0,
            "redis_published": publisher.published if publisher is not None else 0,
            "redis_rejoins": self._rejoins,
            "redis_pubsub_stalls": self._probe.stalls if self._probe is not None else 0,
            "redis_malformed_events": self._malformed,
            "redis_held": len(self._held),
        }

    async def abandon(self) -> None:
        """For tests: stop as a killed process would (no goodbye, no more heartbeat or
        subscription), so the others must expire this instance."""
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._probe is not None:
            await self._probe.stop()
        if self._subscriber is not None:
            await self._subscriber.stop()
        self.listener = None

    async def ping(self) -> dict[str, str]:
        if self._client is None:
            raise BrokerUnavailable("the broker is not open")
        try:
            await self._bounded(self._client.ping())
        except _ERRORS as exc:
            why = _describe(exc)
            raise BrokerUnavailable(f"redis {self._url.address} is down ({why})") from None
        if self._subscriber is None or not self._subscriber.connected:
            why = self._probe.problem if self._probe is not None else None
            raise BrokerUnavailable(
                f"redis {self._url.address}: pub/sub connection is down"
                + (f" ({why})" if why else "")
            )
        if self._probe is not None:
            try:
                self._probe.check()
            except BrokerUnavailable as exc:
                raise BrokerUnavailable(f"redis {self._url.address}: pub/sub {exc}") from None
        return {"redis": "ok", "pubsub": "ok"}

    async def _send_probe(self, token: str) -> None:
        await self._bounded(self._open_client().publish(self._probe_channel, token))

    # -- news ---------------------------------------------------------------

    async def publish_change(self, change: Change) -> None:
        payload = encode_change(self.node_id, change, MAX_CHANGE)
        args = [self._url.prefix, self._channel, change.user_id, payload, *self._keeping()]
        await self._run(self._scripts["CHANGE"], args)

    async def publish_message(self, message: RoomMessage) -> RoomMessage:
        payload = encode_message(self.node_id, message)
        room = message.room_id
        args = [self._url.prefix, self._channel, room, payload, *self._keeping()]
        epoch, seq = await self._run(self._scripts["MESSAGE"], args)
        return replace(message, epoch=_text(epoch), seq=int(seq))

    async def publish_password_set(self, event: PasswordSet) -> None:
        await self._run(encode_password_set(self.node_id, event))

    async def _run(self, script, args: list | None = None):
        """Run ``script`` with ``args`` in the publisher's order and give its result, or
        PUBLISH ``script`` when it is a payload (no args: an event the broker numbers not)."""
        if self._publisher is None:
            raise BrokerUnavailable("the broker is not open")
        return await self._publisher.run(script if args is None else (script, args))

    def _keeping(self) -> tuple[int, int]:
        """The history's size and lifetime (ms), as the scripts take them."""
        return self.history_size, max(1, int(self.history_ttl * 1000))

    # -- numbered room events -------------------------------------------------------

    async def room_position(self, room_id: str) -> tuple[str, int]:
        args = [self._url.prefix, room_id, self._keeping()[1]]
        try:
            epoch, seq = await self._bounded(
                self._scripts["POSITION"](args=args, client=self._open_client())
            )
        except _ERRORS as exc:
            raise BrokerUnavailable(f"redis {self._url.address}: {_describe(exc)}") from None
        return _text(epoch), int(seq)

    async def room_history(self, room_id: str, epoch: str, after: int) -> RoomHistory | None:
        if not self.history_size:
            return None
        try:
            found = await self._bounded(
                self._scripts["HISTORY"](
                    args=[self._url.prefix, room_id], client=self._open_client()
                )
            )
        except _ERRORS as exc:
            raise BrokerUnavailable(f"redis {self._url.address}: {_describe(exc)}") from None
        current, seq, now, *entries = found
        if current is None or _text(current) != epoch or not 0 <= after <= seq:
            return None
        oldest = int(now) - self._keeping()[1]
        events = []
        for entry in entries:
            at, _, payload = entry.partition(b"|")
            if int(at) <= oldest:
                continue
            try:
                event = decode(load(payload)).item
            except ValueError:
                return None
            number = _number_in(event, room_id)
            if number is not None and number > after:
                events.append((number, event))
        if len(events) != seq - after:
            return None  # the history no longer holds all of them
        return RoomHistory(epoch, seq, events)

    # -- presence -------------------------------------------------------------

    async def presence_join(self, room_id: str, user_id: str) -> None:
        key = (room_id, user_id)
        count = self._held.get(key, 0)
        self._held[key] = count + 1
        if count:
            return  # held here already: nothing changes service-wide
        try:
            await self._join(room_id, user_id)
        except BaseException:
            if not self._release(key):
                self._unsure.add(key)  # the script may have run: undone on the next beat
            raise

    async def presence_leave(self, room_id: str, user_id: str) -> None:
        key = (room_id, user_id)
        if key not in self._held:
            return
        if self._release(key):
            return  # other connections here still hold them
        try:
            await self._leave(room_id, user_id)
        except BaseException:
            self._unsure.add(key)  # Redis may still hold it: left again on the next beat
            raise

    async def _leave(self, room_id: str, user_id: str) -> None:
        change = PresenceChange(room_id, user_id, False)
        seq, payload = self._announcement(change)
        pair = scripts.pair(room_id, user_id)
        p = self._url.prefix
        await self._run_announcing(
            seq,
            change,
            self._scripts["LEAVE"](
                keys=[self._held_key, f"{p}:holders:{pair}", f"{p}:room:{room_id}"],
                args=[self.node_id, pair, user_id, self._channel, payload, p, room_id]
                + list(self._keeping()),
                client=self._open_client(),
            ),
        )

    async def _settle_unsure(self) -> None:
        """Leave, in Redis, the pairs a failed join or leave may have left there."""
        for key in list(self._unsure):
            if key not in self._held:  # (held again meanwhile: then Redis is right to hold it)
                await self._leave(*key)  # a no-op in Redis if it is not held there
            self._unsure.discard(key)

    async def presence_members(
        self, room_id: str, after: str | None = None, limit: int = 100
    ) -> list[str]:
        low = f"({after}" if after is not None else "-"  # "(": strictly after
        try:
            ids = await self._bounded(
                self._open_client().zrangebylex(
                    f"{self._url.prefix}:room:{room_id}", low, "+", start=0, num=limit
                )
            )
        except _ERRORS as exc:
            raise BrokerUnavailable(f"redis {self._url.address}: {_describe(exc)}") from None
        return [member.decode() for member in ids]

    async def presence_count(self, room_id: str) -> int:
        try:
            return await self._bounded(
                self._open_client().zcard(f"{self._url.prefix}:room:{room_id}")
            )
        except _ERRORS as exc:
            raise BrokerUnavailable(f"redis {self._url.address}: {_describe(exc)}") from None

    async def _join(self, room_id: str, user_id: str) -> None:
        if await self._join_once(room_id, user_id) == -1:
            # We were expired (a long outage) or Redis lost its state (a restart).
            await self._rejoin_all()

    def _release(self, key: tuple[str, str]) -> int:
        """One connection fewer here; how many remain."""
        left = self._held.get(key, 0) - 1
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)
        return max(left, 0)

    # -- announcing our own transitions ---------------------------------------

    def _announcement(self, change: PresenceChange) -> tuple[int, str]:
        self._seq += 1
        return self._seq, encode_presence(self.node_id, self._seq, change)

    async def _run_announcing(self, seq: int, change: PresenceChange, script: Awaitable) -> int:
        """Run a presence script; if it published ``change``, wait for its echo."""
        subscribed = self._subscriber is not None and self._subscriber.connected
        echo = asyncio.get_running_loop().create_future()
        if subscribed:
            self._waiting[seq] = echo
        try:
            try:
                result = await self._bounded(script)
            except _ERRORS as exc:
                raise BrokerUnavailable(f"redis {self._url.address}: {_describe(exc)}") from None
            if result != 1:
                return result
            if subscribed:
                try:
                    await asyncio.wait_for(asyncio.shield(echo), self._url.timeout)
                    return result
                except asyncio.TimeoutError:
                    pass
            # No echo in time: deliver it ourselves and drop the echo if it comes later.
            self._delivered_directly.add(seq)
            self.deliver(lambda listener: listener.on_presence(change))
            return result
        finally:
            self._waiting.pop(seq, None)

    async def _rejoin_all(self) -> None:
        """Register again and hold, in Redis, every pair this instance holds (one at a time)."""
        if self._rejoining is None or self._rejoining.done():
            self._rejoining = asyncio.create_task(self._rejoin(), name="svc-redis-rejoin")
        await asyncio.shield(self._rejoining)

    async def _rejoin(self) -> None:
        """Register again and hold every pair held here, in bulk (see the module's docstring).

        Each script registers the node again (so a long re-join cannot be expired
        midway) and joins its pairs; the users that became present with it are
        announced on the channel, for the others, and delivered here at once: the
        subscriber may not be reading yet, and nothing here waits for it."""
        held = list(self._held)
        log.warning(
            "redis: node %s was not registered; re-joining its %d member(s)",
            self.node_id,
            len(held),
        )
        self._rejoins += 1
        ttl = int(self._url.node_ttl * 1000)
        for start in range(0, len(held) or 1, REJOIN_PER_SCRIPT):
            chunk = held[start : start + REJOIN_PER_SCRIPT]
            args: list = [self.node_id, ttl, self._url.prefix, self._channel, *self._keeping()]
            announced = []
            for room_id, user_id in chunk:
                change = PresenceChange(room_id, user_id, True)
                seq, payload = self._announcement(change)
                self._delivered_directly.add(seq)  # its echo, if heard, is dropped
                announced.append((seq, change))
                args += [room_id, user_id, scripts.pair(room_id, user_id), payload]
            try:
                joined = await self._bounded(
                    self._scripts["REJOIN"](
                        keys=[self._nodes_key], args=args, client=self._open_client()
                    )
                )
            except BaseException:
                self._delivered_directly.difference_update(seq for seq, _ in announced)
                raise
            self._registered = True
            for (seq, change), first in zip(announced, joined, strict=True):
                if first:
                    self.deliver(lambda listener, c=change: listener.on_presence(c))
                else:
                    self._delivered_directly.discard(seq)  # nothing was published
        for room_id, user_id in held:
            if (room_id, user_id) not in self._held:  # left while we re-joined it
                await self._leave(room_id, user_id)

    async def _join_once(self, room_id: str, user_id: str) -> int:
        change = PresenceChange(room_id, user_id, True)
        seq, payload = self._announcement(change)
        pair = scripts.pair(room_id, user_id)
        p = self._url.prefix
        return await self._run_announcing(
            seq,
            change,
            self._scripts["JOIN"](
                keys=[
                    self._nodes_key,
                    self._held_key,
                    f"{p}:holders:{pair}",
                    f"{p}:room:{room_id}",
                ],
                args=[self.node_id, pair, user_id, self._channel, payload, p, room_id]
                + list(self._keeping()),
                client=self._open_client(),
            ),
        )

    # -- background work ------------------------------------------------------

    async def _register(self) -> None:
        await self._bounded(
            self._scripts["REGISTER"](
                keys=[self._nodes_key],
                args=[self.node_id, int(self._url.node_ttl * 1000)],
                client=self._open_client(),
            )
        )
        self._registered = True

    async def _beat(self) -> None:
        alive, *expired = await self._bounded(
            self._scripts["HEARTBEAT"](
                keys=[self._nodes_key],
                args=[
                    self.node_id,
                    int(self._url.node_ttl * 1000),
                    self._url.prefix,
                    self._channel,
                    EXPIRE_PER_BEAT,
                    *self._keeping(),
                ],
                client=self._open_client(),
            )
        )
        for node in expired:
            log.warning(
                "redis: expired node %s (silent for over %g s); its members left",
                node.decode(errors="replace") if isinstance(node, bytes) else node,
                self._url.node_ttl,
            )
        if not alive:
            await self._rejoin_all()
        if self._unsure:
            await self._settle_unsure()

    async def _beat_forever(self) -> None:
        failing = False
        while not self._closing:
            await asyncio.sleep(self._url.heartbeat)
            try:
                await self._beat()
            except (*_ERRORS, BrokerUnavailable) as exc:
                # Logged once per outage: a beat every few seconds would flood the log.
                (log.debug if failing else log.warning)(
                    "redis: presence heartbeat failed (%s)", _describe(exc)
                )
                failing = True
                continue
            if failing:
                log.info("redis: presence heartbeat is back")
                failing = False

    async def _back(self) -> None:
        """The pub/sub connection is back after a gap: re-join if needed, then repair."""
        if self._publisher is not None:
            self._publisher.redis_is_back()
        self._delivered_directly.clear()  # their echoes were published into the gap
        try:
            await self._beat()
        finally:
            self.deliver(lambda listener: listener.on_gap())

    # -- delivery -----------------------------------------------------------------

    def _on_payload(self, payload: bytes) -> None:
        if self.unwanted(payload):
            return  # a change of a user with no member here: the hub would drop it
        try:
            event = decode(payload)
        except ValueError:
            # Not ours (another program on the channel) or from an incompatible svc version.
            self._malformed += 1
            log.warning("redis: ignoring a malformed event on %s", self._channel)
            return
        self.dispatch(event)

    def heard_presence(self, event: Event, own: bool) -> None:
        if own and event.seq in self._delivered_directly:
            self._delivered_directly.discard(event.seq)
            return
        super().heard_presence(event, own)
        if own:
            echo = self._waiting.get(event.seq)
            if echo is not None and not echo.done():
                echo.set_result(None)

    # -------------------------------------------------------------------------------

    def _open_client(self) -> aioredis.Redis:
        if self._client is None:
            raise BrokerUnavailable("the broker is not open")
        return self._client

    def _bounded(self, awaitable: Awaitable):
        return asyncio.wait_for(awaitable, self._url.timeout)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _number_in(event, room_id: str) -> int | None:
    if isinstance(event, Change):
        found = (event.seqs or {}).get(room_id)
        return None if found is None else found[1]
    return event.seq


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError) and not str(exc):
        return "timed out"
    return str(exc) or type(exc).__name__
