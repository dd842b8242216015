"""After a burst of sockets, svc gives the freed heap back (svc/heap_trim.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import aiohttp
import pytest
from svc_process import SvcProcess
from ws_helpers import frame_where, join, new_user, presence_where

from svc import heap_trim
from svc.keys import HUB
from svc.testing import deadline, unique_id, within


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(heap_trim, "QUIET", 0.02)
    monkeypatch.setattr(heap_trim, "BURST", 10)


class Trims:
    """A stand-in for malloc_trim that records each call and the thread it ran in."""

    def __init__(self):
        self.threads: list[threading.Thread] = []
        self.called = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def __call__(self, pad: int) -> int:
        assert pad == 0
        self.threads.append(threading.current_thread())
        self._loop.call_soon_threadsafe(self.called.set)
        return 1


class Sockets:
    """What the hub counts: sockets opened plus closed, and closed, ever."""

    def __init__(self):
        self.churn = 0
        self.left = 0
        self.collections = 0

    def collect(self) -> None:
        self.collections += 1


@contextlib.asynccontextmanager
async def trimmer(sockets: Sockets, trims: Trims):
    task = asyncio.create_task(
        heap_trim.trim_after_bursts(
            lambda: sockets.churn, trims, lambda: sockets.left, sockets.collect
        )
    )
    await asyncio.sleep(0)  # started: it counts from the churn of now
    try:
        yield
    finally:
        task.cancel()


async def test_a_burst_is_trimmed_once_when_it_is_over_and_off_the_loop(quick):
    sockets, trims = Sockets(), Trims()
    async with trimmer(sockets, trims):
        for _ in range(10):  # still moving: no trim while sockets come and go
            sockets.churn += 3
            await asyncio.sleep(0.01)
        assert trims.threads == []
        async with deadline(5):
            await trims.called.wait()  # quiet now, and 30 >= BURST
        assert trims.threads[0] is not threading.main_thread()
        await asyncio.sleep(0.1)  # quiet, but nothing new since the trim
        assert len(trims.threads) == 1


async def test_a_few_sockets_are_not_worth_a_trim(quick):
    sockets, trims = Sockets(), Trims()
    async with trimmer(sockets, trims):
        sockets.churn = 9  # under BURST
        await asyncio.sleep(0.1)
        assert trims.threads == []
        sockets.churn = 10  # ... and now at it
        async with deadline(5):
            await trims.called.wait()


async def test_a_burst_that_closed_sockets_is_collected_once_before_its_trim(quick):
    sockets, trims = Sockets(), Trims()
    async with trimmer(sockets, trims):
        sockets.churn += 30  # joins only: nothing closed, nothing to collect
        async with deadline(5):
            await trims.called.wait()
        assert sockets.collections == 0
        trims.called.clear()
        sockets.churn += 30
        sockets.left += 15
        async with deadline(5):
            await trims.called.wait()
        assert sockets.collections == 1
        await asyncio.sleep(0.1)  # quiet, nothing new: no second collection
        assert (sockets.collections, len(trims.threads)) == (1, 2)


def test_this_c_library_has_malloc_trim():
    # glibc (Linux, the image): the trim is real here, not a no-op.
    trim = heap_trim._find_malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)


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
                for i in range(heap_trim.BURST + 10)
            ]
            # A burst of joins, then quiet: trimmed, but nothing closed, so no full pass
            # (nor, with svc's thresholds, one set off by the joins themselves).
            await asyncio.sleep(heap_trim.QUIET * 2.5)
            assert await full_collections(http) == before
            for ws in sockets:
                await ws.close()
            assert await within(10, full_collections_past(http, before)) == before + 1
    finally:
        assert await svc.stop() == 0
