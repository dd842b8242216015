"""The domain errors a storage backend raises; the HTTP layer maps them in one place."""

from __future__ import annotations


class StorageError(Exception):
    """Base of the domain errors a backend raises."""


class NotFound(StorageError):
    """No user with that id (or username)."""


class Conflict(StorageError):
    """A unique value is taken: the id, or the username (see ``username_key``).

    ``field`` names it (``"id"`` or ``"username"``) so the client is told which.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class VersionMismatch(StorageError):
    """The caller expected a version the user has moved on from (``If-Match``)."""

    def __init__(self, current_version: int):
        super().__init__(f"the user is at version {current_version}")
        self.current_version = current_version


class Unavailable(StorageError):
    """The backend cannot answer right now (database down, pool exhausted...).

    Raised by ``open`` it means "not yet": svc retries with backoff for
    ``DATABASE_TIMEOUT`` seconds.  Raised by any other method it becomes a 503.
    """


class Misconfigured(StorageError):
    """``open`` can never succeed as configured (bad credentials, no such database,
    no right to create tables...).  svc stops at once with this one line (exit 2),
    without retrying.  The message must not contain a password."""
