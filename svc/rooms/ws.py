"""``GET /ws/{room_id}``: who joins, the upgrade, then a loop handing frames to the hub.

Everything that can be refused is refused before the upgrade, as a JSON error:
a bad user id (422), a bad or missing token (401),
storage down (503), a plain HTTP request (426).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from ..http.auth import websocket_user_id
from ..http.errors import APIError
from ..http.ids import ID_RULE, ROOM_ID, is_valid_id
from ..keys import HUB, SETTINGS
from ..storage import Unavailable

access_log = logging.getLogger("svc.access")


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
        raise APIError(
            426,
            "upgrade_required",
            "this is a WebSocket endpoint; connect with a WebSocket client",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )
    user_id = await websocket_user_id(request)
    if user_id is not None:
        if not is_valid_id(user_id):
            raise APIError(
                422,
                "validation_failed",
                "user_id is not valid",
                {"user_id": [ID_RULE]},
            )

    conn = await hub.join(room_id, user_id)
    logged = request.app[SETTINGS].access_log
    opened = asyncio.get_running_loop().time()
    try:
        await ws.prepare(request)
        if logged:
            access_log.info(
                "websocket %s opened", room_id, extra={"event": "ws_open", "room": room_id}
            )
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
        if logged and ws.prepared:
            _log_close(room_id, ws.close_code, asyncio.get_running_loop().time() - opened)
    return ws


def _log_close(room_id: str, code: int | None, duration: float) -> None:
    ms = round(duration * 1000, 2)
    access_log.info(
        "websocket %s closed with %s after %.0f ms",
        room_id,
        code,
        ms,
        extra={"event": "ws_close", "room": room_id, "close_code": code, "duration_ms": ms},
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get(f"/ws/{ROOM_ID}", websocket)
