"""After a burst in which sockets left, svc runs one full collection (svc/collector.py)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from svc_process import SvcProcess
from ws_helpers import frame_where, join, new_user, presence_where

from svc import collector
from svc.keys import HUB
from svc.testing import deadline, unique_id, within


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(collector, "QUIET", 0.02)
    monkeypatch.setattr(collector, "BURST", 10)


class Sockets:
    """What the hub counts: sockets opened plus closed, and closed, ever; and the
    collections asked for."""

    def __init__(self):
        self.churn = 0
        self.left = 0
        self.collections = 0
        self.collected = asyncio.Event()

    def collect(self) -> None:
        self.collections += 1
        self.collected.set()


@contextlib.asynccontextmanager
async def collecting(sockets: Sockets):
    task = asyncio.create_task(
        collector.collect_after_bursts(lambda: sockets.churn, lambda: sockets.left, sockets.collect)
    )
    await asyncio.sleep(0)  # started: it counts from the churn of now
    try:
        yield
    finally:
        task.cancel()


async def test_a_burst_that_closed_sockets_is_collected_once_when_it_is_over(quick):
    sockets = Sockets()
    async with collecting(sockets):
        for _ in range(10):  # still moving: no collection while sockets come and go
            sockets.churn += 3
            sockets.left += 1
            await asyncio.sleep(0.01)
        assert sockets.collections == 0
        async with deadline(5):
            await sockets.collected.wait()  # quiet now, and 30 >= BURST
        await asyncio.sleep(0.1)  # quiet, but nothing new since
        assert sockets.collections == 1


async def test_a_few_sockets_are_not_worth_a_collection(quick):
    sockets = Sockets()
    async with collecting(sockets):
        sockets.churn, sockets.left = 9, 9  # under BURST
        await asyncio.sleep(0.1)
        assert sockets.collections == 0
        sockets.churn = 10  # ... and now at it
        async with deadline(5):
            await sockets.collected.wait()


async def test_a_burst_of_joins_only_is_not_collected(quick):
    sockets = Sockets()
    async with collecting(sockets):
        sockets.churn += 30  # joins only: nothing closed, nothing to collect
        await asyncio.sleep(0.2)  # ten times QUIET: the burst is long over
        assert sockets.collections == 0
        sockets.churn += 30
        sockets.left += 15
        async with deadline(5):
            await sockets.collected.wait()
        await asyncio.sleep(0.1)  # quiet, nothing new: no second collection
        assert sockets.collections == 1


async def test_the_hub_counts_each_join_and_leave(make_client):
    client = await make_client()
    stats = client.app[HUB].stats
    before, left_before = stats.churn, stats.left
    room = unique_id("r")
    alice, bob = await new_user(client), await new_user(client)
    ws_alice, _ = await join(client, room, alice)
    ws_bob, _ = await join(client, room, bob)
    assert stats.churn == before + 2
    await ws_bob.close()
    await frame_where(ws_alice, presence_where(room, left=bob))
    assert stats.churn == before + 3
    assert stats.left == left_before + 1
    await ws_alice.close()


async def full_collections(http: aiohttp.ClientSession) -> float:
    async with http.get("/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith('svc_gc_collections_total{generation="2"}'):
            return float(line.rpartition(" ")[2])
    raise AssertionError("no full collections counted in /metrics")


async def full_collections_past(http: aiohttp.ClientSession, count: float) -> float:
    while (found := await full_collections(http)) <= count:  # noqa: ASYNC110 - another process
        await asyncio.sleep(0.2)
    return found


async def test_python_m_svc_collects_once_sockets_that_left_are_quiet_not_before(tmp_path):
    svc = await SvcProcess({}, tmp_path / "svc.log").start()
    room = unique_id("r")
    try:
        # limit=0: a session holds at most 100 connections by default, sockets included.
        async with aiohttp.ClientSession(svc.base, connector=aiohttp.TCPConnector(limit=0)) as http:
            before = await full_collections(http)
            sockets = [
                await http.ws_connect(f"/ws/{room}?user_id=u{i}")
                for i in range(collector.BURST + 10)
            ]
            # A burst of joins, then quiet: nothing closed, so no full pass
            # (nor, with svc's thresholds, one set off by the joins themselves).
            await asyncio.sleep(collector.QUIET * 2.5)
            assert await full_collections(http) == before
            for ws in sockets:
                await ws.close()
            assert await within(10, full_collections_past(http, before)) == before + 1
    finally:
        assert await svc.stop() == 0
