"""A version a welcome showed is never sent again as ``profile_updated`` (docs/api.md).

Members join one app while another app streams PUTs of a present user: a joiner's
welcome reads the user's record, which may already hold a change still on its way
through the broker.  Before the fix that change then reached the joiner as news (30
frames in one trial run).  On every broker: memory, Postgres, Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import aiohttp
import pytest
from conftest import TEST_SETTINGS
from ws_helpers import join, new_user

from svc.app import create_app
from svc.testing import unique_id, wait_until

JOINERS = 30
PUTS = 120


@pytest.fixture(params=["memory", "postgres", "redis"])
async def two_apps(request, aiohttp_client):
    if request.param == "memory":
        from svc_memory import MemoryStorage

        shared = MemoryStorage()
        settings = dataclasses.replace(TEST_SETTINGS, broker_url=f"memory://{unique_id('bus')}")
        apps = [create_app(settings, storage=shared) for _ in range(2)]
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        settings = dataclasses.replace(TEST_SETTINGS, database_url=postgres_url)
        if request.param == "redis":
            settings = dataclasses.replace(
                settings, broker_url=request.getfixturevalue("redis_url")
            )
        apps = [create_app(settings) for _ in range(2)]
    return [await aiohttp_client(app) for app in apps]


class Joiner:
    """A member joined while the writes stream: its welcome's version of the writer, and
    every profile_updated of the writer after it."""

    def __init__(self, ws, welcome: dict, writer: str):
        self.ws = ws
        self.welcomed = next(m["version"] for m in welcome["members"] if m["id"] == writer)
        self.updates: list[int] = []
        self.writer = writer
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["type"] == "profile_updated" and frame["id"] == self.writer:
                self.updates.append(frame["version"])

    @property
    def latest(self) -> int:
        return self.updates[-1] if self.updates else self.welcomed


async def test_a_version_the_welcome_showed_is_not_sent_again(two_apps):
    writes_to, joins_to = two_apps
    writer = await new_user(writes_to)
    room = unique_id("r")
    ws_writer, _ = await join(writes_to, room, writer)  # present: their changes are news
    others = [await new_user(joins_to) for _ in range(JOINERS)]

    async def stream() -> int:
        version = 0
        for n in range(PUTS):
            response = await writes_to.put(f"/users/{writer}/profile", json={"bio": f"b{n}"})
            assert response.status == 200
            version = (await response.json())["version"]
        return version

    streaming = asyncio.create_task(stream())
    joiners = []
    for user_id in others:
        ws, welcome = await join(joins_to, room, user_id)
        joiners.append(Joiner(ws, welcome, writer))
        await asyncio.sleep(0.005)
    final = await streaming
    try:
        await wait_until(lambda: all(j.latest == final for j in joiners), timeout=15)
        for joiner in joiners:
            repeated = [v for v in joiner.updates if v <= joiner.welcomed]
            assert not repeated, (joiner.welcomed, joiner.updates)
            assert joiner.updates == sorted(set(joiner.updates))  # in order, once each
    finally:
        for joiner in joiners:
            await joiner.ws.close()
            joiner.task.cancel()
        await ws_writer.close()
