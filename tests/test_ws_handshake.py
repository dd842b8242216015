"""The join is written while the handshake's 101 goes out (svc/rooms/ws.py); a handshake
that fails (the client went away) must leave no member behind, whether its join had
finished or not."""

from __future__ import annotations

import asyncio

from ws_helpers import join, new_user

from svc.keys import HUB
from svc.rooms.ws import _abandon
from svc.testing import unique_id, wait_until


async def members(client, room: str) -> list[str]:
    response = await client.get(f"/rooms/{room}/members")
    assert response.status == 200
    return [member["id"] for member in (await response.json())["members"]]


async def test_a_finished_join_is_left_when_the_handshake_fails(client):
    alice, room = await new_user(client), unique_id("r")
    hub = client.app[HUB]
    joining = asyncio.ensure_future(hub.join(room, alice))
    await asyncio.wait({joining})
    assert await members(client, room) == [alice]
    _abandon(hub, joining)
    await wait_until(lambda: hub.connection_count() == 0, timeout=10)
    assert await members(client, room) == []


async def test_an_unfinished_join_is_undone_when_the_handshake_fails(client):
    alice, room = await new_user(client), unique_id("r")
    hub = client.app[HUB]
    joining = asyncio.ensure_future(hub.join(room, alice))
    _abandon(hub, joining)
    await asyncio.wait({joining})
    assert joining.cancelled()
    assert await members(client, room) == []
    ws, welcome = await join(client, room, alice)  # the room still works, and is right
    assert [m["id"] for m in welcome["members"]] == [alice]
    await ws.close()
