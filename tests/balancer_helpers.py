"""The shipped balancer configurations (deploy/), run for real: Debian's nginx and HAProxy on
free ports, in front of ``python -m svc`` processes (tests/svc_process.py).

The files are used as shipped; the one templating step replaces their example addresses
(svc on 127.0.0.1:8001 and :8002, the balancer on port 80) with free ports, and fails if an
example address is not there exactly once, so an edit of deploy/ cannot slip past the tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from svc_process import answered_by, free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
NGINX = "/usr/sbin/nginx"
HAPROXY = "/usr/sbin/haproxy"
#: Where the shipped files expect the svc processes.
EXAMPLE_UPSTREAMS = ("127.0.0.1:8001", "127.0.0.1:8002")


def require(binary: str) -> str:
    """``binary``, or a skip; under ``CI=true`` its absence fails (.ci/run installs it)."""
    if os.access(binary, os.X_OK):
        return binary
    problem = f"{binary} is not installed (Debian: apt-get install {Path(binary).name})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(problem)
    pytest.skip(problem)


def render(text: str, replacements: dict[str, str]) -> str:
    for example, actual in replacements.items():
        count = text.count(example)
        assert count == 1, f"{example!r} is in the shipped file {count} times, not once"
        text = text.replace(example, actual)
    return text


def upstreams(ports: list[int]) -> dict[str, str]:
    assert len(ports) == len(EXAMPLE_UPSTREAMS)
    return {ex: f"127.0.0.1:{port}" for ex, port in zip(EXAMPLE_UPSTREAMS, ports, strict=True)}


class Balancer:
    """One balancer process, its log in ``directory``."""

    name = ""

    def __init__(self, directory: Path, upstream_ports: list[int]):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        self.log_path = directory / "balancer.log"
        self.upstream_ports = upstream_ports
        self.proc: asyncio.subprocess.Process | None = None
        self.write_config()

    def write_config(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def check_command(self) -> list[str]:
        raise NotImplementedError

    def check(self) -> subprocess.CompletedProcess:
        """The balancer's own configuration test (``nginx -t``, ``haproxy -c``)."""
        return subprocess.run(self.check_command(), capture_output=True, text=True, timeout=30)

    async def start(self, timeout: float = 15) -> Balancer:
        log = open(self.log_path, "ab")  # noqa: ASYNC230, SIM115 - the child keeps it
        self.proc = await asyncio.create_subprocess_exec(
            *self.command(), stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                await self.stop()
                raise AssertionError(f"{self.name} did not start:\n{self.log()}")
            await asyncio.sleep(0.05)
        return self

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the master and its workers
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except asyncio.TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_serving(self, pid: int, timeout: float = 20) -> None:
        """Until a request through the balancer is answered by the svc process ``pid``: the
        balancer sends to it again (a rolling restart waits for this before the next)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.get(self.base + "/health/ready") as response:
                        if response.status == 200 and answered_by(response.headers, pid):
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} never sent a request to {pid} in {timeout} s")


class Nginx(Balancer):
    """deploy/nginx/svc.conf inside a minimal nginx.conf whose every path is in ``directory``."""

    name = "nginx"

    def write_config(self) -> None:
        site = render(
            (DEPLOY / "nginx" / "svc.conf").read_text(),
            {"listen 80;": f"listen 127.0.0.1:{self.port};", **upstreams(self.upstream_ports)},
        )
        (self.directory / "svc.conf").write_text(site)
        temp = self.directory / "temp"
        temp.mkdir(exist_ok=True)
        paths = " ".join(
            f"{kind}_temp_path {temp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = self.directory / "nginx.conf"
        self.conf.write_text(
            f"pid {self.directory / 'nginx.pid'};\n"
            f"error_log {self.log_path} info;\n"
            "worker_processes 1;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"    access_log {self.directory / 'access.log'};\n"
            f"    {paths}\n"
            f"    include {self.directory / 'svc.conf'};\n"
            "}\n"
        )

    def _base(self) -> list[str]:
        error_log = str(self.directory / "startup.log")  # before the config is read
        return [require(NGINX), "-e", error_log, "-c", str(self.conf), "-p", str(self.directory)]

    def command(self) -> list[str]:
        return [*self._base(), "-g", "daemon off;"]

    def check_command(self) -> list[str]:
        return [*self._base(), "-t"]


class HAProxy(Balancer):
    """deploy/haproxy/svc.cfg as shipped, on free ports; its log goes to stdout."""

    name = "haproxy"

    def write_config(self) -> None:
        cfg = render(
            (DEPLOY / "haproxy" / "svc.cfg").read_text(),
            {"bind 127.0.0.1:80": f"bind 127.0.0.1:{self.port}", **upstreams(self.upstream_ports)},
        )
        self.conf = self.directory / "haproxy.cfg"
        self.conf.write_text(cfg)

    def command(self) -> list[str]:
        return [require(HAPROXY), "-f", str(self.conf), "-db"]

    def check_command(self) -> list[str]:
        return [require(HAPROXY), "-c", "-f", str(self.conf)]


BALANCERS = {"nginx": Nginx, "haproxy": HAProxy}


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def systemd_analyze() -> str | None:
    return shutil.which("systemd-analyze")
