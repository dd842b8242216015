"""A socket's tokens (auth on): where they come from, what they let in, and renewal.

- **Where from.** ``?token=`` (and ``&room_token=`` for a private room), or, to keep
  them out of URLs that proxies log, an ``auth`` frame as the socket's first frame:
  ``{"type": "auth", "token": "…", "room_token": "…"}``, within
  :data:`FIRST_FRAME_SECONDS` of the upgrade, else 4401.
- **What they let in** (:func:`check_tokens`): the login token as before (4401 bad,
  expired or stale, 4404 its user gone); in a private room also a room token for this
  room and this user, else 4403 with a reason saying which check failed.
- **How long.** The socket holds a :class:`~svc.rooms.token_expiry.TokenLife`: closed
  with 4401 at the earliest ``exp`` of its tokens, unless an ``auth`` frame renews them
  (:func:`renew`: ``auth_ok`` with the new ``expires_at``; a bad one, or one for another
  user or room, is an ``invalid_token`` error frame and changes nothing).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from ..keys import SETTINGS, STORAGE
from ..rooms import frames
from ..rooms.connection import Connection
from ..rooms.hub import Hub
from ..rooms.token_expiry import TokenLife
from ..storage import NotFound, Storage, Unavailable
from .admission import (
    BAD_ID,
    BAD_TOKEN,
    NO_SUCH_USER,
    UNAVAILABLE,
    Refused,
    member_id,
    query_value,
)
from .auth import InvalidToken, decode_token, refuse_stale
from .ids import ID_RULE, is_valid_id
from .room_tokens import RoomTokenError, check_room_token, is_private

#: How long a socket opened without ``?token=`` may take to send its ``auth`` frame.
FIRST_FRAME_SECONDS = 5.0
#: WebSocket pings and pongs let through while waiting for it (then it is a flood).
_CONTROL_FRAMES_WHILE_WAITING = 8
#: The close code of a private room's refusal: 4000 + HTTP 403, as for a bad Origin.
ROOM_TOKEN_REFUSED = 4403

_TOKEN_EXPIRED = "the token has expired"
_ROOM_TOKEN_EXPIRED = "the room token has expired"


class BadAuthFrame(ValueError):
    """Not an ``auth`` frame that can be checked; the message says why (safe to show)."""


def auth_frame_fields(frame: Any) -> tuple[str, str | None]:
    """(token, room_token) of a decoded ``auth`` frame; BadAuthFrame if it is not one."""
    if not isinstance(frame, dict) or frame.get("type") != "auth":
        raise BadAuthFrame('expected {"type": "auth", "token": ...}')
    token, room_token = frame.get("token"), frame.get("room_token")
    if not isinstance(token, str) or not token:
        raise BadAuthFrame('an auth frame needs "token", a login token')
    if room_token is not None and not isinstance(room_token, str):
        raise BadAuthFrame('"room_token" must be a string')
    return token, room_token or None


def parse_auth_frame(text: str) -> tuple[str, str | None]:
    """(token, room_token) of an ``auth`` frame's text; BadAuthFrame otherwise."""
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise BadAuthFrame("the first frame must be a JSON auth frame") from None
    return auth_frame_fields(frame)


@dataclass(frozen=True)
class Admitted:
    """Who the tokens let in, and until when (auth off: a user id, or None, and no life)."""

    user_id: str | None
    life: TokenLife | None = None

    def bind(self, hub: Hub, conn: Connection) -> None:
        """Give the joined socket its tokens' deadline (before its start is fine: a close
        that early is kept until it starts)."""
        if self.life is not None:
            hub.bind_tokens(conn, self.life)


async def admit(request: web.Request, ws: web.WebSocketResponse, room_id: str) -> Admitted:
    """Who joins ``room_id``; Refused otherwise.  Auth on without ``?token=``: upgrades
    and waits for the first frame (the caller's later ``prepare`` is then a no-op)."""
    settings = request.app[SETTINGS]
    if not settings.auth_enabled:
        return Admitted(member_id(request))
    token = query_value(request, "token")
    if token:
        room_token = query_value(request, "room_token")
    else:
        await ws.prepare(request)
        token, room_token = await first_frame(ws, FIRST_FRAME_SECONDS)
    return await check_tokens(settings, request.app[STORAGE], room_id, token, room_token)


async def first_frame(ws: web.WebSocketResponse, seconds: float) -> tuple[str, str | None]:
    """The tokens of the socket's first frame, an ``auth`` frame within ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    for _ in range(_CONTROL_FRAMES_WHILE_WAITING + 1):
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            msg = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            break
        if msg.type is WSMsgType.TEXT:
            try:
                return parse_auth_frame(msg.data)
            except BadAuthFrame as exc:
                raise Refused(BAD_TOKEN, str(exc)) from None
        if msg.type not in (WSMsgType.PING, WSMsgType.PONG):
            raise Refused(BAD_TOKEN, "the first frame must be an auth frame")
    raise Refused(
        BAD_TOKEN, f"no auth frame within {seconds:g} s (or ?token= on the URL): send one first"
    )


async def check_tokens(
    settings,
    storage: Storage,
    room_id: str,
    token: str,
    room_token: str | None,
    user_id: str | None = None,
) -> Admitted:
    """The socket these tokens admit to ``room_id`` (as ``user_id``, when renewing);
    Refused with the close code and reason otherwise."""
    try:
        claims = decode_token(settings, token)
        subject = claims["sub"]
        if user_id is not None and subject != user_id:
            raise InvalidToken("the token belongs to another user")
        if not is_valid_id(subject):
            raise Refused(BAD_ID, f"the token's user id must be {ID_RULE}")
        refuse_stale(claims, await storage.get_credentials(subject))
    except InvalidToken as exc:
        raise Refused(BAD_TOKEN, str(exc)) from None
    except NotFound:
        raise Refused(NO_SUCH_USER, "the token's user does not exist") from None
    except Unavailable:
        raise Refused(UNAVAILABLE, "storage is unavailable, try again shortly") from None
    expires_at, reason = claims["exp"], _TOKEN_EXPIRED
    if is_private(settings, room_id):
        try:
            room_exp = check_room_token(settings, room_token, room_id, subject)
        except RoomTokenError as exc:
            raise Refused(ROOM_TOKEN_REFUSED, str(exc)) from None
        if room_exp < expires_at:
            expires_at, reason = room_exp, _ROOM_TOKEN_EXPIRED
    issued = claims.get("pat", claims["iat"])
    return Admitted(subject, TokenLife(issued, expires_at, reason))


def renewal(app: web.Application):
    """The hub's handler of ``auth`` frames on open sockets (auth on)."""

    async def renew(conn: Connection, frame: dict) -> None:
        try:
            token, room_token = auth_frame_fields(frame)
            admitted = await check_tokens(
                app[SETTINGS], app[STORAGE], conn.room_id, token, room_token, conn.user_id
            )
        except (BadAuthFrame, Refused) as exc:
            code = "unavailable" if getattr(exc, "code", None) == UNAVAILABLE else "invalid_token"
            reason = exc.reason if isinstance(exc, Refused) else str(exc)
            conn.send(frames.error_frame(code, f"{reason}; nothing changed"))
            return
        tokens, life = conn.tokens, admitted.life
        if conn.closed or tokens is None or life is None:
            return
        tokens.renew(life, conn.close)
        conn.send(frames.encode({"type": "auth_ok", "expires_at": life.expires_at}))

    return renew
