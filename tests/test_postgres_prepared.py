"""Prepared statements (svc_postgres/prepared.py): on by default, off with
``prepared_statements=false`` (and by themselves through a transaction pooler:
test_pgbouncer.py), the same answers either way."""

from __future__ import annotations

import pytest
from svc_postgres import PostgresStorage
from svc_postgres.pool import run
from svc_postgres.queries import PREPARED
from test_postgres_conformance import TestPostgresStorage as PostgresConformance

from svc.storage import VersionMismatch
from svc.storage.registry import get_plugin
from svc.testing import reopener, unique_id

pytestmark = pytest.mark.postgres

PREPARED_NAMES = {statement.name for statement in PREPARED}


def with_param(url: str, param: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{param}"


async def prepared_names(storage: PostgresStorage) -> set[str]:
    """The statements prepared on a connection of the storage's own pool."""
    rows = await run(storage._pool, "SELECT name FROM pg_prepared_statements", (), one=False)
    return {name for (name,) in rows}


@pytest.mark.parametrize("setting, prepared", [(None, True), ("true", True), ("false", False)])
async def test_each_pooled_connection_prepares_the_hot_statements_unless_told_not_to(
    postgres_url, setting, prepared
):
    url = (
        postgres_url
        if setting is None
        else with_param(postgres_url, f"prepared_statements={setting}")
    )
    storage = PostgresStorage(url)
    await storage.open()
    try:
        user_id = unique_id()
        created = await storage.create_user(user_id, {"username": unique_id()})
        updated, was_created = await storage.update_profile(user_id, {"bio": "hi"})
        at_version, _ = await storage.update_profile(
            user_id, {"bio": "again"}, expected_version=updated.version
        )
        upserted_id = unique_id()
        upserted, upsert_created = await storage.update_profile(
            upserted_id, {"display_name": "new"}, create=True
        )
        assert (created.version, updated.version, at_version.version) == (1, 2, 3)
        assert not was_created and upsert_created and upserted.version == 1
        assert (await storage.get_user(user_id)).profile["bio"] == "again"
        assert [u.id for u in await storage.get_users([upserted_id, user_id])] == [
            upserted_id,
            user_id,
        ]
        assert (await prepared_names(storage) >= PREPARED_NAMES) is prepared
        if not prepared:
            assert not await prepared_names(storage) & PREPARED_NAMES
    finally:
        await storage.close()


async def test_a_version_too_big_for_any_row_is_a_mismatch_not_an_error(postgres_url):
    # If-Match takes up to 18 digits; the prepared statement's parameter must hold them all.
    storage = PostgresStorage(postgres_url)
    await storage.open()
    try:
        user_id = unique_id()
        await storage.create_user(user_id, {"username": unique_id()})
        with pytest.raises(VersionMismatch) as info:
            await storage.update_profile(user_id, {"bio": "x"}, expected_version=10**18 - 1)
        assert info.value.current_version == 1
    finally:
        await storage.close()


class TestPostgresStorageUnprepared(PostgresConformance):
    """The whole conformance suite (with the Postgres suite's bad URLs and unreachable
    server) with prepared statements off."""

    @pytest.fixture
    def url(self, postgres_url):
        return with_param(postgres_url, "prepared_statements=false")

    @pytest.fixture
    async def storage(self, url):
        backend = get_plugin(url)(url)
        await backend.open()
        yield backend
        await backend.close()

    @pytest.fixture
    async def reopen(self, url):
        async with reopener(lambda: get_plugin(url)(url)) as reopen:
            yield reopen


async def test_a_prepared_statement_lost_is_a_503_that_names_the_fix(postgres_url):
    """Session state lost under svc's feet (a pooler svc did not recognise at start): the
    request is a 503 saying what to do, never a 500."""
    from svc.storage import Unavailable

    storage = PostgresStorage(postgres_url)
    await storage.open()
    try:
        user = await storage.create_user(unique_id(), {"username": unique_id()})
        assert len(storage._pool.idle) == 1  # the one connection every statement here takes
        await run(storage._pool, "DEALLOCATE ALL", (), one=None)
        with pytest.raises(Unavailable, match="prepared_statements=false"):
            await storage.get_user(user.id)
    finally:
        await storage.close()
