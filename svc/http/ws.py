"""``GET /ws/{room_id}``: who joins (:mod:`.admission`), the upgrade, then a loop handing
frames to the hub.

A plain HTTP request gets a JSON error (426; 404 for a room id that breaks the id
rule).  A WebSocket handshake that is refused is upgraded and closed at once with
a 44xx/45xx code and a reason a browser can read (see :mod:`.admission`).
"""

from __future__ import annotations

import asyncio
import logging
from string import Template
from time import perf_counter

from aiohttp import WSMessage, WSMsgType, web

from ..keys import HUB, SETTINGS
from ..logs import request_id
from ..rooms import frames
from ..rooms.connection import Connection
from ..rooms.hub import Hub, TooManySockets
from ..storage import Unavailable
from . import errors, routing
from .admission import (
    TOO_MANY_SOCKETS,
    UNAVAILABLE,
    Refused,
    check_origin,
    check_room,
    query_value,
)
from .components import (
    ID_PATTERN,
    MAX_MESSAGE_KIB,
    PRESENCE_WINDOW_MS,
    WELCOME_MEMBERS,
)
from .errors import APIError, unavailable_reason
from .ids import ID_RULE, is_valid_id
from .middleware import (
    answered_socket,
    before_socket,
    observes_itself,
    raised_socket,
    record_socket,
)
from .observe import REQUEST_ID_HEADER
from .operation import Reply, documented
from .socket_auth import admit

log = logging.getLogger(__name__)

access_log = logging.getLogger("svc.access")


