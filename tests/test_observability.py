"""What operators see: /metrics, request ids, JSON and access logs, and a graceful stop."""

from __future__ import annotations

import asyncio
import json
import os
import secrets

import aiohttp
import pytest
from svc_process import SvcProcess
from ws_helpers import join, new_user

from svc.testing import unique_id


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in the Prometheus text format."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key[len(name) :]] = float(value)
    return found


async def test_metrics_count_requests_sockets_and_hashes(client):
    user = await new_user(client)
    assert (await client.get(f"/users/{user}")).status == 200
    assert (await client.get("/users/nobody-here")).status == 404
    ws, _ = await join(client, unique_id("r"), user)

    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    counts = samples(text, "svc_http_request_duration_seconds_count")
    assert counts['{method="GET",route="/users/{user_id}",status="200"}'] == 1
    assert counts['{method="GET",route="/users/{user_id}",status="404"}'] == 1
    assert samples(text, "svc_websocket_connections") == {"": 1.0}
    assert samples(text, "svc_rooms") == {"": 1.0}
    for name in (
        "svc_frames_fanned_out_total",
        "svc_presence_batches_total",
        "svc_password_hashes_queued",
        "svc_password_hashes_in_flight",
        "svc_storage_errors_total",
        "svc_broker_errors_total",
        "svc_websocket_send_buffer_bytes",
        "svc_connections_open",
        "svc_connections_refused_total",
        "svc_header_timeouts_total",
        "svc_accept_errors_total",
    ):
        assert samples(text, name), f"{name} missing from /metrics"
    assert set(samples(text, "svc_websocket_closed_total")) == {
        '{reason="backlog"}',
        '{reason="flood"}',
        '{reason="send_budget"}',
        '{reason="too_many_sockets"}',
        '{reason="token_expired"}',
        '{reason="password_set"}',
    }
    assert set(samples(text, "svc_gc_collections_total")) == {
        '{generation="0"}',
        '{generation="1"}',
        '{generation="2"}',
    }
    await ws.close()


async def test_request_id_is_made_echoed_or_replaced(client):
    made = (await client.get("/")).headers["X-Request-ID"]
    assert made and made != (await client.get("/")).headers["X-Request-ID"]
    assert (await client.get("/", headers={"X-Request-ID": "abc-123"})).headers[
        "X-Request-ID"
    ] == "abc-123"
    for insane in ("x" * 65, "a b", "évil", "a\tb"):
        got = (await client.get("/", headers={"X-Request-ID": insane})).headers["X-Request-ID"]
        assert got != insane and got
    # errors carry it too
    assert (await client.get("/no/such/route")).headers["X-Request-ID"]


async def test_a_websocket_upgrade_answers_with_its_request_id(client):
    """The 101 carries it as every answer does: behind a balancer, it says which process
    took the socket (svc's own ids start with its pid)."""
    ws = await client.ws_connect("/ws/lobby", headers={"X-Request-ID": "up-1"})
    assert ws._response.headers["X-Request-ID"] == "up-1"
    await ws.close()
    ws = await client.ws_connect("/ws/lobby")
    assert ws._response.headers["X-Request-ID"].startswith(f"{os.getpid():x}-")
    await ws.close()


@pytest.fixture
def log_path(tmp_path):
    return tmp_path / "svc.log"


