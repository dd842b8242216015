"""The join is written while the handshake's 101 goes out (svc/http/ws.py); a handshake
that fails (the client went away) must leave no member behind, whether its join had
finished or not."""

from __future__ import annotations

import asyncio

from ws_helpers import join, new_user

from svc.http.ws import _abandon
from svc.keys import HUB
from svc.testing import deadline, unique_id, wait_until


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
    await wait_until_empty(client, room)


async def test_an_unfinished_join_is_left_once_done_when_the_handshake_fails(client):
    """Not cancelled: on Postgres a presence write already sent would stay behind."""
    alice, room = await new_user(client), unique_id("r")
    hub = client.app[HUB]
    joining = asyncio.ensure_future(hub.join(room, alice))
    _abandon(hub, joining)
    await asyncio.wait({joining})
    assert not joining.cancelled()
    await wait_until(lambda: hub.connection_count() == 0, timeout=10)
    await wait_until_empty(client, room)
    ws, welcome = await join(client, room, alice)  # the room still works, and is right
    assert [m["id"] for m in welcome["members"]] == [alice]
    await ws.close()


async def wait_until_empty(client, room: str) -> None:
    """The room's members, as every process sees them (on Postgres: svc_presence), empty."""
    async with deadline(10):
        while await members(client, room):  # noqa: ASYNC110 - what HTTP shows: no event
            await asyncio.sleep(0.02)
