"""Postgres writes under concurrency: what one statement per write buys."""

from __future__ import annotations

import asyncio

import pytest

from svc.storage import Conflict
from svc.testing import unique_id

pytestmark = pytest.mark.postgres


async def test_concurrent_creates_of_one_id_insert_once(postgres_storage):
    user_id, username = unique_id(), unique_id()
    fields = ["display_name", "bio", "email", "avatar_url"]
    values = {"email": "a@b.co", "avatar_url": "https://img.example/a.png"}
    results = await asyncio.gather(
        *(
            postgres_storage.update_profile(
                user_id, {"username": username, f: values.get(f, f"{f}!")}, create=True
            )
            for f in fields * 3
        )
    )
    assert sum(created for _, created in results) == 1
    assert sorted(user.version for user, _ in results) == list(range(1, 13))
    final = await postgres_storage.get_user(user_id)
    assert final.version == 12
    assert all(final.profile[f] is not None for f in fields)  # every create-or-merge survived


async def test_concurrent_claims_of_one_username_let_exactly_one_win(postgres_storage):
    username = unique_id()
    results = await asyncio.gather(
        *(postgres_storage.create_user(unique_id(), {"username": username}) for _ in range(8)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(
        isinstance(r, Conflict) and r.field == "username" for r in results if r not in winners
    )
