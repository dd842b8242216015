"""``GET /ws/{room_id}``: who joins, the upgrade, then a loop handing frames to the hub.

Everything that can be refused is refused before the upgrade, as a JSON error:
a bad user id (422), a bad or missing token (401),
storage down (503), a plain HTTP request (426).
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import WSCloseCode, WSMsgType, web

from .auth import websocket_user_id
from .errors import APIError
from .keys import HUB
from .storage import Unavailable
from .users import USER_ID

ROOM_ID = USER_ID.replace("user_id", "room_id")
_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Frames larger than this are closed with 1009 by aiohttp itself; a message's
#: own limit (8 KiB of data) is checked by the hub, with an error frame.
MAX_FRAME_BYTES = 64 * 1024


async def websocket(request: web.Request) -> web.WebSocketResponse:
    room_id = request.match_info["room_id"]
    hub = request.app[HUB]
    ws = web.WebSocketResponse(
        heartbeat=hub.heartbeat,
        max_msg_size=MAX_FRAME_BYTES,
        # The hub writes pre-framed bytes shared by every socket: no per-socket deflate.
        compress=False,
    )
    if not ws.can_prepare(request).ok:
        raise APIError(
            426,
            "upgrade_required",
            "this is a WebSocket endpoint; connect with a WebSocket client",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )
    user_id = await websocket_user_id(request)
    if user_id is not None:
        if not _USER_ID.fullmatch(user_id):
            raise APIError(
                422,
                "validation_failed",
                "user_id is not valid",
                {"user_id": ["1 to 64 of A-Z, a-z, 0-9, _ and -"]},
            )

    conn = await hub.join(room_id, user_id)
    try:
        await ws.prepare(request)
        try:
            welcome = await hub.welcome(conn)
        except Unavailable:  # upgraded already: too late for a 503
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"storage unavailable")
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


def setup_routes(app: web.Application) -> None:
    app.router.add_get(f"/ws/{ROOM_ID}", websocket)
