"""Rooms across two svc apps sharing one broker and one storage, as two processes would:
messages, deletion as a leave, a joiner's own arrival, on every backend.

Memory: one storage instance and a ``memory://NAME`` bus shared by both apps.
Postgres: two complete apps on the test database (each its own pool and broker).
(Two real ``python -m svc`` processes: test_ws_processes.py.)
"""

from __future__ import annotations

import aiohttp
from ws_helpers import frame_where, frames_until_pong, join, new_user, presence_where

from svc.testing import deadline, unique_id


def joins_of(frames: list[dict], user_id: str) -> int:
    return sum(user_id in {u["id"] for u in f["joined"]} for f in frames if f["type"] == "presence")


async def test_messages_reach_members_of_every_app_once_each_in_order(two):
    one, other = two
    alice, bob, carol = [await new_user(one) for _ in range(3)]
    room = unique_id("r")
    ws_a, _ = await join(one, room, alice)
    ws_b, _ = await join(other, room, bob)
    ws_c, _ = await join(one, room, carol)
    await frame_where(ws_a, presence_where(room, joined=bob))
    biggest = "x" * (8 * 1024 - 2)  # serialised with its quotes: 8 KiB exactly
    sent = [{"n": 1}, "same", "same", biggest, ["é", None, 1.5], {"n": "last"}]
    for data in sent:
        await ws_a.send_json({"type": "message", "data": data})
    for ws in (ws_b, ws_c):  # another app, and this one
        got = []
        while len(got) < len(sent):
            frame = await frame_where(ws, lambda f: f["type"] == "message")
            assert frame["from"] == alice and frame["room"] == room
            got.append(frame["data"])
        assert got == sent
        assert not [f for f in await frames_until_pong(ws) if f["type"] == "message"]
    assert not [f for f in await frames_until_pong(ws_a) if f["type"] == "message"]
    for ws in (ws_a, ws_b, ws_c):
        await ws.close()


async def test_a_joiner_never_hears_its_own_arrival_and_others_hear_it_once(two):
    one, other = two
    alice, bob, carol, dave = [await new_user(one) for _ in range(4)]
    room = unique_id("r")
    ws_a, _ = await join(one, room, alice)
    ws_w, _ = await join(other, room)  # a watcher on the other app
    ws_b, welcome = await join(one, room, bob)
    assert bob in {m["id"] for m in welcome["members"]}
    ws_c, welcome = await join(other, room, carol)
    assert {alice, bob, carol} <= {m["id"] for m in welcome["members"]}
    # Dave's arrival marks the point by which every earlier one was announced.
    ws_d, _ = await join(one, room, dave)
    for ws, me, before_me in (
        (ws_a, alice, []),
        (ws_w, None, [alice]),
        (ws_b, bob, [alice]),
        (ws_c, carol, [alice, bob]),
    ):
        seen: list[dict] = []
        last = await frame_where(ws, presence_where(room, joined=dave), seen=seen)
        seen.append(last)
        if me is not None:
            assert joins_of(seen, me) == 0, f"{me} was told of its own arrival: {seen}"
        for user_id in {alice, bob, carol} - {me} - set(before_me):
            assert joins_of(seen, user_id) == 1, (user_id, seen)
        for user_id in before_me:  # its welcome listed them already
            assert joins_of(seen, user_id) == 0, (user_id, seen)
        assert last["member_count"] == 4
    assert not [f for f in await frames_until_pong(ws_d) if f["type"] == "presence"]
    for ws in (ws_a, ws_w, ws_b, ws_c, ws_d):
        await ws.close()


async def test_deleting_a_user_is_a_leave_everywhere(two):
    one, other = two
    alice, bob, carol = [await new_user(one) for _ in range(3)]
    r1, r2 = unique_id("r"), unique_id("r")
    # Alice: two devices in r1 (one per app) and one in r2.
    phone, _ = await join(one, r1, alice)
    laptop, _ = await join(other, r1, alice)
    tablet, _ = await join(one, r2, alice)
    ws_b1, _ = await join(other, r1, bob)
    ws_b2, _ = await join(other, r2, bob)
    ws_c1, _ = await join(one, r1, carol)
    await frame_where(ws_b1, presence_where(r1, joined=carol))

    response = await other.delete(f"/users/{alice}")
    assert response.status == 204

    for ws in (phone, laptop, tablet):
        async with deadline(10):
            while (msg := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                pass  # whatever was in flight before the close
        assert msg.type is aiohttp.WSMsgType.CLOSE, msg
        assert msg.data == 4404, msg
        assert "deleted" in msg.extra
    for ws, room in ((ws_b1, r1), (ws_b2, r2), (ws_c1, r1)):
        left = await frame_where(ws, presence_where(room, left=alice))
        assert left["member_count"] == (2 if room == r1 else 1)
    for client in (one, other):
        for room, present in ((r1, {bob, carol}), (r2, {bob})):
            body = await (await client.get(f"/rooms/{room}/members")).json()
            assert {m["id"] for m in body["members"]} == present
            assert body["member_count"] == len(present)
    # Nothing about her follows: no second leave, no profile event, no message.
    for ws in (ws_b1, ws_b2, ws_c1):
        after = await frames_until_pong(ws)
        assert not [f for f in after if alice in f.get("left", ()) or f.get("id") == alice]
    for ws in (ws_b1, ws_b2, ws_c1):
        await ws.close()


async def test_data_with_nan_or_infinity_is_refused_and_not_relayed(client):
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    ws_b, _ = await join(client, room, bob)
    for raw in ("NaN", "Infinity", "-Infinity", '{"x": [1, NaN]}'):
        await ws_a.send_str(f'{{"type": "message", "data": {raw}}}')
        error = await frame_where(ws_a, lambda f: f["type"] == "error")
        assert error["code"] == "invalid_json" and "NaN" in error["message"]
    await ws_a.send_json({"type": "message", "data": "fine"})
    relayed = await frame_where(ws_b, lambda f: f["type"] == "message")
    assert relayed["data"] == "fine"  # the first message bob sees: none of the refused ones
    for ws in (ws_a, ws_b):
        await ws.close()
