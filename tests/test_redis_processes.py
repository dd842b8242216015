"""Two real ``python -m svc`` processes, Postgres storage and the Redis broker: one service."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from redis_helpers import OwnRedis
from svc_process import SvcProcess
from ws_helpers import frame_where, presence_where

from svc.testing import unique_id, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

#: Short presence timings (the defaults are 5 s and 20 s), so a dead process is expired fast.
FAST = "&heartbeat=0.5&node_ttl=3"


@pytest.fixture
async def two_on_redis(postgres_url, redis_url, tmp_path):
    env = {"DATABASE_URL": postgres_url, "BROKER_URL": redis_url + FAST}
    started = [await SvcProcess(env, tmp_path / f"svc{n}.log").start() for n in (1, 2)]
    yield started
    for svc in started:
        await svc.stop()


async def _new_user(http, base: str) -> str:
    user_id = unique_id()
    response = await http.put(f"{base}/users/{user_id}/profile", json={"username": user_id})
    assert response.status == 201
    return user_id


async def test_presence_changes_and_messages_cross_both_ways_and_a_killed_process_leaves(
    two_on_redis,
):
    one, two = two_on_redis
    room = unique_id("r")
    async with aiohttp.ClientSession() as http:
        alice, bob = await _new_user(http, one.base), await _new_user(http, two.base)
        ws_alice = await http.ws_connect(f"{one.base}/ws/{room}?user_id={alice}")
        assert (await ws_alice.receive_json())["member_count"] == 1
        ws_bob = await http.ws_connect(f"{two.base}/ws/{room}?user_id={bob}")
        welcome = await ws_bob.receive_json()
        assert welcome["member_count"] == 2
        assert {m["id"] for m in welcome["members"]} == {alice, bob}
        joined = await frame_where(ws_alice, presence_where(room, joined=bob))
        assert joined["member_count"] == 2
        for base in (one.base, two.base):
            body = await (await http.get(f"{base}/rooms/{room}/members")).json()
            assert sorted(m["id"] for m in body["members"]) == sorted([alice, bob])

        # Changes, each way, arrive in version order and end at the last one.
        for user_id, writer, reader in ((alice, one, ws_bob), (bob, two, ws_alice)):
            for n in range(10):
                response = await http.put(
                    f"{writer.base}/users/{user_id}/profile", json={"display_name": f"v{n}"}
                )
                assert response.status == 200
            versions = []
            while not versions or versions[-1] < 11:
                frame = await frame_where(
                    reader, lambda f, u=user_id: f["type"] == "profile_updated" and f["id"] == u
                )
                versions.append(frame["version"])
            assert versions == sorted(set(versions)) and frame["profile"]["display_name"] == "v9"

        # Messages, each way, in the order sent.
        for sender, receiver, name in ((ws_alice, ws_bob, alice), (ws_bob, ws_alice, bob)):
            for n in range(20):
                await sender.send_json({"type": "message", "data": {"n": n}})
            got = []
            for _ in range(20):
                frame = await frame_where(receiver, lambda f: f["type"] == "message")
                assert frame["from"] == name
                got.append(frame["data"]["n"])
            assert got == list(range(20))

        # Process two dies without a goodbye: Bob is gone for process one within 30 s.
        two.kill()
        left = await frame_where(ws_alice, presence_where(room, left=bob), timeout=30)
        assert left["member_count"] == 1
        body = await (await http.get(f"{one.base}/rooms/{room}/members")).json()
        assert [m["id"] for m in body["members"]] == [alice]
        await ws_alice.close()


class Watcher:
    """A client's view of a room: the latest version it was shown of each user."""

    def __init__(self, ws):
        self.ws = ws
        self.versions: dict[str, int] = {}
        self.closed = False
        self.task = asyncio.create_task(self._read())

    def _saw(self, record: dict) -> None:
        self.versions[record["id"]] = max(record["version"], self.versions.get(record["id"], 0))

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["type"] == "welcome":
                for member in frame["members"]:
                    self._saw(member)
            elif frame["type"] == "presence":
                for member in frame["joined"]:
                    self._saw(member)
            elif frame["type"] == "profile_updated":
                self._saw(frame)
        self.closed = True


async def test_redis_restarted_in_the_middle_of_traffic(postgres_url, tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    broker_url = f"{server.url}?prefix={unique_id('t')}&timeout=0.5{FAST}"
    env = {"DATABASE_URL": postgres_url, "BROKER_URL": broker_url}
    one = await SvcProcess(env, tmp_path / "svc1.log").start()
    two = await SvcProcess(env, tmp_path / "svc2.log").start()
    room = unique_id("r")
    statuses: list[int] = []
    try:
        async with aiohttp.ClientSession() as http:
            alice, bob = await _new_user(http, one.base), await _new_user(http, two.base)
            carol = await _new_user(http, one.base)
            watchers = []
            for base, user_id in ((one.base, alice), (two.base, bob), (two.base, carol)):
                ws = await http.ws_connect(f"{base}/ws/{room}?user_id={user_id}")
                watchers.append(Watcher(ws))
            await wait_until(lambda: all(len(w.versions) == 3 for w in watchers), timeout=10)
            # One change of Carol's announced while all is well, so every process knows her.
            await http.put(f"{one.base}/users/{carol}/profile", json={"display_name": "c"})
            await wait_until(lambda: all(w.versions[carol] == 2 for w in watchers), timeout=10)

            async def write(n: int, also_carol: bool = False) -> None:
                writers = [(alice, one.base), (bob, two.base), (alice, two.base)]
                if also_carol:
                    writers.append((carol, one.base))
                user_id, base = writers[n % len(writers)]
                response = await http.put(
                    f"{base}/users/{user_id}/profile", json={"display_name": f"n{n}"}
                )
                statuses.append(response.status)

            for n in range(30):
                await write(n)
            server.kill()
            # Carol changes only while Redis is down: only the repair can bring her news.
            for n in range(30, 60):
                await write(n, also_carol=True)
            for base in (one.base, two.base):
                response = await http.get(f"{base}/health/ready")
                assert response.status == 503
                assert "broker" in (await response.json())["error"]["message"]
            server.start()  # empty: every key and subscription is gone
            for n in range(60, 90):
                await write(n)
                await asyncio.sleep(0.02)

            assert statuses and all(status == 200 for status in statuses), statuses
            latest = {}
            for user_id in (alice, bob, carol):
                latest[user_id] = (await (await http.get(f"{one.base}/users/{user_id}")).json())[
                    "version"
                ]
            # Every client connected throughout ends at the latest version of each profile.
            try:
                await wait_until(
                    lambda: all(w.versions == latest for w in watchers), timeout=40, interval=0.1
                )
            except AssertionError:
                seen = [w.versions for w in watchers]
                raise AssertionError(
                    f"latest {latest}, seen {seen}\n{one.log()[-3000:]}\n{two.log()[-3000:]}"
                ) from None
            assert not any(w.closed for w in watchers)

            async def ready() -> bool:
                codes = [(await http.get(f"{b}/health/ready")).status for b in (one.base, two.base)]
                return codes == [200, 200]

            for _ in range(100):
                if await ready():
                    break
                await asyncio.sleep(0.1)
            assert await ready()
            for w in watchers:
                await w.ws.close()
    finally:
        await one.stop()
        await two.stop()
        server.kill()
