"""A receiving connection proves that it delivers: a message to itself, every few seconds.

A broker connection that receives (Postgres ``LISTEN``, Redis pub/sub) can stop
delivering without failing: a pooler that unlinked the ``LISTEN`` session, a proxy
that stopped forwarding, a server that dropped a subscription.  Nothing errors, no
event arrives, and the process serves stale rooms while readiness says "ok"; peers'
users report it as "one worker silently stopped receiving".  So each such connection
sends itself a token through the same path real traffic takes (published as real
events are, received by the connection that receives them) at start and every
``every`` seconds, and counts it as delivering only when the token comes back
within ``every`` seconds.

This module is the rule, once, for every broker; the broker plugin supplies the
transport: how a token is sent (``send``), hands every token it receives to
:meth:`DeliveryProbe.heard`, and re-opens its connection when told it stalled
(``reopen``), after which it calls :meth:`DeliveryProbe.kick` to prove the new
connection at once.

A connection that stopped delivering: readiness answers 503 naming it (the broker's
``ping`` calls :meth:`DeliveryProbe.check`), one line is logged, it is re-opened
(the broker then reports a gap and the rooms re-read), and one line is logged when
it delivers again.  A token that could not even be sent (the broker's server is
down) proves nothing either way: the broker's own checks report that.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from .base import BrokerUnavailable

log = logging.getLogger(__name__)

#: Seconds between two proofs, and how long an echo may take (brokers' URL parameter
#: ``probe_every``).  A connection that stopped delivering is found within twice this.
PROBE_EVERY = 5.0
#: The range ``probe_every`` may take: fast enough for a test, slow enough for any link.
PROBE_EVERY_RANGE = (0.1, 60.0)


def parse_probe_every(raw: str | None) -> float:
    """A broker URL's ``probe_every`` (its text, or None when absent: the default);
    ValueError naming the parameter and its range otherwise."""
    if raw is None:
        return PROBE_EVERY
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    low, high = PROBE_EVERY_RANGE
    if not low <= seconds <= high:  # NaN fails too
        raise ValueError(f"probe_every must be a number of seconds from {low:g} to {high:g}")
    return seconds


class NotDelivering(BrokerUnavailable):
    """The first proof at start sent its token and heard nothing back: the connection
    receives, but not what is published (a broker may know why, and say so)."""


class DeliveryProbe:
    def __init__(
        self,
        name: str,
        send: Callable[[str], Awaitable[None]],
        reopen: Callable[[], None],
        can_send: Callable[[], bool],
        every: float = PROBE_EVERY,
    ):
        #: what the log lines and readiness call the connection, e.g. "redis pub/sub"
        self.name = name
        self.every = every
        self._send = send
        self._reopen = reopen
        self._can_send = can_send
        # Random per instance: several processes may share the probe's channel.
        self._prefix = f"svc-probe-{secrets.token_hex(6)}-"
        self._count = 0
        self._waiting: tuple[str, asyncio.Future] | None = None
        self._kicked: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        #: why the connection is not counted as delivering (None: it is)
        self.problem: str | None = None
        #: for /metrics: how often a connection was found not delivering
        self.stalls = 0

    # -- what the transport calls ---------------------------------------------------

    def heard(self, token: str) -> None:
        """A token arrived on the receiving connection (any token: another process's
        is ignored)."""
        waiting = self._waiting
        if waiting is not None and waiting[0] == token and not waiting[1].done():
            waiting[1].set_result(None)

    def kick(self) -> None:
        """Prove now (the connection was just re-opened): readiness need not wait."""
        if self._kicked is not None:
            self._kicked.set()

    def check(self) -> None:
        """Raise Unavailable while the connection is not counted as delivering."""
        if self.problem is not None:
            raise BrokerUnavailable(self.problem)

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Prove once, then every ``every`` s.  Raises NotDelivering if the token was sent
        and never came back, Unavailable if it could not even be sent."""
        delivered = await self.prove()
        if delivered is False:
            raise NotDelivering(f"not delivering: no echo in {self.every:g} s")
        if delivered is None:
            raise BrokerUnavailable(f"not delivering: no echo in {self.every:g} s")
        self._kicked = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"svc-probe {self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=self.every + 1)

    async def prove(self) -> bool | None:
        """One round trip: True if the token came back within ``every`` s, False if not,
        None if it could not be sent (which proves nothing about delivery)."""
        self._count += 1
        token = f"{self._prefix}{self._count}"
        echo = asyncio.get_running_loop().create_future()
        self._waiting = (token, echo)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            try:
                await asyncio.wait_for(self._send(token), self.every)
            except Exception as exc:  # noqa: BLE001 - the server is down: not our verdict
                log.debug("%s: probe not sent (%s)", self.name, exc)
                return None
            remaining = self.every - (loop.time() - started)
            try:
                await asyncio.wait_for(asyncio.shield(echo), max(remaining, 0.001))
            except asyncio.TimeoutError:
                return False
            return True
        finally:
            self._waiting = None

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._kicked.wait(), self.every)
            except asyncio.TimeoutError:
                pass
            self._kicked.clear()
            if not self._can_send():
                continue  # the connection is down: the broker says so itself
            try:
                delivered = await self.prove()
            except Exception as exc:  # a bug must not end the proofs for good
                asyncio.get_running_loop().call_exception_handler(
                    {"message": f"{self.name}: probe failed", "exception": exc}
                )
                continue
            if delivered is None:
                continue
            if delivered:
                if self.problem is not None:
                    log.info("%s delivers again", self.name)
                    self.problem = None
                continue
            if self.problem is None:  # one line per episode, however long it lasts
                self.problem = f"not delivering: no echo in {self.every:g} s"
                self.stalls += 1
                log.warning("%s is %s; re-opening it", self.name, self.problem)
            self._reopen()
