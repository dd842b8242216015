"""The shipped deploy/ configurations, run for real: Debian's nginx and HAProxy in front of two
``python -m svc`` processes (Postgres storage; the Postgres or a Redis broker), and the
systemd unit's own command.  Under CI=true a missing nginx or haproxy fails (.ci/run
installs them)."""

from __future__ import annotations

import asyncio
import configparser
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest
from balancer_helpers import BALANCERS, DEPLOY, systemd_analyze
from reconnecting_client import _pid_of
from rolling_restart import rolling_restart
from svc_process import SvcProcess, answered_by, free_port

from svc.testing import unique_id, within

pytestmark = pytest.mark.topology  # what runs around svc: once per CI run, not per Python


@pytest.fixture(params=sorted(BALANCERS))
def balancer_kind(request) -> str:
    return request.param


async def start_pair(tmp_path, env: dict[str, str]) -> list[SvcProcess]:
    processes = [SvcProcess(env, tmp_path / f"svc{i}.log") for i in (1, 2)]
    await asyncio.gather(*(p.start() for p in processes))
    return processes


async def stop_all(processes: list[SvcProcess]) -> None:
    await asyncio.gather(*(p.stop() for p in processes))


def test_the_shipped_configurations_pass_their_own_check(tmp_path, balancer_kind):
    balancer = BALANCERS[balancer_kind](tmp_path, [free_port(), free_port()])
    result = balancer.check()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(params=["postgres", "redis"])
def broker_env(request, postgres_url) -> dict[str, str]:
    env = {"DATABASE_URL": postgres_url}
    if request.param == "redis":
        env["BROKER_URL"] = request.getfixturevalue("redis_url")
    return env


async def test_http_and_websockets_through_the_balancer_reach_both_processes(
    tmp_path, balancer_kind, broker_env
):
    processes = await start_pair(tmp_path, broker_env)
    balancer = BALANCERS[balancer_kind](tmp_path / balancer_kind, [p.port for p in processes])
    try:
        await balancer.start()
        pids = {p.proc.pid for p in processes}
        user, room = unique_id(), unique_id("r")
        async with aiohttp.ClientSession() as http:
            async with http.put(
                f"{balancer.base}/users/{user}/profile", json={"username": user}
            ) as response:
                assert response.status == 201, await response.text()
            # HTTP through the balancer reaches each process.
            answered = set()
            for _ in range(20):
                async with http.get(f"{balancer.base}/users/{user}") as response:
                    assert response.status == 200
                    answered |= {pid for pid in pids if answered_by(response.headers, pid)}
                if answered == pids:
                    break
            assert answered == pids

            # One member socket on each process, both upgraded through the balancer.
            sockets: dict[int, aiohttp.ClientWebSocketResponse] = {}
            for _ in range(20):
                ws = await http.ws_connect(f"{balancer.ws_base}/ws/{room}?user_id={user}")
                welcome = await ws.receive_json(timeout=10)
                assert welcome["type"] == "welcome"
                pid = _pid_of(ws)
                if pid in pids and pid not in sockets:
                    sockets[pid] = ws
                    if len(sockets) == 2:
                        break
            assert set(sockets) == pids

            # A PUT through the balancer reaches the member on either process.
            async with http.put(
                f"{balancer.base}/users/{user}/profile", json={"bio": "through the balancer"}
            ) as response:
                assert response.status == 200
                version = (await response.json())["version"]
            for ws in sockets.values():
                await within(10, _profile_version(ws, version))
    finally:
        await balancer.stop()
        await stop_all(processes)


async def _profile_version(ws, version: int) -> None:
    while True:
        frame = await ws.receive_json(timeout=10)
        if frame["type"] == "profile_updated" and frame["version"] == version:
            return


