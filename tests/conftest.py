"""Shared fixtures: the app on each storage backend, driven through real HTTP.

``storage_url`` is parametrised over the backends, so a test that uses
``client`` (or ``make_client``) runs once per backend and must see the same
responses on each.
"""

from __future__ import annotations

import dataclasses

import pytest

from svc.app import create_app
from svc.settings import Settings

# Low bcrypt cost keeps the suite fast; the cost itself is tested in test_passwords.
TEST_SETTINGS = Settings(bcrypt_rounds=4, database_timeout=5)


@pytest.fixture(params=["memory"])
def storage_url(request) -> str:
    return {"memory": "memory://"}[request.param]


@pytest.fixture
def settings(storage_url) -> Settings:
    return dataclasses.replace(TEST_SETTINGS, database_url=storage_url)


@pytest.fixture
def make_client(aiohttp_client, settings):
    """``await make_client(**overrides)``: a test client on a fresh app."""

    async def factory(**overrides):
        return await aiohttp_client(create_app(dataclasses.replace(settings, **overrides)))

    return factory


@pytest.fixture
async def client(make_client):
    return await make_client()