async def test_json_access_log_has_request_ids_and_no_secrets(log_path):
    secret_key = secrets.token_urlsafe(40)
    svc = await SvcProcess(
        {"LOG_FORMAT": "json", "ACCESS_LOG": "true", "JWT_SECRET_KEY": secret_key},
        log_path,
    ).start()
    user, password = unique_id(), "correct horse battery"
    room = unique_id("r")
    try:
        async with aiohttp.ClientSession(svc.base) as http:
            async with http.post(
                "/users",
                json={"id": user, "username": user, "password": password},
                headers={"X-Request-ID": "create-1"},
            ) as response:
                assert response.status == 201
            async with http.post(
                "/auth/token", json={"username": user, "password": password}
            ) as response:
                token = (await response.json())["access_token"]
            async with http.ws_connect(f"/ws/{room}?token={token}") as ws:
                await ws.receive_json()
                await ws.close()
        await asyncio.sleep(0.3)
    finally:
        assert await svc.stop() == 0
    lines = [json.loads(line) for line in svc.log().splitlines() if line.strip()]
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    access = [line for line in lines if line["logger"] == "svc.access"]
    create = next(line for line in access if line.get("path") == "/users")
    assert create["request_id"] == "create-1"
    assert create["method"] == "POST" and create["status"] == 201 and create["duration_ms"] >= 0
    opened = next(line for line in access if line.get("event") == "ws_open")
    closed = next(line for line in access if line.get("event") == "ws_close")
    assert opened["room"] == room and closed["room"] == room
    assert closed["close_code"] == 1000 and closed["duration_ms"] >= 0
    text = svc.log()
    for secret in (password, token, secret_key):
        assert secret not in text


async def test_no_access_log_by_default_and_text_format(log_path):
    svc = await SvcProcess({}, log_path).start()
    try:
        async with aiohttp.ClientSession(svc.base) as http:
            async with http.get("/users/nobody") as response:
                assert response.status == 404
    finally:
        assert await svc.stop() == 0
    text = svc.log()
    assert "svc.access" not in text
    assert "listening on http://127.0.0.1" in text
    assert not text.lstrip().startswith("{")


async def test_json_logs_alone_write_no_access_lines(log_path):
    svc = await SvcProcess({"LOG_FORMAT": "json"}, log_path).start()
    try:
        async with aiohttp.ClientSession(svc.base) as http:
            async with http.get("/users/nobody", headers={"X-Request-ID": "alone-1"}) as response:
                assert response.status == 404
                assert response.headers["X-Request-ID"] == "alone-1"
    finally:
        assert await svc.stop() == 0
    lines = [json.loads(line) for line in svc.log().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert not [line for line in lines if line["logger"] == "svc.access"]


async def test_access_log_alone_is_text_lines(log_path):
    svc = await SvcProcess({"ACCESS_LOG": "true"}, log_path).start()
    room = unique_id("r")
    try:
        async with aiohttp.ClientSession(svc.base) as http:
            async with http.get("/users/nobody", headers={"X-Request-ID": "text-1"}) as response:
                assert response.status == 404
            async with http.ws_connect(f"/ws/{room}?user_id={unique_id()}") as ws:
                await ws.receive_json()
                await ws.close()
        await asyncio.sleep(0.3)
    finally:
        assert await svc.stop() == 0
    text = svc.log()
    assert not text.lstrip().startswith("{")
    access = [line for line in text.splitlines() if " svc.access " in line]
    assert any("[text-1]" in line and "GET /users/nobody 404" in line for line in access), access
    assert any(f"websocket {room} opened" in line for line in access), access
    assert any(f"websocket {room} closed with 1000" in line for line in access), access


async def test_sigterm_lets_requests_finish_closes_sockets_and_exits_0(log_path):
    # A password hash at cost 14 takes about a second: the request in flight at SIGTERM.
    svc = await SvcProcess({"BCRYPT_ROUNDS": "14", "SHUTDOWN_TIMEOUT": "20"}, log_path).start()
    user = unique_id()
    async with aiohttp.ClientSession(svc.base) as http:
        ws = await http.ws_connect(f"/ws/{unique_id('r')}?user_id={user}")
        assert (await ws.receive_json())["type"] == "welcome"
        slow = asyncio.create_task(
            http.post("/users", json={"id": user, "username": user, "password": "p" * 12})
        )
        await asyncio.sleep(0.3)  # the hash is running
        svc.terminate()
        closing = await ws.receive(timeout=10)
        while closing.type is aiohttp.WSMsgType.TEXT:  # frames sent before the stop
            closing = await ws.receive(timeout=10)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1001
        response = await slow
        assert response.status == 201  # finished, not cut off
        response.release()
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get("/"):  # no longer accepting
                pass
    assert await asyncio.wait_for(svc.proc.wait(), 25) == 0
