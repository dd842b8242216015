"""Private rooms and their room tokens: svc checks, the application's backend decides.

A room is private when its id matches ``PRIVATE_ROOMS`` in full (auth on only).  Who may
be in one is the application's business: its backend hands a user a **room token**, an
HS256 JWT signed with ``JWT_SECRET_KEY`` whose claims are ``sub`` (the user), ``room``
(the room) and ``exp``.  Here it is only checked.

A room token is not a login token, nor the reverse: a login token has no ``room`` claim
(:func:`svc.http.auth.decode_token` refuses one that has), and a token without ``room``
is no room token.  So a leaked room token cannot write to its user's profile, and a login
token cannot open a private room.
"""

from __future__ import annotations

import re
from typing import Any

import jwt
from aiohttp import web

from ..keys import SETTINGS
from .auth import ALGORITHM, bearer_token
from .errors import APIError

_DECODE_OPTIONS = {"require": ["exp", "sub", "room"], "verify_iat": False}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="svc"'}
_INVALID = {"WWW-Authenticate": 'Bearer realm="svc", error="invalid_token"'}

MISSING = "this room is private: a room token is needed (room_token)"
BAD = "the room token is not valid"
EXPIRED = "the room token has expired"
OTHER_ROOM = "the room token is for another room"
OTHER_USER = "the room token is for another user"


class RoomTokenError(Exception):
    """A room token that does not open this room; the message says why (safe to show)."""


def is_private(settings, room_id: str) -> bool:
    """Does ``room_id`` match ``PRIVATE_ROOMS`` in full?  (re caches the compiled pattern.)"""
    pattern = settings.private_rooms
    return pattern is not None and re.fullmatch(pattern, room_id) is not None


def room_token_claims(settings, token: str | None, room_id: str) -> dict[str, Any]:
    """The claims of a good room token for ``room_id``; RoomTokenError saying which
    check failed: missing, bad, expired, or for another room."""
    if not token:
        raise RoomTokenError(MISSING)
    try:
        claims = jwt.decode(
            token, settings.jwt_secret_key, algorithms=[ALGORITHM], options=_DECODE_OPTIONS
        )
    except jwt.ExpiredSignatureError:
        raise RoomTokenError(EXPIRED) from None
    except jwt.InvalidTokenError:
        # A login token lands here too (no room claim): it is not a room token.
        raise RoomTokenError(BAD) from None
    if not isinstance(claims["sub"], str) or not isinstance(claims["room"], str):
        raise RoomTokenError(BAD)
    if claims["room"] != room_id:
        raise RoomTokenError(OTHER_ROOM)
    return claims


def check_room_token(settings, token: str | None, room_id: str, user_id: str) -> float:
    """The ``exp`` of a room token that lets ``user_id`` into ``room_id``; RoomTokenError."""
    claims = room_token_claims(settings, token, room_id)
    if claims["sub"] != user_id:
        raise RoomTokenError(OTHER_USER)
    return claims["exp"]


def authorize_members(request: web.Request, room_id: str) -> None:
    """The members of a private room are for bearers of a room token for it: 401 without
    a good one (a login token is not one), 403 for another room's.  Public rooms: open."""
    settings = request.app[SETTINGS]
    if not is_private(settings, room_id):
        return
    token = bearer_token(request)
    if token is None:
        raise APIError(
            401,
            "unauthorized",
            "this room is private: send Authorization: Bearer <room token>",
            headers=_CHALLENGE,
        )
    try:
        room_token_claims(settings, token, room_id)
    except RoomTokenError as exc:
        if str(exc) == OTHER_ROOM:
            raise APIError(403, "forbidden", OTHER_ROOM) from None
        raise APIError(401, "unauthorized", str(exc), headers=_INVALID) from None
