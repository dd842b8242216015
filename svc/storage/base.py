"""The storage contract every backend implements, and the errors it speaks.

A backend is a subclass of :class:`Storage` registered in the ``svc.storage``
entry-point group under its URL scheme.  The core never knows which backend it
talks to: it calls these methods and maps these errors to HTTP in one place
(``svc.errors``).
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

#: The profile fields, in the order they are shown.  A field never set is ``None``.
PROFILE_FIELDS = ("display_name", "username", "bio", "email", "avatar_url", "avatar_urls")


class StorageError(Exception):
    """Base of the domain errors a backend raises."""


class NotFound(StorageError):
    """No user with that id (or username)."""


class Conflict(StorageError):
    """A unique value is taken: the id, or the username (compared without case)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class VersionMismatch(StorageError):
    """The caller expected a version the user has moved on from (``If-Match``)."""

    def __init__(self, current_version: int):
        super().__init__(f"the user is at version {current_version}")
        self.current_version = current_version


class Unavailable(StorageError):
    """The backend cannot answer right now (database down, pool exhausted...)."""


@dataclass(frozen=True)
class User:
    """One user as stored.  Immutable: a change produces a new record."""

    id: str
    profile: Mapping[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    password_updated_at: datetime | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The public representation (API.md "Resources"); never holds a password hash."""
        return {
            "id": self.id,
            "user_id": self.id,
            "profile": {name: self.profile.get(name) for name in PROFILE_FIELDS},
            "version": self.version,
            "created_at": format_timestamp(self.created_at),
            "updated_at": format_timestamp(self.updated_at),
        }

    @cached_property
    def json_body(self) -> bytes:
        # A record is immutable, so a backend that hands out the same object for
        # repeated reads (memory) serialises each version once, not per request.
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def format_timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Credentials:
    """What a login needs: never leaves the server."""

    user_id: str
    password_hash: str | None


@dataclass(frozen=True)
class Change:
    """A committed change, as announced on the change feed.

    ``user`` is the record after the change, or ``None`` when the user was
    deleted.  Listeners must tolerate seeing the same version twice (a backend
    may re-announce after a reconnect) and drop versions older than one they
    have already seen.
    """

    user_id: str
    version: int
    user: User | None


def moves_forward(last: tuple[int, bool] | None, version: int, deleted: bool) -> bool:
    """Whether a change at ``version`` (a deletion if ``deleted``) is news to a listener
    whose last seen state of the user is ``last``, a (version, deleted) pair or None.

    Older or equal versions are stale, except that after a deletion the id may be
    created again, starting over at version 1.
    """
    return last is None or version > last[0] or (last[1] and not deleted)


ChangeListener = Callable[[Change], None]


@dataclass(frozen=True)
class PresenceChange:
    """``user_id`` became present in (or absent from) WebSocket room ``room_id``.

    Announced once per transition of the whole service: a user is present while
    any process holds a connection of theirs in the room.
    """

    room_id: str
    user_id: str
    present: bool


PresenceListener = Callable[[PresenceChange], None]
#: Returns the user ids a listener cares about right now; a backend that may
#: have missed changes (a lost LISTEN connection) re-reads these and announces
#: the ones that moved.
InterestFn = Callable[[], Iterable[str]]


class Storage(abc.ABC):
    """The interface of a storage backend.

    Construction must not do I/O: ``open`` connects (and may raise
    :class:`Unavailable`, which the service retries with backoff for a bounded
    time), ``close`` releases everything.  Every write is atomic for its user.
    """

    def __init__(self, url: str):
        self.url = url
        self._listeners: list[tuple[ChangeListener, InterestFn | None]] = []
        self._presence_listeners: list[PresenceListener] = []
        # room → user → how many callers hold the user there (several hubs may share a backend)
        self._presence: dict[str, dict[str, int]] = {}

    @classmethod
    def check_url(cls, url: str) -> None:
        """Raise ValueError, with a message for a person, if ``url`` cannot work.

        Called at start-up, before any connection, so a malformed URL stops the
        service with one clear line.  Must not do I/O.  Optional: the default accepts any URL.
        """
        return None

    # -- life cycle -------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create or migrate what is needed.  Raise Unavailable to be retried."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and stop background work.  Safe to call twice."""

    @abc.abstractmethod
    async def ping(self) -> dict[str, str]:
        """Readiness: a mapping of part name to ``"ok"``; raise Unavailable naming the part down."""

    # -- users -------------------------------------------------------------

    @abc.abstractmethod
    async def create_user(
        self, user_id: str, profile: Mapping[str, Any], password_hash: str | None = None
    ) -> User:
        """Store a new user at version 1.  Conflict if the id or the username is taken."""

    @abc.abstractmethod
    async def get_user(self, user_id: str) -> User:
        """The user, or NotFound."""

    @abc.abstractmethod
    async def get_users(self, user_ids: Iterable[str]) -> list[User]:
        """The users among ``user_ids`` that exist, in the order asked; missing ids are skipped."""

    @abc.abstractmethod
    async def update_profile(
        self,
        user_id: str,
        changes: Mapping[str, Any],
        expected_version: int | None = None,
        create: bool = False,
    ) -> tuple[User, bool]:
        """Merge ``changes`` into the profile (``None`` clears a field) and bump the version.

        Only the fields in ``changes`` are written, so two concurrent updates of
        different fields both survive.  With ``expected_version`` the update
        happens only at that version (else VersionMismatch; NotFound if there is
        no user).  With ``create`` a missing user is created from ``changes`` at
        version 1.  Returns the new record and whether it was created.
        """

    @abc.abstractmethod
    async def set_password_hash(self, user_id: str, password_hash: str) -> datetime:
        """Replace the password hash; returns when it was set.  Not a profile change:
        the version does not move.  NotFound if there is no user."""

    @abc.abstractmethod
    async def get_credentials(self, user_id: str) -> Credentials:
        """The stored hash of a user, by id.  NotFound if there is no user."""

    @abc.abstractmethod
    async def find_credentials(self, username: str) -> Credentials:
        """The stored hash of a user, by username without regard to case.  NotFound if none."""

    @abc.abstractmethod
    async def delete_user(self, user_id: str) -> None:
        """Remove the user and their hash.  NotFound if there is no user."""

    # -- change feed -------------------------------------------------------

    def subscribe(
        self, listener: ChangeListener, interest: InterestFn | None = None
    ) -> Callable[[], None]:
        """Call ``listener`` (on the event loop, never concurrently) for every committed change.

        Returns a function that unsubscribes.  A backend shared by several
        processes announces changes made by any of them.
        """
        entry = (listener, interest)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry) if entry in self._listeners else None

    def announce(self, change: Change) -> None:
        """Hand ``change`` to every listener.  Backends call this; a failing listener
        must not stop the others, so its error is left to the loop's handler."""
        for listener, _ in tuple(self._listeners):
            try:
                listener(change)
            except Exception as exc:  # noqa: BLE001 - one bad listener must not starve the rest
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "storage change listener failed", "exception": exc}
                )

    def interesting_user_ids(self) -> set[str]:
        """The union of what the listeners care about (for resynchronising after a gap)."""
        wanted: set[str] = set()
        for _, interest in self._listeners:
            if interest is not None:
                wanted.update(interest())
        return wanted

    # -- presence (who is in which WebSocket room) --------------------------
    #
    # The hub calls presence_join when the first connection of a user in a
    # room opens in its process, and presence_leave when the last one closes.
    # These defaults keep presence in this process, which is all a backend
    # that cannot reach other processes needs.  A backend shared by several
    # processes overrides the four coroutines and announces every change,
    # from whichever process, through announce_presence.

    async def presence_join(self, room_id: str, user_id: str) -> None:
        """Count one more holder of ``user_id`` in ``room_id``; announce if they just arrived."""
        holders = self._presence.setdefault(room_id, {})
        holders[user_id] = holders.get(user_id, 0) + 1
        if holders[user_id] == 1:
            self.announce_presence(PresenceChange(room_id, user_id, True))

    async def presence_leave(self, room_id: str, user_id: str) -> None:
        """Count one holder fewer; announce if that was the last one."""
        holders = self._presence.get(room_id, {})
        count = holders.get(user_id, 0) - 1
        if count > 0:
            holders[user_id] = count
            return
        if holders.pop(user_id, None) is not None:
            if not holders:
                del self._presence[room_id]
            self.announce_presence(PresenceChange(room_id, user_id, False))

    async def presence_members(
        self, room_id: str, after: str | None = None, limit: int = 100
    ) -> list[str]:
        """Up to ``limit`` ids present in ``room_id``, in id order, after ``after`` (paging)."""
        ids = sorted(self._presence.get(room_id, ()))
        start = bisect.bisect_right(ids, after) if after is not None else 0
        return ids[start : start + limit]

    async def presence_count(self, room_id: str) -> int:
        return len(self._presence.get(room_id, ()))

    def subscribe_presence(self, listener: PresenceListener) -> Callable[[], None]:
        """Call ``listener`` (on the event loop) for every presence change; returns unsubscribe."""
        self._presence_listeners.append(listener)
        return lambda: (
            self._presence_listeners.remove(listener)
            if listener in self._presence_listeners
            else None
        )

    def announce_presence(self, change: PresenceChange) -> None:
        for listener in tuple(self._presence_listeners):
            try:
                listener(change)
            except Exception as exc:  # noqa: BLE001 - as in announce
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "presence listener failed", "exception": exc}
                )
