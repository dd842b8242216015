"""Drain on SIGTERM (svc/drain.py): a real ``python -m svc``, real sockets.

For ``DRAIN_SECONDS`` after the signal, ``/health/ready`` answers 503 ``draining`` while every
request and WebSocket, old and new, is served as before; then sockets get 1001 and the process
exits 0.  A second signal ends the window at once; ``DRAIN_SECONDS=0`` is the old shutdown."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest
from svc_process import SvcProcess

from svc.testing import unique_id, within


@pytest.fixture
def log_path(tmp_path):
    return tmp_path / "svc.log"


async def welcomed(http: aiohttp.ClientSession, room: str, user: str):
    ws = await http.ws_connect(f"/ws/{room}?user_id={user}")
    assert (await ws.receive_json(timeout=10))["type"] == "welcome"
    return ws


async def profile_version(ws, version: int) -> None:
    """Read ``ws`` until the profile change at ``version`` (presence frames may come first)."""
    while True:
        frame = await ws.receive_json(timeout=10)
        if frame["type"] == "profile_updated" and frame["version"] == version:
            return


async def close_code(ws) -> int:
    """Read ``ws`` to its close; the close code."""
    while True:
        msg = await ws.receive(timeout=30)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            assert msg.type is aiohttp.WSMsgType.CLOSE, (msg.type, msg.data)
            return msg.data


async def first_draining(http: aiohttp.ClientSession, timeout: float = 5) -> float:
    """Poll readiness until it says ``draining``; when it did (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with http.get("/health/ready") as response:
            if response.status == 503:
                body = await response.json()
                assert body["error"]["code"] == "draining", body
                assert response.headers["Retry-After"] == "1"
                return time.monotonic()
            assert response.status == 200
        await asyncio.sleep(0.02)
    raise AssertionError("readiness never said draining")


async def test_sigterm_drains_while_serving_then_closes_with_1001_and_exits_0(log_path):
    svc = await SvcProcess({"DRAIN_SECONDS": "2"}, log_path).start()
    room, user = unique_id("r"), unique_id()
    try:
        async with aiohttp.ClientSession(svc.base) as http:
            async with http.put(f"/users/{user}/profile", json={"username": user}) as response:
                assert response.status == 201
                assert response.headers.get("Connection", "").lower() != "close"
            before = await welcomed(http, room, user)
            signalled = time.monotonic()
            svc.terminate()
            assert await first_draining(http) - signalled < 0.5

            # Everything is still served: a read, a write, and a new WebSocket.
            async with http.get(f"/users/{user}") as response:
                assert response.status == 200 and (await response.json())["version"] == 1
                # ...and the connection is not kept: no idle keep-alive left to be cut.
                assert response.headers["Connection"].lower() == "close"
            during = await welcomed(http, room, unique_id())
            async with http.put(
                f"/users/{user}/profile", json={"username": unique_id()}
            ) as response:
                assert response.status == 200
            await within(5, profile_version(before, 2))
            await within(5, profile_version(during, 2))
            assert svc.proc.returncode is None

            assert await close_code(before) == 1001
            closed = time.monotonic()
            assert await close_code(during) == 1001
            assert closed - signalled >= 1.9  # not before the window was over
        assert await within(15, svc.proc.wait()) == 0
    finally:
        await svc.stop()
    text = svc.log()
    assert "SIGTERM: draining for 2 s" in text
    assert text.count("draining for") == 1  # one line, not one per request


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_second_signal_ends_the_drain_at_once(log_path, second):
    svc = await SvcProcess({"DRAIN_SECONDS": "60"}, log_path).start()
    try:
        async with aiohttp.ClientSession(svc.base) as http:
            ws = await welcomed(http, unique_id("r"), unique_id())
            svc.terminate()
            await first_draining(http)
            svc.proc.send_signal(second)
            assert await within(10, close_code(ws)) == 1001
        assert await within(10, svc.proc.wait()) == 0
    finally:
        await svc.stop()
    assert f"{second.name} during the drain: shutting down now" in svc.log()


async def test_drain_seconds_0_shuts_down_at_once(log_path):
    svc = await SvcProcess({"DRAIN_SECONDS": "0"}, log_path).start()
    try:
        async with aiohttp.ClientSession(svc.base) as http:
            ws = await welcomed(http, unique_id("r"), unique_id())
            signalled = time.monotonic()
            svc.terminate()
            assert await within(10, close_code(ws)) == 1001
            assert time.monotonic() - signalled < 1.5  # no window (the test's is 2 s above)
            with pytest.raises(aiohttp.ClientConnectionError):
                async with http.get("/health/ready"):  # no longer accepting
                    pass
        assert await within(10, svc.proc.wait()) == 0
    finally:
        await svc.stop()
    assert "draining" not in svc.log()
