"""Helpers for the tests of private rooms and of sockets bound to their tokens."""

from __future__ import annotations

import time

import aiohttp
import jwt

from svc.testing import unique_id

SECRET = "room-token-secret-for-tests-" + "q" * 32
#: Rooms private in these tests: an id starting "private-".
PRIVATE = "private-.*"


async def user_and_token(client, password: str = "pass word 1") -> tuple[str, str]:
    """A user made through the API, and a login token got through POST /auth/token."""
    username = unique_id()
    resp = await client.post("/users", json={"username": username, "password": password})
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    return user_id, await login(client, username, password)


async def login(client, username: str, password: str) -> str:
    resp = await client.post("/auth/token", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["access_token"]


def room_token(user_id: str, room_id: str, lifetime: float = 60, secret: str = SECRET) -> str:
    """What an application's backend hands a user it lets into ``room_id``."""
    claims = {"sub": user_id, "room": room_id, "exp": time.time() + lifetime}
    return jwt.encode(claims, secret, "HS256")


def login_token(user_id: str, lifetime: float = 60) -> str:
    """A login token signed elsewhere with the same key (no ``pat``; ``iat`` now)."""
    now = time.time()
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + lifetime}, SECRET, "HS256")


async def closed_with(ws, timeout: float = 10) -> tuple[int, str]:
    """The close code and reason of a socket the server closes (frames before are skipped)."""
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            await ws.close()
            return msg.data, msg.extra
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)


def private_room() -> str:
    return unique_id("private-")
