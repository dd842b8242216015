"""A broker that comes back: presence and live events whole again within 5 s of its return.

Two real ``python -m svc`` processes, 100 members connected to each, and a broker that
goes away for a few seconds and comes back:

- Redis, a server of the test's own, killed and started again empty (no persistence:
  every key and subscription is gone);
- Postgres (storage and broker), seen through a relay that drops every connection and
  refuses new ones, as a restarting server does (the shared server is never restarted).

Within 5 s of its return both processes list all 200 members and a PUT reaches all 200
clients.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

import aiohttp
import pytest
from redis_helpers import OwnRedis
from relay_helpers import Relay, through
from svc_process import SvcProcess

from svc.testing import unique_id

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.topology]

MEMBERS_PER_PROCESS = 100
#: The contract: whole again within this many seconds of the broker's return.
WHOLE_WITHIN = 5.0


class Client:
    """One member's socket: the latest version it was shown of each user."""

    def __init__(self, ws):
        self.ws = ws
        self.versions: dict[str, int] = {}
        self.welcomed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["type"] == "welcome":
                self.welcomed.set()  # (the join is done: its presence is written)
            elif frame["type"] == "profile_updated":
                seen = self.versions.get(frame["id"], 0)
                self.versions[frame["id"]] = max(seen, frame["version"])


async def _listed(http, base: str, room: str) -> set[str]:
    ids: set[str] = set()
    cursor = None
    for _ in range(10):  # 200 members: one page of 500
        query = "?limit=500" + (f"&cursor={cursor}" if cursor else "")
        async with http.get(f"{base}/rooms/{room}/members{query}") as response:
            if response.status != 200:
                return set()
            body = await response.json()
        ids.update(member["id"] for member in body["members"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    return ids


async def test_redis_restarted_empty_presence_and_live_events_whole_within_5_s(
    postgres_url, tmp_path
):
    server = OwnRedis(tmp_path)
    server.start()
    env = {
        "DATABASE_URL": postgres_url,
        "BROKER_URL": f"{server.url}?prefix={unique_id('rec')}",
    }

    async def outage() -> None:
        server.kill()
        await asyncio.sleep(3)
        server.start()  # empty

    try:
        await _whole_again_after(outage, env, tmp_path)
    finally:
        server.kill()


async def test_postgres_back_after_an_outage_presence_and_live_events_whole_within_5_s(
    postgres_url, tmp_path
):
    parts = urlsplit(postgres_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    env = {"DATABASE_URL": through(postgres_url, relay)}  # storage, and so the broker

    async def outage() -> None:
        await relay.cut()  # every connection dropped, new ones refused
        await asyncio.sleep(3)
        await relay.restore()

    try:
        await _whole_again_after(outage, env, tmp_path)
    finally:
        await relay.cut()


async def _whole_again_after(outage, env: dict, tmp_path) -> None:
    processes = [await SvcProcess(env, tmp_path / f"svc{n}.log").start() for n in (1, 2)]
    room = unique_id("r")
    clients: list[Client] = []
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=30)
        ) as http:
            members: list[str] = []
            for n in range(2 * MEMBERS_PER_PROCESS):
                user_id = unique_id("m")
                base = processes[n % 2].base
                response = await http.put(
                    f"{base}/users/{user_id}/profile", json={"username": user_id}
                )
                assert response.status == 201
                members.append(user_id)
            for n, user_id in enumerate(members):
                base = processes[n % 2].base
                clients.append(Client(await http.ws_connect(f"{base}/ws/{room}?user_id={user_id}")))
            everyone = set(members)
            await asyncio.wait_for(asyncio.gather(*(c.welcomed.wait() for c in clients)), 30)
            for svc in processes:
                assert await _listed(http, svc.base, room) == everyone

            await outage()
            back = time.monotonic()

            # Presence: both processes list all 200 again.
            while True:
                listed = [await _listed(http, svc.base, room) for svc in processes]
                if all(ids == everyone for ids in listed):
                    break
                if time.monotonic() - back > WHOLE_WITHIN:
                    counts = [len(ids & everyone) for ids in listed]
                    raise AssertionError(f"{counts} of 200 listed {WHOLE_WITHIN:g} s after")
                await asyncio.sleep(0.1)

            # Live events: a PUT made now reaches every client.
            writer = members[0]
            response = await http.put(
                f"{processes[1].base}/users/{writer}/profile", json={"bio": "after the restart"}
            )
            assert response.status == 200
            version = (await response.json())["version"]
            while not all(c.versions.get(writer, 0) >= version for c in clients):
                if time.monotonic() - back > WHOLE_WITHIN:
                    reached = sum(c.versions.get(writer, 0) >= version for c in clients)
                    raise AssertionError(
                        f"the PUT reached {reached} of 200 clients {WHOLE_WITHIN:g} s after"
                        f"\n{processes[0].log()[-2000:]}\n{processes[1].log()[-2000:]}"
                    )
                await asyncio.sleep(0.05)
            assert not any(c.task.done() for c in clients)  # no socket was dropped
            for client in clients:
                await client.ws.close()
    finally:
        for client in clients:
            client.task.cancel()
        for svc in processes:
            await svc.stop()
