"""Helpers for the WebSocket room tests: users, joins, and reading frames until one shows up."""

from __future__ import annotations

import json

import aiohttp

from svc.testing import deadline, unique_id

TIMEOUT = 10.0


async def new_user(client, **profile) -> str:
    user_id = unique_id()
    profile.setdefault("username", user_id)
    response = await client.put(f"/users/{user_id}/profile", json=profile)
    assert response.status == 201, await response.text()
    return user_id


async def join(client, room: str, user_id: str | None = None, **kwargs):
    """A socket in ``room`` whose welcome has been read; returns (ws, welcome)."""
    path = f"/ws/{room}" + (f"?user_id={user_id}" if user_id else "")
    ws = await client.ws_connect(path, **kwargs)
    welcome = await next_frame(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def next_frame(ws, timeout: float = TIMEOUT) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)


async def frame_where(ws, predicate, timeout: float = TIMEOUT, seen: list | None = None) -> dict:
    """The first frame for which ``predicate`` holds; the ones before it go to ``seen``."""
    async with deadline(timeout):
        while True:
            frame = await next_frame(ws, timeout)
            if predicate(frame):
                return frame
            if seen is not None:
                seen.append(frame)


async def frames_until_pong(ws) -> list[dict]:
    """Ping, and everything the server had sent before answering: what is in flight."""
    await ws.send_json({"type": "ping"})
    seen: list[dict] = []
    await frame_where(ws, lambda f: f["type"] == "pong", seen=seen)
    return seen


def presence_where(room: str, **expect):
    def predicate(frame):
        if frame["type"] != "presence" or frame["room"] != room:
            return False
        joined = {u["id"] for u in frame["joined"]}
        return all(
            (value in joined if key == "joined" else value in frame["left"])
            if key in ("joined", "left")
            else frame[key] == value
            for key, value in expect.items()
        )

    return predicate


def dumps(value) -> str:
    return json.dumps(value)
