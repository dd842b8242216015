"""Two real ``python -m svc`` processes on the test database form one service."""

from __future__ import annotations

import json
import os
import signal

import aiohttp
import aiopg
import pytest
from svc_process import SvcProcess
from ws_helpers import frame_where, presence_where

from svc.testing import deadline, unique_id

pytestmark = pytest.mark.postgres


@pytest.fixture
async def two_processes(postgres_url, tmp_path):
    """Two ``python -m svc`` on the test database: [(process, base URL)] each."""
    env = {"DATABASE_URL": postgres_url}
    started = [await SvcProcess(env, tmp_path / f"svc{n}.log").start() for n in (1, 2)]
    yield [(svc.proc, svc.base) for svc in started]
    for svc in started:
        await svc.stop()


async def test_members_on_two_processes_are_one_room(two_processes, postgres_url):
    (_, one), (proc_two, two) = two_processes
    room = unique_id("r")
    async with aiohttp.ClientSession() as http:
        alice, bob = unique_id(), unique_id()
        for user_id in (alice, bob):
            response = await http.put(f"{one}/users/{user_id}/profile", json={"username": user_id})
            assert response.status == 201

        ws_alice = await http.ws_connect(f"{one}/ws/{room}?user_id={alice}")
        assert (await ws_alice.receive_json())["member_count"] == 1
        ws_bob = await http.ws_connect(f"{two}/ws/{room}?user_id={bob}")
        welcome = await ws_bob.receive_json()
        # Alice, connected to process 1, is present for process 2.
        assert welcome["member_count"] == 2
        assert {m["id"] for m in welcome["members"]} == {alice, bob}
        joined = await frame_where(ws_alice, presence_where(room, joined=bob))
        assert joined["member_count"] == 2

        # A change made through process 1 reaches the member on process 2, and a change of
        # Bob (present only through process 2) reaches Alice on process 1.
        await http.put(f"{one}/users/{alice}/profile", json={"display_name": "Alice"})
        update = await frame_where(ws_bob, lambda f: f["type"] == "profile_updated")
        assert update["user_id"] == alice and update["profile"]["display_name"] == "Alice"
        await http.put(f"{one}/users/{bob}/profile", json={"display_name": "Bob"})
        update = await frame_where(
            ws_alice, lambda f: f["type"] == "profile_updated" and f["user_id"] == bob
        )
        assert update["version"] == 2 and update["profile"]["display_name"] == "Bob"

        for base in (one, two):
            body = await (await http.get(f"{base}/rooms/{room}/members")).json()
            assert body["member_count"] == 2
            assert sorted(m["id"] for m in body["members"]) == sorted([alice, bob])

        # Process 2 dies without a goodbye: process 1 expires it, and Bob leaves.
        os.killpg(proc_two.pid, signal.SIGKILL)
        await proc_two.wait()
        # Its last heartbeat is made an hour old, so the test need not wait out NODE_TTL
        # (20 s) for process 1's next heartbeat to find it silent (as the conformance
        # suite's crash does); the expiry itself is process 1's own.
        async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
            await cur.execute(
                "UPDATE svc_nodes SET seen_at = now() - interval '1 hour' WHERE id LIKE %s",
                (f"svc-broker-{proc_two.pid}-%",),
            )
            assert cur.rowcount == 1
        left = await frame_where(ws_alice, presence_where(room, left=bob), timeout=15)
        assert left["member_count"] == 1
        body = await (await http.get(f"{one}/rooms/{room}/members")).json()
        assert [m["id"] for m in body["members"]] == [alice]
        await ws_alice.close()


async def test_a_clean_shutdown_says_goodbye_at_once(two_processes):
    (_, one), (proc_two, two) = two_processes
    room = unique_id("r")
    async with aiohttp.ClientSession() as http:
        alice, bob = unique_id(), unique_id()
        for user_id in (alice, bob):
            await http.put(f"{one}/users/{user_id}/profile", json={"username": user_id})
        ws_alice = await http.ws_connect(f"{one}/ws/{room}?user_id={alice}")
        await ws_alice.receive_json()
        ws_bob = await http.ws_connect(f"{two}/ws/{room}?user_id={bob}")
        await ws_bob.receive_json()
        await frame_where(ws_alice, presence_where(room, joined=bob))
        proc_two.send_signal(signal.SIGTERM)
        closed = await ws_bob.receive(timeout=10)
        if closed.type is aiohttp.WSMsgType.TEXT:
            # Bob's creation, made on process one while nobody was present, is notified
            # when his join there is heard (svc_postgres/interest.py): it may reach process
            # two while his welcome is still being read, and follow the welcome.
            resent = json.loads(closed.data)
            assert resent["type"] == "profile_updated" and resent["id"] == bob, resent
            assert resent["version"] == 1
            closed = await ws_bob.receive(timeout=10)
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1001
        left = await frame_where(ws_alice, presence_where(room, left=bob), timeout=5)
        assert left["member_count"] == 1
        await ws_alice.close()


