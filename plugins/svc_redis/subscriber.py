"""The pub/sub side: one connection subscribed to the bus, re-opened whenever it is lost.

Events published while the connection is down are lost (pub/sub keeps
nothing), so after re-subscribing the subscriber starts ``on_back`` (the
broker re-joins its presence, then tells the hub to re-read: ``on_gap``).
Subscribe first, repair second: nothing published after the repair's reads
can fall between them.  The repair runs beside the reading, never before it:
it publishes (the re-joins' announcements) on the channel this connection
reads, and a repair that waited for anything published there while nobody
read it would wait for nothing (200 members took minutes to come back).

The same connection is subscribed to a second channel, the node's own probe
channel: :class:`svc.broker.probe.DeliveryProbe` sends tokens there and this
connection hands them back, which proves it still delivers.  When the probe
finds it does not, :meth:`Subscriber.reopen` drops it and subscribes again.

A connection can also die silently (a host that vanished, a server that
hangs): when nothing at all arrived for ``ping_every`` seconds the subscriber
sends a PING, and when nothing arrived for ``silence`` seconds it takes the
connection as lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: Backoff between attempts to re-subscribe, in seconds.
FIRST_RETRY, MAX_RETRY = 0.05, 2.0
#: The longest one read waits, so a re-open asked for by the probe is acted on at once.
READ_AT_MOST = 1.0


class _Reopen(Exception):
    """The probe found the connection mute: drop it and subscribe again."""


class Subscriber:
    def __init__(
        self,
        client: aioredis.Redis,
        channel: str,
        probe_channel: str,
        on_payload: Callable[[bytes], None],
        on_probe: Callable[[str], None],
        on_back: Callable[[], Awaitable[None]],
        ping_every: float,
        silence: float,
        where: str,
    ):
        self._client = client
        self._channel = channel
        self._probe_channel = probe_channel.encode()
        self._on_payload = on_payload
        self._on_probe = on_probe
        self._on_back = on_back
        self._ping_every = ping_every
        self._silence = silence
        self._where = where
        self._pubsub: aioredis.client.PubSub | None = None
        self._task: asyncio.Task | None = None
        # Checked after every read: a cancel that lands as a read's own timeout fires can
        # be swallowed inside redis-py (it becomes "no message"), so cancelling alone may
        # not end the loop.
        self._stopping = False
        # Set by reopen (the probe found the connection mute): the reader drops it.
        self._reopening = False
        self._repair: asyncio.Task | None = None
        #: Called once subscribed again after a loss (the probe proves the new connection).
        self.on_subscribed: Callable[[], None] = lambda: None
        #: True while subscribed (readiness reads it).
        self.connected = False
        #: for /metrics: how often the connection was lost and re-opened
        self.reconnects = 0

    async def start(self) -> None:
        """Subscribe (raises RedisError/OSError if Redis does not answer), then listen."""
        await self._subscribe()
        self._task = asyncio.create_task(self._run(), name="svc-redis-subscriber")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._task, self._repair) if t is not None]
        self._task = self._repair = None
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a swallowed cancel ends the loop at its next read (READ_AT_MOST).
            await asyncio.wait(tasks, timeout=self._ping_every + READ_AT_MOST + 1)
        await self._drop_connection()

    def reopen(self) -> None:
        """Drop the connection and subscribe again (it stopped delivering: see the probe)."""
        if self.connected:  # (else it is being re-opened already)
            self._reopening = True

    async def _subscribe(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel, self._probe_channel)
            # The server's confirmations: we are on both channels from here on.
            confirmed = 0
            while confirmed < 2:
                reply = await pubsub.get_message(timeout=self._silence)
                if reply is None:
                    raise TimeoutError("no SUBSCRIBE confirmation")
                if reply["type"] == "subscribe":
                    confirmed += 1
        except BaseException:
            await _close(pubsub)
            raise
        self._pubsub = pubsub
        self.connected = True

    async def _drop_connection(self) -> None:
        self.connected = False
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await _close(pubsub)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._listen()
            except _Reopen:
                pass  # the probe said so in its one line
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                log.warning(
                    "redis: pub/sub connection to %s lost (%s); reconnecting", self._where, exc
                )
            except Exception as exc:  # a bug must not end delivery for good
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "redis subscriber failed", "exception": exc}
                )
            await self._drop_connection()
            await self._reconnect()

    async def _listen(self) -> None:
        pubsub = self._pubsub
        last_heard = time.monotonic()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=min(self._ping_every, READ_AT_MOST))
            if self._stopping:
                return
            if self._reopening:
                raise _Reopen
            now = time.monotonic()
            if message is not None:
                last_heard, pinged = now, False
                if message["type"] == "message":
                    if message["channel"] == self._probe_channel:
                        self._on_probe(message["data"].decode(errors="replace"))
                    else:
                        self._on_payload(message["data"])
                continue
            quiet = now - last_heard
            if quiet >= self._silence:
                raise TimeoutError(f"nothing heard for {self._silence:g} s")
            if quiet >= self._ping_every and not pinged:
                await pubsub.ping()
                pinged = True

    async def _reconnect(self) -> None:
        delay = FIRST_RETRY
        reopened, self._reopening = self._reopening, False
        while not self._stopping:
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY)
            try:
                await self._subscribe()
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                log.debug("redis: pub/sub not back yet (%s)", exc)
                continue
            if not reopened:  # (a re-open's one line is the probe's)
                log.info("redis: pub/sub connection to %s is back", self._where)
            self.reconnects += 1
            self.on_subscribed()
            # Beside the reading, never before it (see the module's docstring).
            if self._repair is None or self._repair.done():
                self._repair = asyncio.create_task(self._back(), name="svc-redis-repair")
            return

    async def _back(self) -> None:
        try:
            await self._on_back()
        except Exception as exc:  # noqa: BLE001 - the hub's periodic re-read repairs it
            log.warning("redis: repair after reconnecting failed (%s)", exc)


async def _close(pubsub: aioredis.client.PubSub) -> None:
    try:
        await pubsub.aclose()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone anyway
        pass
