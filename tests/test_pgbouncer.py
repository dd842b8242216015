"""svc through Debian's PgBouncer, run from deploy/pgbouncer/'s example configuration.

A managed Postgres hands out a pooled URL (PgBouncer or Supavisor in transaction mode): svc
must start and serve through it with no 5xx, keep its statement timeout and UTC timestamps,
and its Postgres broker must refuse at start (LISTEN cannot work there) with one line
naming BROKER_URL, rather than stop hearing other processes in silence.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import aiopg
import psycopg2
import pytest
from svc_postgres import pool as pg
from svc_postgres import pooling
from svc_postgres.broker import NO_LISTEN, PostgresBroker
from svc_postgres.pooling import transaction_pooled
from svc_process import SvcProcess, free_port
from ws_helpers import frame_where

from svc.broker import BrokerMisconfigured
from svc.testing import unique_id, within
from svc.testing.broker import Recorder

pytestmark = [pytest.mark.postgres, pytest.mark.topology]

PGBOUNCER = os.environ.get("SVC_TEST_PGBOUNCER", "/usr/sbin/pgbouncer")
EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "pgbouncer"
#: The server's own time zone for every server connection (PgBouncer's ``timezone``): far
#: from UTC, so a timestamp that depends on the session's time zone shows it.
FAR_ZONE = "Pacific/Chatham"
JWT_SECRET = "pgbouncer-test-" + "k" * 40


def pgbouncer_config(example: str, port: int, database: str, target: str, **settings) -> str:
    """The example configuration with this test's port, database and folder put in (and
    ``settings`` replacing the example's values of the same names)."""
    server = urlsplit(target)
    lines = []
    for line in example.splitlines():
        name = line.partition("=")[0].strip()
        if name == "svc":  # the example's database line
            line = (
                f"{database} = host={server.hostname} port={server.port or 5432}"
                f" dbname={server.path.lstrip('/')} timezone={FAR_ZONE}"
            )
        elif name == "listen_port":
            line = f"listen_port = {port}"
        elif name in settings:
            line = f"{name} = {settings.pop(name)}"
        lines.append(line)
    assert not settings, f"not in the example: {sorted(settings)}"
    return "\n".join(lines) + "\n"


class PgBouncer:
    """``pgbouncer`` on a free port in front of the test database."""

    def __init__(self, target: str, log_path: Path, **settings):
        self.target = target
        self.log_path = log_path
        self.port = free_port()
        self.database = urlsplit(target).path.lstrip("/")
        # A folder of its own that PgBouncer can read once it dropped root (-u nobody):
        # pytest's tmp_path is private to root.
        self.folder = Path(tempfile.mkdtemp(prefix="svc-pgbouncer-"))
        self.folder.chmod(0o755)
        shutil.copy(EXAMPLE / "userlist.txt", self.folder / "userlist.txt")
        config = pgbouncer_config(
            (EXAMPLE / "pgbouncer.ini").read_text(),
            self.port,
            self.database,
            target,
            auth_file=str(self.folder / "userlist.txt"),
            **settings,
        )
        (self.folder / "pgbouncer.ini").write_text(config)
        for path in self.folder.iterdir():
            path.chmod(0o644)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The test database's URL, through this pooler."""
        parts = urlsplit(self.target)
        netloc = f"{parts.username or 'postgres'}@127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def start(self) -> PgBouncer:
        # PgBouncer will not run as root; told to, it drops to that user.
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [PGBOUNCER, *as_user, str(self.folder / "pgbouncer.ini")],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while True:  # bounded: until it answers, or 15 s
            try:
                psycopg2.connect(self.url, connect_timeout=2).close()
                return self
            except psycopg2.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"pgbouncer did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # immediate (SIGINT would wait on clients)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer_binary() -> str:
    """Debian's pgbouncer; skips without it, except in CI where that fails."""
    if not os.access(PGBOUNCER, os.X_OK):
        problem = f"no pgbouncer at {PGBOUNCER} (apt-get install pgbouncer)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return PGBOUNCER


@pytest.fixture
def make_pgbouncer(pgbouncer_binary, postgres_url, tmp_path):
    started: list[PgBouncer] = []

    def make(**settings) -> PgBouncer:
        log = tmp_path / f"pgbouncer{len(started)}.log"
        bouncer = PgBouncer(postgres_url, log, **settings)
        started.append(bouncer)
        return bouncer.start()

    yield make
    for bouncer in started:
        bouncer.stop()