@documented(
    summary="join a room over WebSocket",
    tag="rooms",
    description=Template("""Upgrades to a WebSocket in room `room_id`; frames are strict JSON text.

Join as a member with `?user_id=X` (auth off) or `?token=<JWT>` (auth on: the user id comes
from the token, and `?user_id=` without a token is 401); with neither, the connection
watches the room (auth off only). Auth on, tokens may stay out of the URL: without
`?token=`, the first frame must be `{"type": "auth", "token", "room_token"?}` within 5 s,
else 4401. A private room (its id matches `PRIVATE_ROOMS`) also needs a room token for
that room and user (`?room_token=` or in the auth frame): 4403 with a reason saying which
check failed (missing, not valid, expired, another room, another user). Auth on, a socket
is closed with 4401 at the earliest `exp` of its tokens unless renewed with an `auth` frame
(answered `{"type": "auth_ok", "expires_at"}`; a bad one gets an `invalid_token` error frame
and changes nothing), and when its user sets a new password after its login token was
issued. A plain HTTP request gets a JSON error (426; 404 for a room id that breaks the id
rule). A refused handshake is upgraded and closed at once with a code and reason a browser
can read: 4401 bad, expired or
missing token (or `?user_id=` without one), 4403 `Origin` not allowed (the CORS allow-list;
no `Origin` and the service's own origin always pass) or a private room's room token
refused, 4404 the token's user is gone, 4422
a room or user id that breaks the id rule, 4429 the user already holds `MAX_SOCKETS_PER_USER`
sockets (default 32, per process), 4503 storage or the broker unavailable (the
reason says which).

Server to client (schemas `WelcomeFrame`, `PresenceFrame`, `ProfileUpdatedFrame`,
`MessageFrame`, `ErrorFrame`, `PongFrame`):
- first `{"type": "welcome", "room", "connection_id", "member_count", "members"}`: at most
  $welcome `Member`s; page the rest with `GET /rooms/{room_id}/members`;
- `{"type": "presence", "room", "joined": [Member, ...], "left": [user_id, ...],
  "member_count"}`: a user joins with their first connection and leaves with their last
  (or when deleted); changes within $window ms are coalesced into one frame;
  a joiner is not told of its own arrival;
- `{"type": "profile_updated", "room", ...the whole user record}`: once per connection, in
  version order;
- `{"type": "message", "room", "from", "data"}`: another member's message;
- `{"type": "error", "code", "message"}`: a bad client frame (the connection stays).

A `Member` is a `User`, or a `ProfilelessMember` (version 0, every field null) for an id
present without a stored user; its first profile change arrives as `profile_updated` at
version 1.

Resume after a reconnect: where the broker numbers room events, `presence`,
`profile_updated` and `message` frames carry `seq` and the welcome `epoch` and `seq`;
`?since=<epoch>:<seq>` is answered with `"resumed": true` and the missed events, in order,
then live ones, or a normal welcome with `"resumed": false` (docs/resume.md).

Client to server: `{"type": "message", "data": ...}` (at most $kib KiB of data) and
`{"type": "ping"}` (answered by `{"type": "pong"}`). Every frame counts against the frame
rate, WebSocket pings too: one over it gets no pong, and a flood is closed with 1008. A slow
consumer is closed with 1013 (its own backlog past 256 KiB, or the slowest first when all
slow sockets together pass `SEND_BUFFER_BUDGET`); shutdown closes every socket with
1001.""").substitute(welcome=WELCOME_MEMBERS, window=PRESENCE_WINDOW_MS, kib=MAX_MESSAGE_KIB),
    parameters=(
        "RoomId",
        {
            "name": "user_id",
            "in": "query",
            "required": False,
            "description": "auth off: join as this user (without it, watch); auth on: 4401",
            "schema": {"type": "string", "pattern": ID_PATTERN},
        },
        {
            "name": "token",
            "in": "query",
            "required": False,
            "description": "auth on: join as the user of this JWT (from `POST /auth/token`); "
            "without it, send it in the first frame",
            "schema": {"type": "string"},
        },
        {
            "name": "room_token",
            "in": "query",
            "required": False,
            "description": "a private room: a room token for this room and user (claims "
            "`sub`, `room`, `exp`), signed by the application's backend",
            "schema": {"type": "string"},
        },
        {
            "name": "since",
            "in": "query",
            "required": False,
            "description": "`<epoch>:<seq>` of the last frame received: resume (a bad value "
            "is a normal welcome with `resumed: false`, never an error)",
            "schema": {"type": "string"},
        },
    ),
    replies={101: Reply("switching to the WebSocket protocol")},
    errors=(404, 426),
)
@observes_itself
async def websocket(request: web.Request) -> web.StreamResponse:
    # This frame lives as long as the socket, and is the only one of svc's that does: it
    # observes its own answer (middleware.observes_itself, kept in step with the
    # middleware: the request id, metrics, access line and headers of the answer), and
    # what only the handshake and the join need (the admission, a refusal, the welcome)
    # lives in frames that end before it idles.
    started = perf_counter()
    status = 500
    try:
        try:
            await before_socket(request)
            hub = request.app[HUB]
            ws = web.WebSocketResponse(
                # Pings and pongs come to the loop below: the hub's one heartbeat
                # (svc.rooms.connection.beat_forever) replaces aiohttp's timer per socket.
                autoping=False,
                # Bigger frames are closed with 1009 by aiohttp itself; a message's own
                # limit (8 KiB of data) is checked by the hub, with an error frame.
                max_msg_size=hub.limits.max_frame_bytes,
                # frames.py rule 1: the hub writes pre-framed bytes shared by every socket.
                compress=False,
            )
            conn = await open_socket(request, ws, hub)
            if conn is not None:  # else refused: upgraded and closed already
                room_id = conn.room_id
                logged = request.app[SETTINGS].access_log
                loop = asyncio.get_running_loop()
                opened = loop.time() if logged else 0.0
                try:
                    if logged:
                        access_log.info(
                            "websocket %s opened",
                            room_id,
                            extra={"event": "ws_open", "room": room_id},
                        )
                    if await welcome(request, ws, hub, conn):
                        async for msg in ws:
                            received(hub, conn, msg, loop.time())
                            # Not kept while the socket idles after it (up to 8 KiB of data).
                            del msg
                finally:
                    await hub.leave(conn)
                    if logged and ws.prepared:
                        _log_close(room_id, ws.close_code, loop.time() - opened)
            response: web.StreamResponse = ws
        except Exception as exc:  # as the middleware: an answer, or an HTTPException raised on
            response = await errors.answer(request, exc)
        status = answered_socket(request, response)
        return response
    except web.HTTPException as exc:
        status = raised_socket(request, exc)
        raise
    finally:
        record_socket(request, status, perf_counter() - started)


async def open_socket(
    request: web.Request, ws: web.WebSocketResponse, hub: Hub
) -> Connection | None:
    """Admit, upgrade and join; None when refused (upgraded and closed with the refusal's
    code).  A plain HTTP request raises the contract's 404 or 426."""
    room_id = request.match_info["room_id"]
    # The 101 carries the request id as every answer does (routing.observed sets it only on
    # what a handler returns, after the socket's life): through a balancer, it tells which
    # process took the socket.
    if (rid := request_id.get()) is not None:
        ws.headers[REQUEST_ID_HEADER] = rid
    if not ws.can_prepare(request).ok:
        if not is_valid_id(room_id):
            raise APIError(404, "not_found", f"no such room: a room id is {ID_RULE}")
        raise APIError(
            426,
            "upgrade_required",
            "this is a WebSocket endpoint; connect with a WebSocket client",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )
    try:
        check_origin(request)
        check_room(room_id)
        admitted = await admit(request, ws, room_id)
        try:
            conn = await upgrade_while_joining(request, ws, hub, room_id, admitted.user_id)
            admitted.bind(hub, conn)
        except Unavailable as exc:
            raise Refused(UNAVAILABLE, unavailable_reason(exc)) from None
        except TooManySockets:
            raise Refused(TOO_MANY_SOCKETS, "too many connections") from None
    except Refused as refusal:
        await refuse(request, ws, refusal, hub.limits.close_timeout)
        return None
    return conn


