"""Connections that cost the service without sending a request (issue 24, finding 1), against
a real ``python -m svc``: slow heads are closed after HEADER_TIMEOUT, connections past
MAX_CONNECTIONS are refused at once, and running out of file descriptors is one log line."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import time

import aiohttp
import pytest
from svc_process import SvcProcess

from svc.connections import FD_MARGIN, default_max_connections
from svc.settings import Settings, SettingsError
from svc.testing import deadline, wait_until

HEAD_START = b"GET / HTTP/1.1\r\nHost: x\r\n"


async def metric(svc: SvcProcess, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(svc.base + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


async def get_root(svc: SvcProcess) -> int:
    async with aiohttp.ClientSession() as session, session.get(svc.base + "/") as response:
        await response.read()
        return response.status


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """What the server sent until it closed the connection (within ``timeout`` s)."""
    return await asyncio.wait_for(reader.read(), timeout)


@pytest.fixture
async def started(tmp_path):
    processes: list[SvcProcess] = []

    async def start(env: dict[str, str], file_limit: int | None = None) -> SvcProcess:
        svc = SvcProcess(env, tmp_path / f"svc-{len(processes)}.log", file_limit=file_limit)
        processes.append(svc)
        return await svc.start()

    yield start
    for svc in processes:
        await svc.stop()


# -- HEADER_TIMEOUT ---------------------------------------------------------------------------


async def test_a_head_trickled_a_header_at_a_time_is_closed_after_header_timeout(started):
    """A header every 0.2 s kept a connection for aiohttp's 75 s keep-alive: now the whole
    head must be in within HEADER_TIMEOUT, however steadily it trickles."""
    svc = await started({"HEADER_TIMEOUT": "0.5"})
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    writer.write(HEAD_START)
    began = time.monotonic()
    closing = asyncio.ensure_future(reader.read())  # ends when the server closes
    for n in range(40):  # 8 s of trickling if nobody stops it
        await asyncio.wait([closing], timeout=0.2)
        if closing.done():
            break
        try:
            writer.write(b"X-Trickle-%d: y\r\n" % n)
            await writer.drain()
        except ConnectionError:
            break
    closed = closing.done() or writer.is_closing()
    elapsed = time.monotonic() - began
    closing.cancel()
    writer.close()
    assert closed, "the trickling head was never cut off"
    assert elapsed < 3, elapsed  # 0.5 s, on a loaded machine
    assert await metric(svc, "svc_header_timeouts_total") >= 1
    assert await get_root(svc) == 200  # the service itself is fine


async def test_an_idle_keep_alive_connection_is_closed_after_header_timeout(started):
    svc = await started({"HEADER_TIMEOUT": "0.5"})
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    began = time.monotonic()
    assert await closed_by_server(reader, 5) == b""
    assert time.monotonic() - began < 3
    writer.close()


async def test_a_slow_head_under_the_timeout_is_served(started):
    """The limit is on the whole head, not on its pace: one arriving in pieces within
    HEADER_TIMEOUT is answered."""
    svc = await started({"HEADER_TIMEOUT": "3"})
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    for piece in (b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n", b"\r\n"):
        writer.write(piece)
        await asyncio.sleep(0.2)
    answer = await closed_by_server(reader, 10)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    writer.close()


# -- MAX_CONNECTIONS ---------------------------------------------------------------------------


async def hold(svc: SvcProcess, count: int) -> list:
    """``count`` connections that send half a head and wait."""
    held = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        writer.write(HEAD_START)
        held.append((reader, writer))
    return held


async def test_past_max_connections_a_new_connection_gets_503_at_once(started):
    svc = await started({"MAX_CONNECTIONS": "20", "HEADER_TIMEOUT": "60"})
    held = await hold(svc, 19)
    assert await metric(svc, "svc_connections_open") == 20  # /metrics' own connection too
    held += await hold(svc, 1)
    # Accepted in order: 30 more are each answered and closed at once: no hang, no reset.
    for _ in range(30):
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        answer = await closed_by_server(reader, 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b'"code": "busy"' in answer and b"Retry-After: 1" in answer, answer
    # One held connection goes: a slot is free, and a well-behaved client is served.
    held.pop()[1].close()
    async with deadline(10):
        while True:
            try:
                if await get_root(svc) == 200:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    for _, writer in held:
        writer.close()
    assert await metric(svc, "svc_connections_refused_total") >= 30
    # One line for the whole episode, not one per refusal.
    assert svc.log().count("MAX_CONNECTIONS (20) connections are open") == 1, svc.log()


async def test_both_limits_a_flood_of_slow_heads_frees_its_slots_after_header_timeout(started):
    """MAX_CONNECTIONS full of half-sent heads refuses newcomers only until HEADER_TIMEOUT
    closes the heads: then a well-behaved client is served again."""
    svc = await started({"MAX_CONNECTIONS": "5", "HEADER_TIMEOUT": "1.5"})
    held = await hold(svc, 5)
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    assert (await closed_by_server(reader, 5)).startswith(b"HTTP/1.1 503 ")
    writer.close()
    for held_reader, _ in held:  # each closed by the server, within the timeout
        assert await closed_by_server(held_reader, 5) == b""
    assert await get_root(svc) == 200
    for _, held_writer in held:
        held_writer.close()
    assert await metric(svc, "svc_header_timeouts_total") >= 5
    assert await metric(svc, "svc_connections_refused_total") >= 1


async def test_max_connections_defaults_to_the_file_limit_less_a_margin(started):
    """Under ``ulimit -n 200`` the default is 200 less the margin: the connection past it
    is refused with 503, never left to exhaust the descriptors."""
    limit = 200
    svc = await started({"HEADER_TIMEOUT": "60"}, file_limit=limit)
    expected = limit - FD_MARGIN
    held = await hold(svc, expected + 15)
    answer = await closed_by_server(held[-1][0], 10)  # the last is past the limit
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    for _, writer in held:
        writer.close()
    assert f"MAX_CONNECTIONS ({expected}) connections are open" in svc.log()
    assert "out of system resource" not in svc.log()
    assert "cannot accept" not in svc.log()


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_running_out_of_descriptors_is_one_log_line_not_a_flood(started, event_loop):
    """MAX_CONNECTIONS above what the file limit allows: the descriptors do run out.
    asyncio logged a traceback per waiting connection per second, uvloop nothing at all;
    now one line says so on either loop (and, on asyncio, one for its accept errors)."""
    svc = await started(
        {"HEADER_TIMEOUT": "60", "MAX_CONNECTIONS": "100000", "EVENT_LOOP": event_loop},
        file_limit=120,
    )
    held = await hold(svc, 300)  # about 180 wait in the kernel's backlog
    await wait_until(lambda: "cannot accept connections much longer" in svc.log(), timeout=10)
    await asyncio.sleep(2.5)  # asyncio retries each second: two more attempts
    for _, writer in held:
        writer.close()
    async with deadline(15):  # descriptors free again: the service answers
        while True:
            try:
                if await get_root(svc) == 200:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    log = svc.log()
    assert log.count("cannot accept connections much longer") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert await metric(svc, "svc_connections_near_file_limit_total") > 0
    if event_loop == "asyncio":
        assert log.count("cannot accept connections:") == 1, log[-3000:]
        assert await metric(svc, "svc_accept_errors_total") > 0


# -- the settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value, words",
    [
        ("HEADER_TIMEOUT", "0", "from 0.1 to 3600"),
        ("HEADER_TIMEOUT", "soon", "seconds"),
        ("MAX_CONNECTIONS", "0", "whole number from 1"),
        ("MAX_CONNECTIONS", "many", "whole number"),
        ("MAX_SOCKETS_PER_USER", "0", "whole number from 1 to 100000"),
        ("SEND_BUFFER_BUDGET", "1000", "whole number from 1048576"),
    ],
)
def test_a_bad_limit_stops_start_up_with_one_line_naming_it(variable, value, words):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({variable: value})
    assert info.value.variable == variable and words in str(info.value), str(info.value)


def test_the_limits_default_as_documented():
    settings = Settings.from_env({})
    assert settings.header_timeout == 10
    assert settings.max_connections is None  # derived from the file limit at start
    assert settings.max_sockets_per_user == 32
    assert settings.send_buffer_budget == 256 * 1024 * 1024
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert default_max_connections() == max(16, soft - FD_MARGIN)


def test_python_m_svc_prints_the_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "svc"],
        env={"PATH": "/usr/bin:/bin", "MAX_CONNECTIONS": "-5"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "svc: error: MAX_CONNECTIONS: must be a whole number from 1 to 10000000, got '-5'"
    ]
