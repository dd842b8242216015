"""A real ``python -m svc`` process on a free port, its stderr kept in a file for the test."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answered_by(headers, pid: int) -> bool:
    """Did the process ``pid`` give this answer?  svc's request ids start with its pid in
    hex (svc.http.observe): another server on the same port cannot pass for it."""
    return headers.get("X-Request-ID", "").startswith(f"{pid:x}-")


class SvcProcess:
    def __init__(self, env: dict[str, str], log_path: Path, file_limit: int | None = None):
        """``file_limit``: the child's ``ulimit -n`` (RLIMIT_NOFILE), lowered before it starts."""
        self.file_limit = file_limit
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "JWT_SECRET_KEY"},
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "BCRYPT_ROUNDS": "4",
            # A stop is the old immediate shutdown unless a test asks for the drain window
            # (tests/test_drain.py): five seconds per stop would add minutes to the suite.
            "DRAIN_SECONDS": "0",
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 30, attempts: int = 3) -> SvcProcess:
        """Start it and wait until it answers ``GET /`` itself.

        The port was free when picked, but the child binds it a second later: meanwhile
        another server (another test's, or a parallel suite's) may take it, and answer
        the health check in its place.  So the answer must carry this child's request
        id prefix (its pid, svc.http.observe), and a child that could not bind starts
        again on another port."""
        for attempt in range(attempts):
            if attempt:
                self._move_to(free_port())
            if await self._start_once(timeout):
                return self
        raise AssertionError(f"svc did not start in {attempts} attempts:\n{self.log()}")

    def _move_to(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.env["PORT"] = str(port)

    async def _start_once(self, timeout: float) -> bool:
        """True once this child answers; False when it exited (its port taken)."""
        log = open(self.log_path, "ab")  # noqa: ASYNC230, SIM115 - the child keeps it
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "svc",
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=None if self.file_limit is None else self._lower_file_limit,
        )
        log.close()
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(self.base + "/") as response:
                        if response.status == 200 and self.answered(response.headers):
                            return True
                except aiohttp.ClientError:
                    pass
                if self.proc.returncode is not None:
                    return False
                if time.monotonic() > deadline:
                    await self.stop()
                    raise AssertionError(f"svc did not start:\n{self.log()}")
                await asyncio.sleep(0.1)

    def answered(self, headers) -> bool:
        """Did this child (not another server on its port) give this answer?"""
        return answered_by(headers, self.proc.pid)

    def _lower_file_limit(self) -> None:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.file_limit, hard))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL (its whole process group): no goodbye, no clean-up."""
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)

    async def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        self.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        return self.proc.returncode
