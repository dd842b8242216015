"""The public representation of a user: one shape for REST bodies, members and room frames.

docs/api.md "Resources": ``{"id", "user_id", "profile", "version", "created_at",
"updated_at"}``.  A password hash, and ``password_updated_at``, never leave
the server.

With auth on, ``email`` is private (docs/api.md "Auth"): only a request carrying the
owner's token reads it; everyone else, the members route and every room frame
see ``null``.  Both bodies of a record are built once (:func:`user_json`), so the choice
costs nothing per reader.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .storage import PROFILE_FIELDS, Storage, User


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as every backend renders it."""
    return moment.isoformat().replace("+00:00", "Z")


def user_to_dict(user: User, with_email: bool = True) -> dict[str, Any]:
    # zip and map, not a comprehension: no Python frame for what runs on every write.
    profile = dict(zip(PROFILE_FIELDS, map(user.profile.get, PROFILE_FIELDS), strict=True))
    for name, value in profile.items():
        # A backend may hand out read-only mappings (svc.storage.frozen_profile): json wants
        # dicts.  (Checked here, not per field in a helper: this runs for every fresh record.)
        if value is not None and not isinstance(value, _SCALARS) and isinstance(value, Mapping):
            profile[name] = dict(value)
    if not with_email:
        profile["email"] = None
    return {
        "id": user.id,
        "user_id": user.id,
        "profile": profile,
        "version": user.version,
        "created_at": format_timestamp(user.created_at),
        "updated_at": format_timestamp(user.updated_at),
    }


_SCALARS = (str, int, float, dict)  # what a profile value mostly is: no ABC check needed


def user_json(user: User, with_email: bool = True) -> bytes:
    """The record as compact JSON bytes, built once per record and representation
    (``with_email=False``: its ``email`` shown as ``null``).

    A record is immutable, so a backend that hands out the same object for
    repeated reads (memory) costs one serialisation per version, not per request.
    """
    key = id(user)
    bodies = _BODIES.get(key)
    if bodies is None or bodies() is not user:
        # (Made here, not in an __init__: a PUT's record is new, so this runs on every write.)
        bodies = _BODIES[key] = _Bodies(user, _forget)
        bodies.key, bodies.json, bodies.json_no_email = key, None, None
    # Without an email both representations are one and the same body.
    if with_email or user.profile.get("email") is None:
        body = bodies.json
        if body is None:
            body = bodies.json = _compact(user_to_dict(user)).encode()
    else:
        body = bodies.json_no_email
        if body is None:
            body = bodies.json_no_email = _compact(user_to_dict(user, False)).encode()
    return body


class _Bodies(weakref.ref):
    """The JSON bodies built from one record, kept as long as the record lives and no
    longer: a weak reference to it that carries them, in :data:`_BODIES` under the
    record's ``id()``.  The record stays plain data (no HTTP cache in storage's class),
    and a backend needs to know nothing about it.  (A WeakKeyDictionary would hash the
    record, and a record holds a dict.)"""

    __slots__ = ("key", "json", "json_no_email")


def _forget(bodies: _Bodies) -> None:
    # The record is gone; its id may be reused at once by another record, whose entry
    # (if already made) must stay.
    if _BODIES.get(bodies.key) is bodies:
        del _BODIES[bodies.key]


_BODIES: dict[int, _Bodies] = {}


# One encoder for every body: json.dumps with separators builds a new one per call.
_compact = json.JSONEncoder(separators=(",", ":")).encode


class ProfilelessMember:
    """A present id with no stored user: joined before creating a profile (open mode lets
    any valid id join, as the service svc replaces did), or deleted while connected.

    Shown as a user at version 0 whose every field is null, so clients handle one shape
    (the ``Member`` schema of the OpenAPI document); the user's first profile change
    then arrives as ``profile_updated`` at version 1.
    """

    __slots__ = ("id", "body")

    def __init__(self, user_id: str):
        self.id = user_id
        # A crowd of ids without a profile is a big room's common case: the body is a
        # template around the id (json.dumps per member was ~40 % of a join's CPU).
        quoted = _quote(user_id).encode()
        self.body = _PROFILELESS_BODY % (quoted, quoted)

    def to_dict(self) -> dict:
        return _profileless_dict(self.id)


def _profileless_dict(user_id: str) -> dict:
    return {
        "id": user_id,
        "user_id": user_id,
        "profile": dict.fromkeys(PROFILE_FIELDS),
        "version": 0,
        "created_at": None,
        "updated_at": None,
    }


_quote = json.encoder.encode_basestring_ascii  # what json.dumps does to a str, in C
_PROFILELESS_BODY = (
    json.dumps(_profileless_dict("@ID@"), separators=(",", ":")).replace('"@ID@"', "%s").encode()
)


Member = User | ProfilelessMember


def member_json(member: Member, with_email: bool = True) -> bytes:
    if isinstance(member, ProfilelessMember):
        return member.body
    return user_json(member, with_email)


async def member_records(storage: Storage, ids: list[str]) -> list[Member]:
    """The records of present ids, in order, with a placeholder for an id without a user."""
    if not ids:
        return []
    found = {user.id: user for user in await storage.get_users(ids)}
    return [found.get(user_id) or ProfilelessMember(user_id) for user_id in ids]
