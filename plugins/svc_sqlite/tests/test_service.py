"""``pip install plugins/svc_sqlite``, ``DATABASE_URL=sqlite:////path/x.db``: the whole flow on
real ``python -m svc`` processes, and the data still there after a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

SECRET = "a-test-secret-that-is-long-enough-for-hs256-" + "x" * 8
PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One ``python -m svc`` process on a SQLite file."""

    def __init__(self, database_url: str, cwd: Path):
        self.database_url = database_url
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.base = ""

    async def start(self) -> Service:
        port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "BCRYPT_ROUNDS": "4",
            "JWT_SECRET_KEY": SECRET,
        }
        env.pop("BROKER_URL", None)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "svc",
            cwd=self.cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(self.base + "/health/ready") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    await self.stop()
                    raise AssertionError(f"svc on {self.database_url} did not start")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc is None or self.proc.returncode == 0  # a clean stop on SIGTERM


@pytest.fixture
async def services():
    started: list[Service] = []

    async def start(database_url: str, cwd: Path) -> Service:
        started.append(Service(database_url, cwd))
        return await started[-1].start()

    yield start
    for service in started:
        await service.stop()


async def test_the_whole_flow_survives_a_restart(tmp_path, services):
    url = f"sqlite:///{tmp_path}/x.db"  # sqlite:////tmp/.../x.db
    async with aiohttp.ClientSession() as http:
        first = await services(url, tmp_path)
        response = await http.post(
            f"{first.base}/users",
            json={"id": "ada", "username": "Ada", "display_name": "Ada L.", "password": PASSWORD},
        )
        assert response.status == 201, await response.text()
        assert response.headers["Location"].endswith("/users/ada")
        response = await http.post(
            f"{first.base}/auth/token", json={"username": "ada", "password": PASSWORD}
        )
        assert response.status == 200, await response.text()
        token = (await response.json())["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        response = await http.put(
            f"{first.base}/users/ada/profile",
            json={"bio": "naïve café 🚀", "email": "ada@example.com"},
            headers=bearer,
        )
        assert response.status == 200, await response.text()
        before = await (await http.get(f"{first.base}/users/ada", headers=bearer)).json()
        assert before["version"] == 2 and before["profile"]["email"] == "ada@example.com"
        await first.stop()

        second = await services(url, tmp_path)
        response = await http.get(f"{second.base}/users/ada", headers=bearer)
        assert response.status == 200
        assert await response.json() == before  # the same record, timestamps included
        # The password hash was kept: a fresh login works, and so does the old token.
        response = await http.post(
            f"{second.base}/auth/token", json={"username": "ADA", "password": PASSWORD}
        )
        assert response.status == 200, await response.text()
        response = await http.put(
            f"{second.base}/users/ada/profile", json={"bio": None}, headers=bearer
        )
        assert response.status == 200
        after = await response.json()
        assert after["version"] == 3 and after["profile"]["bio"] is None
        assert after["profile"]["display_name"] == "Ada L."
        # The username is still taken, without regard to case.
        response = await http.post(f"{second.base}/users", json={"username": "aDa"})
        assert response.status == 409
        assert (await response.json())["error"]["fields"]


async def test_a_relative_url_is_relative_to_the_working_directory(tmp_path, services):
    service = await services("sqlite:///svc.db", tmp_path)
    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{service.base}/users", json={"username": "bob"})
        assert response.status == 201
    assert (tmp_path / "svc.db").is_file()


def test_a_missing_folder_stops_start_up_with_one_line(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/nowhere/x.db",
        "PORT": str(_free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "svc"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"svc: error: DATABASE_URL: sqlite {tmp_path}/nowhere/x.db: the folder " + (
        f"{tmp_path}/nowhere does not exist"
    )
