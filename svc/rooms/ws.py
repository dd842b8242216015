"""``GET /ws/{room_id}``: who joins (:mod:`.admission`), the upgrade, then a loop handing
frames to the hub.

A plain HTTP request gets a JSON error (426; 404 for a room id that breaks the id
rule).  A WebSocket handshake that is refused is upgraded and closed at once with
a 44xx/45xx code and a reason a browser can read (see :mod:`.admission`).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from ..http.errors import APIError
from ..http.ids import is_valid_id
from ..keys import HUB
from ..storage import Unavailable
from .admission import UNAVAILABLE, Refused, check_origin, check_room, member_id

log = logging.getLogger(__name__)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    room_id = request.match_info["room_id"]
    hub = request.app[HUB]
    ws = web.WebSocketResponse(
        heartbeat=hub.limits.heartbeat,
        # Bigger frames are closed with 1009 by aiohttp itself; a message's own
        # limit (8 KiB of data) is checked by the hub, with an error frame.
        max_msg_size=hub.limits.max_frame_bytes,
        # wire.py rule 1: the hub writes pre-framed bytes shared by every socket.
        compress=False,
    )
    if not ws.can_prepare(request).ok:
        if not is_valid_id(room_id):
            raise APIError(404, "not_found", "no such room: a room id is 1 to 64 of [A-Za-z0-9_-]")
        raise APIError(
            426,
            "upgrade_required",
            "this is a WebSocket endpoint; connect with a WebSocket client",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )
    try:
        check_origin(request)
        check_room(room_id)
        user_id = await member_id(request)
        try:
            conn = await hub.join(room_id, user_id)
        except Unavailable:
            raise Refused(UNAVAILABLE, "storage is unavailable, try again shortly") from None
    except Refused as refusal:
        return await refuse(request, ws, refusal, hub.limits.close_timeout)

    try:
        await ws.prepare(request)
        try:
            welcome = await hub.welcome(conn)
        except Unavailable:  # upgraded already: the same close as a refusal
            await ws.close(code=UNAVAILABLE, message=b"storage is unavailable, try again shortly")
            return ws
        conn.start(ws, request.transport, welcome)
        loop_time = asyncio.get_running_loop().time
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                hub.receive_text(conn, msg.data, loop_time())
            elif msg.type is WSMsgType.BINARY:
                hub.receive_binary(conn, loop_time())
    finally:
        await hub.leave(conn)
    return ws


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
    app.router.add_get("/ws/{room_id}", websocket)
