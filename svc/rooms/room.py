"""A room of this process: its connections, its members, its presence batch, its welcome.

A ``Room`` owns its state; the hub only routes to it (which room, which users are where)
and never edits a room's fields.  What a room needs from above it is handed to it when it is
made (storage, the limits, the counters, the hub's ``spawn``, the :class:`ChangeOrder` whose
baseline its frames move), never a way back into the hub.

Presence batching: a room's joins and leaves within one window go out as one frame.  A
thousand people joining at once then cost each member a handful of frames, not a thousand.
The latest state of each user wins, in arrival order.  A connection hears only what its
welcome did not already show: every change is numbered as it arrives, a connection's
welcome records the last number it reflects (``Connection.presence_mark``), and a
connection whose welcome is still to come hears nothing (the welcome will show it all).  So
a joiner is never told of its own arrival, and nobody hears of one joiner twice.
Connections that were welcomed before the window opened, nearly all of them, share one
frame.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine

from ..broker import Change, PresenceChange
from ..serialize import Member
from ..storage import Storage
from . import frames
from .connection import Connection
from .limits import RoomSettings, RoomStats
from .member_set import MemberSet
from .ordering import ChangeOrder
from .welcome_cache import WelcomeCache

# Its name from before presence batching moved into the room: log filters keep working.
log = logging.getLogger("svc.rooms.presence")

#: While storage cannot answer, presence retries back off up to this many seconds.
MAX_RETRY_DELAY = 5.0

Spawn = Callable[[Coroutine], asyncio.Task]
ReadMembers = Callable[[list[str]], Awaitable[list[Member]]]


class Room:
    __slots__ = (
        "id",
        "connections",
        "members",
        "ready",
        "_local_users",
        "_early",
        "_live",
        "_welcome_cache",
        "_limits",
        "_stats",
        "_storage",
        "_spawn",
        "_order",
        "_with_email",
        "_pending",
        "_numbered",
        "_flush",
        "_retry_delay",
    )

    def __init__(
        self,
        room_id: str,
        limits: RoomSettings,
        stats: RoomStats,
        storage: Storage,
        spawn: Spawn,
        order: ChangeOrder,
        with_email: bool,
    ):
        self.id = room_id
        self.connections: list[Connection] = []
        #: users present in the room service-wide (read them; the room changes them)
        self.members = MemberSet()
        #: set once the members are read (or the read failed: joiners then start over)
        self.ready = asyncio.Event()
        #: this process's connections per user
        self._local_users: dict[str, int] = {}
        #: presence changes that arrived while members were being read, replayed after
        self._early: list[PresenceChange] | None = []
        self._live = True
        self._welcome_cache = WelcomeCache()
        self._limits = limits
        self._stats = stats
        self._storage = storage
        self._spawn = spawn
        self._order = order
        self._with_email = with_email
        #: presence not yet sent: user → (present, number), in arrival order
        self._pending: dict[str, tuple[bool, int]] = {}
        self._numbered = 0
        self._flush: asyncio.TimerHandle | asyncio.Task | None = None
        self._retry_delay = 0.0

    # -- connections ---------------------------------------------------------------------

    def join(self, conn: Connection) -> bool:
        """Add ``conn``; True when it is its user's first connection here."""
        self.connections.append(conn)
        user_id = conn.user_id
        if user_id is None:
            return False
        held = self._local_users.get(user_id, 0) + 1
        self._local_users[user_id] = held
        return held == 1

    def leave(self, conn: Connection) -> tuple[bool, bool]:
        """Remove ``conn``: (whether it was here, whether it was its user's last here)."""
        if conn not in self.connections:
            return False, False
        self.connections.remove(conn)
        user_id = conn.user_id
        if user_id is None:
            return True, False
        left = self._local_users[user_id] - 1
        if left:
            self._local_users[user_id] = left
            return True, False
        del self._local_users[user_id]
        return True, True

    def close_sockets_of(self, user_id: str, code: int, reason: str) -> None:
        if user_id in self._local_users:
            for conn in list(self.connections):
                if conn.user_id == user_id:
                    conn.close(code, reason)

    # -- loading, and holding presence while members are read ---------------------------------

    @property
    def loading(self) -> bool:
        """Members are being read: presence changes are held, then replayed."""
        return self._early is not None

    def hold(self, change: PresenceChange) -> bool:
        """Keep ``change`` for after the members' read, if one is in progress."""
        if self._early is None:
            return False
        self._early.append(change)
        return True

    def start_holding(self) -> None:
        self._early = []

    def held(self) -> list[PresenceChange]:
        """What arrived during the read, in order; changes are no longer held."""
        early, self._early = self._early or [], None
        return early

    def loaded(self, members: list[str]) -> None:
        """The members read; then the held changes go through :meth:`present`, then
        :meth:`open`."""
        self.members.update(members)

    def open(self) -> None:
        self._pending.clear()  # a new room's first connection learns all of it from its welcome
        self.ready.set()

    def drop(self) -> None:
        """The room is no longer routed to: nothing more is sent, no joiner waits."""
        self._live = False
        self.cancel_presence()
        self.ready.set()  # a joiner waiting on a room that failed to load must not hang

    # -- what is shown -------------------------------------------------------------------------

    def send(self, frame: bytes, skip: Connection | None = None) -> None:
        for conn in self.connections:
            if conn is not skip:
                conn.send(frame)
        self._stats.frames_sent += len(self.connections) - (skip is not None)

    def show(self, change: Change) -> None:
        """A change of a member that moves them forward: no welcome may show the old record,
        and the room hears of it (unless deleted: their sockets are closed instead)."""
        self._welcome_cache.forget()
        if change.deleted:
            return
        # A joiner whose welcome is being read may show this version already (Connection.start).
        frame = frames.profile_updated(self.id, change.user, self._with_email)
        about = (change.user_id, change.version)
        for conn in self.connections:
            conn.send(frame, about)
        self._stats.frames_sent += len(self.connections)

    async def welcome(self, conn: Connection, read: ReadMembers) -> bytes:
        """``conn``'s welcome frame; ``read`` reads the member records the cache lacks."""
        ids = self.members.first(self._limits.welcome_members)
        conn.presence_mark = self._numbered  # presence frames carry only what follows
        head = {
            "type": "welcome",
            "room": self.id,
            "connection_id": conn.id,
            "member_count": len(self.members),
        }
        members, conn.welcomed = await self._welcome_cache.listing(ids, read, self._with_email)
        return frames.encode_with_list(head, "members", members)

    # -- presence ------------------------------------------------------------------------------

    def present(self, user_id: str, present: bool) -> None:
        """``user_id`` joined (or left) the room service-wide; batched for the next frame."""
        if present:
            self.members.add(user_id)
        else:
            self.members.discard(user_id)
        self._pending.pop(user_id, None)  # keep arrival order: the latest state goes last
        self._numbered += 1
        self._pending[user_id] = (present, self._numbered)

    def schedule_presence(self, delay: float | None = None) -> None:
        if self._flush is None and self._pending:
            self._flush = asyncio.get_running_loop().call_later(
                self._limits.presence_window if delay is None else delay, self._start_send
            )

    def cancel_presence(self) -> None:
        if isinstance(self._flush, asyncio.TimerHandle):
            self._flush.cancel()
        self._flush = None

    def _start_send(self) -> None:
        self._flush = self._spawn(self._send_presence())

    async def _send_presence(self) -> None:
        pending, self._pending = self._pending, {}
        retry = None
        try:
            if not self._live:
                return
            joined = [user_id for user_id, (present, _) in pending.items() if present]
            try:
                users = await frames.member_records(self._storage, joined)
            except Exception as exc:  # noqa: BLE001 - storage trouble: retry, backing off
                self._pending = {**pending, **self._pending}
                retry = self._back_off(exc)
                return
            if self._retry_delay:
                log.info("presence: room %s is sending again", self.id)
                self._retry_delay = 0.0
            self._order.shown(users, self.members)
            self._fan_out(pending, {user.id: user for user in users})
            self._stats.presence_batches += 1
        finally:
            self._flush = None
            if self._live:
                self.schedule_presence(retry)

    def _fan_out(self, pending: dict[str, tuple[bool, int]], records: dict) -> None:
        if not pending:
            return
        first = min(number for _, number in pending.values())
        frames_after: dict[int, bytes | None] = {}  # a mark → the frame of what follows it
        for conn in self.connections:
            mark = conn.presence_mark
            if mark is None:
                continue  # its welcome, still to come, will show all of this
            key = first - 1 if mark < first else mark
            if key not in frames_after:
                news = {user: state for user, state in pending.items() if state[1] > key}
                frames_after[key] = self._presence_frame(news, records) if news else None
            frame = frames_after[key]
            if frame is not None:
                conn.send(frame)
                self._stats.frames_sent += 1

    def _back_off(self, exc: Exception) -> float:
        if not self._retry_delay:  # one line per outage, not one per attempt
            log.warning(
                "presence: cannot read joined users of room %s (%s); retrying", self.id, exc
            )
        window = self._limits.presence_window
        self._retry_delay = min(max(self._retry_delay * 2, window * 2), MAX_RETRY_DELAY)
        return self._retry_delay

    def _presence_frame(self, news: dict[str, tuple[bool, int]], records: dict) -> bytes:
        return frames.encode_with_users(
            {
                "type": "presence",
                "room": self.id,
                "left": [user_id for user_id, (present, _) in news.items() if not present],
                "member_count": len(self.members),
            },
            "joined",
            [records[user_id] for user_id, (present, _) in news.items() if present],
            self._with_email,
        )
