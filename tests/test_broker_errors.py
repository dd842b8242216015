"""Errors name the part that failed: while the broker is down (storage answering), a 503
body and a 4503 close say the broker is unavailable, never storage."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
from conftest import TEST_SETTINGS
from redis_helpers import OwnRedis
from ws_helpers import join, new_user

from svc.app import create_app
from svc.testing import unique_id

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BROKER_DOWN = "the broker is unavailable, try again shortly"


async def wait_until_metric(client, name: str, value: float) -> None:
    line = f"\n{name} {value}\n"
    text = ""
    for _ in range(100):  # 10 s at most
        text = await (await client.get("/metrics")).text()
        if line in text:
            return
        await asyncio.sleep(0.1)
    found = [row for row in text.splitlines() if row.startswith(name)]
    raise AssertionError(f"{name} never reached {value}: {found}")


async def test_a_broker_outage_is_reported_as_the_broker_not_storage(
    aiohttp_client, postgres_url, tmp_path
):
    server = OwnRedis(tmp_path)
    server.start()
    try:
        settings = dataclasses.replace(
            TEST_SETTINGS,
            database_url=postgres_url,
            broker_url=f"{server.url}?prefix={unique_id('err')}&timeout=0.5",
        )
        client = await aiohttp_client(create_app(settings))
        user_id = await new_user(client)
        ws, _ = await join(client, unique_id("r"), user_id)
        server.kill()

        # Storage still answers...
        response = await client.get(f"/users/{user_id}")
        assert response.status == 200
        # ...the broker does not, and the answers say which.
        response = await client.get(f"/rooms/{unique_id('r')}/members")
        assert response.status == 503
        body = await response.json()
        assert body["error"] == {"code": "unavailable", "message": BROKER_DOWN}
        assert response.headers["Retry-After"] == "1"

        joining = await client.ws_connect(f"/ws/{unique_id('r')}?user_id={user_id}")
        msg = await joining.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.CLOSE, (msg.type, msg.data)
        assert (msg.data, msg.extra) == (4503, BROKER_DOWN)
        await joining.close()

        metrics = await (await client.get("/metrics")).text()
        assert "\nsvc_storage_errors_total 0.0\n" in metrics  # the broker is not storage

        # Every failed call to the broker counts once, in one counter, wherever it was made:
        # the 503 above (HTTP), a change it could not take (the write stands), a room
        # message it could not take (the rooms).
        response = await client.put(f"/users/{user_id}/profile", json={"bio": "still saved"})
        assert response.status == 200, await response.text()
        await ws.send_json({"type": "message", "data": "lost on the way out"})
        await wait_until_metric(client, "svc_broker_errors_total", 3.0)
        await ws.close()
    finally:
        server.kill()
