"""``WORKERS``: ``python -m svc`` as a parent and its worker processes on one port, for real."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import pytest
from svc_process import SvcProcess, free_port
from ws_helpers import frame_where

from svc.settings import Settings, SettingsError
from svc.testing import unique_id

pytestmark = pytest.mark.topology  # what runs around svc: once per CI run, not per Python


class Workers(SvcProcess):
    """``python -m svc`` with ``WORKERS``: an answer is ours when one of its workers gave it."""

    def answered(self, headers) -> bool:
        pid = pid_of(headers)
        return pid is not None and parent_of(pid) == self.proc.pid

    def worker_pids(self) -> set[int]:
        children = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and parent_of(int(entry)) == self.proc.pid:
                children.add(int(entry))
        return children


def pid_of(headers) -> int | None:
    """The pid of the process that answered (svc's request ids start with it in hex)."""
    match = re.match(r"([0-9a-f]+)-", headers.get("X-Request-ID", ""))
    return int(match.group(1), 16) if match else None


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


async def fresh(method: str, url: str, **kwargs) -> tuple[int, dict, object]:
    """One request on a connection of its own: the kernel picks a worker for each."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        http.request(method, url, **kwargs) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, response.headers, body


async def answering_pids(base: str, want: int = 2, tries: int = 200) -> set[int]:
    """The workers that answer, asking until ``want`` of them did (bounded)."""
    pids: set[int] = set()
    for _ in range(tries):
        _, headers, _ = await fresh("GET", base + "/")
        pids.add(pid_of(headers))
        if len(pids) >= want:
            break
    return pids


def summed(text: str, sample: str) -> float:
    """The value of one sample line (name with labels) of a /metrics answer, 0 if absent."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def metrics_of_both(base: str, timeout: float = 10) -> str:
    """/metrics once both workers' figures are in it."""
    deadline = time.monotonic() + timeout
    while True:
        async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as response:
            text = await response.text()
        if all(f'{{worker="{w}"}}' in text for w in ("1", "2")):
            return text
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.2)


async def metrics_until(
    base: str, sample: str, value: float, labels: tuple[str, ...] = (), timeout: float = 10
) -> str:
    """/metrics, asked until ``sample`` reads ``value`` (another worker's counts are at
    most a second old: svc.http.worker_metrics); with ``labels``, the sum of the
    sample labelled by each of those workers."""
    deadline = time.monotonic() + timeout
    while True:
        async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as response:
            text = await response.text()
        if labels:
            got = sum(summed(text, f'{sample}{{worker="{w}"}}') for w in labels)
        else:
            got = summed(text, sample)
        if got == value or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.2)


_SOCKETS = "svc_websocket_connections"


def _sockets_of(worker: str) -> str:
    return f'{_SOCKETS}{{worker="{worker}"}}'


# --- one service on two workers -----------------------------------------------------------

BROKERS = {
    "postgres broker": lambda postgres_url, request: {},
    "redis broker": lambda postgres_url, request: {
        "BROKER_URL": request.getfixturevalue("redis_url")
    },
}


@pytest.fixture(params=list(BROKERS))
async def two_workers(request, postgres_url, tmp_path):
    env = {
        "DATABASE_URL": postgres_url,
        "WORKERS": "2",
        **BROKERS[request.param](postgres_url, request),
    }
    service = await Workers(env, tmp_path / "svc.log").start()
    yield service
    await service.stop()


