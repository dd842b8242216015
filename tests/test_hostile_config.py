"""An unlucky operator: blank or misspelt settings, secrets in URLs and request lines,
a database that can never work as configured.  Start-up is one line and exit 2, and no
secret reaches a log line."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from urllib.parse import quote

import aiopg
import pytest
from svc_postgres import PostgresStorage

from svc.broker import registry as broker_registry
from svc.broker.memory import MemoryBroker
from svc.settings import Settings, SettingsError
from svc.storage import Misconfigured
from svc.testing import deadline, unique_id

SECRET = "Sekr3t-pw-" + "q" * 8
JWT_KEY = "k" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_svc(env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
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
        timeout=timeout,
    )


async def start_log(env: dict[str, str]) -> str:
    """Everything ``python -m svc`` logs up to "listening on"; then it is stopped."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "svc",
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
            **env,
        },
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []
    try:
        async with deadline(30):
            while not lines or "listening on" not in lines[-1]:
                line = await proc.stderr.readline()
                assert line, f"svc stopped: {lines}"
                lines.append(line.decode())
    finally:
        proc.terminate()
        await proc.wait()
    return "".join(lines)


def one_line_exit_2(result: subprocess.CompletedProcess, variable: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"svc: error: {variable}: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[-1]


# -- item 9: auth switched off by accident -------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_a_blank_jwt_secret_key_is_a_start_up_error_not_open_mode(blank):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"JWT_SECRET_KEY": blank})
    assert info.value.variable == "JWT_SECRET_KEY" and "blank" in str(info.value)
    line = one_line_exit_2(run_svc({"JWT_SECRET_KEY": blank}), "JWT_SECRET_KEY")
    assert "blank" in line


@pytest.mark.parametrize(
    "name, meant",
    [
        ("JWT_SECRET", "JWT_SECRET_KEY"),
        ("DATABASE_URI", "DATABASE_URL"),
        ("CORS_ORIGIN", "CORS_ORIGINS"),
        ("DATABASE_ULR", "DATABASE_URL"),
        ("BCRYPT_ROUND", "BCRYPT_ROUNDS"),
    ],
)
def test_a_lookalike_variable_is_warned_about_by_its_right_name(caplog, name, meant):
    caplog.set_level(logging.WARNING, "svc.settings")
    Settings.from_env({name: "x" * 40})
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, warned
    assert name in warned[0] and meant in warned[0] and "x" * 40 not in warned[0]


def test_ordinary_variables_and_a_set_right_name_are_not_warned_about(caplog):
    caplog.set_level(logging.WARNING, "svc.settings")
    Settings.from_env(
        {
            "HOSTNAME": "box",
            "HOME": "/root",
            "PATH": "/bin",
            "PORTS": "1",
            "LOG_LEVEL": "info",
            "JWT_SECRET": "y" * 40,  # another program's, beside svc's own
            "JWT_SECRET_KEY": JWT_KEY,
        }
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_misspelt_secret_says_so_at_start_up():
    log = await start_log({"JWT_SECRET": JWT_KEY})
    assert "JWT_SECRET is not a setting of svc" in log and "JWT_SECRET_KEY?" in log
    assert "auth is off" in log  # and the open-mode warning still stands
    assert JWT_KEY not in log


# -- item 10: secrets in logs ------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_password_in_the_query_of_database_url_is_masked_in_the_start_up_log(
    postgres_url,
):
    # Trust authentication: the password is sent to nobody, but it is in the URL.
    log = await start_log(
        {"DATABASE_URL": f"{postgres_url}?password={SECRET}", "BROKER_URL": "memory://"}
    )
    assert "password=***" in log
    assert SECRET not in log


@pytest.mark.postgres
@pytest.mark.parametrize(
    "url",
    [
        # one slash too many: libpq reads "user:password@host/db" as the database name
        f"postgresql:///postgres:{SECRET}@127.0.0.1/svc_nowhere",
        # the password in the query, the database missing
        f"postgresql://postgres@127.0.0.1:5432/svc_nowhere_{unique_id()}?password={SECRET}",
    ],
)
def test_a_malformed_database_url_is_never_echoed_whole(url):
    result = run_svc({"DATABASE_URL": url, "BROKER_URL": "memory://", "DATABASE_TIMEOUT": "60"})
    one_line_exit_2(result, "DATABASE_URL")
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "variable, url",
    [
        ("DATABASE_URL", f"postgres:/ada:{SECRET}@db/app"),
        ("DATABASE_URL", f"ada:{SECRET}@db/app"),
        ("BROKER_URL", f"echo:/ada:{SECRET}@broker"),
        ("BROKER_URL", f"echo://broker/?token={quote(SECRET)}"),
    ],
)
def test_settings_errors_mask_the_secrets_of_any_url(variable, url):
    class EchoBroker(MemoryBroker):
        """A third-party broker that quotes its whole URL in its error."""

        @classmethod
        def check_url(cls, url: str) -> None:
            raise ValueError(f"cannot use {url}")

    broker_registry.register("echo", EchoBroker)
    try:
        with pytest.raises(SettingsError) as info:
            Settings.from_env({variable: url})
    finally:
        broker_registry.unregister("echo")
    assert SECRET not in str(info.value) and quote(SECRET) not in str(info.value)


