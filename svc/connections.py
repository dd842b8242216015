"""What a connection may cost before it has sent a request: the listening socket's gate.

- ``MAX_CONNECTIONS``: past it a new connection is accepted, answered ``503`` with
  ``Connection: close`` and closed at once, before aiohttp builds anything for it.
  Accepting beats not accepting: a connection left in the kernel's queue waits for
  a slot it may never get (the client sees a hang, not a refusal), and it still
  holds a kernel buffer.  So the file descriptors never run out under a flood, and
  the connections already open (a ``GET /`` among them) are served as before.
- ``HEADER_TIMEOUT`` is aiohttp's ``keepalive_timeout`` (set in :mod:`svc.app`):
  its timer starts when the connection opens and again after each response, is never
  pushed back by bytes that arrive, and closes a connection still waiting for a
  complete head when it fires.  A head trickled a header every few seconds is so
  closed too.  :class:`GatedHandler` counts those closes.
- When file descriptors run out all the same (something else holds them), asyncio
  logs "socket.accept() out of system resource" with a traceback once per queued
  connection, up to the backlog (2,048) per accept attempt, every second: 108 MB of
  log in 20 s.  :func:`quiet_accept_errors` makes that one line per episode.

Every refusal and every accept error is counted (``/metrics``), and each kind is
logged once per episode: an episode ends after :data:`EPISODE_QUIET` seconds
without one, so a flood costs one line, not a line per refusal.

The gate is a protocol factory, so it sits where the listening socket is made:
:func:`gated_loop` makes the event loop ``python -m svc`` runs (uvloop's or asyncio's,
``EVENT_LOOP``), whose ``create_server`` (the one aiohttp's site calls) wraps aiohttp's
factory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)

#: Seconds without a refusal (or an accept error) that end an episode.
EPISODE_QUIET = 10.0
#: File descriptors the default MAX_CONNECTIONS leaves for everything else: the
#: listening socket, logs, the storage and broker pools, bcrypt's threads, a refused
#: connection's own descriptor while it is being closed.
FD_MARGIN = 64
#: The least MAX_CONNECTIONS derived from a tiny file limit.
MIN_DEFAULT = 16
#: A connection whose descriptor is this close to the file limit says the process is about
#: to run out: uvloop (libuv) then drops what it cannot accept without telling anyone, so
#: this is the one sign an operator gets on either loop.
NEAR_FD_LIMIT = 16


def _file_limit() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def default_max_connections() -> int:
    """What the process's file limit (``RLIMIT_NOFILE``, soft) allows, less a margin."""
    soft = _file_limit()
    if soft is None:
        return 65536
    return max(MIN_DEFAULT, soft - FD_MARGIN)


@dataclass
class ConnectionStats:
    """Counted by the gate, read by ``/metrics`` (plain ints, on the loop)."""

    #: connections open now (admitted, not yet lost)
    open: int = 0
    #: connections refused because MAX_CONNECTIONS were open
    refused: int = 0
    #: connections closed with no complete request head within HEADER_TIMEOUT
    header_timeouts: int = 0
    #: accept() calls that failed for want of a descriptor or memory (EMFILE, ENFILE, ...)
    accept_errors: int = 0
    #: connections admitted on one of the last NEAR_FD_LIMIT descriptors of the file limit
    near_file_limit: int = 0


class Episodes:
    """One log line when a run of events starts; quiet until EPISODE_QUIET s without one."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = float("-inf")

    def starts(self, now: float) -> bool:
        starting = now - self._last >= EPISODE_QUIET
        self._last = now
        return starting


def _refusal() -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "busy",
                "message": "too many connections are open (MAX_CONNECTIONS); "
                "try again after Retry-After",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


#: The whole answer to a refused connection, built once.
REFUSAL = _refusal()


class Gate:
    """The protocol factory of the listening socket: aiohttp's handlers, counted."""

    def __init__(self, server: web.Server, stats: ConnectionStats, limit: int):
        self._server = server
        self.stats = stats
        self.limit = limit
        #: refused connections still being closed (Refused)
        self.lingering = 0
        self._episodes = Episodes()
        self.file_limit = _file_limit()
        #: a descriptor at or above this is one of the last NEAR_FD_LIMIT
        self.fd_ceiling = None if self.file_limit is None else self.file_limit - NEAR_FD_LIMIT
        self._fd_episodes = Episodes()

    def __call__(self) -> GatedHandler:
        # As aiohttp's Server.__call__ does: the handler gets the server's arguments.
        server = self._server
        return GatedHandler(self, server, loop=server._loop, **server._kwargs)

    def admit(self) -> bool:
        """Decided when the connection is made, not when the factory is called: asyncio
        calls the factory for a whole batch of accepted sockets before any of them is
        made, so only here is the count exact."""
        stats = self.stats
        if stats.open < self.limit:
            stats.open += 1
            return True
        stats.refused += 1
        if self._episodes.starts(asyncio.get_running_loop().time()):
            log.warning(
                "MAX_CONNECTIONS (%d) connections are open: refusing new ones with 503 "
                "(svc_connections_refused_total counts them; one line per episode)",
                self.limit,
            )
        return False

    def release(self) -> None:
        self.stats.open -= 1

    def check_descriptor(self, transport: asyncio.BaseTransport) -> None:
        """One line per episode when connections get the last descriptors of the file limit
        (MAX_CONNECTIONS set above what it allows): past them the kernel's queue is dropped,
        in silence on uvloop, with asyncio's accept errors (quiet_accept_errors) on asyncio."""
        if self.fd_ceiling is None:
            return
        sock = transport.get_extra_info("socket")
        fd = -1 if sock is None else sock.fileno()
        if fd < self.fd_ceiling:
            return
        self.stats.near_file_limit += 1
        if self._fd_episodes.starts(asyncio.get_running_loop().time()):
            log.error(
                "cannot accept connections much longer: a connection got descriptor %d of "
                "the file limit %d (ulimit -n); new ones wait or are dropped until some close. "
                "Set MAX_CONNECTIONS below the file limit, or raise the limit "
                "(svc_connections_near_file_limit_total counts them; one line per episode)",
                fd,
                self.file_limit,
            )


