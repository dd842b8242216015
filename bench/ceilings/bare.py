"""The ceiling for svc's HTTP and WebSocket paths on memory: bare aiohttp doing the same work
with nothing else (no validation, no storage, no middleware).

    python bench/ceilings/bare.py --port 8002 [--uvloop]

- ``GET /users/{id}``: a prebuilt JSON body of a user record.
- ``PUT /users/{id}/profile``: parse the JSON body, answer a prebuilt record.
- ``GET /ws/{room}``: a WebSocket that gets a welcome frame; then any ``PUT`` writes one
  ``profile_updated`` frame, serialised once, to every socket's transport (what the hub does).
"""

from __future__ import annotations

import argparse
import json
import struct

from aiohttp import web

USER = {
    "id": "u1",
    "user_id": "u1",
    "profile": {
        "display_name": "User",
        "username": "u1",
        "bio": None,
        "email": None,
        "avatar_url": None,
        "avatar_urls": None,
    },
    "version": 1,
    "created_at": "2026-11-26T00:00:00Z",
    "updated_at": "2026-11-26T00:00:00Z",
}
BODY = json.dumps(USER, separators=(",", ":")).encode()
sockets: list[web.WebSocketResponse] = []


def frame(payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


async def get_user(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


async def put_profile(request: web.Request) -> web.Response:
    changes = json.loads(await request.read())
    event = {
        "type": "profile_updated",
        "room": "r",
        **USER,
        "profile": {**USER["profile"], **changes},
    }
    data = frame(json.dumps(event, separators=(",", ":")).encode())
    for ws in sockets:
        ws._writer.transport.write(data)  # noqa: SLF001 - the ceiling: one write per socket
    return web.Response(body=BODY, content_type="application/json")


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    await ws.send_str('{"type":"welcome","members":[]}')
    sockets.append(ws)
    try:
        async for _ in ws:
            pass
    finally:
        sockets.remove(ws)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/", lambda request: web.json_response({"status": "ok"}))
    app.router.add_get("/users/{user_id}", get_user)
    app.router.add_put("/users/{user_id}/profile", put_profile)
    app.router.add_get("/ws/{room_id}", websocket)
    if args.uvloop:
        import uvloop

        uvloop.install()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
