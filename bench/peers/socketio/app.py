"""Benchmark peer: svc's room fan-out path written with python-socketio.

What a Python developer would most likely reach for instead of hand-written
WebSocket rooms: a python-socketio ``AsyncServer`` in aiohttp mode, attached to
an aiohttp ``web.Application`` and run with ``web.run_app``.  Written the way
the python-socketio documentation shows it; no tuning in either direction.

* A client connects (Socket.IO v5 over Engine.IO v4; the harness uses the
  WebSocket transport only) and names its room and user in the ``auth`` payload
  or, as many socket.io clients do, in the query string: ``?room=R&user_id=U``.
* On connect it enters the room and is sent ``welcome`` with the room's member
  count (distinct users present).
* ``PUT /users/{id}/profile`` (plain aiohttp route on the same app) updates an
  in-memory user dict and emits ``profile_updated`` with the whole record to
  every room where that user is connected.

Run:  python app.py --port 8000 [--host 127.0.0.1]   (its own virtualenv: requirements.txt)

svc keeps it as a regression guard, not as a product: ``bash bench/run.sh peer-socketio``
fails when svc's fan-out to 2,000 members is not ≤ 0.3× this app's, or its memory per
member not ≤ 0.5× (bench/README.md).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from datetime import datetime, timezone
from urllib.parse import parse_qs

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp")
app = web.Application()
sio.attach(app)
routes = web.RouteTableDef()

PROFILE_FIELDS = ("display_name", "username", "bio", "email", "avatar_url", "avatar_urls")

# In-memory state
users: dict[str, dict] = {}  # user_id -> record
user_rooms: dict[str, Counter] = defaultdict(Counter)  # user_id -> room -> connections
room_members: dict[str, Counter] = defaultdict(Counter)  # room -> user_id -> connections


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat()


# --------------------------------------------------------------------------- Socket.IO


@sio.event
async def connect(sid, environ, auth):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    auth = auth or {}
    room = auth.get("room") or query.get("room", [None])[0]
    user_id = auth.get("user_id") or query.get("user_id", [None])[0]
    if not room:
        raise socketio.exceptions.ConnectionRefusedError("room is required")

    await sio.save_session(sid, {"room": room, "user_id": user_id})
    await sio.enter_room(sid, room)
    if user_id:
        user_rooms[user_id][room] += 1
        room_members[room][user_id] += 1
    await sio.emit("welcome", {"room": room, "member_count": len(room_members[room])}, to=sid)


@sio.event
async def disconnect(sid, reason):
    session = await sio.get_session(sid)
    room, user_id = session["room"], session["user_id"]
    if user_id:
        rooms = user_rooms[user_id]
        rooms[room] -= 1
        if rooms[room] <= 0:
            del rooms[room]
            if not rooms:
                del user_rooms[user_id]
        members = room_members[room]
        members[user_id] -= 1
        if members[user_id] <= 0:
            del members[user_id]
            if not members:
                del room_members[room]


# --------------------------------------------------------------------------- HTTP


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/users/{user_id}")
async def get_user(request: web.Request) -> web.Response:
    user = users.get(request.match_info["user_id"])
    if user is None:
        raise web.HTTPNotFound()
    return web.json_response(user)


@routes.put("/users/{user_id}/profile")
async def put_profile(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="invalid JSON") from None
    if not isinstance(body, dict) or not set(body) <= set(PROFILE_FIELDS):
        raise web.HTTPUnprocessableEntity(text=f"fields allowed: {', '.join(PROFILE_FIELDS)}")

    now = utcnow()
    user = users.get(user_id)
    created = user is None
    if created:
        user = users[user_id] = {
            "id": user_id,
            **{f: None for f in PROFILE_FIELDS},
            "created_at": now,
        }
    user.update(body)
    user["updated_at"] = now

    for room in list(user_rooms.get(user_id, ())):
        await sio.emit("profile_updated", user, room=room)
    return web.json_response(user, status=201 if created else 200)


app.add_routes(routes)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()
    web.run_app(app, host=args.host, port=args.port)