class Refused(asyncio.Protocol):
    """A refused connection: the 503, then a close that the client can read it before.

    Closed with the client's request still unread, the kernel would send a reset, and
    a client that sent its request at once (most do) would lose the 503 to it.  So the
    answer is followed by a FIN, what the client sends is read and dropped, and the
    connection closes at its EOF or after :data:`REFUSAL_LINGER` seconds.  At most
    :data:`MAX_LINGERING` linger at once (their descriptors come out of the margin);
    past that a refused connection is closed at once.
    """

    def __init__(self, transport: asyncio.Transport, gate: Gate):
        self._gate = gate
        self._timer = None
        transport.write(REFUSAL)
        if gate.lingering >= MAX_LINGERING:
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:  # the client has gone already (ENOTCONN): nothing to wait for
            transport.abort()
            return
        gate.lingering += 1
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(REFUSAL_LINGER, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # dropped: nothing of it is read as a request

    def eof_received(self) -> bool:
        return False  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._gate.lingering -= 1


#: Seconds a refused connection may take to read its 503 and close.
REFUSAL_LINGER = 1.0
#: Refused connections lingering at once, at most (each holds a descriptor).
MAX_LINGERING = FD_MARGIN // 2


class GatedHandler(web.RequestHandler):
    """aiohttp's connection handler, admitted by the gate, its head timeouts counted."""

    __slots__ = ("_gate", "_admitted")

    def __init__(self, gate: Gate, manager: web.Server, **kwargs):
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._gate.check_descriptor(transport)
        if not self._gate.admit():
            # Nothing of aiohttp's starts for it: the answer, and a close.
            transport.set_protocol(Refused(transport, self._gate))
            return
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._gate.release()
        super().connection_lost(exc)

    def _process_keepalive(self) -> None:
        # aiohttp's keep-alive timer (HEADER_TIMEOUT): it closes the connection when no
        # complete head has come since it was armed.
        waiting = self._waiter is not None and not self._waiter.done()
        super()._process_keepalive()
        if waiting and self._force_close:
            self._gate.stats.header_timeouts += 1


def gated_loop(
    base: type[asyncio.AbstractEventLoop], stats: ConnectionStats, limit: int
) -> asyncio.AbstractEventLoop:
    """A new loop of class ``base`` (svc.loop.loop_class) whose listening sockets go through
    a :class:`Gate`, and whose accept errors are one line per episode
    (:func:`quiet_accept_errors`; uvloop's own accept does not report them at all)."""

    class GatedLoop(base):
        async def create_server(self, protocol_factory, *args, **kwargs):
            if isinstance(protocol_factory, web.Server):  # aiohttp's site: the service itself
                protocol_factory = Gate(protocol_factory, stats, limit)
            return await super().create_server(protocol_factory, *args, **kwargs)

    loop = GatedLoop()
    quiet_accept_errors(loop, stats)
    return loop


ACCEPT_ERROR = "socket.accept() out of system resource"


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, stats: ConnectionStats) -> None:
    """asyncio reports a failed accept() once per connection waiting in the backlog, with
    a traceback each (it retries a second later): count them, and log one line per episode."""
    episodes = Episodes()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if context.get("message") != ACCEPT_ERROR:
            loop.default_exception_handler(context)
            return
        stats.accept_errors += 1
        if episodes.starts(loop.time()):
            log.error(
                "cannot accept connections: %s; retrying each second "
                "(svc_accept_errors_total counts them; one line per episode)",
                context.get("exception"),
            )

    loop.set_exception_handler(handler)
