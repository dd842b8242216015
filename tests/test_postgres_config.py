"""Postgres configuration: URL checks, pool size, libpq pass-through, migrations, start-up."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from urllib.parse import quote

import aiopg
import pytest
from svc_postgres import PostgresStorage
from svc_postgres.migrations import MIGRATIONS, migrate
from svc_postgres.url import PostgresURL

from svc.settings import Settings, SettingsError
from svc.storage import Conflict
from svc.testing import unique_id, within

pytestmark = pytest.mark.postgres

SECRET = "hunter2-Sekr3t"


@pytest.mark.parametrize(
    "url, words",
    [
        (f"postgresql://postgres:{SECRET}@127.0.0.1:notaport/test", "port"),
        (f"postgresql://postgres:{SECRET}@127.0.0.1:70000/test", "port"),
        (f"postgres://postgres:{SECRET}@h/test?pool_size=0", "pool_size"),
        (f"postgres://postgres:{SECRET}@h/test?pool_size=many", "pool_size"),
        (f"postgres://postgres:{SECRET}@h/test?prepared_statements=maybe", "prepared_statements"),
        (f"postgres://postgres:{SECRET}@h/test?no_such_option=1", "no_such_option"),
        (f"postgres://postgres:{SECRET}%zz@h/test", "percent"),
    ],
)
def test_malformed_url_is_one_clear_error_without_the_password(url, words):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"DATABASE_URL": url})
    message = str(info.value)
    assert message.startswith("DATABASE_URL: ")
    assert words in message
    assert SECRET not in message and "\n" not in message


def test_url_parameters():
    url = PostgresURL.parse(
        f"postgres://ada:{quote('p@ss')}@db.example:6543/app?sslmode=require&pool_size=3"
    )
    assert url.pool_size == 3
    assert url.params["sslmode"] == "require"  # libpq's own parameters pass through
    assert url.params["password"] == "p@ss"
    assert "pool_size" not in url.params
    assert url.redacted == "postgres://ada:***@db.example:6543/app?sslmode=require&pool_size=3"
    assert PostgresURL.parse("postgresql:///test?host=/var/run/postgresql").pool_size == 10
    assert url.prepared_statements  # the default
    unprepared = PostgresURL.parse("postgres://h/db?prepared_statements=false&pool_size=2")
    assert not unprepared.prepared_statements and "prepared_statements" not in unprepared.params
    storage = PostgresStorage(f"postgres://ada:{SECRET}@h/db?application_name=api")
    assert storage.application_name.startswith(f"api-{os.getpid()}-")
    assert SECRET not in repr(storage)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_svc(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svc"],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_start_up_with_a_malformed_url_stops_with_one_line():
    result = run_svc({"DATABASE_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:notaport/test"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("svc: error: DATABASE_URL: "), result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_start_up_against_an_unreachable_database_gives_up_after_the_timeout():
    result = run_svc(
        {
            "DATABASE_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:1/test",
            "DATABASE_TIMEOUT": "1",
        }
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("svc: error: DATABASE_URL: the database was still unavailable after 1 s")
    assert "refused" in last  # what happened, not "did not answer": nothing listens on port 1
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout


async def test_open_raises_unavailable_and_close_is_safe():
    from svc.storage import Unavailable

    storage = PostgresStorage(f"postgresql://postgres:{SECRET}@127.0.0.1:1/test")
    with pytest.raises(Unavailable) as info:
        await storage.open()
    assert SECRET not in str(info.value)
    await storage.close()
    await storage.close()


async def count(conn, application_name: str, where: str = "true") -> int:
    """Connections the server has from ``application_name`` (and matching ``where``)."""
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND {where}",
            (application_name,),
        )
        return (await cur.fetchone())[0]


async def poll(conn, application_name: str, where: str, wanted: int) -> None:
    """Wait until the server counts ``wanted`` such connections (a backend leaves
    pg_stat_activity a moment after its client has gone, so counts are awaited, not read)."""

    seen = []

    async def reached():
        while True:
            seen.append(await count(conn, application_name, where))
            if seen[-1] == wanted:
                return
            await asyncio.sleep(0.02)

    try:
        await within(10, reached())
    except AssertionError:
        raise AssertionError(f"{where}: wanted {wanted} connections, saw {seen[-1]}") from None


async def test_pool_size_bounds_the_connections(postgres_url):
    """Five writes stuck behind a row lock want five connections: the pool opens two.

    Every write needs the row lock, so any connection the pool opens ends up waiting
    on it where the server shows it (wait_event_type 'Lock'), and the writes beyond
    the bound wait in the pool instead.
    """
    storage = PostgresStorage(postgres_url + "?pool_size=2")
    await storage.open()
    name = storage.application_name
    try:
        user = await storage.create_user(unique_id(), {"username": unique_id()})
        async with aiopg.connect(postgres_url) as watcher, aiopg.connect(postgres_url) as holder:
            async with holder.cursor() as lock:
                await lock.execute("BEGIN")
                await lock.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user.id,))
                writes = [
                    asyncio.ensure_future(storage.update_profile(user.id, {"bio": str(i)}))
                    for i in range(5)
                ]
                await poll(watcher, name, "wait_event_type = 'Lock'", 2)
                # Every write has asked the pool by now; an unbounded pool would be at 5.
                assert storage._pool.aiopg.size == 2 and storage._pool.aiopg.freesize == 0
                assert await count(watcher, name, "wait_event_type = 'Lock'") == 2
                assert not any(write.done() for write in writes)
                await lock.execute("COMMIT")
            results = await within(30, asyncio.gather(*writes))
            assert sorted(u.version for u, _ in results) == [2, 3, 4, 5, 6]
    finally:
        await storage.close()
    async with aiopg.connect(postgres_url) as conn:
        await poll(conn, name, "true", 0)  # close released them all


async def test_usernames_of_earlier_rows_are_keyed_by_the_casefold_migration(postgres_url):
    """A database migrated before usernames had their own key column keeps its users."""
    schema = unique_id("svc_migrate_")
    url = f"{postgres_url}?options={quote(f'-c search_path={schema}')}"
    async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
        await cur.execute(f"CREATE SCHEMA {schema}")
        try:
            async with aiopg.connect(url) as old:
                await migrate(old, [m for m in MIGRATIONS if m[0] < 3])
                async with old.cursor() as setup:
                    await setup.execute(
                        "INSERT INTO users (id, profile, version, created_at, updated_at)"
                        " VALUES ('ada', '{\"username\": \"Ada.L\"}', 1, now(), now())"
                    )
            storage = PostgresStorage(url)
            await storage.open()
            try:
                assert (await storage.find_credentials("ADA.l")).user_id == "ada"
                with pytest.raises(Conflict):
                    await storage.create_user(unique_id(), {"username": "ada.L"})
            finally:
                await storage.close()
        finally:
            await cur.execute(f"DROP SCHEMA {schema} CASCADE")


async def test_two_processes_migrating_at_once_apply_each_migration_once(postgres_url):
    """Two storages open on a fresh schema at the same moment (libpq `options` passes through)."""
    schema = unique_id("svc_migrate_")
    async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
        await cur.execute(f"CREATE SCHEMA {schema}")
        try:
            url = f"{postgres_url}?options={quote(f'-c search_path={schema}')}"
            storages = [PostgresStorage(url) for _ in range(2)]
            await asyncio.gather(*(s.open() for s in storages))
            try:
                user = await storages[0].create_user(unique_id(), {"username": unique_id()})
                assert (await storages[1].get_user(user.id)).version == 1
            finally:
                await asyncio.gather(*(s.close() for s in storages))
            await cur.execute(f"SELECT version FROM {schema}.svc_migrations ORDER BY version")
            assert [row[0] for row in await cur.fetchall()] == [v for v, _ in MIGRATIONS]
            await cur.execute(f"SELECT count(*) FROM {schema}.users")
            assert (await cur.fetchone())[0] == 1
        finally:
            await cur.execute(f"DROP SCHEMA {schema} CASCADE")


async def test_a_direct_connection_gets_utc_and_the_statement_timeout_once_per_connection(
    postgres_url,
):
    """No start-up parameter (a pooler would refuse it): svc's settings are made when a
    pooled connection opens, over whatever the URL's own ``options`` or the server say."""
    from datetime import timezone

    from svc_postgres.pool import run

    url = f"{postgres_url}?options={quote('-c TimeZone=Pacific/Chatham')}"
    storage = PostgresStorage(url)
    # The URL's own options, passed to libpq untouched, and nothing of svc's.
    assert "options='-c TimeZone=Pacific/Chatham' " in storage._dsn
    assert "statement_timeout" not in storage._dsn
    # Counted without the application_name, whose random part may itself hold "-c".
    assert storage._dsn.replace(storage.application_name, "").count("-c") == 1
    await storage.open()
    try:
        assert not storage._per_statement and storage._prepared  # the fast path
        row = await run(storage._pool, "SHOW statement_timeout", ())
        assert row == ("6s",)
        assert await run(storage._pool, "SHOW TimeZone", ()) == ("UTC",)
        user = await storage.create_user(unique_id(), {"username": unique_id()})
        assert user.created_at.tzinfo == timezone.utc
    finally:
        await storage.close()