@pytest.fixture
def transaction_pooler(make_pgbouncer) -> PgBouncer:
    """PgBouncer in transaction mode (the example's) with a pool small enough that svc's
    ten connections share four server connections."""
    return make_pgbouncer(default_pool_size="4")


def run_svc(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svc"],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
            "BCRYPT_ROUNDS": "4",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("svc: error:")]


# -- finding out what the URL is --------------------------------------------------------


async def test_a_transaction_pooler_is_told_from_a_direct_url_and_a_session_pooler(
    postgres_url, make_pgbouncer
):
    transaction = make_pgbouncer(default_pool_size="4")
    session = make_pgbouncer(pool_mode="session")
    for url, pooled in ((postgres_url, False), (transaction.url, True), (session.url, False)):
        for _ in range(3):  # whatever the pooler happens to hand out, the same answer
            assert await transaction_pooled(lambda u=url: pg.connect(u)) is pooled, url


# -- svc through a transaction pooler -------------------------------------------------------


async def test_through_a_transaction_pooler_svc_serves_the_whole_api_without_a_5xx(
    transaction_pooler, redis_url, tmp_path
):
    """Many clients at once on one process: its ten connections take turns on four server
    connections, so a statement never finds the session (settings, prepared statements) of
    the one before it.  Timestamps are UTC although the server sessions are not."""
    svc = SvcProcess(
        {
            "DATABASE_URL": transaction_pooler.url,
            "BROKER_URL": redis_url,
            "JWT_SECRET_KEY": JWT_SECRET,
        },
        tmp_path / "svc.log",
    )
    await svc.start()
    statuses: list[tuple[str, int]] = []
    stamps: list[str] = []
    started = datetime.now(timezone.utc)

    async def check(response, method: str, *expected: int) -> dict:
        statuses.append((method, response.status))
        body = await response.json() if response.status != 204 else {}
        assert response.status in expected, (method, response.status, body)
        return body

    # svc sheds password checks past 8 a core waiting (a 503 by design, svc.passwords):
    # the clients take turns for those, and run everything else at once.
    hashing = asyncio.Semaphore(8)

    async def one_client(http: aiohttp.ClientSession, n: int) -> None:
        base, room = svc.base, f"room{n % 5}"
        username, password = unique_id(), "correct horse battery"
        async with hashing:
            body = await check(
                await http.post(f"{base}/users", json={"username": username, "password": password}),
                "POST /users",
                201,
            )
        user_id = body["id"]
        stamps.extend((body["created_at"], body["updated_at"]))
        async with hashing:
            token = await check(
                await http.post(
                    f"{base}/auth/token", json={"username": username, "password": password}
                ),
                "POST /auth/token",
                200,
            )
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        for version in range(2, 5):
            body = await check(
                await http.put(
                    f"{base}/users/{user_id}/profile",
                    json={"bio": f"v{version}"},
                    headers={**auth, "If-Match": f'"{version - 1}"'},
                ),
                "PUT profile",
                200,
            )
            assert body["version"] == version
            stamps.append(body["updated_at"])
            body = await check(await http.get(f"{base}/users/{user_id}"), "GET user", 200)
            assert body["profile"]["bio"] == f"v{version}"
        stale = await http.put(
            f"{base}/users/{user_id}/profile",
            json={"bio": "stale"},
            headers={**auth, "If-Match": '"1"'},
        )
        await check(stale, "PUT stale", 412)
        async with hashing:
            body = await check(
                await http.put(
                    f"{base}/users/{user_id}/password",
                    json={"new_password": "battery staple horse", "current_password": password},
                    headers=auth,
                ),
                "PUT password",
                200,
            )
        stamps.append(body["password_updated_at"])
        async with hashing:  # the old token ended with the old password
            token = await check(
                await http.post(
                    f"{base}/auth/token",
                    json={"username": username, "password": "battery staple horse"},
                ),
                "POST /auth/token again",
                200,
            )
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        await check(await http.get(f"{base}/rooms/{room}/members"), "GET members", 200)
        await check(await http.get(f"{base}/health/ready"), "GET ready", 200)
        if n % 2:
            await check(await http.delete(f"{base}/users/{user_id}", headers=auth), "DELETE", 204)
            await check(await http.get(f"{base}/users/{user_id}"), "GET deleted", 404)

    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            await within(120, asyncio.gather(*(one_client(http, n) for n in range(40))))
    finally:
        await svc.stop()
    log = svc.log()
    assert not [s for s in statuses if s[1] >= 500], (statuses, log)
    assert len(statuses) >= 400, len(statuses)
    assert "Traceback" not in log and "ERROR" not in log, log
    assert "through a transaction pooler" in log  # found by itself, and said once
    ended = datetime.now(timezone.utc)
    for stamp in stamps:
        assert stamp.endswith("Z"), stamp
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert started - timedelta(seconds=5) <= moment <= ended + timedelta(seconds=5), stamp


