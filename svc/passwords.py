"""Password hashing, off the event loop, in a bounded queue.

bcrypt is deliberately slow (cost 12 ≈ 0.2 s of CPU), so every hash and verify
runs in a small ThreadPoolExecutor of its own, at a lower scheduling priority:
the bcrypt C code releases the GIL, and the loop keeps answering while hashes
are in flight.  The pool is
bounded to the cores, and so is what may wait for it: past ``max_queue`` jobs
waiting or running, a new one is refused at once (:class:`PasswordsBusy`, a 503
with ``Retry-After``) instead of making every later login wait behind a flood.
A job whose client has gone by the time a worker is free is dropped
(:class:`ClientGone`) instead of burning a bcrypt for nobody.

``bcrypt_sha256`` pre-hashes with SHA-256 so passwords longer than bcrypt's
72 bytes are not silently cut.  Hashes of older schemes (plain ``bcrypt``, and
the previous backend's unsalted SHA-256 hex) still verify and are reported as
needing a re-hash, which the login path does on success.  Every verify costs
about one bcrypt, whatever the stored hash (none, unknown, SHA-256), so the
time taken does not tell which accounts exist or how old their hash is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import bcrypt
from passlib.context import CryptContext

#: Plain bcrypt verified only the first 72 bytes of a password (the old library cut
#: there); bcrypt 5 refuses longer input, so legacy hashes are checked as they were made.
BCRYPT_MAX_BYTES = 72


#: Niceness of the hashing threads (Linux).  The event loop's thread then wins a core the
#: moment it has work, and bcrypt takes whatever is left: with 8 hashes in flight the
#: loop's p99 lag went 5.5 ms -> 2.7 ms at the same hash rate (bench/README.md).
WORKER_NICENESS = 19


def _lower_priority() -> None:
    """Run this worker thread at a lower priority than the event loop (Linux: per thread).

    bcrypt threads busy on every core would otherwise delay the loop's turn by a
    scheduler slice, so ``GET /`` would wait tens of milliseconds behind a flood of
    logins.  Elsewhere ``setpriority`` would renice the whole process: left alone.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)


class PasswordsBusy(Exception):
    """The hashing queue is full; try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"password hashing is busy; retry in {retry_after} s")
        self.retry_after = retry_after


class ClientGone(Exception):
    """The client stopped waiting before its hash could start: the work was skipped."""


class Passwords:
    def __init__(
        self, rounds: int = 12, max_workers: int | None = None, max_queue: int | None = None
    ):
        self.context = CryptContext(
            schemes=["bcrypt_sha256", "bcrypt", "hex_sha256"],
            default="bcrypt_sha256",
            deprecated="auto",
            bcrypt_sha256__rounds=rounds,
        )
        self.workers = max_workers or min(4, os.cpu_count() or 1)
        #: Jobs that may wait or run at once; beyond, PasswordsBusy.
        self.max_queue = max_queue or 8 * self.workers
        #: Jobs waiting or running now (for /metrics).
        self.pending = 0
        self._pool = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="bcrypt", initializer=_lower_priority
        )
        # One job per worker thread at a time: the rest wait here, where they can be
        # counted, refused and dropped, not in the executor's unbounded queue.
        self._slots = asyncio.Semaphore(self.workers)
        self._seconds_per_job = 0.25  # a running estimate, for Retry-After
        # A hash to verify against when there is nothing to verify, so an unknown
        # username costs the same time as a wrong password.
        self._dummy_hash: str | None = None

    @property
    def in_flight(self) -> int:
        """Jobs on a thread now (for /metrics)."""
        return min(self.pending, self.workers)

    @property
    def queued(self) -> int:
        """Jobs waiting for a thread (for /metrics)."""
        return max(self.pending - self.workers, 0)

    async def hash(self, password: str, wanted: Callable[[], bool] | None = None) -> str:
        return await self._run(wanted, self.context.hash, password)

    async def verify(
        self, password: str, stored_hash: str | None, wanted: Callable[[], bool] | None = None
    ) -> tuple[bool, str | None]:
        """``(ok, new_hash)``: ``new_hash`` is set when the stored hash should be replaced.

        ``wanted()`` is asked when a worker is free: False (the client went away)
        drops the job with ClientGone.
        """
        return await self._run(wanted, self._verify, password, stored_hash)

    def _verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """Runs in a worker thread: always about one bcrypt of work."""
        scheme = self._identify(stored_hash)
        try:
            if scheme == "bcrypt":
                secret = password.encode()[:BCRYPT_MAX_BYTES]
                if not bcrypt.checkpw(secret, stored_hash.encode()):
                    return False, None
                return True, self.context.hash(password)
            if scheme == "hex_sha256":
                digest = self.context.handler("hex_sha256").hash(password)
                if not hmac.compare_digest(digest, stored_hash.lower()):
                    self._equalise(password)
                    return False, None
                return True, self.context.hash(password)  # the re-hash is the bcrypt
            if scheme is None:
                self._equalise(password)
                return False, None
            return self.context.verify_and_update(password, stored_hash)
        except ValueError:  # a malformed hash, or a password that is not text
            return False, None

    def _identify(self, stored_hash: str | None) -> str | None:
        if stored_hash is None:
            return None
        try:
            return self.context.identify(stored_hash)
        except ValueError:
            return None

    def _equalise(self, password: str) -> None:
        """One bcrypt verify of nothing in particular, so a miss costs what a hit does."""
        if self._dummy_hash is None:
            self._dummy_hash = self.context.hash("timing equaliser")
        self.context.verify(password, self._dummy_hash)

    def check_room(self) -> None:
        """PasswordsBusy now if a new job would be refused: lets a handler shed a flood
        before it spends anything (body, schema, storage) on a request bound to fail."""
        if self.pending >= self.max_queue:
            raise PasswordsBusy(self.retry_after())

    async def _run(self, wanted: Callable[[], bool] | None, fn, *args):
        self.check_room()
        self.pending += 1
        try:
            await self._slots.acquire()
            try:
                if wanted is not None and not wanted():
                    raise ClientGone()
                loop = asyncio.get_running_loop()
                started = loop.time()
                result = await loop.run_in_executor(self._pool, fn, *args)
                self._seconds_per_job += (loop.time() - started - self._seconds_per_job) / 8
                return result
            finally:
                self._slots.release()
        finally:
            self.pending -= 1

    def retry_after(self) -> int:
        """Whole seconds until the queue as it stands now has been worked through."""
        return max(1, math.ceil(self.pending * self._seconds_per_job / self.workers))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