async def welcome(
    request: web.Request, ws: web.WebSocketResponse, hub: Hub, conn: Connection
) -> bool:
    """Send ``conn`` its welcome (or a resume's), then what was held for it; False when
    storage could not answer and the socket was closed."""
    try:
        # query_value, not request.query: that parse stays cached on the request's URL
        # for the socket's life (~550 B of every idle socket).
        frame = await hub.welcome(conn, query_value(request, "since"))
    except Unavailable as exc:  # upgraded already: the same close as a refusal
        await ws.close(code=UNAVAILABLE, message=unavailable_reason(exc).encode())
        return False
    # A crowd's welcome is ~20 KB: held in the socket's own frame, it would double the
    # memory of an idle connection.
    hub.begin(conn, ws, request.transport, frame)
    return True


def received(hub: Hub, conn: Connection, msg: WSMessage, now: float) -> None:
    """One frame from the client: any frame proves it alive."""
    conn.seen = now
    if msg.type is WSMsgType.TEXT:
        hub.receive_text(conn, msg.data, now)
    elif msg.type is WSMsgType.BINARY:
        hub.receive_binary(conn, now)
    elif msg.type is WSMsgType.PING:
        # A ping is a frame like any other: it draws on the frame budget, and one over
        # the rate gets no pong (a flood is closed with 1008 as for text).  The pong goes
        # out as the hub writes (frames.py): never awaited, bounded by the backlog, and
        # skipped once the peer has gone; ws.pong raised ClientConnectionResetError (a
        # 500) at a client that pinged and reset its connection.
        if conn.allow_frame(now):
            conn.send(frames.pong_frame(msg.data))
    elif msg.type is WSMsgType.PONG:
        conn.allow_frame(now)  # unasked-for pongs are frames too (RFC 6455 allows them)


async def upgrade_while_joining(
    request: web.Request, ws: web.WebSocketResponse, hub: Hub, room_id: str, user_id: str | None
) -> Connection:
    """Join ``room_id`` while the handshake's ``101`` goes out.

    Which is done first is invisible to the client: a join that fails is closed after the
    upgrade either way (:func:`refuse` upgrades first), and the welcome still waits for
    the join.  Overlapped, a crowd's handshakes fill the time its joins spend in the
    database: 2,000 joining on Postgres took 0.87x the time (bench/README.md).
    """
    joining = asyncio.ensure_future(hub.join(room_id, user_id))
    try:
        await ws.prepare(request)
        # Shielded: a join cancelled halfway could leave a presence row already on its way.
        return await asyncio.shield(joining)
    except BaseException:
        _abandon(hub, joining)
        raise


def _abandon(hub: Hub, joining: asyncio.Future[Connection]) -> None:
    """The handshake failed (the client went away) or the handler was cancelled: leave
    again once the join is done.  Never cancelled: on Postgres a presence write already
    sent would stay, and the user would count as present with nobody there."""

    def leave(joined: asyncio.Future[Connection]) -> None:
        if not joined.cancelled() and joined.exception() is None:
            hub.spawn(hub.leave(joined.result()))

    joining.add_done_callback(leave)


def _log_close(room_id: str, code: int | None, duration: float) -> None:
    ms = round(duration * 1000, 2)
    access_log.info(
        "websocket %s closed with %s after %.0f ms",
        room_id,
        code,
        ms,
        extra={"event": "ws_close", "room": room_id, "close_code": code, "duration_ms": ms},
    )


async def refuse(
    request: web.Request, ws: web.WebSocketResponse, refusal: Refused, timeout: float
) -> web.WebSocketResponse:
    """Upgrade, then close at once with the refusal's code and reason."""
    log.debug("websocket refused (%d %s): %s", refusal.code, refusal.reason, request.path)
    await ws.prepare(request)
    try:
        await asyncio.wait_for(
            ws.close(code=refusal.code, message=refusal.reason.encode()), timeout
        )
    except (asyncio.TimeoutError, ConnectionError):
        pass  # a peer that does not answer the close: the transport is closed regardless
    return ws


def setup_routes(app: web.Application) -> None:
    # Any room id is routed, so a bad one can be refused with a code a browser reads (4422).
    routing.add(app, "GET", "/ws/{room_id}", websocket)