async def test_the_postgres_broker_through_a_transaction_pooler_stops_start_up(
    transaction_pooler,
):
    """LISTEN through the pooler would hear nothing: one line naming BROKER_URL and the fix,
    at start, instead of a service whose processes stop hearing each other in silence."""
    result = await asyncio.to_thread(
        run_svc, {"DATABASE_URL": transaction_pooler.url, "DATABASE_TIMEOUT": "20"}
    )
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("svc: error: BROKER_URL: "), lines
    assert "LISTEN" in lines[0] and "redis://" in lines[0] and "direct" in lines[0], lines
    assert "Traceback" not in result.stderr


async def test_a_pooled_database_with_a_direct_postgres_broker_hears_other_processes(
    transaction_pooler, postgres_url, tmp_path
):
    env = {"DATABASE_URL": transaction_pooler.url, "BROKER_URL": postgres_url}
    one, two = [await SvcProcess(env, tmp_path / f"svc{n}.log").start() for n in (1, 2)]
    try:
        room = unique_id("r")
        async with aiohttp.ClientSession() as http:
            alice = unique_id()
            response = await http.put(f"{one.base}/users/{alice}/profile", json={"bio": "a"})
            assert response.status == 201
            ws = await http.ws_connect(f"{one.base}/ws/{room}?user_id={alice}")
            welcome = await ws.receive_json(timeout=10)
            assert welcome["type"] == "welcome"
            # Written through the other process: heard here at once, not at the re-read.
            for version in (2, 3):
                response = await http.put(
                    f"{two.base}/users/{alice}/profile", json={"bio": f"v{version}"}
                )
                assert response.status == 200
                update = await frame_where(
                    ws, lambda f, v=version: f["type"] == "profile_updated" and f["version"] == v
                )
                assert update["profile"]["bio"] == f"v{version}"
            await ws.close()
    finally:
        await one.stop()
        await two.stop()
    assert "through a transaction pooler" in one.log()


async def test_the_statement_timeout_holds_through_a_transaction_pooler(
    transaction_pooler, postgres_url, redis_url, tmp_path
):
    """A write stuck behind a lock is answered 503 in seconds, and the server gives it up
    too: it does not commit when the lock goes, long after its client was told it failed."""
    svc = SvcProcess(
        {"DATABASE_URL": transaction_pooler.url, "BROKER_URL": redis_url}, tmp_path / "svc.log"
    )
    await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            user_id = unique_id()
            path = f"{svc.base}/users/{user_id}/profile"
            assert (await http.put(path, json={"bio": "before"})).status == 201
            async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
                await cur.execute("BEGIN")
                await cur.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,))
                asked = time.monotonic()
                response = await within(15, http.put(path, json={"bio": "stuck"}))
                waited = time.monotonic() - asked
                assert response.status == 503, await response.text()
                assert waited < 10, waited
                # Past the server's own limit (svc's timeout + 1 s), then let go.
                await asyncio.sleep(max(0.0, 7.5 - waited))
                await cur.execute("ROLLBACK")
            body = await (await http.get(f"{svc.base}/users/{user_id}")).json()
            assert body["profile"]["bio"] == "before" and body["version"] == 1, body
    finally:
        await svc.stop()


async def test_a_url_option_the_pooler_refuses_is_reported_as_a_refusal(transaction_pooler):
    """Not "did not answer within N s": the pooler answered, and said why."""
    url = transaction_pooler.url + "?options=-c%20search_path%3Dpublic"
    started = time.monotonic()
    result = await asyncio.to_thread(run_svc, {"DATABASE_URL": url, "DATABASE_TIMEOUT": "20"})
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 15  # at once, not after DATABASE_TIMEOUT
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("svc: error: DATABASE_URL: "), result.stderr
    assert "refused" in lines[0] and "unsupported startup parameter: options" in lines[0]
    assert "did not answer" not in lines[0]


