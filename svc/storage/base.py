"""``Storage``: the user store a backend implements.  Users only, on one screen.

A backend is a subclass registered in the ``svc.storage`` entry-point group
under its URL scheme (see ``docs/plugins.md``).  The core never knows which
backend it talks to: it calls these methods and maps the errors of
``svc.storage.errors`` to HTTP in one place.  What crosses processes (changes,
room messages, presence) is not storage's job: that is the broker's
(``svc.broker``); svc publishes each committed change itself.

Rules every backend keeps (``svc.testing.StorageConformance`` checks each):

- The constructor takes the URL and does no I/O; ``super().__init__`` need not
  be called.  ``check_url`` may reject a malformed URL before anything starts.
- ``open`` connects and creates or migrates what it needs.  Raise
  ``Unavailable`` for "not yet" (svc retries with backoff for a bounded time:
  a server that does not answer, a file another process holds locked) and
  ``Misconfigured`` for "never, as configured" (svc stops at once with one
  line): bad credentials, no such database, a folder that does not exist (svc
  makes none, and waiting for a mount is for whatever starts svc), a file or
  database that holds garbage or another program's tables.  ``close`` is
  called after a failed ``open`` too, and twice is safe.
- Every write is atomic for its user; data written is there after ``close``
  and a new ``open`` of the same URL, and two instances open on one URL (two
  svc processes) see each other's writes at once (unless the URL keeps
  nothing, as ``memory://``).
- Text is any ``str`` but U+0000 and lone surrogates (U+D800 to U+DFFF), which
  svc's HTTP layer refuses because Postgres cannot store them; every other
  character round-trips exactly, at any length HTTP accepts (a bio of 1,000
  characters of up to 4 UTF-8 bytes each, 16 avatar URLs of 2,048...).
  The keys of ``profile`` and ``changes`` are always names of
  ``PROFILE_FIELDS``: svc validates every body first, and a backend need not
  check them.
- Records are :class:`~svc.storage.models.User`: versions, UTC timestamps and
  fresh profile mappings as its docstring says.  Usernames are unique under
  :func:`~svc.storage.models.username_key` (casefold alone: not your
  database's ``lower()``, no NFKC); a user may have none.
- A password change is not a profile change: it moves ``password_updated_at``
  only, never ``version`` or ``updated_at``.
- Hand out nothing the caller can change you through, and keep nothing the
  caller handed you by reference (``profile``, ``changes``, nested
  ``avatar_urls``): copy, or use :func:`~svc.storage.models.frozen_profile`.

The suite names the rule in every failure; its optional fixtures (``reopen``,
``second_storage``, ``bad_urls``, ``unavailable_storage``, ``garbage_storage``)
check persistence, a second instance, ``check_url`` and a failed ``open``, and
are skipped, with the reason, when not supplied.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .models import Credentials, User


class Storage(abc.ABC):
    """The interface of a storage backend (11 coroutines)."""

    def __init__(self, url: str):
        self.url = url

    @classmethod
    def check_url(cls, url: str) -> None:
        """Raise ValueError, with a message for a person, if ``url`` cannot work.

        Called at start-up, before any connection; must not do I/O and must not
        echo a password.  The default accepts any URL.
        """
        return None

    @classmethod
    def default_broker_url(cls, url: str) -> str | None:
        """The broker this storage brings along when ``BROKER_URL`` is unset
        (Postgres storage: its own database's LISTEN/NOTIFY).  ``None``: in-process."""
        return None

    # -- life cycle -------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create or migrate.  Unavailable: retried; Misconfigured: fatal."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and stop background work.  Safe twice, and after a failed open."""

    @abc.abstractmethod
    async def ping(self) -> dict[str, str]:
        """Readiness: ``{part: "ok"}`` for each part checked; raise Unavailable naming the
        part that is down.

        A part is your own short lowercase word for what you checked (Postgres: ``"pool"``,
        SQLite: ``"sqlite"``); ``/health/ready`` shows it as ``"storage.<part>": "ok"``.
        One part is enough; name more only when they can fail apart.
        """

    # -- users -------------------------------------------------------------

    @abc.abstractmethod
    async def create_user(
        self, user_id: str, profile: Mapping[str, Any], password_hash: str | None = None
    ) -> User:
        """Store a new user at version 1, ``created_at == updated_at``.

        ``profile`` holds some of the profile fields (missing ones are ``None``;
        its keys are always names of ``PROFILE_FIELDS``);
        copy it, the caller may reuse it.  With a hash, ``password_updated_at``
        is set too (to the creation time).  Conflict (``field``
        "id" or "username") if the id or the username is taken.
        """

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
        """Merge ``changes`` into the profile (``None`` clears a field); bump the version
        and ``updated_at``.  Returns the new record and whether it was created.
        ``changes`` is never empty and its keys are always names of ``PROFILE_FIELDS``
        (svc refuses any other before calling).

        Only the fields in ``changes`` are written, so two concurrent updates of
        different fields both survive, and concurrent updates get distinct
        consecutive versions.  With ``expected_version`` the update happens only
        at that version (else VersionMismatch; NotFound if there is no user, and
        it never creates, even with ``create``).  With ``create`` and no ``expected_version``, a
        missing user is created from ``changes`` at version 1, atomically with
        respect to a concurrent create of the same id (one creates, the other
        updates).  Conflict if the username is taken by another user.
        """

    @abc.abstractmethod
    async def set_password_hash(
        self, user_id: str, password_hash: str, expected_hash: str | None = None
    ) -> datetime:
        """Replace the hash; returns the new ``password_updated_at``.  Not a profile
        change: neither ``version`` nor ``updated_at`` moves.  NotFound if there is no user.

        With ``expected_hash``, a compare-and-set: replace only if the stored hash is
        still exactly that one, atomically, else Conflict (``field`` None) and
        nothing changes.  (A login re-hashing an old scheme must not write back a
        password that was changed meanwhile.)
        """

    @abc.abstractmethod
    async def get_credentials(self, user_id: str) -> Credentials:
        """The stored hash of a user, by id, with its timestamps.  NotFound if there is
        no user; a user without a password has Credentials whose ``password_hash`` is
        ``None``, not NotFound: svc answers a missing user with 404, and lets a user
        with no password yet set one without ``current_password``."""

    @abc.abstractmethod
    async def find_credentials(self, username: str) -> Credentials:
        """As ``get_credentials``, by username under ``username_key``: ``"ADA"`` finds the
        user named ``"Ada"``, ``"STRASSE"`` the one named ``"Straße"``.  NotFound if none."""

    @abc.abstractmethod
    async def delete_user(self, user_id: str) -> User:
        """Remove the user and their hash; returns the record as it was when deleted.
        NotFound if none.

        "When deleted": an update that commits while the deletion is under way is in
        the returned record (one ``DELETE ... RETURNING``, not a read then a delete).
        The deletion is announced (by svc) at the returned version + 1; the id
        may be created again later, starting over at version 1.
        """