async def test_a_rolling_restart_through_the_shipped_configuration_loses_nothing(
    tmp_path, balancer_kind, postgres_url
):
    """A writer every 50 ms, 100 reconnecting clients; each process restarted in turn with
    the default drain: no failed write, every client back and at the last version, no
    version twice or out of order (tests/rolling_restart.py)."""
    env = {"DATABASE_URL": postgres_url, "DRAIN_SECONDS": "5"}  # the default, as shipped
    processes = await start_pair(tmp_path, env)
    balancer = BALANCERS[balancer_kind](tmp_path / balancer_kind, [p.port for p in processes])
    try:
        await balancer.start()
        result = await rolling_restart(balancer, processes, clients=100)
    finally:
        await balancer.stop()
        await stop_all(processes)
    assert result.failed_writes == [], (result.failed_writes[:10], balancer.log()[-3000:])
    assert result.writes > 100  # the writer ran through both restarts
    assert result.problems() == []
    assert result.stale() == []
    for restart in result.restarts:
        # The clients of the stopped process dropped (with its 1001) and all came back.
        assert restart.first_drop is not None and restart.whole is not None, restart
    # docs/api.md: a version a welcome showed, or an older one, is never sent after it.
    assert result.behind_welcome() == 0, result.behind_welcome()


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # keys are case-sensitive in systemd
    unit.read(DEPLOY / "systemd" / "svc@.service")
    return unit


def test_the_systemd_unit_stops_svc_the_way_it_drains():
    service = _unit()["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "always"
    from svc.settings import Settings

    defaults = Settings()
    # Past TimeoutStopSec systemd sends SIGKILL: the drain and the shutdown must fit.
    assert int(service["TimeoutStopSec"]) > defaults.drain_seconds + defaults.shutdown_timeout


def test_systemd_analyze_verifies_the_unit(tmp_path):
    analyze = systemd_analyze()
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the unit is still run below)")
    text = (DEPLOY / "systemd" / "svc@.service").read_text()
    # The one path a machine differs in: the virtualenv's python (verify checks it exists).
    unit = tmp_path / "svc@8001.service"
    unit.write_text(text.replace("/opt/svc/venv/bin/python", sys.executable))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on a line it ignores (a misspelt signal): any output is a finding.
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # Not PID 1 here: verify may say it cannot reach the system manager.
        if line.strip() and "System has not been booted with systemd" not in line
    ]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


async def test_the_systemd_units_command_serves_and_stops_within_its_timeout(tmp_path):
    """ExecStart with the unit's Environment (PORT from the instance name), as systemd would
    start it; then KillSignal, which must end it well inside TimeoutStopSec."""
    service = _unit()["Service"]
    port = free_port()
    command = service["ExecStart"].replace("/opt/svc/venv/bin/python", sys.executable).split()
    environment = service["Environment"].replace("%i", str(port))
    env = dict(pair.split("=", 1) for pair in environment.split())
    assert env == {"HOST": "127.0.0.1", "PORT": str(port)}
    log = open(tmp_path / "svc.log", "wb")  # noqa: ASYNC230, SIM115 - the child keeps it
    proc = await asyncio.create_subprocess_exec(
        *command,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdout=log,
        stderr=log,
    )
    log.close()
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health/ready") as response:
                        if response.status == 200 and answered_by(response.headers, proc.pid):
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.returncode is None and time.monotonic() < deadline, (
                    tmp_path / "svc.log"
                ).read_text()
                await asyncio.sleep(0.1)
            proc.send_signal(getattr(signal, service["KillSignal"]))
            stopping = time.monotonic()
            await asyncio.sleep(0.2)
            async with http.get(f"http://127.0.0.1:{port}/health/ready") as response:
                assert response.status == 503  # draining
        code = await within(int(service["TimeoutStopSec"]), proc.wait())
        assert code == 0
        # The drain ran (5 s by default) and the whole stop fitted in the unit's timeout.
        assert 4 < time.monotonic() - stopping < int(service["TimeoutStopSec"])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
