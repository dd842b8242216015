"""The rooms' wire format: every server frame, serialised and framed once.

Frames are strict JSON (``allow_nan=False``: no ``NaN`` or ``Infinity``, which
``JSON.parse`` refuses) in ASCII (a lone surrogate from a client still encodes).
User records are spliced in from their cached JSON body (:func:`svc.views.user_json`),
so a crowd's welcome costs one join of bytes, not a serialisation per member.
"""

from __future__ import annotations

import json

from ..storage import User
from ..views import Member, member_json, member_records, user_json
from .wire import text_frame

__all__ = ["member_records"]  # re-exported for the hub


def dumps(value) -> str:
    """Compact strict JSON; ValueError for NaN or Infinity."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def encode(frame: dict) -> bytes:
    return text_frame(dumps(frame).encode())


def encode_with_users(frame: dict, key: str, users: list[Member], with_email: bool = True) -> bytes:
    """``frame`` plus ``key``: the users, spliced from each record's cached JSON body
    (``with_email=False``: the body with ``email`` null, auth on)."""
    return encode_with_list(frame, key, b",".join(member_json(u, with_email) for u in users))


def encode_with_list(frame: dict, key: str, items: bytes) -> bytes:
    """``frame`` plus ``key``: a list whose inside is ``items``, comma-separated bodies."""
    head = dumps(frame).encode()[:-1]
    return text_frame(b"%s,%s:[%s]}" % (head, dumps(key).encode(), items))


def profile_updated(room_id: str, user: User, with_email: bool = True) -> bytes:
    """``{"type": "profile_updated", "room", ...the whole user record}``."""
    body = user_json(user, with_email)
    return text_frame(
        b'{"type":"profile_updated","room":%s,%s' % (dumps(room_id).encode(), body[1:])
    )


def message(room_id: str, sender: str, data: str) -> bytes:
    """A relayed member message; ``data`` is already strict JSON text."""
    return text_frame(
        f'{{"type":"message","room":{dumps(room_id)},"from":{dumps(sender)},'
        f'"data":{data}}}'.encode()
    )


def error_frame(code: str, message: str) -> bytes:
    return encode({"type": "error", "code": code, "message": message})


PONG = encode({"type": "pong"})