async def test_a_token_in_a_malformed_request_line_stays_out_of_the_log(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = await make_client(jwt_secret_key=JWT_KEY)
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLW9mLWEtcmVhbC10b2tlbg"
    for line in (
        f"GET /ws/room?token={token} HTTP/1.1 junk\r\nHost: x\r\n\r\n",
        f"GET /ws/room?token={token}\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /users/x?password={SECRET} HTTP/7.7\r\nHost: x\r\n\r\n",
        # The words of svc.redact's one list, which a URL's secrets are found by, too.
        f"GET /users/x?pwd={SECRET}&db_pass={SECRET} HTTP/7.7\r\nHost: x\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(line.encode())
        assert (await reader.read()).startswith(b"HTTP/1.0 400")
        writer.close()
    logged = caplog.text
    assert "Error handling request" in logged  # it is logged, once per request, scrubbed
    assert token not in logged and token.split(".")[2] not in logged and SECRET not in logged
    assert "Traceback" not in logged


# -- item 11: a database that can never work as configured ------------------------------------


@pytest.fixture
async def role_without_create(postgres_url):
    """A login role allowed to use one schema but not to create anything in it."""
    role, schema = unique_id("svc_nocreate_"), unique_id("svc_readonly_")
    async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
        await cur.execute(f"CREATE ROLE {role} LOGIN")
        await cur.execute(f"CREATE SCHEMA {schema}")
        await cur.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        try:
            base = postgres_url.replace("postgres@", f"{role}@", 1)
            yield f"{base}?options={quote(f'-c search_path={schema}')}"
        finally:
            await cur.execute(f"DROP SCHEMA {schema} CASCADE")
            await cur.execute(f"DROP ROLE {role}")


def misconfigured_urls(postgres_url: str) -> dict[str, str]:
    return {
        "no such role": postgres_url.replace("postgres@", f"{unique_id('nobody')}@", 1),
        "no such database": postgres_url.rsplit("/", 1)[0] + f"/{unique_id('svc_nowhere_')}",
        "bad sslmode": f"{postgres_url}?sslmode=sometimes",
    }


@pytest.mark.postgres
@pytest.mark.parametrize("case", ["no such role", "no such database", "bad sslmode", "no create"])
async def test_a_database_that_can_never_work_is_misconfigured_not_unavailable(
    postgres_url, role_without_create, case
):
    url = role_without_create if case == "no create" else misconfigured_urls(postgres_url)[case]
    storage = PostgresStorage(url)
    with pytest.raises(Misconfigured) as info:
        await storage.open()
    await storage.close()
    assert "\n" not in str(info.value)


@pytest.mark.postgres
def test_a_role_without_create_rights_stops_start_up_with_one_line(role_without_create):
    # DATABASE_TIMEOUT far beyond the subprocess timeout: only an immediate stop passes.
    result = run_svc(
        {"DATABASE_URL": role_without_create, "BROKER_URL": "memory://", "DATABASE_TIMEOUT": "600"}
    )
    line = one_line_exit_2(result, "DATABASE_URL")
    assert "permission denied" in line
    assert "not ready" not in result.stderr  # never retried
