"""The records storage hands back.  Plain data: no I/O, no HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: The profile fields, in the order they are shown.  A field never set is ``None``.
PROFILE_FIELDS = ("display_name", "username", "bio", "email", "avatar_url", "avatar_urls")


def username_key(username: str) -> str:
    """The one rule that makes two usernames "the same": ``str.casefold``.

    Usernames are unique under this key, and a login finds a user by it.
    (Usernames are ASCII by the field rule, where casefold and lower agree; a
    backend that stores the key should still store exactly this.)
    """
    return username.casefold()


@dataclass(frozen=True)
class User:
    """One user as stored.  Immutable: a change produces a new record.

    - ``profile`` holds every field of :data:`PROFILE_FIELDS` (``None`` when
      never set) and nothing else; it must be a fresh mapping the caller may
      not change the backend through.
    - ``version`` is 1 at creation and grows by one with each profile change;
      a password change does not move it.
    - ``created_at``, ``updated_at`` and ``password_updated_at`` are
      timezone-aware datetimes in UTC.  ``updated_at`` moves with every profile
      change and only then; ``password_updated_at`` is when the password was
      last set (``None``: never).
    """

    id: str
    profile: Mapping[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    password_updated_at: datetime | None = field(default=None, compare=False)
    #: Scratch space for representations built from this record (its JSON body),
    #: so a record handed out many times is serialised once.  Not part of the record.
    memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)


@dataclass(frozen=True)
class Credentials:
    """What a login needs: never leaves the server."""

    user_id: str
    password_hash: str | None
    #: When the password was last set (UTC); tokens issued before it are refused.
    password_updated_at: datetime | None = None
    #: When the account was created (UTC); tokens issued before it are refused.
    created_at: datetime | None = None
