"""One WebSocket in one room: its write path and bounded backlog, its frame budget (shared
by the user's sockets in the room: budget.py), its heartbeat, its closing.

One heartbeat for all of a hub's sockets (:func:`beat_forever`), instead of aiohttp's timer
per socket: aiohttp's ``WebSocketResponse(heartbeat=)`` keeps a timer handle per socket and
re-arms it (a ``call_soon``) on every frame received: ~400 B of an idle socket and a timer
per join (bench/memory_per_socket.py).  Here one task visits every connection ``SWEEPS``
times per interval, a slice at a time: a client quiet for ``heartbeat`` seconds gets a ping,
one that leaves a ping unanswered for half of that is dropped
(:meth:`Connection.check_alive`).  A dead peer is found within 1.75 intervals (aiohttp: 1.5).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable

from aiohttp import WSCloseCode, web

from . import frames, send_budget
from .budget import FrameBudget, budget_for
from .limits import RoomSettings, RoomStats
from .send_budget import SendBudget
from .token_expiry import ISSUED_BEFORE_PASSWORD, TOKEN_CLOSE, TokenLife

#: Heartbeat visits per interval: the precision of the ping and drop times.
SWEEPS = 4
#: The shortest pause between two slices of a sweep (:func:`beat_forever`).
SLICE = 0.05


class Shared:
    """What every connection of a hub holds alike: one object for them all, not four
    references in each and a bound ``spawn`` made per socket (~60 B of every idle one)."""

    __slots__ = ("limits", "spawn", "stats", "send_budget")

    def __init__(
        self,
        limits: RoomSettings,
        spawn: Callable[[Coroutine], asyncio.Task],
        stats: RoomStats,
        send_budget: SendBudget,
    ):
        self.limits = limits
        self.spawn = spawn
        self.stats = stats
        #: the bytes waiting for every slow socket of the hub, together (send_budget.py)
        self.send_budget = send_budget


class Connection:
    """Frames sent before the welcome are held, then follow it: all but the profile changes
    the welcome showed already (the docs promise a version shown is never sent again)."""

    __slots__ = (
        "room_id",
        "_shared",
        "user_id",
        "ws",
        "closed",
        "presence_mark",
        "seq_mark",
        "_transport",
        "_held",
        "_held_bytes",
        "_held_about",
        "welcomed",
        "_budget",
        "_strikes",
        "_close_later",
        "seen",
        "_pinged",
        "tokens",
    )

    def __init__(self, room_id: str, user_id: str | None, shared: Shared):
        self.room_id = room_id
        self.user_id = user_id
        self._shared = shared
        self.ws: web.WebSocketResponse | None = None
        self.closed = False
        #: The last presence change its welcome reflects (None: no welcome yet); see presence.py.
        self.presence_mark: int | None = None
        #: The last room event (its seq) its welcome reflects: numbered frames up to it are
        #: not sent to it (its welcome, or a resume's replay, has them).
        self.seq_mark = -1
        self._transport: asyncio.Transport | None = None
        self._held: list[bytes] | None = []
        self._held_bytes = 0
        #: (index in _held, user id, version) of the held profile_updated frames
        self._held_about: list[tuple[int, str, int]] | None = None
        #: member id → version its welcome shows (set by its room, dropped once started)
        self.welcomed: dict[str, int] | None = None
        #: found at the first frame the client sends: an idle socket never needs one
        self._budget: FrameBudget | None = None
        self._strikes = 0
        self._close_later: tuple[int, str] | None = None
        #: loop time of the last frame from the client (any frame proves it alive)
        self.seen = 0.0
        #: loop time of the last ping the heartbeat sent, 0.0 before the first
        self._pinged = 0.0
        #: auth on: the tokens it joined with, their issue stamp and expiry (token_expiry.py)
        self.tokens: TokenLife | None = None

    def send(self, frame: bytes, about: tuple[str, int] | None = None) -> None:
        """Write ``frame`` now, without waiting; close with 1013 if the backlog is full.
        ``about``: (user id, version) of a profile_updated frame (see ``start``)."""
        if self.closed:
            return
        held = self._held
        if held is not None:
            if self._held_bytes > self._shared.limits.max_backlog:
                self.close(WSCloseCode.TRY_AGAIN_LATER, "backlog full")
            else:
                if about is not None:
                    if self._held_about is None:
                        self._held_about = []
                    self._held_about.append((len(held), *about))
                held.append(frame)
                self._held_bytes += len(frame)
            return
        # frames.write, inlined to learn what was already waiting: a socket that keeps up
        # (nothing waiting) costs the send budget nothing.
        transport = self._transport
        if transport.is_closing():
            self.closed = True
            return
        waiting = transport.get_write_buffer_size()
        if waiting > self._shared.limits.max_backlog:
            self.close(WSCloseCode.TRY_AGAIN_LATER, "backlog full")
            return
        transport.write(frame)
        if waiting:
            self._shared.send_budget.note(self, waiting + len(frame))

    def hold_again(self) -> None:
        """Drop what was held for a welcome that will not be sent (a resume that failed:
        the normal welcome that replaces it shows all of that)."""
        if self._held is not None:
            self._held, self._held_bytes, self._held_about = [], 0, None

    def unsent(self) -> int:
        """Bytes written to the socket that it has not taken yet (closing or not)."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def abort(self) -> None:
        """Drop the connection and what waits to be sent on it, now (send_budget.py)."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def start(self, ws: web.WebSocketResponse, transport: asyncio.Transport, welcome: bytes):
        """Send the welcome, then whatever arrived while it was being prepared."""
        self.ws, self._transport = ws, transport
        self.seen = asyncio.get_running_loop().time()
        if self._close_later is not None:  # closed (overflow, shutdown) before it could start
            self._shared.spawn(self.aclose(*self._close_later))
            return
        held, self._held = self._held, None
        about, self._held_about = self._held_about, None
        # Kept while frames wait in its room's queue (Room._send_now checks them too); the
        # room drops it once they are out (Room.started, Room._send_presence).
        welcomed = self.welcomed
        if about and welcomed:
            # A change shown to the room while this welcome was read: the welcome may
            # show that version, or a later one, already.
            shown = {i for i, user_id, version in about if welcomed.get(user_id, -1) >= version}
            held = [frame for i, frame in enumerate(held) if i not in shown]
        self.send(welcome)
        for frame in held:
            self.send(frame)

    def allow_frame(self, now: float) -> bool:
        """The user's budget in this room; False when this frame is over the rate."""
        budget = self._budget
        if budget is None:
            budget = self._budget = budget_for(self._shared.limits, self.room_id, self.user_id)
        if budget.take(now):
            self._strikes = 0
            return True
        self._strikes += 1
        if self._strikes > self._shared.limits.flood_strikes:
            self.close(WSCloseCode.POLICY_VIOLATION, "too many frames")
        return False

    def check_alive(self, now: float, interval: float) -> None:
        """The heartbeat's visit: ping a client quiet for ``interval`` s; drop one that
        has not answered a ping for half of that (a peer gone without a FIN)."""
        if self.closed or self._transport is None:
            return
        if self._pinged > self.seen:  # a ping is waiting for its pong
            if now - self._pinged >= interval / 2:
                self.closed = True
                self._transport.abort()  # dead: no Close frame, nothing to flush
        elif now - self.seen >= interval:
            if frames.write(self._transport, frames.PING, self._shared.limits.max_backlog):
                self._pinged = now

    def close(self, code: int, reason: str) -> None:
        """Stop sending and close in the background (the caller may be mid fan-out)."""
        if self.closed:
            return
        self.closed = True
        self._held = None
        if code == WSCloseCode.TRY_AGAIN_LATER:
            if reason == send_budget.REASON:
                self._shared.stats.closed_budget += 1
            else:
                self._shared.stats.closed_backlog += 1
        elif code == WSCloseCode.POLICY_VIOLATION:
            self._shared.stats.closed_flood += 1
        elif code == TOKEN_CLOSE:
            if reason == ISSUED_BEFORE_PASSWORD:
                self._shared.stats.closed_password_set += 1
            else:
                self._shared.stats.closed_token_expired += 1
        if self.ws is None:
            self._close_later = (code, reason)
        else:
            self._shared.spawn(self.aclose(code, reason))

    async def aclose(self, code: int, reason: str) -> None:
        self.closed = True
        ws, transport = self.ws, self._transport
        if ws is None:
            self._close_later = (code, reason)
            return
        if ws.closed:
            return
        timeout = self._shared.limits.close_timeout
        # drain=False: a client that stopped reading would make draining wait forever.
        try:
            await asyncio.wait_for(
                ws.close(code=code, message=reason.encode(), drain=False), timeout
            )
        except (asyncio.TimeoutError, ConnectionError):
            pass
        if transport is not None and not transport.is_closing():
            transport.close()
        # close() still flushes the backlog; a peer that never reads must not pin it.
        asyncio.get_running_loop().call_later(timeout, _abort_if_stuck, transport)


def _abort_if_stuck(transport: asyncio.Transport | None) -> None:
    if transport is not None and transport.get_write_buffer_size() > 0:
        transport.abort()


async def beat_forever(limits: RoomSettings, connections: Callable[[], Iterable[Connection]]):
    """The heartbeat of every connection ``connections()`` yields (see the module's text).

    Each sweep is spread over its period in slices at least ``SLICE`` seconds apart, not done
    in one go: one that pinged 8,000 sockets gone quiet together held the loop for ~50 ms
    (everything else waited, a fan-out too), and their pongs came back together; in slices
    the longest hold is a few ms (bench/heartbeat_stall.py)."""
    loop = asyncio.get_running_loop()
    while True:
        interval = limits.heartbeat  # read each time: tests lower it on a live app
        period = interval / SWEEPS
        # The connections of the sweep's start: one that joins meanwhile is visited by the
        # next sweep, long before it can have been quiet for an interval.
        visit = list(connections())
        slices = max(1, min(len(visit), int(period / SLICE)))
        for k in range(slices):
            await asyncio.sleep(period / slices)
            now = loop.time()
            for conn in visit[k::slices]:
                conn.check_alive(now, interval)
