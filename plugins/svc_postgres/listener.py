"""The LISTEN side of the change feed: the only place a Postgres-backed svc announces changes.

Every process, the writer included, learns of a change from the database's
NOTIFY, so all of them see changes in commit order, and only committed ones.
One dedicated connection listens.  When it dies, it is re-opened with backoff;
notifications sent meanwhile are lost, so the feed then re-reads the users its
subscribers care about (plus the ones it has announced and still tracks) and
announces every one that moved, deletions included.

Each user's versions are delivered in increasing order; a version already
announced, or older than one announced, is dropped (a resync and a late
notification may overlap).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

import aiopg
import psycopg2

from svc.broker import Change
from svc.rooms.versions import moves_forward
from svc.storage import Storage, Unavailable, User

from .errors import CONNECTION_ERRORS, describe
from .migrations import CHANNEL
from .queries import parse_payload

log = logging.getLogger(__name__)

#: Reads users by id (the pool's read); raises Unavailable when it cannot.
ReadUsers = Callable[[Iterable[str]], Awaitable[list[User]]]


class VersionTracker:
    """The last version announced per user, for the most recent ``limit`` users (bounded memory)."""

    def __init__(self, limit: int = 10_000):
        self.limit = limit
        self._last: OrderedDict[str, tuple[int, bool]] = OrderedDict()  # id → (version, deleted)

    def __len__(self) -> int:
        return len(self._last)

    def ids(self) -> list[str]:
        return list(self._last)

    def get(self, user_id: str) -> tuple[int, bool] | None:
        return self._last.get(user_id)

    def is_new(self, user_id: str, version: int, deleted: bool) -> bool:
        """Whether (``version``, ``deleted``) moves ``user_id`` forward; if so, remember it."""
        if not moves_forward(self._last.get(user_id), version, deleted):
            return False
        self.remember(user_id, version, deleted)
        return True

    def remember(self, user_id: str, version: int, deleted: bool) -> None:
        self._last[user_id] = (version, deleted)
        self._last.move_to_end(user_id)
        if len(self._last) > self.limit:
            self._last.popitem(last=False)


class ChangeFeed:
    def __init__(
        self,
        storage: Storage,
        connect: Callable[[], Awaitable[aiopg.Connection]],
        read_users: ReadUsers,
        tracker: VersionTracker | None = None,
    ):
        self._storage = storage
        self._connect = connect
        self._read_users = read_users
        self.tracker = tracker or VersionTracker()
        self._conn: aiopg.Connection | None = None
        self._task: asyncio.Task | None = None
        #: True while a LISTEN connection is up (and, after a gap, resynchronised).
        self.connected = False
        #: Other channels on this same connection (presence.py): channel → payload handler.
        self.channels: dict[str, Callable[[str], None]] = {}

    async def start(self) -> None:
        """Open the LISTEN connection (raises like ``connect``) and start delivering."""
        if self._task is not None:
            return
        self._conn = await self._listen()
        self.connected = True
        self._task = asyncio.create_task(self._run(), name="svc-postgres-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._close_connection()

    async def _listen(self) -> aiopg.Connection:
        conn = await self._connect()
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"LISTEN {CHANNEL}")
                for channel in self.channels:
                    await cur.execute(f"LISTEN {channel}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _close_connection(self) -> None:
        self.connected = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self) -> None:
        while True:
            try:
                await self._consume(self._conn)
            except (Unavailable, psycopg2.Error, *CONNECTION_ERRORS) as exc:
                # The LISTEN connection died, or a read-back could not reach the database.
                log.warning(
                    "postgres: change feed connection lost (%s); reconnecting", describe(exc)
                )
            except Exception as exc:  # a bug must not end the feed for good
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "postgres change feed failed", "exception": exc}
                )
            self._close_connection()
            await self._reconnect()

    async def _reconnect(self) -> None:
        """Re-open LISTEN with backoff, then resync (LISTEN first, so nothing falls between)."""
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                self._conn = await self._listen()
                await self._resync()
            except (Unavailable, psycopg2.Error, *CONNECTION_ERRORS) as exc:
                # Still down, or the new connection died while resynchronising: try again.
                log.debug("postgres: change feed not back yet (%s)", describe(exc))
                self._close_connection()
                continue
            except Exception as exc:  # a bug: report it, but keep trying
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "postgres change feed resync failed", "exception": exc}
                )
                self._close_connection()
                continue
            self.connected = True
            log.info("postgres: change feed reconnected and resynchronised")
            return

    async def _consume(self, conn: aiopg.Connection) -> None:
        notifies = conn.notifies
        while True:
            batch = [await notifies.get()]  # raises once the connection is gone
            while not notifies.empty():  # everything that has arrived: one read-back for all
                batch.append(notifies.get_nowait())
            await self._deliver(batch)

    async def _deliver(self, batch: list) -> None:
        parsed = []
        for notify in batch:
            if notify.channel in self.channels:
                self.channels[notify.channel](notify.payload)
                continue
            try:
                parsed.append(parse_payload(notify.payload))
            except (ValueError, KeyError, TypeError):
                log.warning("postgres: ignoring a malformed notification on %s", CHANNEL)
        # Rows too big for a payload came as id + version only: read them back in one query.
        missing = {user_id for user_id, _, deleted, user in parsed if user is None and not deleted}
        current = {u.id: u for u in await self._read_users(missing)} if missing else {}
        for user_id, version, deleted, user in parsed:
            if deleted:
                self._announce(Change(user_id, version, None))
            elif user is not None:
                self._announce(Change(user_id, version, user))
            elif user_id in current:
                # The row may have moved on since: announce what it is now; the
                # notifications of the versions in between are then stale and dropped.
                fresh = current[user_id]
                self._announce(Change(user_id, fresh.version, fresh))

    def _announce(self, change: Change) -> None:
        if self.tracker.is_new(change.user_id, change.version, change.user is None):
            self._storage.announce(change)

    async def _resync(self) -> None:
        """Announce every tracked or interesting user whose version moved while we were away."""
        ids = set(self._storage.interesting_user_ids()) | set(self.tracker.ids())
        if not ids:
            return
        found = {u.id: u for u in await self._read_users(ids)}
        for user_id in ids:
            last = self.tracker.get(user_id)
            user = found.get(user_id)
            if user is not None:
                if last is None or last[1] or last[0] != user.version:
                    if last is not None and not last[1] and user.version < last[0]:
                        # deleted and created again while we were away
                        self._storage.announce(Change(user_id, last[0] + 1, None))
                    self.tracker.remember(user_id, user.version, False)
                    self._storage.announce(Change(user_id, user.version, user))
            elif last is not None and not last[1]:
                self.tracker.remember(user_id, last[0] + 1, True)
                self._storage.announce(Change(user_id, last[0] + 1, None))