@pytest.mark.postgres
async def test_two_workers_serve_as_one_service(two_workers):
    base = two_workers.base
    pids = await answering_pids(base)
    assert len(pids) == 2, f"one worker answered everything: {pids}"
    assert pids == two_workers.worker_pids()

    # What one worker writes, the other reads at once: storage is shared, never memory.
    for _ in range(20):
        user_id = unique_id()
        status, _, _ = await fresh(
            "POST", f"{base}/users", json={"id": user_id, "username": user_id}
        )
        assert status == 201
        status, _, body = await fresh("GET", f"{base}/users/{user_id}")
        assert status == 200 and body["id"] == user_id

    # Members on both workers all see a change, whichever worker took it.
    user_id = unique_id()
    status, _, _ = await fresh("PUT", f"{base}/users/{user_id}/profile", json={"username": user_id})
    assert status == 201
    room = unique_id("r")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        members, text = [], ""
        for _ in range(10):  # the kernel picks a worker per connection: until both have some
            for _ in range(3):
                ws = await http.ws_connect(f"{base}/ws/{room}?user_id={user_id}")
                assert (await ws.receive_json())["type"] == "welcome"
                members.append(ws)
            text = await metrics_until(base, _SOCKETS, len(members), labels=("1", "2"))
            if all(summed(text, _sockets_of(w)) > 0 for w in ("1", "2")):
                break
        else:
            pytest.fail(f"every member went to one worker:\n{text}")
        for n in (2, 3, 4):
            status, _, _ = await fresh(
                "PUT", f"{base}/users/{user_id}/profile", json={"display_name": f"v{n}"}
            )
            assert status == 200
            for ws in members:
                update = await frame_where(ws, _update_to(n))
                assert update["profile"]["display_name"] == f"v{n}"

        # /metrics answers for both: gauges per worker (above), counters summed.
        before = summed(text, _ROOT_COUNT)
        answered_by = set()
        for _ in range(30):
            _, headers, _ = await fresh("GET", base + "/")
            answered_by.add(pid_of(headers))
        assert len(answered_by) == 2
        text = await metrics_until(base, _ROOT_COUNT, before + 30)
        assert summed(text, _ROOT_COUNT) == before + 30, text

        # SIGTERM to the parent: every worker drains, the member gets 1001, exit 0.
        workers = two_workers.worker_pids()
        two_workers.terminate()
        for ws in members:
            closing = await asyncio.wait_for(ws.receive(), 15)
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1001
    assert await asyncio.wait_for(two_workers.proc.wait(), 30) == 0
    assert not any(parent_of(pid) for pid in workers)
    log = two_workers.log()
    assert "Traceback" not in log, log
    assert "SIGTERM: passed to every worker" in log


def _update_to(version: int):
    return lambda f: f["type"] == "profile_updated" and f["version"] == version


_ROOT_COUNT = 'svc_http_request_duration_seconds_count{method="GET",route="/",status="200"}'


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_killed_worker_is_started_again_and_its_counts_stay(
    postgres_url, redis_url, tmp_path
):
    env = {"DATABASE_URL": postgres_url, "BROKER_URL": redis_url, "WORKERS": "2"}
    service = await Workers(env, tmp_path / "svc.log").start()
    try:
        base = service.base
        assert len(await answering_pids(base)) == 2
        before = service.worker_pids()
        text = await metrics_of_both(base)
        count = summed(text, _ROOT_COUNT)
        assert count > 0

        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:  # until the new worker answers; the other one answers meanwhile
            try:
                status, headers, _ = await fresh("GET", base + "/")
            except aiohttp.ClientConnectionError:
                # One that reached the killed worker's listening socket before it was closed
                # is reset, as a real client's would be: it tries again (CI saw it once).
                assert time.monotonic() < deadline, service.log()
                await asyncio.sleep(0.05)
                continue
            assert status == 200
            after = service.worker_pids()
            if victim not in after and pid_of(headers) in after - before:
                break
            assert time.monotonic() < deadline, service.log()
        assert re.search(
            rf"worker \d \(pid {victim}\) died \(killed by SIGKILL\) after [\d.]+ s; "
            r"starting it again in [\d.]+ s",
            service.log(),
        ), service.log()
        # The dead worker's counts are still in the sums: no reset for Prometheus.
        text = await metrics_of_both(base)
        assert summed(text, _ROOT_COUNT) >= count
    finally:
        assert await service.stop() == 0
    assert "Traceback" not in service.log()


# --- refusals: one line, exit 2, nothing opened -------------------------------------------


