"""The broker's one LISTEN connection: every channel on it, re-opened when it dies.

aiopg does not re-open a connection the server (or the network) dropped; this
class does, with backoff, and then reports a gap: notifications sent while it
was down are lost for good (NOTIFY keeps nothing for a listener that is not
there), so whoever listens must re-read what it cares about.

A silent connection is checked every ``KEEPALIVE`` seconds with a ``SELECT 1``
bounded by ``TIMEOUT``, on top of TCP keepalives (see ``broker.py``), so a
half-open path (a peer that vanished without a reset) is found in seconds,
not when the kernel gives up.

A connection can also stay up and stop delivering (a pooler that unlinked the
``LISTEN`` session, a proxy that stopped forwarding): the listener proves it
delivers with :class:`svc.broker.probe.DeliveryProbe`, a ``NOTIFY`` to itself on
``PROBE_CHANNEL`` at start and every ``probe_every`` seconds.  One that stopped is
re-opened like a lost one (then a gap is reported), with the probe's one line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

import aiopg
import psycopg2

from svc.broker import BrokerUnavailable
from svc.broker.probe import PROBE_EVERY, DeliveryProbe

from .errors import CONNECTION_ERRORS, describe

log = logging.getLogger(__name__)

#: Seconds of silence after which the connection is checked.
KEEPALIVE = 10.0
#: Seconds the check may take.
TIMEOUT = 5.0
#: The longest wait between two attempts to re-open.
MAX_BACKOFF = 2.0
#: Where every node's probe tokens travel (each node ignores the others' tokens).
PROBE_CHANNEL = "svc_probe"


class Listener:
    def __init__(
        self,
        connect: Callable[[], Awaitable[aiopg.Connection]],
        channels: Iterable[str],
        deliver: Callable[[list], Awaitable[None]],
        on_gap: Callable[[], None],
        send_probe: Callable[[str], Awaitable[None]],
        probe_every: float = PROBE_EVERY,
    ):
        self._connect = connect
        self._channels = (*channels, PROBE_CHANNEL)
        self._deliver = deliver
        self._on_gap = on_gap
        self._conn: aiopg.Connection | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        #: True while a LISTEN connection is up.
        self.connected = False
        #: Why it is down, for readiness.
        self.problem = "not started"
        #: For /metrics: how often it had to be re-opened.
        self.reconnects = 0
        self.probe = DeliveryProbe(
            "postgres: broker listener",
            send_probe,
            self._reopen,
            lambda: self.connected,
            every=probe_every,
        )
        # Set when the probe asked for a re-open: its line is the only one.
        self._reopening = False

    async def start(self) -> None:
        """Open the connection (raises like ``connect``) and start delivering."""
        if self._task is not None:
            return
        self._stopping = False
        self._conn = await self._listen()
        self.connected = True
        self._task = asyncio.create_task(self._run(), name="svc-postgres-listener")
        try:
            await self.probe.start()
        except BaseException as exc:
            await self.stop()  # so the next start begins again from nothing
            if isinstance(exc, BrokerUnavailable):  # NotDelivering stays itself: broker.py
                raise type(exc)(f"listener is {exc}") from None
            raise

    async def stop(self) -> None:
        self._stopping = True
        await self.probe.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Bounded, and the loops check _stopping: a cancellation swallowed inside a
            # library (asyncio.wait_for on 3.11 can) must not hang the shutdown.
            await asyncio.wait({task}, timeout=TIMEOUT)
        self._close_connection("stopped")

    def check(self) -> None:
        """Raise Unavailable when the connection is down."""
        if not self.connected:
            raise BrokerUnavailable(f"listener is down ({self.problem})")
        try:
            self.probe.check()
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"listener is {exc}") from None

    def _reopen(self) -> None:
        """The probe found the connection mute: close it; the loop re-opens it."""
        if self._conn is not None:
            self._reopening = True
            self._close_connection(self.probe.problem or "not delivering")

    # -------------------------------------------------------------------------

    async def _listen(self) -> aiopg.Connection:
        conn = await self._connect()
        try:
            async with conn.cursor(timeout=TIMEOUT) as cur:
                for channel in self._channels:
                    await cur.execute(f"LISTEN {channel}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _close_connection(self, problem: str) -> None:
        self.connected = False
        self.problem = problem
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._consume(self._conn)
            except (BrokerUnavailable, psycopg2.Error, *CONNECTION_ERRORS) as exc:
                if not self._reopening:  # (a re-open's one line is the probe's)
                    log.warning("postgres: broker listener lost (%s); reconnecting", describe(exc))
                    self._close_connection(describe(exc))
            except Exception as exc:  # a bug must not end delivery for good
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "postgres broker listener failed", "exception": exc}
                )
                self._close_connection("failed")
            if await self._reconnect():
                self._on_gap()

    async def _consume(self, conn: aiopg.Connection | None) -> None:
        if conn is None:  # closed by a re-open before this loop got to it
            raise BrokerUnavailable(self.problem)
        notifies = conn.notifies
        # One pending get across keepalive checks: cancelling it could drop a notification.
        getter = None
        try:
            while not self._stopping:
                if getter is None:
                    getter = asyncio.ensure_future(notifies.get())
                done, _ = await asyncio.wait({getter}, timeout=KEEPALIVE)
                if not done:
                    async with conn.cursor(timeout=TIMEOUT) as cur:  # silent: still there?
                        await cur.execute("SELECT 1")
                    continue
                batch = [getter.result()]  # raises once the connection is gone
                getter = None
                while not notifies.empty():  # everything that came with it: one read-back
                    batch.append(notifies.get_nowait())
                if any(notify.channel == PROBE_CHANNEL for notify in batch):
                    for notify in batch:
                        if notify.channel == PROBE_CHANNEL:
                            self.probe.heard(notify.payload)
                    batch = [notify for notify in batch if notify.channel != PROBE_CHANNEL]
                if batch:
                    await self._deliver(batch)
        finally:
            if getter is not None:
                getter.cancel()

    async def _reconnect(self) -> bool:
        delay = 0.05
        reopened, self._reopening = self._reopening, False
        while not self._stopping:
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
            try:
                self._conn = await self._listen()
            except (psycopg2.Error, *CONNECTION_ERRORS) as exc:
                log.debug("postgres: broker listener not back yet (%s)", describe(exc))
                self.problem = describe(exc)
                continue
            self.connected = True
            self.reconnects += 1
            if not reopened:
                log.info("postgres: broker listener reconnected")
            self.probe.kick()
            return True
        return False
