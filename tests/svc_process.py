"""``python -m svc`` as a real child process, for tests where several processes form one service."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import aiohttp
from redis_helpers import free_port


class SvcProcess:
    def __init__(self, proc: asyncio.subprocess.Process, base: str):
        self.proc = proc
        self.base = base

    @classmethod
    async def start(cls, **env: str) -> SvcProcess:
        """Start svc with these settings on a free port; return once it answers."""
        port = free_port()
        environ = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "BCRYPT_ROUNDS": "4"}
        environ.pop("JWT_SECRET_KEY", None)
        environ.update(env)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "svc",
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(base + "/") as response:
                        if response.status == 200:
                            return cls(proc, base)
                except aiohttp.ClientError:
                    pass
                if proc.returncode is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"svc did not start on port {port}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no clean-up."""
        os.killpg(self.proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
