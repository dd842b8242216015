"""A room serialises its welcome's member list once for every joiner (svc.rooms.welcome_cache):
whatever it caches, each welcome lists every member's latest record, on every backend, when
the change is made through this app or through another one sharing the backend."""

from __future__ import annotations

from ws_helpers import frame_where, join, new_user, presence_where

from svc.testing import unique_id


def listed(welcome: dict) -> dict[str, tuple]:
    return {m["id"]: (m["version"], m["profile"]["display_name"]) for m in welcome["members"]}


async def test_each_welcome_lists_the_latest_records(client):
    alice, bob = await new_user(client, display_name="A1"), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    ws_b, _ = await join(client, room, bob)
    await frame_where(ws_a, presence_where(room, joined=bob))
    first = [await join(client, room) for _ in range(3)]  # watchers: the same list each time
    assert all(listed(w) == listed(first[0][1]) for _, w in first)
    assert listed(first[0][1])[alice] == (1, "A1")

    response = await client.put(f"/users/{alice}/profile", json={"display_name": "A2"})
    assert response.status == 200
    await frame_where(ws_b, lambda f: f["type"] == "profile_updated" and f["id"] == alice)
    _, after_change = await join(client, room)
    assert listed(after_change)[alice] == (2, "A2")

    # A member without a profile, then their first profile: listed as it is each time.
    newcomer = unique_id()
    ws_n, with_newcomer = await join(client, room, newcomer)
    assert listed(with_newcomer)[newcomer] == (0, None)
    response = await client.put(f"/users/{newcomer}/profile", json={"display_name": "N"})
    assert response.status == 201
    await frame_where(ws_b, lambda f: f["type"] == "profile_updated" and f["id"] == newcomer)
    _, after_create = await join(client, room)
    assert listed(after_create)[newcomer] == (1, "N")

    # A deleted member: gone from the next welcome once their leave is in.
    assert (await client.delete(f"/users/{bob}")).status in (200, 204)
    await frame_where(ws_a, presence_where(room, left=bob))
    _, after_delete = await join(client, room)
    assert bob not in listed(after_delete)
    assert listed(after_delete)[alice] == (2, "A2")
    for ws in (ws_a, ws_b, ws_n, *(ws for ws, _ in first)):
        await ws.close()


async def test_a_change_made_through_another_app_reaches_the_next_welcome(two):
    one, other = two
    alice = await new_user(one, display_name="A1")
    room = unique_id("r")
    ws_a, _ = await join(one, room, alice)
    _, before = await join(one, room)
    assert listed(before)[alice] == (1, "A1")

    response = await other.put(f"/users/{alice}/profile", json={"display_name": "A2"})
    assert response.status == 200
    await frame_where(ws_a, lambda f: f["type"] == "profile_updated" and f["version"] == 2)
    _, after = await join(one, room)
    assert listed(after)[alice] == (2, "A2")
    await ws_a.close()
