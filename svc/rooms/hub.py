"""The hub: the rooms of this process, fed by the broker; it routes and owns no room's state.

One ``Hub`` per application.  It is the broker's listener: it learns of
profile changes, presence and other processes' messages only from the broker,
so it works the same with every broker, and a change or a join made through
another process arrives here exactly like a local one.  What it keeps is routing:
the room map, which rooms each user is in, each user's sockets here, the order of
profile changes (:mod:`.ordering`), and the repairs (:meth:`Hub.reconcile`).  What a
room shows and to whom is the :class:`~.room.Room`'s business.

Fan-out cost is the point of the design: an event is serialised and framed
once per room and the same bytes are written to every connection's transport
(:mod:`.frames`), with no task, queue or coroutine per connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from functools import partial

from aiohttp import WSCloseCode

from ..broker import (
    Broker,
    Change,
    PasswordSet,
    PresenceChange,
    RoomMessage,
    calling_the_broker,
)
from ..serialize import Member
from ..storage import Storage, User
from . import frames
from .connection import Connection, Shared, beat_forever
from .history_reads import HistoryReads
from .limits import RoomSettings, RoomStats
from .ordering import ChangeOrder
from .resume import parse_since, resumed_welcome
from .room import Room
from .send_budget import SendBudget
from .token_expiry import ISSUED_BEFORE_PASSWORD, TOKEN_CLOSE, TokenLife

__all__ = ["Hub", "RoomSettings", "TooManySockets", "USER_DELETED"]

log = logging.getLogger(__name__)

#: Seconds a password set is remembered for joins that raced it (far above a join's time).
RECENT_PASSWORD_SETS = 60.0

#: The close code of a deleted user's sockets: 4000 + HTTP 404, as for an unknown user's join.
USER_DELETED = 4404


class TooManySockets(Exception):
    """The user holds ``max_sockets_per_user`` sockets here already."""


class Hub:
    def __init__(
        self,
        storage: Storage,
        broker: Broker,
        limits: RoomSettings | None = None,
        *,
        private_email: bool = False,
        auth_frames: Callable[[Connection, dict], Coroutine] | None = None,
    ):
        self.storage = storage
        self.broker = broker
        #: the room history reads of resuming connections, shared by those marked together
        self.history_reads = HistoryReads(broker.room_history)
        self.limits = limits or RoomSettings()
        self.stats = RoomStats()
        #: Auth on: frames go to many readers, none of them proven the owner: email is null.
        self.with_email = not private_email
        self._rooms: dict[str, Room] = {}
        # user → rooms here where they are present; a tuple, as most users are in one room
        # (a set of one is 216 B of every member's footprint, a tuple of one 48 B)
        self._rooms_of_user: dict[str, tuple[str, ...]] = {}
        #: the versions shown, and the changes waiting for those before them
        self._order = ChangeOrder()
        self._tasks: set[asyncio.Task] = set()
        self._outbox: asyncio.Queue[tuple[RoomMessage, Connection]] | None = None
        #: the broker takes messages in call order however many are in flight (see
        #: Broker.messages_in_call_order): each is handed over at once, in a task of its own
        self._hand_over_at_once = broker.messages_in_call_order is True
        #: user → their sockets here, in every room (MAX_SOCKETS_PER_USER)
        self._sockets_of_user: dict[str, int] = {}
        self.send_budget = SendBudget(self.limits)
        #: what every connection here holds alike
        self._shared = Shared(self.limits, self.spawn, self.stats, self.send_budget)
        #: Auth on: checks an ``auth`` frame (renewal) and answers it; from the HTTP layer,
        #: which knows tokens (this layer does not).  None: auth off, ``auth`` is unknown.
        self._auth_frames = auth_frames
        #: user → (moment of their latest password set, loop time heard), for
        #: RECENT_PASSWORD_SETS seconds: a join whose token was checked just before a new
        #: password, and that completes just after, is closed as it binds (bind_tokens)
        self._recent_password_sets: dict[str, tuple[float, float]] = {}

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        self._outbox = asyncio.Queue()
        if not self._hand_over_at_once:
            self.spawn(self._send_messages())
        self.spawn(self._reconcile_forever())
        self.spawn(beat_forever(self.limits, self.connections))
        if self._auth_frames is not None and not _carries_password_sets(self.broker):
            log.warning(
                "broker %s does not carry password changes (publish_password_set): a new "
                "password closes older-token sockets on the process that set it only; "
                "elsewhere they close when their tokens expire",
                type(self.broker).__name__,
            )

    async def close_all(self, code: int = WSCloseCode.GOING_AWAY, reason: str = "server shutdown"):
        """Close every socket (shutdown: before the broker and storage close)."""
        connections = [c for room in self._rooms.values() for c in room.connections]
        await asyncio.gather(*(c.aclose(code, reason) for c in connections))

    async def stop(self) -> None:
        self._order.cancel()
        for room in self._rooms.values():
            room.cancel_presence()
        for task in tuple(self._tasks):
            task.cancel()
        if self._tasks:
            # Bounded: a cancellation swallowed inside a driver (asyncio.wait_for on
            # Python 3.11 can) must not hang the shutdown.
            await asyncio.wait(tuple(self._tasks), timeout=self.limits.close_timeout)

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- joining and leaving ----------------------------------------------------

    async def join(self, room_id: str, user_id: str | None) -> Connection:
        """A connection in ``room_id`` (a member if ``user_id``); frames wait for its start.

        TooManySockets when the user holds ``max_sockets_per_user`` here already: counted
        at once, before any await, so a burst of joins cannot all pass."""
        if user_id is not None:
            self._take_socket_slot(user_id)
        try:
            room = await self._ready_room(room_id)
        except BaseException:
            if user_id is not None:
                self._release_socket_slot(user_id)
            raise
        conn = Connection(room_id, user_id, self._shared)
        self.stats.churn += 1
        if room.join(conn):  # its user's first socket here: they join service-wide
            try:
                with calling_the_broker():
                    await self.broker.presence_join(room_id, user_id)
            except BaseException:
                await self.leave(conn, presence_joined=False)
                raise
        return conn

    async def _ready_room(self, room_id: str) -> Room:
        while True:
            room = self._rooms.get(room_id)
            if room is None:
                room = self._rooms[room_id] = self._new_room(room_id)
                try:
                    with calling_the_broker():
                        await self._load_members(room)
                except BaseException:
                    self._drop_room(room)
                    raise
            else:
                await room.ready.wait()
            if self._rooms.get(room_id) is room:
                return room  # else its loading failed: start over, and fail (or not) on our own

    def _take_socket_slot(self, user_id: str) -> None:
        held = self._sockets_of_user.get(user_id, 0)
        if held >= self.limits.max_sockets_per_user:
            self.stats.closed_per_user += 1
            raise TooManySockets(user_id)
        self._sockets_of_user[user_id] = held + 1

    def _release_socket_slot(self, user_id: str) -> None:
        held = self._sockets_of_user[user_id] - 1
        if held:
            self._sockets_of_user[user_id] = held
        else:
            del self._sockets_of_user[user_id]

    async def welcome(self, conn: Connection, since: str | None = None) -> bytes:
        """``conn``'s welcome; with ``since`` (``<epoch>:<seq>``, as the client sent it), the
        resumed welcome and the missed events when the room's history still holds them."""
        room = self._rooms.get(conn.room_id) or self._new_room(conn.room_id)
        if since is None:
            return await room.welcome(conn, self._read_records_read_ahead)
        position = parse_since(since)
        if position is not None and self.broker.history_size:
            welcome = await resumed_welcome(
                room, conn, position, self.history_reads, self._read_records_read_ahead
            )
            if welcome is not None:
                self.stats.resumed += 1
                return welcome
        self.stats.not_resumed += 1
        return await room.welcome(conn, self._read_records_read_ahead, resumed=False)

    def begin(self, conn: Connection, ws, transport, welcome: bytes) -> None:
        """Send ``conn``'s welcome, then what was held for it (Connection.start)."""
        conn.start(ws, transport, welcome)
        room = self._rooms.get(conn.room_id)
        if room is not None:
            room.started(conn)
        else:
            conn.welcomed = None

    async def _read_records_read_ahead(self, ids: list[str]) -> list[Member]:
        """A welcome's read of its members.  A record newer than the rooms have shown is a
        change still on its way from the broker: it is shown now, to everyone (joiners whose
        welcome shows it drop it: Connection.start), so the welcome never runs ahead of the
        room and its later arrival is old news, sent to no one twice."""
        records = await frames.member_records(self.storage, ids)
        for record in records:
            if isinstance(record, User) and record.id in self._rooms_of_user:
                last = self._order.last(record.id)
                if last is not None and not last[1] and record.version > last[0]:
                    self._offer(Change(record.id, record.version, record), repair=True)
        self._order.shown(records, self._rooms_of_user)
        return records

    async def leave(self, conn: Connection, presence_joined: bool = True) -> None:
        conn.closed = True
        if conn.tokens is not None:
            conn.tokens.cancel()
        room = self._rooms.get(conn.room_id)
        if room is None:
            return
        was_here, last_here = room.leave(conn)
        if not was_here:
            return
        self.stats.churn += 1
        self.stats.left += 1
        if not conn.unsent():  # else counted until its bytes are gone (send_budget.py)
            self.send_budget.forget(conn)
        user_id = conn.user_id
        if user_id is not None:
            self._release_socket_slot(user_id)
        if not room.connections:
            self._drop_room(room)
        if last_here and presence_joined:
            # Shielded: aiohttp cancels the handler of a socket that went away, and
            # the leave must still reach the broker.
            await asyncio.shield(self.spawn(self._presence_leave(conn.room_id, user_id)))

    async def _presence_leave(self, room_id: str, user_id: str) -> None:
        try:
            await self.broker.presence_leave(room_id, user_id)
        except Exception:  # noqa: BLE001 - a broker that lost its connection expires us itself
            log.exception("presence_leave failed for %s in %s", user_id, room_id)

    async def _load_members(self, room: Room) -> None:
        """Everyone present in ``room`` service-wide, then the changes seen while reading.

        The room's number is read first: the members read after it reflect at least that
        event, and the transitions numbered after it that the read showed already change
        nothing when they are applied."""
        room.sequence.start(await self.broker.room_position(room.id))
        members = await self._read_members(room.id)
        room.loaded(members)
        for user_id in members:
            self._note_room_of(user_id, room.id)
        for change in room.held():  # each change states the user's whole state: replay in order
            room.numbered(change.epoch, change.seq, partial(self._presence_now, room, change))
        room.open()

    async def _read_members(self, room_id: str) -> list[str]:
        members: list[str] = []
        after = None
        while True:
            page = await self.broker.presence_members(room_id, after, 1000)
            members.extend(page)
            if len(page) < 1000:
                return members
            after = page[-1]

    def _drop_room(self, room: Room) -> None:
        if self._rooms.get(room.id) is not room:
            return
        del self._rooms[room.id]
        room.drop()
        for user_id in room.members:
            self._forget_room_of(user_id, room.id)

    # -- repairs ------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Re-read what the rooms hosted here care about and send what differs.

        News normally arrives from the broker; this repairs what was lost (a
        broker connection down for a while, a process that died between a
        commit and its publish) within ``reconcile_every`` seconds: who is
        present in each room, and the latest version of each present user.
        """
        for room in list(self._rooms.values()):
            if room.loading or self._rooms.get(room.id) is not room:
                continue  # still loading: it is reading the truth already
            room.start_holding()  # hold announcements while reading, then replay them
            try:
                fresh = set(await self._read_members(room.id))
            except Exception as exc:  # noqa: BLE001 - broker down: try again next time
                log.warning("presence: could not re-read room %s (%s)", room.id, exc)
                fresh = None
            early = room.held()
            if self._rooms.get(room.id) is not room:
                continue
            if fresh is not None:
                for user_id in fresh.difference(room.members):
                    self._apply_presence(room, PresenceChange(room.id, user_id, True))
                for user_id in room.members - fresh:
                    self._apply_presence(room, PresenceChange(room.id, user_id, False))
            for change in early:  # numbered ones take their place in the room's order
                room.numbered(change.epoch, change.seq, partial(self._presence_now, room, change))
            room.schedule_presence()
        await self._reread_versions()

    async def _reread_versions(self) -> None:
        ids = list(self._rooms_of_user)
        if not ids:
            return
        try:
            users = {user.id: user for user in await self.storage.get_users(ids)}
        except Exception as exc:  # noqa: BLE001 - storage down: try again next time
            log.warning("rooms: could not re-read members' versions (%s)", exc)
            return
        for user_id in ids:
            user = users.get(user_id)
            if user is None:
                if self._order.deleted(user_id):  # its deletion never reached us
                    self._close_sockets_of(user_id)
            elif not self._order.knows(user_id):
                self._order.baseline(user_id, user.version)
            else:
                self._offer(Change(user_id, user.version, user), repair=True)

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.limits.reconcile_every)
            await self.reconcile()

    # -- the broker's listener -------------------------------------------------------

    def on_presence(self, change: PresenceChange) -> None:
        room = self._rooms.get(change.room_id)
        if room is None:
            return
        if room.hold(change):
            return
        room.numbered(change.epoch, change.seq, partial(self._presence_now, room, change))

    def _presence_now(self, room: Room, change: PresenceChange) -> None:
        if change.present == (change.user_id in room.members):
            # Already so here: a broker may announce a state again (the Redis broker re-joins
            # its members after Redis lost them), which must not reach clients as news.
            return
        self._apply_presence(room, change)
        room.schedule_presence()

    def wants_change(self, user_id: str) -> bool:
        """Whether a change of ``user_id`` is news here (the broker skips the rest unread)."""
        return bool(self._rooms_of_user.get(user_id))

    def on_change(self, change: Change) -> None:
        if not self._rooms_of_user.get(change.user_id):
            self._show_changes(change.user_id, [], change.seqs)  # its numbers pass, unshown
            return
        if change.user is None and not change.deleted:
            # Only id and version travelled: read the record (it may be newer by now).
            self._show_changes(change.user_id, [], change.seqs)
            self.spawn(self._read_and_deliver(change.user_id))
            return
        self._offer(change)

    def on_message(self, message: RoomMessage) -> None:
        room = self._rooms.get(message.room_id)
        if room is not None:
            room.numbered(message.epoch, message.seq, partial(_show_message, room, message))

    def on_password_set(self, event: PasswordSet) -> None:
        """A password set through another process: its older-token sockets here close."""
        self._close_retired(event)

    def password_set(self, user_id: str, at: float) -> None:
        """A password set through this process: close the user's sockets here that joined
        with a token issued before it, and tell every other process (in the background;
        the password is set whatever the broker says)."""
        event = PasswordSet(user_id, at)
        self._close_retired(event)
        self.spawn(self._publish_password_set(event))

    async def _publish_password_set(self, event: PasswordSet) -> None:
        try:
            with calling_the_broker():
                await self.broker.publish_password_set(event)
        except NotImplementedError:
            pass  # said at start (a broker that predates it)
        except Exception as exc:  # noqa: BLE001 - the others' sockets then last to their exp
            self.broker.errors += 1
            log.warning(
                "rooms: could not tell other processes of a new password of user %s (%s); "
                "their sockets of that user close when the tokens expire",
                event.user_id,
                exc,
            )

    def bind_tokens(self, conn: Connection, tokens: TokenLife) -> None:
        """Give a joined socket its tokens' deadline; close it at once if a password set
        since its token was checked (the join raced it) already retired the token."""
        conn.tokens = tokens
        tokens.arm(conn.close)
        recent = self._recent_password_sets.get(conn.user_id)
        if recent is not None and tokens.retired_by(recent[0]):
            conn.close(TOKEN_CLOSE, ISSUED_BEFORE_PASSWORD)

    def _close_retired(self, event: PasswordSet) -> None:
        recent, now = self._recent_password_sets, asyncio.get_running_loop().time()
        for user_id, (_, heard) in list(recent.items()):
            if now - heard > RECENT_PASSWORD_SETS:
                del recent[user_id]
        recent[event.user_id] = (event.at, now)
        for room_id in self._rooms_of_user.get(event.user_id, ()):
            room = self._rooms.get(room_id)
            if room is None:
                continue
            for conn in tuple(room.connections):
                tokens = conn.tokens
                if (
                    conn.user_id == event.user_id
                    and tokens is not None
                    and tokens.retired_by(event.at)
                ):
                    conn.close(TOKEN_CLOSE, ISSUED_BEFORE_PASSWORD)

    def on_gap(self) -> None:
        self.spawn(self.reconcile())

    async def _read_and_deliver(self, user_id: str) -> None:
        try:
            users = await self.storage.get_users([user_id])
        except Exception as exc:  # noqa: BLE001 - the next reconcile repairs it
            log.warning("rooms: could not read changed user %s (%s)", user_id, exc)
            return
        if users:  # the latest: a jump ahead is expected, nothing to wait for
            self._offer(Change(user_id, users[0].version, users[0]), repair=True)

    def _offer(self, change: Change, repair: bool = False) -> None:
        show, wait = self._order.offer(change, repair)
        self._show_changes(change.user_id, show, change.seqs)
        if wait:
            user_id = change.user_id
            loop = asyncio.get_running_loop()
            self._order.hold(user_id, loop.call_later(self._order.wait, self._release, user_id))

    def _release(self, user_id: str) -> None:
        self._show_changes(user_id, self._order.release(user_id), None)

    def _show_changes(
        self, user_id: str, show: list[Change], slots: dict[str, tuple[str, int]] | None
    ) -> None:
        """Changes that move ``user_id`` forward (ChangeOrder has checked), to their rooms:
        in a room where the broker numbered the change (``slots``), at that number; the
        numbers of rooms here where the user is not (yet) a member pass unshown."""
        room_ids = self._rooms_of_user.get(user_id, ())
        if slots:
            for room_id, (epoch, seq) in slots.items():
                room = self._rooms.get(room_id)
                if room is not None and room_id not in room_ids:
                    room.numbered(epoch, seq, _nothing)
        if not room_ids:
            return
        for room_id in room_ids:
            room = self._rooms[room_id]
            slot = slots.get(room_id) if slots else None
            if slot is not None:
                room.numbered(*slot, partial(_show_all, room, show, True))
            elif show:
                _show_all(room, show, False)  # a repair or a late one: at the current number
        if any(change.deleted for change in show):
            self._close_sockets_of(user_id)  # their leave then follows, the broker's way

    def _close_sockets_of(self, user_id: str) -> None:
        """A deleted user's sockets here: closed with 4404 (their last one makes them leave)."""
        for room in list(self._rooms.values()):
            room.close_sockets_of(user_id, USER_DELETED, "the user was deleted")

    # -- presence -----------------------------------------------------------------

    def _new_room(self, room_id: str) -> Room:
        return Room(
            room_id,
            self.limits,
            self.stats,
            self.storage,
            self.spawn,
            self._order,
            self.with_email,
        )

    def _apply_presence(self, room: Room, change: PresenceChange) -> None:
        user_id = change.user_id
        room.present(user_id, change.present)
        if change.present:
            self._note_room_of(user_id, room.id)
        else:
            self._forget_room_of(user_id, room.id)

    def _note_room_of(self, user_id: str, room_id: str) -> None:
        rooms = self._rooms_of_user.get(user_id, ())
        if room_id not in rooms:
            self._rooms_of_user[user_id] = (*rooms, room_id)

    def _forget_room_of(self, user_id: str, room_id: str) -> None:
        """``user_id`` left ``room_id``; once in no room, their last version is not needed."""
        rooms = self._rooms_of_user.get(user_id)
        if rooms is not None and room_id in rooms:
            rooms = tuple(other for other in rooms if other != room_id)
            if rooms:
                self._rooms_of_user[user_id] = rooms
            else:
                del self._rooms_of_user[user_id]
                self._order.forget(user_id)

    # -- client frames -----------------------------------------------------------------

    def receive_text(self, conn: Connection, text: str, now: float) -> None:
        """Act on one client text frame; a bad one is answered with an error frame."""
        if not conn.allow_frame(now):
            conn.send(frames.error_frame("rate_limited", "too many frames; slow down"))
            return
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError):
            conn.send(frames.error_frame("invalid_json", "a frame must be a JSON object"))
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ping":
            conn.send(frames.PONG)
        elif kind == "message":
            self._relay(conn, frame)
        elif kind == "auth" and self._auth_frames is not None and conn.tokens is not None:
            self.spawn(self._auth_frames(conn, frame))
        elif not isinstance(kind, str):
            conn.send(
                frames.error_frame("invalid_frame", 'a frame must be a JSON object with a "type"')
            )
        else:
            conn.send(
                frames.error_frame(
                    "unknown_type", f"unknown frame type {kind[:64]!r}; send message or ping"
                )
            )

    def receive_binary(self, conn: Connection, now: float) -> None:
        if conn.allow_frame(now):
            conn.send(
                frames.error_frame(
                    "unsupported_frame", "binary frames are not supported; send JSON text"
                )
            )

    def _relay(self, conn: Connection, frame: dict) -> None:
        if conn.user_id is None:
            conn.send(frames.error_frame("not_a_member", "join with a user id to send messages"))
            return
        if "data" not in frame:
            conn.send(frames.error_frame("invalid_frame", 'a message needs "data"'))
            return
        try:
            data = frames.dumps(frame["data"])
        except (ValueError, RecursionError):
            conn.send(
                frames.error_frame("invalid_json", "data must be strict JSON (no NaN or Infinity)")
            )
            return
        limit = self.limits.max_message_data
        if len(data) > limit:  # ASCII: characters are bytes
            conn.send(frames.error_frame("message_too_large", f"data is limited to {limit} bytes"))
            return
        room = self._rooms[conn.room_id]
        message = RoomMessage(room.id, conn.user_id, data)
        if room.seq is None:  # unnumbered: the members here hear it now
            room.send(frames.message(room.id, conn.user_id, data), skip=conn)
        if self._hand_over_at_once:
            # Tasks start in the order they are made, and each hands its message over
            # before its first await: the broker takes them in this order.
            self.spawn(self._publish(message, conn))
        else:
            self._outbox.put_nowait((message, conn))

    async def _send_messages(self) -> None:
        """Hand messages to the broker one at a time, so other processes get them in order
        (a broker that does not say ``messages_in_call_order``): one round trip each."""
        while True:
            await self._publish(*await self._outbox.get())

    async def _publish(self, message: RoomMessage, sender: Connection) -> None:
        """Hand ``message`` to the broker.  Where the broker numbers the room's events, the
        members here hear it at its number, once the broker has given it: in the broker's
        order, whichever call returns first."""
        try:
            numbered = await self.broker.publish_message(message)
        except Exception as exc:  # noqa: BLE001 - other processes miss it
            self.broker.errors += 1
            log.warning("rooms: could not publish a message to room %s (%s)", message.room_id, exc)
            numbered = None
        room = self._rooms.get(message.room_id)
        if room is None or room.seq is None:
            return  # gone, or heard already (unnumbered)
        if numbered is not None and numbered.seq is not None:
            room.numbered(numbered.epoch, numbered.seq, partial(_show_own, room, sender, numbered))
        else:  # not numbered (the broker failed): the members here still hear it, after
            # whatever waits for its number (the sender's earlier messages may)
            frame = frames.message(room.id, message.sender, message.data)
            room.unnumbered(partial(room.send, frame, skip=sender, numbered=False))

    # -- reads for /metrics, the heartbeat and the tests ------------------------------------------

    def connections(self) -> Iterator[Connection]:
        for room in self._rooms.values():
            yield from room.connections

    def connection_count(self) -> int:
        return sum(len(room.connections) for room in self._rooms.values())

    def room_count(self) -> int:
        return len(self._rooms)

    def room(self, room_id: str) -> Room | None:
        """The room of that id here, if any connection is in it."""
        return self._rooms.get(room_id)


def _carries_password_sets(broker: Broker) -> bool:
    return type(broker).publish_password_set is not Broker.publish_password_set


def _nothing() -> None:
    pass


def _show_message(room: Room, message: RoomMessage) -> None:
    room.send(frames.message(room.id, message.sender, message.data, room.seq))


def _show_own(room: Room, sender: Connection, message: RoomMessage) -> None:
    room.send(frames.message(room.id, message.sender, message.data, room.seq), skip=sender)


def _show_all(room: Room, show: list[Change], numbered: bool) -> None:
    for change in show:
        room.show(change, numbered)