async def _users(http, base: str, n: int) -> list[str]:
    ids = [unique_id() for _ in range(n)]
    for user_id in ids:
        response = await http.put(f"{base}/users/{user_id}/profile", json={"username": user_id})
        assert response.status == 201
    return ids


async def _join(http, url: str) -> tuple[aiohttp.ClientWebSocketResponse, dict]:
    ws = await http.ws_connect(url)
    welcome = await ws.receive_json(timeout=10)
    assert welcome["type"] == "welcome"
    return ws, welcome


async def test_messages_cross_processes_once_each_in_order(two_processes):
    (_, one), (_, two) = two_processes
    room = unique_id("r")
    async with aiohttp.ClientSession() as http:
        alice, bob, carol = await _users(http, one, 3)
        ws_a, _ = await _join(http, f"{one}/ws/{room}?user_id={alice}")
        ws_b, _ = await _join(http, f"{two}/ws/{room}?user_id={bob}")
        ws_c, _ = await _join(http, f"{two}/ws/{room}?user_id={carol}")
        await frame_where(ws_a, presence_where(room, joined=carol))
        sent = [{"n": 1}, "same", "same", "x" * (8 * 1024 - 2), ["é", None], {"n": "last"}]
        for data in sent:
            await ws_a.send_json({"type": "message", "data": data})
        for ws in (ws_b, ws_c):
            got = []
            while len(got) < len(sent):
                frame = await frame_where(ws, lambda f: f["type"] == "message")
                assert frame["from"] == alice
                got.append(frame["data"])
            assert got == sent
        # Bob answers: Alice gets it once, and never her own messages back.
        await ws_b.send_json({"type": "message", "data": "reply"})
        seen: list[dict] = []
        reply = await frame_where(ws_a, lambda f: f["type"] == "message", seen=seen)
        assert (reply["from"], reply["data"]) == (bob, "reply")
        assert not [f for f in seen if f["type"] == "message"]
        for ws in (ws_a, ws_b, ws_c):
            await ws.close()


async def test_joiners_across_processes_hear_each_arrival_once(two_processes):
    (_, one), (_, two) = two_processes
    room = unique_id("r")
    async with aiohttp.ClientSession() as http:
        alice, bob, carol = await _users(http, one, 3)
        ws_a, _ = await _join(http, f"{one}/ws/{room}?user_id={alice}")
        ws_b, welcome = await _join(http, f"{two}/ws/{room}?user_id={bob}")
        assert {m["id"] for m in welcome["members"]} == {alice, bob}
        ws_c, _ = await _join(http, f"{one}/ws/{room}?user_id={carol}")  # the marker
        for ws, me, expect in ((ws_a, alice, {bob: 1}), (ws_b, bob, {alice: 0, bob: 0})):
            seen: list[dict] = []
            seen.append(await frame_where(ws, presence_where(room, joined=carol), seen=seen))
            joined = [u["id"] for f in seen if f["type"] == "presence" for u in f["joined"]]
            for user_id, times in expect.items():
                assert joined.count(user_id) == times, (me, seen)
        for ws in (ws_a, ws_b, ws_c):
            await ws.close()


async def test_deleting_a_user_closes_their_sockets_on_every_process(two_processes):
    (_, one), (_, two) = two_processes
    room = unique_id("r")
    async with aiohttp.ClientSession() as http:
        alice, bob = await _users(http, one, 2)
        phone, _ = await _join(http, f"{one}/ws/{room}?user_id={alice}")
        laptop, _ = await _join(http, f"{two}/ws/{room}?user_id={alice}")
        ws_b, _ = await _join(http, f"{one}/ws/{room}?user_id={bob}")
        assert (await http.delete(f"{two}/users/{alice}")).status == 204
        for ws in (phone, laptop):
            async with deadline(10):
                while (msg := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                    pass
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4404, msg
        left = await frame_where(ws_b, presence_where(room, left=alice))
        assert left["member_count"] == 1
        for base in (one, two):
            body = await (await http.get(f"{base}/rooms/{room}/members")).json()
            assert [m["id"] for m in body["members"]] == [bob]
        await ws_b.close()