async def test_migrations_through_a_transaction_pooler_apply_once_and_leave_no_lock(
    pgbouncer_binary, postgres_url, tmp_path
):
    """Two processes migrating a fresh database through the pooler at once: each migration
    applied once, and no advisory lock left behind on a server connection (a session-level
    lock would be taken on one and released on another, and block every later start)."""
    from svc_postgres import PostgresStorage
    from svc_postgres.migrations import LOCK_KEY, MIGRATIONS

    database = unique_id("svc_pgb_").lower()
    fresh = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{database}"))
    async with aiopg.connect(postgres_url) as admin, admin.cursor() as cur:
        await cur.execute(f"CREATE DATABASE {database}")
    bouncer = PgBouncer(fresh, tmp_path / "pgbouncer.log", default_pool_size="2").start()
    try:
        storages = [PostgresStorage(bouncer.url) for _ in range(2)]
        try:
            await within(30, asyncio.gather(*(s.open() for s in storages)))
            user = await storages[0].create_user(unique_id(), {"username": unique_id()})
            assert (await storages[1].get_user(user.id)).version == 1
        finally:
            await asyncio.gather(*(s.close() for s in storages))
        async with aiopg.connect(fresh) as conn, conn.cursor() as cur:
            await cur.execute("SELECT version FROM svc_migrations ORDER BY version")
            assert [row[0] for row in await cur.fetchall()] == [v for v, _ in MIGRATIONS]
            await cur.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
                " AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
                (LOCK_KEY, database),
            )
            assert (await cur.fetchone())[0] == 0
    finally:
        bouncer.stop()
        async with aiopg.connect(postgres_url) as admin, admin.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


# -- through a session pooler -------------------------------------------------------------


async def test_through_a_session_pooler_everything_works_as_directly(make_pgbouncer, tmp_path):
    """Session mode keeps a server connection per client: the Postgres broker listens
    through it, and statements are prepared as on a direct URL."""
    bouncer = make_pgbouncer(pool_mode="session")
    svc = SvcProcess({"DATABASE_URL": bouncer.url}, tmp_path / "svc.log")
    await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            user_id = unique_id()
            response = await http.put(f"{svc.base}/users/{user_id}/profile", json={"bio": "a"})
            assert response.status == 201, await response.text()
            body = await response.json()
            assert body["created_at"].endswith("Z"), body
            async with http.get(f"{svc.base}/health/ready") as response:
                assert response.status == 200, await response.text()
    finally:
        await svc.stop()
    assert "through a transaction pooler" not in svc.log()


def test_the_example_configuration_is_what_the_tests_run():
    """The test changes only the port, the database line and the paths it must."""
    example = (EXAMPLE / "pgbouncer.ini").read_text()
    config = pgbouncer_config(example, 1234, "db", "postgresql://h:5/db", auth_file="x")
    changed = [
        (old, new)
        for old, new in zip(example.splitlines(), config.splitlines(), strict=True)
        if old != new
    ]
    assert [old.partition("=")[0].strip() for old, _ in changed] == [
        "svc",
        "listen_port",
        "auth_file",
    ]
    assert "pool_mode = transaction" in example


async def test_the_listeners_first_proof_refuses_a_url_where_listen_does_not_deliver(
    postgres_url, transaction_pooler, monkeypatch
):
    """LISTEN is proven once at start, by the listener's own probe (a NOTIFY to itself):
    through a pooler that the quick check does not recognise (made to answer "direct" here,
    as an unknown pooler would), start-up still stops with the BROKER_URL refusal, and not
    with "unavailable", which would be retried; directly, the same broker opens."""

    async def unrecognised(connect) -> bool:
        return False

    monkeypatch.setattr(pooling, "transaction_pooled", unrecognised)
    for url, works in ((postgres_url, True), (transaction_pooler.url, False)):
        broker = PostgresBroker(f"{url}?probe_every=1.5")
        try:
            if works:
                await broker.open(Recorder())
                assert broker._listener.connected
            else:
                with pytest.raises(BrokerMisconfigured) as refused:
                    await broker.open(Recorder())
                assert str(refused.value).endswith(NO_LISTEN), refused.value
                assert not broker._listener.connected
        finally:
            await broker.close()
