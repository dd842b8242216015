"""The hub: rooms, presence, and every connection's bounded outgoing backlog.

One ``Hub`` per application.  It learns of profile changes and presence
changes only from storage (``subscribe`` and ``subscribe_presence``), so it
works the same on every backend: with a shared backend, a change or a join
made through another process arrives here exactly like a local one.

Fan-out cost is the point of the design.  An event is serialised and framed
(RFC 6455, unmasked, uncompressed) once per room, and the same bytes are
written straight to each connection's transport: no task, queue or coroutine
per connection.  A connection's backlog is its transport's write buffer; when
that passes ``max_backlog`` bytes, the client is not keeping up and is closed
with 1013, so it never holds up the room.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import secrets
from collections.abc import Iterable

from aiohttp import WSCloseCode, web

from .frames import (
    PONG,
    dumps,
    encode_with_users,
    error_frame,
    member_records,
    profile_tail,
    text_frame,
)
from .storage import Change, Storage
from .storage.base import PresenceChange, moves_forward

log = logging.getLogger(__name__)

#: Members listed in a welcome; GET /rooms/{room_id}/members pages the rest.
WELCOME_MEMBERS = 100
#: Presence changes within this window go out as one frame (API.md: at most 100 ms).
PRESENCE_WINDOW = 0.05
#: Largest serialised ``data`` of a client message.
MAX_MESSAGE_DATA = 8 * 1024
#: Client frames: a steady rate with a burst allowance; past it frames are refused,
#: and a client that keeps flooding is closed with 1008.
FRAME_RATE, FRAME_BURST, FLOOD_STRIKES = 50.0, 100.0, 100
#: Seconds between re-reads of the presence of every room hosted here (see Hub.reconcile).
RECONCILE_EVERY = 15.0
#: How long a closing handshake may take before the socket is dropped.
CLOSE_TIMEOUT = 5.0


class Connection:
    """One WebSocket in one room.  Frames sent before its welcome are held, then follow it."""

    __slots__ = (
        "id",
        "room_id",
        "user_id",
        "ws",
        "closed",
        "_hub",
        "_transport",
        "_held",
        "_held_bytes",
        "_tokens",
        "_last_refill",
        "_strikes",
        "_close_later",
    )

    def __init__(self, hub: Hub, room_id: str, user_id: str | None):
        self.id = secrets.token_urlsafe(12)
        self.room_id = room_id
        self.user_id = user_id
        self.ws: web.WebSocketResponse | None = None
        self.closed = False
        self._hub = hub
        self._transport: asyncio.Transport | None = None
        self._held: list[bytes] | None = []
        self._held_bytes = 0
        self._tokens = float(hub.frame_burst)
        self._last_refill = 0.0
        self._strikes = 0
        self._close_later: tuple[int, str] | None = None

    def send(self, frame: bytes) -> None:
        """Write ``frame`` now, without waiting; close with 1013 if the backlog is full."""
        if self.closed:
            return
        # The bound is on what is already waiting, so one frame bigger than the
        # bound (a crowd's presence) still goes to a client that keeps up.
        held = self._held
        if held is not None:
            if self._held_bytes > self._hub.max_backlog:
                self.close(WSCloseCode.TRY_AGAIN_LATER, "backlog full")
            else:
                held.append(frame)
                self._held_bytes += len(frame)
            return
        transport = self._transport
        if transport.is_closing():
            self.closed = True
        elif transport.get_write_buffer_size() > self._hub.max_backlog:
            self.close(WSCloseCode.TRY_AGAIN_LATER, "backlog full")
        else:
            transport.write(frame)

    def start(self, ws: web.WebSocketResponse, transport: asyncio.Transport, welcome: bytes):
        """Send the welcome, then whatever arrived while it was being prepared."""
        self.ws, self._transport = ws, transport
        if self._close_later is not None:  # closed (overflow, shutdown) before it could start
            self._hub.spawn(self.aclose(*self._close_later))
            return
        held, self._held = self._held, None
        self.send(welcome)
        for frame in held:
            self.send(frame)

    def allow_frame(self, now: float) -> bool:
        """Token bucket over client frames; False when this one is over the rate."""
        hub = self._hub
        self._tokens = min(
            hub.frame_burst, self._tokens + (now - self._last_refill) * hub.frame_rate
        )
        self._last_refill = now
        if self._tokens >= 1:
            self._tokens -= 1
            self._strikes = 0
            return True
        self._strikes += 1
        if self._strikes > hub.flood_strikes:
            self.close(WSCloseCode.POLICY_VIOLATION, "too many frames")
        return False

    def close(self, code: int, reason: str) -> None:
        """Stop sending and close in the background (the caller may be mid fan-out)."""
        if self.closed:
            return
        self.closed = True
        self._held = None
        if self.ws is None:
            self._close_later = (code, reason)
        else:
            self._hub.spawn(self.aclose(code, reason))

    async def aclose(self, code: int, reason: str) -> None:
        self.closed = True
        ws, transport = self.ws, self._transport
        if ws is None:
            self._close_later = (code, reason)
            return
        if ws.closed:
            return
        # drain=False: a client that stopped reading would make draining wait forever.
        try:
            await asyncio.wait_for(
                ws.close(code=code, message=reason.encode(), drain=False), CLOSE_TIMEOUT
            )
        except (asyncio.TimeoutError, ConnectionError):
            pass
        if transport is not None and not transport.is_closing():
            transport.close()
        # close() still flushes the backlog; a peer that never reads must not pin it.
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, _abort_if_stuck, transport)


def _abort_if_stuck(transport: asyncio.Transport | None) -> None:
    if transport is not None and transport.get_write_buffer_size() > 0:
        transport.abort()


class Room:
    __slots__ = (
        "id",
        "connections",
        "local_users",
        "members",
        "pending",
        "ready",
        "_early",
        "_flush",
    )

    def __init__(self, room_id: str):
        self.id = room_id
        self.connections: list[Connection] = []
        #: this process's connections per user
        self.local_users: dict[str, int] = {}
        #: users present in the room service-wide
        self.members: set[str] = set()
        #: presence not yet sent: user → present, in arrival order
        self.pending: dict[str, bool] = {}
        self.ready = asyncio.Event()
        self._early: list[PresenceChange] | None = []  # changes seen while loading members
        self._flush: asyncio.TimerHandle | asyncio.Task | None = None


class Hub:
    def __init__(self, storage: Storage, *, max_backlog: int = 256 * 1024, heartbeat: float = 30.0):
        self.storage = storage
        #: bytes a connection may have waiting to be sent before it is closed with 1013
        self.max_backlog = max_backlog
        #: seconds between pings; a peer that does not answer is dropped
        self.heartbeat = heartbeat
        #: client frames per second, the burst allowed above it, and how many refused
        #: frames in a row end the connection (1008)
        self.frame_rate, self.frame_burst = FRAME_RATE, FRAME_BURST
        self.flood_strikes = FLOOD_STRIKES
        self._rooms: dict[str, Room] = {}
        self._rooms_of_user: dict[str, set[str]] = {}  # user → rooms here where they are present
        self._last_version: dict[str, tuple[int, bool]] = {}  # user → (version, deleted)
        self._tasks: set[asyncio.Task] = set()
        self._unsubscribe: list = []

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        self._unsubscribe = [
            self.storage.subscribe(self._on_change, self._rooms_of_user.keys),
            self.storage.subscribe_presence(self._on_presence),
        ]
        self.spawn(self._reconcile_forever())

    async def close_all(self, code: int = WSCloseCode.GOING_AWAY, reason: str = "server shutdown"):
        """Close every socket (shutdown: before storage closes)."""
        connections = [c for room in self._rooms.values() for c in room.connections]
        await asyncio.gather(*(c.aclose(code, reason) for c in connections))

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        for room in self._rooms.values():
            if isinstance(room._flush, asyncio.TimerHandle):
                room._flush.cancel()
            room._flush = None
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- joining and leaving ----------------------------------------------------

    async def join(self, room_id: str, user_id: str | None) -> Connection:
        """A connection in ``room_id`` (a member if ``user_id``); frames wait for its start."""
        while True:
            room = self._rooms.get(room_id)
            if room is None:
                room = self._rooms[room_id] = Room(room_id)
                try:
                    await self._load_members(room)
                except BaseException:
                    self._drop_room(room)
                    raise
            else:
                await room.ready.wait()
            if self._rooms.get(room_id) is room:
                break  # else its loading failed: start over, and fail (or not) on our own
        conn = Connection(self, room_id, user_id)
        room.connections.append(conn)
        if user_id is not None:
            room.local_users[user_id] = room.local_users.get(user_id, 0) + 1
            if room.local_users[user_id] == 1:
                try:
                    await self.storage.presence_join(room_id, user_id)
                except BaseException:
                    await self.leave(conn, presence_joined=False)
                    raise
        return conn

    async def welcome(self, conn: Connection) -> bytes:
        room = self._rooms.get(conn.room_id) or Room(conn.room_id)
        ids = heapq.nsmallest(WELCOME_MEMBERS, room.members)
        users = await member_records(self.storage, ids)
        return encode_with_users(
            {
                "type": "welcome",
                "room": room.id,
                "connection_id": conn.id,
                "member_count": len(room.members),
            },
            "members",
            users,
        )

    async def leave(self, conn: Connection, presence_joined: bool = True) -> None:
        conn.closed = True
        room = self._rooms.get(conn.room_id)
        if room is None or conn not in room.connections:
            return
        room.connections.remove(conn)
        user_id = conn.user_id
        last_here = False
        if user_id is not None:
            left = room.local_users[user_id] - 1
            if left:
                room.local_users[user_id] = left
            else:
                del room.local_users[user_id]
                last_here = True
        if not room.connections:
            self._drop_room(room)
        if last_here and presence_joined:
            # Shielded: aiohttp cancels the handler of a socket that went away, and
            # the leave must still reach storage.
            await asyncio.shield(self.spawn(self._presence_leave(conn.room_id, user_id)))

    async def _presence_leave(self, room_id: str, user_id: str) -> None:
        try:
            await self.storage.presence_leave(room_id, user_id)
        except Exception:  # noqa: BLE001 - a backend that lost its database expires us itself
            log.exception("presence_leave failed for %s in %s", user_id, room_id)

    async def _load_members(self, room: Room) -> None:
        """Everyone present in ``room`` service-wide, then the changes seen while reading."""
        members = await self._read_members(room.id)
        room.members.update(members)
        for user_id in members:
            self._rooms_of_user.setdefault(user_id, set()).add(room.id)
        early, room._early = room._early, None
        for change in early:  # each change states the user's whole state: replay in order
            self._apply_presence(room, change)
        room.pending.clear()  # a new room's first connection learns all of it from its welcome
        room.ready.set()

    async def _read_members(self, room_id: str) -> list[str]:
        members: list[str] = []
        after = None
        while True:
            page = await self.storage.presence_members(room_id, after, 1000)
            members.extend(page)
            if len(page) < 1000:
                return members
            after = page[-1]

    async def reconcile(self) -> None:
        """Re-read who is present in each room hosted here and send what differs.

        Presence normally arrives as announcements; this repairs any that were
        lost (a backend's LISTEN connection down for a while), within
        ``RECONCILE_EVERY`` seconds.
        """
        for room in list(self._rooms.values()):
            if room._early is not None or self._rooms.get(room.id) is not room:
                continue  # still loading: it is reading the truth already
            room._early = []  # hold announcements while reading, then replay them
            try:
                fresh = set(await self._read_members(room.id))
            except Exception as exc:  # noqa: BLE001 - storage down: try again next time
                log.warning("presence: could not re-read room %s (%s)", room.id, exc)
                fresh = None
            early, room._early = room._early, None
            if self._rooms.get(room.id) is not room:
                continue
            if fresh is not None:
                for user_id in fresh - room.members:
                    self._apply_presence(room, PresenceChange(room.id, user_id, True))
                for user_id in room.members - fresh:
                    self._apply_presence(room, PresenceChange(room.id, user_id, False))
            for change in early:
                self._apply_presence(room, change)
            self._schedule_flush(room)

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_EVERY)
            await self.reconcile()

    def _drop_room(self, room: Room) -> None:
        if self._rooms.get(room.id) is not room:
            return
        del self._rooms[room.id]
        if isinstance(room._flush, asyncio.TimerHandle):
            room._flush.cancel()
        for user_id in room.members:
            self._forget_room_of(user_id, room.id)
        room.ready.set()  # a joiner waiting on a room that failed to load must not hang

    # -- presence -----------------------------------------------------------------

    def _on_presence(self, change: PresenceChange) -> None:
        room = self._rooms.get(change.room_id)
        if room is None:
            return
        if room._early is not None:
            room._early.append(change)
            return
        self._apply_presence(room, change)
        self._schedule_flush(room)

    def _schedule_flush(self, room: Room) -> None:
        if room._flush is None and room.pending:
            room._flush = asyncio.get_running_loop().call_later(
                PRESENCE_WINDOW, self._flush_presence, room
            )

    def _apply_presence(self, room: Room, change: PresenceChange) -> None:
        user_id = change.user_id
        if change.present:
            room.members.add(user_id)
            self._rooms_of_user.setdefault(user_id, set()).add(room.id)
        else:
            room.members.discard(user_id)
            self._forget_room_of(user_id, room.id)
        room.pending.pop(user_id, None)  # keep arrival order: the latest state goes last
        room.pending[user_id] = change.present

    def _forget_room_of(self, user_id: str, room_id: str) -> None:
        """``user_id`` left ``room_id``; once in no room, their last version is not needed."""
        rooms = self._rooms_of_user.get(user_id)
        if rooms is not None:
            rooms.discard(room_id)
            if not rooms:
                del self._rooms_of_user[user_id]
                self._last_version.pop(user_id, None)

    def _flush_presence(self, room: Room) -> None:
        room._flush = asyncio.get_running_loop().create_task(self._send_presence(room))
        self._tasks.add(room._flush)
        room._flush.add_done_callback(self._tasks.discard)

    async def _send_presence(self, room: Room) -> None:
        pending, room.pending = room.pending, {}
        try:
            joined = [user_id for user_id, present in pending.items() if present]
            try:
                users = await member_records(self.storage, joined)
            except Exception:  # noqa: BLE001 - storage hiccup: try again in the next window
                log.exception("presence: could not read joined users of room %s", room.id)
                room.pending = {**pending, **room.pending}
                return
            frame = encode_with_users(
                {
                    "type": "presence",
                    "room": room.id,
                    "left": [user_id for user_id, present in pending.items() if not present],
                    "member_count": len(room.members),
                },
                "joined",
                users,
            )
            for conn in room.connections:
                conn.send(frame)
        finally:
            room._flush = None
            if room.pending and self._rooms.get(room.id) is room:
                room._flush = asyncio.get_running_loop().call_later(
                    PRESENCE_WINDOW, self._flush_presence, room
                )

    # -- profile changes ------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        user_id = change.user_id
        room_ids = self._rooms_of_user.get(user_id)
        if not room_ids:
            return
        deleted = change.user is None
        if not moves_forward(self._last_version.get(user_id), change.version, deleted):
            return
        self._last_version[user_id] = (change.version, deleted)
        if deleted:
            return  # documented: a deleted member stays until they disconnect; nothing to show
        # The user part once per change, the room part once per room.
        tail = profile_tail(change.user)
        rooms = self._rooms
        for room_id in room_ids:
            room = rooms[room_id]
            frame = text_frame(
                f'{{"type":"profile_updated","room":{dumps(room_id)},{tail}'.encode()
            )
            for conn in room.connections:
                conn.send(frame)

    # -- client frames -----------------------------------------------------------------

    def receive_text(self, conn: Connection, text: str, now: float) -> None:
        """Act on one client text frame; a bad one is answered with an error frame."""
        if not conn.allow_frame(now):
            conn.send(error_frame("rate_limited", "too many frames; slow down"))
            return
        try:
            frame = json.loads(text)
        except ValueError:
            conn.send(error_frame("invalid_json", "a frame must be a JSON object"))
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ping":
            conn.send(PONG)
        elif kind == "message":
            self._relay(conn, frame)
        elif not isinstance(kind, str):
            conn.send(error_frame("invalid_frame", 'a frame must be a JSON object with a "type"'))
        else:
            conn.send(
                error_frame(
                    "unknown_type", f"unknown frame type {kind[:64]!r}; send message or ping"
                )
            )

    def receive_binary(self, conn: Connection, now: float) -> None:
        if conn.allow_frame(now):
            conn.send(
                error_frame("unsupported_frame", "binary frames are not supported; send JSON text")
            )

    def _relay(self, conn: Connection, frame: dict) -> None:
        if conn.user_id is None:
            conn.send(error_frame("not_a_member", "join with a user id to send messages"))
            return
        if "data" not in frame:
            conn.send(error_frame("invalid_frame", 'a message needs "data"'))
            return
        data = dumps(frame["data"])
        if len(data.encode()) > MAX_MESSAGE_DATA:
            conn.send(
                error_frame("message_too_large", f"data is limited to {MAX_MESSAGE_DATA} bytes")
            )
            return
        room = self._rooms[conn.room_id]
        out = text_frame(
            f'{{"type":"message","room":{dumps(room.id)},"from":{dumps(conn.user_id)},'
            f'"data":{data}}}'.encode()
        )
        for other in room.connections:
            if other is not conn:
                other.send(out)

    # -- reads for the members route and tests ------------------------------------------

    def member_ids(self, room_id: str) -> Iterable[str]:
        room = self._rooms.get(room_id)
        return room.members if room is not None else ()
