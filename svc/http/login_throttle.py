"""Slowing down password guessing against one username.

Each username (under ``username_key``, known or not: the answer must not tell
which exist) may fail ``free`` logins; after that every further failure shuts
it for twice as long as the last (1 s, 2 s, 4 s ... up to ``max_delay``), and
while shut a login for it is answered 429 with ``Retry-After`` without any
hashing.  Past the free failures only one attempt may be in flight at a time,
so a burst of concurrent guesses cannot slip in before the first one fails.
A success starts the user over; so does ``forget_after`` seconds without a
failure.

Kept in this process only: behind N processes a guesser gets N times the
attempts (still a few per second instead of thousands).  The table is bounded
(least recently failed usernames are dropped first), so guessing random
usernames cannot grow it without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Record:
    failures: int = 0
    shut_until: float = 0.0
    last_failure: float = 0.0
    in_flight: int = 0


class LoginThrottle:
    def __init__(
        self,
        free: int = 5,
        first_delay: float = 1.0,
        max_delay: float = 300.0,
        forget_after: float = 900.0,
        max_usernames: int = 100_000,
    ):
        self.free = free
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_usernames = max_usernames
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def begin(self, key: str, now: float) -> float:
        """Seconds to wait before trying ``key`` again (0: go ahead, and call ``end``)."""
        record = self._records.get(key)
        if record is not None and now - record.last_failure > self.forget_after:
            if not record.in_flight:
                del self._records[key]
                record = None
        if record is None:
            record = self._records[key] = _Record()
        elif record.failures + record.in_flight >= self.free:
            wait = record.shut_until - now
            if wait > 0:
                return wait
            if record.in_flight:
                return self.first_delay
        record.in_flight += 1
        return 0.0

    def end(self, key: str, now: float, ok: bool | None) -> None:
        """An attempt begun is over: ``ok`` True, False (a failure), or None (no
        verdict: storage down, client gone)."""
        record = self._records.get(key)
        if record is None:
            return
        record.in_flight = max(0, record.in_flight - 1)
        if ok is None:
            if not record.in_flight and not record.failures:
                del self._records[key]
            return
        if ok:
            if not record.in_flight:
                del self._records[key]
            return
        record.failures += 1
        record.last_failure = now
        beyond = record.failures - self.free
        if beyond >= 0:
            record.shut_until = now + min(self.first_delay * 2**beyond, self.max_delay)
        self._records.move_to_end(key)
        while len(self._records) > self.max_usernames:
            self._records.popitem(last=False)
