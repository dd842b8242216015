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

Event numbers (resume): where the broker numbers room events, the room applies them in
number order (:class:`.sequence.Sequence`) and every frame carries the ``seq`` of the last
event it shows.  A frame is never sent before an earlier event's frame, so a client that
keeps the last ``seq`` it received holds everything up to it: a message or change that
comes while presence waits in its window waits behind it (the queue; the window is cut
short once a quarter of a socket's backlog waits behind it), and a presence frame holds only
the transitions numbered before the next queued frame.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine

from ..broker import Change, PresenceChange
from ..serialize import Member
from ..storage import Storage
from . import frames
from .connection import Connection
from .limits import RoomSettings, RoomStats
from .member_set import MemberSet
from .ordering import ChangeOrder
from .sequence import Sequence
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
        "sequence",
        "_queue",
        "_queued_bytes",
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
        #: the room's event numbers, where the broker gives them
        self.sequence = Sequence(self._forget_seq_marks)
        #: what waits to be sent, in order: presence segments (user → (present, number,
        #: seq), in arrival order; the latest state of a user wins) and frames behind them
        self._queue: list[dict[str, tuple[bool, int, int | None]] | tuple] = []
        #: bytes of the frames in the queue
        self._queued_bytes = 0
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
        self._queue.clear()  # a new room's first connection learns all of it from its welcome
        self.ready.set()

    def drop(self) -> None:
        """The room is no longer routed to: nothing more is sent, no joiner waits."""
        self._live = False
        self.cancel_presence()
        self.sequence.cancel()
        self.ready.set()  # a joiner waiting on a room that failed to load must not hang

    # -- what is shown -------------------------------------------------------------------------

    @property
    def with_email(self) -> bool:
        return self._with_email

    @property
    def seq(self) -> int | None:
        """The number a frame sent now carries (None: the broker numbers nothing)."""
        return None if self.sequence.epoch is None else self.sequence.seq

    def numbered(self, epoch: str | None, seq: int | None, apply) -> None:
        """Run ``apply`` when the event numbered ``seq`` is next (see :class:`Sequence`)."""
        self.sequence.offer(epoch, seq, apply)

    def unnumbered(self, apply) -> None:
        """Run ``apply`` (an event the broker could not number) after the events waiting
        for their turn now (see :meth:`Sequence.then`)."""
        self.sequence.then(apply)

    def send(
        self,
        frame: bytes,
        skip: Connection | None = None,
        about: tuple[str, int] | None = None,
        numbered: bool = True,
    ) -> None:
        """Send ``frame`` (of the event numbered ``self.seq``) to the welcomed connections,
        after whatever waits in the queue.  ``numbered=False``: a repair (a record a
        welcome read found newer, a re-read after the broker lost events), not an event of
        the history: it carries no ``seq`` and goes to every welcomed connection."""
        seq = self.seq if numbered else None
        if self._retry_delay:
            # Storage is down and presence backs off: messages and changes must not wait for
            # it, nor cut its back-off short (the one place frames leave out of order).
            self._send_now(frame, skip, about, seq)
        elif self._queue or self._flush is not None:
            # Behind what waits, repairs too: a change shown now must not overtake the
            # versions queued before it.
            self._queue.append((frame, skip, about, seq))
            self._queued_bytes += len(frame)
            if (
                isinstance(self._flush, asyncio.TimerHandle)
                and self._queued_bytes > self._limits.max_backlog // 4
            ):
                # Presence waits in its window, and what waits behind it would leave as one
                # burst a reader that keeps up could not take: the window ends now.  (Cut at
                # every frame instead, a chatty room's presence is barely coalesced.)
                self._flush.cancel()
                self._start_send()
        else:
            self._send_now(frame, skip, about, seq)

    def _send_now(self, frame, skip, about, seq) -> None:
        sent = 0
        for conn in self.connections:
            if conn is skip or conn.presence_mark is None:
                continue  # not welcomed yet: its welcome will show this
            if seq is not None and seq <= conn.seq_mark:
                continue  # its welcome or its replay has it
            welcomed = conn.welcomed
            if about is not None and welcomed and welcomed.get(about[0], -1) >= about[1]:
                continue  # queued while its welcome was read: the welcome showed it
            conn.send(frame, about)
            sent += 1
        self._stats.frames_sent += sent

    def started(self, conn: Connection) -> None:
        """``conn``'s welcome went out: what its welcome showed is needed only while frames
        queued before it wait (then _send_presence drops it)."""
        if not self._queue and self._flush is None:
            conn.welcomed = None

    def _forget_welcomed(self) -> None:
        for conn in self.connections:
            if conn.ws is not None:
                conn.welcomed = None

    def show(self, change: Change, numbered: bool = True) -> None:
        """A change of a member that moves them forward: no welcome may show the old record,
        and the room hears of it (unless deleted: their sockets are closed instead)."""
        self._welcome_cache.forget()
        if change.deleted:
            return
        # A joiner whose welcome is being read may show this version already (Connection.start).
        seq = self.seq if numbered else None
        frame = frames.profile_updated(self.id, change.user, self._with_email, seq)
        self.send(frame, about=(change.user_id, change.version), numbered=numbered)

    def mark(self, conn: Connection) -> None:
        """``conn``'s welcome reflects the room as it is now: it hears only what follows."""
        conn.presence_mark = self._numbered  # presence frames carry only what follows
        seq = self.seq
        conn.seq_mark = -1 if seq is None else seq

    def _forget_seq_marks(self) -> None:
        """The broker lost the room's history: numbers start over in a new epoch."""
        for conn in self.connections:
            conn.seq_mark = -1
        for item in self._queue:
            if isinstance(item, tuple):
                continue
            for user_id, (present, number, _) in item.items():
                item[user_id] = (present, number, None)

    async def welcome(
        self, conn: Connection, read: ReadMembers, resumed: bool | None = None
    ) -> bytes:
        """``conn``'s welcome frame; ``read`` reads the member records the cache lacks.
        ``resumed=False``: the client asked to resume and could not."""
        ids = self.members.first(self._limits.welcome_members)
        self.mark(conn)
        head = self.welcome_head(conn)
        if resumed is not None:
            head["resumed"] = resumed
        members, conn.welcomed = await self._welcome_cache.listing(ids, read, self._with_email)
        return frames.encode_with_list(head, "members", members)

    def welcome_head(self, conn: Connection) -> dict:
        head = {
            "type": "welcome",
            "room": self.id,
            # Made here, not kept on the connection (~90 B of every idle socket): a socket
            # is sent one welcome, and nothing else names it.
            "connection_id": secrets.token_urlsafe(12),
            "member_count": len(self.members),
        }
        if self.sequence.epoch is not None:
            head["epoch"], head["seq"] = self.sequence.epoch, self.sequence.seq
        return head

    # -- presence ------------------------------------------------------------------------------

    def present(self, user_id: str, present: bool) -> None:
        """``user_id`` joined (or left) the room service-wide; batched for the next frame."""
        if present:
            self.members.add(user_id)
        else:
            self.members.discard(user_id)
        queue = self._queue
        if queue and isinstance(queue[-1], dict):
            segment = queue[-1]
            segment.pop(user_id, None)  # keep arrival order: the latest state goes last
        else:
            segment = {}
            queue.append(segment)
        self._numbered += 1
        segment[user_id] = (present, self._numbered, self.seq)

    def schedule_presence(self, delay: float | None = None) -> None:
        if self._flush is None and self._queue:
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
        queue, self._queue, self._queued_bytes = self._queue, [], 0
        retry = None
        try:
            if not self._live:
                return
            segments = [item for item in queue if isinstance(item, dict)]
            joined = list(
                {user: None for seg in segments for user, state in seg.items() if state[0]}
            )
            try:
                users = await frames.member_records(self._storage, joined)
            except Exception as exc:  # noqa: BLE001 - storage trouble: retry, backing off
                # Messages and changes must not wait for storage: they go now, and the
                # presence waits for the retry (the one place frames leave out of order).
                for item in queue:
                    if isinstance(item, tuple):
                        self._send_now(*item)
                self._queue = [*segments, *self._queue]
                retry = self._back_off(exc)
                return
            if self._retry_delay:
                log.info("presence: room %s is sending again", self.id)
                self._retry_delay = 0.0
            self._order.shown(users, self.members)
            records = {user.id: user for user in users}
            for item in queue:
                if isinstance(item, dict):
                    self._fan_out(item, records)
                else:
                    self._send_now(*item)
            if segments:
                self._stats.presence_batches += 1
        finally:
            self._flush = None
            if not self._queue:
                self._forget_welcomed()
            if self._live:
                if self._queue and not any(isinstance(i, dict) for i in self._queue):
                    self._flush_frames()  # only frames came meanwhile: they need no window
                self.schedule_presence(retry)

    def _flush_frames(self) -> None:
        queue, self._queue, self._queued_bytes = self._queue, [], 0
        for item in queue:
            self._send_now(*item)
        self._forget_welcomed()

    def _fan_out(self, pending: dict[str, tuple[bool, int, int | None]], records: dict) -> None:
        if not pending:
            return
        first = min(number for _, number, _ in pending.values())
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

    def _presence_frame(self, news: dict[str, tuple[bool, int, int | None]], records) -> bytes:
        return presence_frame(self.id, news, records, len(self.members), self._with_email)


def presence_frame(
    room_id: str,
    news: dict[str, tuple[bool, int, int | None]],
    records: dict,
    member_count: int,
    with_email: bool,
) -> bytes:
    """One presence frame of ``news`` (user → (present, number, seq)): its ``seq`` is the
    last numbered transition's."""
    head = {
        "type": "presence",
        "room": room_id,
        "left": [user_id for user_id, (present, _, _) in news.items() if not present],
        "member_count": member_count,
    }
    seqs = [seq for _, _, seq in news.values() if seq is not None]
    if seqs:
        head["seq"] = max(seqs)
    joined = [records[user_id] for user_id, (present, _, _) in news.items() if present]
    return frames.encode_with_users(head, "joined", joined, with_email)