def run_svc(env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svc"],
        env={**os.environ, "HOST": "127.0.0.1", "PORT": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_two_workers_on_memory_are_refused_naming_the_variables(postgres_url):
    done = run_svc({"WORKERS": "2"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("svc: error: WORKERS: ")
    assert "DATABASE_URL is memory://" in done.stderr and "BROKER_URL" in done.stderr

    done = run_svc({"WORKERS": "2", "DATABASE_URL": postgres_url, "BROKER_URL": "memory://"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "BROKER_URL is memory://" in done.stderr and "DATABASE_URL" not in done.stderr


@pytest.mark.parametrize("raw", ["two", "0", "-1", "1.5", "257"])
def test_a_bad_workers_value_is_one_line(raw):
    done = run_svc({"WORKERS": raw})
    assert done.returncode == 2
    assert done.stderr == (
        f"svc: error: WORKERS: must be auto or a whole number from 1 to 256, got {raw!r}\n"
    )


def test_workers_auto_is_one_per_cpu_this_process_may_use():
    env = {"WORKERS": "auto", "DATABASE_URL": "postgresql://u@h/d"}
    assert Settings.from_env(env).workers == len(os.sched_getaffinity(0))
    assert Settings.from_env({"WORKERS": "AUTO", **env}).workers >= 1
    assert Settings.from_env({}).workers == 1
    if len(os.sched_getaffinity(0)) > 1:  # auto on memory: refused when it means several
        with pytest.raises(SettingsError, match="WORKERS"):
            Settings.from_env({"WORKERS": "auto"})
    else:
        assert Settings.from_env({"WORKERS": "auto"}).workers == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line_before_any_connection(workers):
    """The port is held by the test, and the "database" is a socket the test listens on:
    svc says one line and exits 2 without ever connecting to it."""
    with socket.socket() as held, socket.socket() as database:
        held.bind(("127.0.0.1", 0))
        held.listen()
        database.bind(("127.0.0.1", 0))
        database.listen()
        database.setblocking(False)
        port, db_port = held.getsockname()[1], database.getsockname()[1]
        done = run_svc(
            {
                "PORT": str(port),
                "WORKERS": workers,
                "DATABASE_URL": f"postgresql://svc@127.0.0.1:{db_port}/svc",
                "DATABASE_TIMEOUT": "1",
            }
        )
        with pytest.raises(BlockingIOError):
            database.accept()  # nobody knocked
    assert done.returncode == 2
    assert (
        done.stderr == f"svc: error: PORT: 127.0.0.1:{port} is already in use by another process\n"
    )


# --- the parent: crash loops, a refusing database, its own death ---------------------------


@pytest.mark.postgres
async def test_a_worker_that_keeps_dying_at_start_stops_the_service_with_exit_1(
    postgres_url, tmp_path
):
    service = await Workers(
        {"DATABASE_URL": postgres_url, "WORKERS": "2"}, tmp_path / "svc.log"
    ).start()
    try:
        killed: set[int] = set()
        deadline = time.monotonic() + 40
        # Worker 1 killed as soon as it is there, five times: each death is "soon".
        while service.proc.returncode is None:
            assert time.monotonic() < deadline, service.log()
            for pid in service.worker_pids() - killed:
                if _worker_number(service.log(), pid) == 1:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
            await asyncio.sleep(0.05)
        assert await service.proc.wait() == 1
    finally:
        await service.stop()
    log = service.log()
    assert len(killed) == 5, log
    for delay in ("0.5", "1", "2", "4"):
        assert f"starting it again in {delay} s" in log, log
    assert "worker 1 died 5 times in a row within 10 s of starting (last: killed by SIGKILL)" in log
    assert "Traceback" not in log


def _worker_number(log: str, pid: int) -> int | None:
    match = re.search(rf"worker (\d+) started \(pid {pid}\)", log)
    return int(match.group(1)) if match else None


@pytest.mark.postgres
def test_a_database_that_refuses_stops_two_workers_with_its_line(postgres_url):
    refused = postgres_url.replace("postgres@", "no_such_role_here@")
    done = run_svc({"PORT": str(free_port()), "WORKERS": "2", "DATABASE_URL": refused})
    assert done.returncode == 2
    said = {line for line in done.stderr.splitlines() if line.startswith("svc: error:")}
    assert len(said) == 1 and "DATABASE_URL" in said.pop(), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
async def test_workers_stop_when_their_parent_is_killed(postgres_url, tmp_path):
    env = {"DATABASE_URL": postgres_url, "WORKERS": "2", "TMPDIR": str(tmp_path)}
    service = await Workers(env, tmp_path / "svc.log").start()
    assert len(await answering_pids(service.base)) == 2
    workers = service.worker_pids()
    os.kill(service.proc.pid, signal.SIGKILL)  # the parent alone: no goodbye
    await service.proc.wait()
    deadline = time.monotonic() + 20
    while any(_state(pid) != "Z" for pid in workers):  # gone, or a zombie not yet reaped
        assert time.monotonic() < deadline, service.log()
        await asyncio.sleep(0.1)
    assert service.log().count("the supervising parent is gone: stopping") == 2
    # Nobody left to remove the folder the workers shared their metrics in: they did.
    folders = [entry for entry in os.listdir(tmp_path) if entry.startswith("svc-workers-")]
    assert folders == [], os.listdir(tmp_path / folders[0])


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except OSError:
        return "Z"
