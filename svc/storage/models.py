"""The records storage hands back.  Plain data: no I/O, no HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

#: The profile fields, in the order they are shown.  A field never set is ``None``.
PROFILE_FIELDS = ("display_name", "username", "bio", "email", "avatar_url", "avatar_urls")


def username_key(username: str) -> str:
    """The one rule that makes two usernames "the same": ``str.casefold``.

    Usernames are unique under this key, and ``find_credentials`` finds a user
    by it; the profile keeps the username exactly as given.  Use this function,
    not your database's ``lower()``: the HTTP field rule admits ASCII only, but
    storage is handed any text (``Storage`` says which), and ``"Straße"`` and
    ``"STRASSE"`` are the same user under casefold and two users under lower.
    Casefold alone: no Unicode normalisation on top (NFKC would make the
    fullwidth ``"ａｄａ"`` one user with ``"ada"``; casefold keeps them two).  A
    backend that indexes the key stores exactly this value.
    """
    return username.casefold()


def frozen_profile(profile: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy of ``profile`` holding every field of :data:`PROFILE_FIELDS`.

    Nested mappings (``avatar_urls``) are copied read-only too, so one record
    may be handed to any number of callers, none of whom can change what the
    backend holds (or what another caller sees).
    """
    fields = {}
    for name in PROFILE_FIELDS:  # a loop, not nested comprehensions: every write runs it
        value = profile.get(name)
        fields[name] = MappingProxyType(dict(value)) if isinstance(value, Mapping) else value
    return MappingProxyType(fields)


@dataclass(frozen=True)
class User:
    """One user as stored.  Immutable: a change produces a new record.

    - ``profile`` holds every field of :data:`PROFILE_FIELDS` (``None`` when
      never set) and nothing else.  Nobody may change the backend through it:
      return a fresh copy per call, or a read-only one (:func:`frozen_profile`),
      and never keep the caller's ``profile``/``changes`` mappings (or their
      nested ``avatar_urls``) by reference.
    - ``version`` is 1 at creation and grows by one with each profile change;
      a password change does not move it.  A deletion is announced (by svc) at
      the deleted record's version + 1; an id created again starts over at 1.
    - ``created_at``, ``updated_at`` and ``password_updated_at`` are
      timezone-aware datetimes in UTC (offset zero; not local time, not naive)
      with the current time.  ``updated_at`` moves forward with every profile
      change and only then (a password change is not a profile change);
      ``created_at`` never moves.  ``password_updated_at`` is when the password
      was last set (``None``: never) and every record of the user carries it,
      whichever method returned the record.
    """

    id: str
    profile: Mapping[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    password_updated_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Credentials:
    """What a login needs: never leaves the server."""

    user_id: str
    password_hash: str | None
    #: When the password was last set (UTC); tokens issued before it are refused.
    password_updated_at: datetime | None = None
    #: When the account was created (UTC); tokens issued before it are refused.
    created_at: datetime | None = None
