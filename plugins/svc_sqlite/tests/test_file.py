"""What is particular to a file: created on first start, kept across restarts, shared by
two connections, and clear failures when the file or its folder is not right."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest
import svc_sqlite.storage
from svc_sqlite import SQLiteStorage
from svc_sqlite.schema import MIGRATIONS

from svc.storage import Misconfigured, NotFound, Unavailable
from svc.testing import unique_id


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/svc.db"


async def test_the_file_and_its_tables_are_made_on_first_open(tmp_path, url):
    storage = SQLiteStorage(url)
    assert not (tmp_path / "svc.db").exists()  # the constructor does no I/O
    await storage.open()
    try:
        await storage.create_user("ada", {"username": "ada"})
    finally:
        await storage.close()
    conn = sqlite3.connect(tmp_path / "svc.db")
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT id, username_key FROM users").fetchall() == [("ada", "ada")]
    finally:
        conn.close()


async def test_everything_is_there_after_a_restart(url):
    first = SQLiteStorage(url)
    await first.open()
    user = await first.create_user("ada", {"username": "Ada", "avatar_urls": {"s": "https://a"}})
    updated, _ = await first.update_profile("ada", {"bio": "naïve 東京 🚀", "email": None})
    when = await first.set_password_hash("ada", "$hash$")
    await first.close()
    await first.close()  # twice is safe

    second = SQLiteStorage(url)
    await second.open()  # the schema is there: opening again migrates nothing
    try:
        assert await second.get_user("ada") == updated
        assert (await second.get_user("ada")).created_at == user.created_at
        credentials = await second.find_credentials("ADA")
        assert (credentials.user_id, credentials.password_hash) == ("ada", "$hash$")
        assert credentials.password_updated_at == when
        assert credentials.created_at == user.created_at
    finally:
        await second.close()


async def test_two_connections_on_one_file_keep_every_field(url):
    """Atomicity comes from one statement per write, not from aiosqlite's one thread: two
    connections (as two processes would have) interleaving 50 updates lose nothing."""
    one, two = SQLiteStorage(url), SQLiteStorage(url)
    await one.open()
    await two.open()
    try:
        user_id = unique_id()
        await one.create_user(user_id, {"username": user_id})
        writes = [{"display_name": f"n{i}"} if i % 2 else {"bio": f"b{i}"} for i in range(50)]
        results = await asyncio.gather(
            *((one if i % 2 else two).update_profile(user_id, w) for i, w in enumerate(writes))
        )
        assert sorted(u.version for u, _ in results) == list(range(2, 52))
        final = await two.get_user(user_id)
        assert final == max((u for u, _ in results), key=lambda u: u.version)
        assert final.profile["username"] == user_id
        assert final.profile["display_name"] is not None and final.profile["bio"] is not None
    finally:
        await one.close()
        await two.close()


async def test_a_missing_folder_is_misconfigured_not_made(tmp_path):
    storage = SQLiteStorage(f"sqlite:///{tmp_path}/no/such/folder/svc.db")
    with pytest.raises(Misconfigured, match="folder .* does not exist"):
        await storage.open()
    await storage.close()
    assert not (tmp_path / "no").exists()


async def test_a_file_that_is_not_a_database_is_misconfigured(tmp_path):
    (tmp_path / "notes.txt").write_text("not a database, and long enough to be read as one" * 20)
    storage = SQLiteStorage(f"sqlite:///{tmp_path}/notes.txt")
    with pytest.raises(Misconfigured, match="not a database"):
        await storage.open()
    await storage.close()


async def test_a_schema_from_a_newer_plugin_is_misconfigured(tmp_path, url):
    conn = sqlite3.connect(tmp_path / "svc.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    storage = SQLiteStorage(url)
    with pytest.raises(Misconfigured, match="newer"):
        await storage.open()
    await storage.close()


async def test_a_file_locked_by_another_process_is_unavailable(tmp_path, url, monkeypatch):
    monkeypatch.setattr(svc_sqlite.storage, "BUSY_TIMEOUT", 0.1)
    storage = SQLiteStorage(url)
    await storage.open()
    holder = sqlite3.connect(tmp_path / "svc.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # as another process in a long write would
        with pytest.raises(Unavailable, match="locked"):
            await storage.create_user("ada", {"username": "ada"})
        holder.execute("ROLLBACK")
        await storage.create_user("ada", {"username": "ada"})  # works again once released
    finally:
        holder.close()
        await storage.close()


async def test_a_closed_storage_is_unavailable_not_a_crash(url):
    storage = SQLiteStorage(url)
    await storage.open()
    await storage.close()
    with pytest.raises(Unavailable):
        await storage.get_user("ada")
    with pytest.raises(Unavailable):
        await storage.ping()


async def test_deleted_then_created_again_starts_over(url):
    storage = SQLiteStorage(url)
    await storage.open()
    try:
        await storage.create_user("ada", {"username": "ada"})
        await storage.update_profile("ada", {"bio": "x"})
        await storage.delete_user("ada")
        with pytest.raises(NotFound):
            await storage.get_credentials("ada")
        again, created = await storage.update_profile("ada", {"bio": "y"}, create=True)
        assert created and again.version == 1 and again.profile["username"] is None
    finally:
        await storage.close()


async def test_no_hash_in_any_log_line_even_at_debug(url, caplog):
    caplog.set_level(logging.DEBUG)
    storage = SQLiteStorage(url)
    await storage.open()
    try:
        await storage.create_user("ada", {"username": "ada"}, "$bcrypt-sha256$secret-one")
        await storage.set_password_hash("ada", "$bcrypt-sha256$secret-two")
        await storage.get_credentials("ada")
    finally:
        await storage.close()
    assert "secret-one" not in caplog.text and "secret-two" not in caplog.text
