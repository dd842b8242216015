"""Who may open a socket in a room, decided before the hub hears of it.

Every refusal of a WebSocket handshake is an upgrade closed at once with an
application code and a reason, because that is all page JavaScript can read:
an HTTP error before the upgrade reaches it as 1006 with no reason at all.

- 4403: the ``Origin`` is not allowed (the CORS allow-list; a page of the
  service's own origin and a client sending no ``Origin`` always may);
- 4422: the room id or ``user_id`` breaks the id rule;
- 4401: auth on, and no token, or a bad, expired or stale one;
- 4404: auth on, and the token's user does not exist (tokens are not revoked:
  this is where one of a deleted user stops);
- 4429: the user already holds ``MAX_SOCKETS_PER_USER`` sockets in this process
  (decided by the hub as it joins: svc.rooms.hub.TooManySockets);
- 4503: storage (or the broker) cannot answer now; the reason says which.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import hdrs, web

from ..keys import ORIGINS
from .ids import ID_RULE, is_valid_id

ORIGIN_NOT_ALLOWED = 4403
BAD_ID = 4422
BAD_TOKEN = 4401
NO_SUCH_USER = 4404
TOO_MANY_SOCKETS = 4429
UNAVAILABLE = 4503
#: The protocol's limit on a close reason, in bytes.
MAX_REASON = 123


class Refused(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode()[:MAX_REASON].decode(errors="ignore")


def check_origin(request: web.Request) -> None:
    origins = request.headers.getall("Origin", ())
    if len(origins) > 1:
        # A browser sends one; which of two a proxy or a check would read is anyone's guess.
        raise Refused(ORIGIN_NOT_ALLOWED, "more than one Origin header")
    if not origins:
        return  # not a browser: any socket may open (OriginPolicy.allows_socket)
    origin = origins[0]
    # Host only, never X-Forwarded-Host: anyone can send that (svc.http.origins).  Read
    # from the header as request.host reads it, without request.host: that is cached on
    # the request, whose cache then outgrows its first size (~200 B of every idle socket).
    host = request.headers.get(hdrs.HOST)
    if host is None:
        host = request.host
    if not request.app[ORIGINS].allows_socket(origin, host):
        raise Refused(ORIGIN_NOT_ALLOWED, f"origin {origin} is not allowed")


def check_room(room_id: str) -> None:
    if not is_valid_id(room_id):
        raise Refused(BAD_ID, f"the room id must be {ID_RULE}")


def query_value(request: web.Request, name: str) -> str | None:
    """The first ``name=`` of the query, as ``request.query.get(name)`` gives it.

    Not ``request.query``: that parse is cached on the request and on its URL, which a
    socket keeps for its whole life (~540 B of every idle WebSocket, tracemalloc in
    bench/memory_per_socket.py).  yarl's parse is ``parse_qsl`` of the raw query, too."""
    for key, value in parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True):
        if key == name:
            return value
    return None


def member_id(request: web.Request) -> str | None:
    """Auth off: the user the socket joins as (``?user_id=``), or None for a watcher.
    With auth on the tokens say who joins (:func:`.socket_auth.check_tokens`)."""
    user_id = query_value(request, "user_id") or None
    if user_id is not None and not is_valid_id(user_id):
        raise Refused(BAD_ID, f"user_id must be {ID_RULE}")
    return user_id
