"""Password hashing, off the event loop.

bcrypt is deliberately slow (cost 12 ≈ 0.2 s of CPU), so every hash and verify
runs in a small ThreadPoolExecutor of its own: the bcrypt C code releases the
GIL, and the loop keeps answering while hashes are in flight.  The pool is
bounded to the cores, so a burst of password requests queues instead of
starving the rest of the machine.

``bcrypt_sha256`` pre-hashes with SHA-256 so passwords longer than bcrypt's
72 bytes are not silently cut.  Hashes of older schemes (plain ``bcrypt``, and
the previous backend's unsalted SHA-256 hex) still verify and are reported as
needing a re-hash, which the login path does on success.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from passlib.context import CryptContext

#: The hashing threads' nice (Linux).  The event loop's thread then wins a core the
#: moment it has work, and bcrypt takes whatever is left: with 8 hashes in flight the
#: loop's p99 lag went 5.5 ms -> 2.7 ms at the same hash rate (bench/README.md).
HASH_THREAD_NICE = 19


def _below_the_loop() -> None:
    """Pool initializer: lower this worker thread's priority, not the process's."""
    if sys.platform != "linux":  # elsewhere setpriority() would slow the loop's thread too
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICE)
    except OSError:  # a sandbox that forbids it: run at the loop's priority
        pass


class Passwords:
    def __init__(self, rounds: int = 12, max_workers: int | None = None):
        self.context = CryptContext(
            schemes=["bcrypt_sha256", "bcrypt", "hex_sha256"],
            default="bcrypt_sha256",
            deprecated="auto",
            bcrypt_sha256__rounds=rounds,
        )
        workers = max_workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="bcrypt", initializer=_below_the_loop
        )
        # A hash we can verify against when the user does not exist, so an unknown
        # username costs the same time as a wrong password.
        self._dummy_hash: str | None = None
        #: for /metrics: hashes submitted and not finished, and how many threads there are
        self._pending = 0
        self._workers = workers

    @property
    def in_flight(self) -> int:
        return min(self._pending, self._workers)

    @property
    def queued(self) -> int:
        return max(self._pending - self._workers, 0)

    async def hash(self, password: str) -> str:
        return await self._run(self.context.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """``(ok, new_hash)``: ``new_hash`` is set when the stored hash should be replaced."""
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash("timing equaliser")
            await self._run(self.context.verify, password, self._dummy_hash)
            return False, None
        try:
            return await self._run(self.context.verify_and_update, password, stored_hash)
        except ValueError:  # not a hash of any scheme we know
            return False, None

    async def _run(self, fn, *args):
        loop = asyncio.get_running_loop()
        self._pending += 1
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
