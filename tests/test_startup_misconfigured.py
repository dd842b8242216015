"""A storage that says "never, as configured" (Misconfigured) stops start-up at once with its
own line, without the retries "not yet" (Unavailable) gets, and is closed."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp.test_utils import TestServer
from conftest import TEST_SETTINGS
from svc_memory import MemoryStorage

from svc.app import create_app
from svc.settings import SettingsError
from svc.storage import Misconfigured


class RefusingStorage(MemoryStorage):
    def __init__(self):
        super().__init__()
        self.opens = self.closes = 0

    async def open(self) -> None:
        self.opens += 1
        raise Misconfigured("password authentication failed for user svc")

    async def close(self) -> None:
        self.closes += 1


async def test_misconfigured_storage_stops_start_up_with_its_line():
    storage = RefusingStorage()
    settings = dataclasses.replace(TEST_SETTINGS, database_timeout=30)
    server = TestServer(create_app(settings, storage=storage))
    with pytest.raises(SettingsError) as info:
        await server.start_server()
    await server.close()
    assert str(info.value) == "DATABASE_URL: password authentication failed for user svc"
    assert storage.opens == 1  # not retried for 30 s
    assert storage.closes >= 1
