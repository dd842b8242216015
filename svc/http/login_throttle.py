"""Slowing down password guessing, by the client that guesses.

Two budgets of failures, both keyed by the client's address
(:mod:`svc.http.client_address`; an IPv6 client by its /64, which one machine
usually holds whole):

- per (client, username): ``free`` failures (5), then every further failure
  shuts that pair for twice as long as the last (1 s, 2 s, 4 s ... up to
  ``max_delay``); a success starts the pair over.  The owner, from any other
  address, is never slowed by someone else's guesses: usernames are public,
  and a per-username lock let anyone lock any account out for ever;
- per client, across usernames: ``client_free`` failures (50), then the same
  doubling, and here a success forgives nothing (else a guesser would log in
  to an account of its own between guesses).  This slows one address spraying
  many usernames.

While shut, a login is answered 429 with ``Retry-After`` without any hashing.
Past the free failures only one attempt may be in flight at a time, so a burst
of concurrent guesses cannot slip in before the first one fails.  A budget is
forgotten ``forget_after`` seconds after its last failure.  Unknown usernames
count the same as known ones: the answer must not tell which exist.

Many addresses guessing one account (a botnet): once an account has had
``attack_threshold`` failures (20) from anyone within ``forget_after``, it is
under attack, and each client's free failures at it drop from 5 to
``attack_free`` (1): every address gets one guess, then the doubling delays.
This never shuts the account itself, which is what let one stranger lock its
owner out: a client that has not failed at the account (the owner, from their
own address) logs in at once, however many others fail; only an owner who
mistypes during an attack waits (1 s, then 2 s ...) before the next try.
Beyond that the answer to a botnet is the password (bcrypt, at least 8
characters) and, for an operator who needs more, a balancer or WAF that sees
every process.

Kept in this process only: behind N processes a guesser gets N times the
attempts.  The tables are bounded (least recently failed keys are dropped
first), so guessing from many addresses or for random usernames cannot grow
them without limit.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass


def client_key(address: str) -> str:
    """The throttle's key for a client address: an IPv6 address by its /64 (one host
    holds a whole /64 and could otherwise spread its guesses over 2**64 addresses)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


@dataclass
class _Record:
    failures: int = 0
    shut_until: float = 0.0
    last_failure: float = 0.0
    in_flight: int = 0


class _Budget:
    """Failures of one kind of key: free ones, then doubling delays (see the module)."""

    def __init__(
        self,
        free: int = 5,
        first_delay: float = 1.0,
        max_delay: float = 300.0,
        forget_after: float = 900.0,
        max_keys: int = 100_000,
        success_forgives: bool = True,
    ):
        self.free = free
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_keys = max_keys
        self.success_forgives = success_forgives
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def begin(self, key: str, now: float, free: int | None = None) -> float:
        """Seconds to wait before trying ``key`` again (0: go ahead, and call ``end``);
        ``free``: the free failures for this attempt, if not the budget's own."""
        free = self.free if free is None else free
        record = self._records.get(key)
        if record is not None and now - record.last_failure > self.forget_after:
            if not record.in_flight:
                del self._records[key]
                record = None
        if record is None:
            record = self._records[key] = _Record()
        elif record.failures + record.in_flight >= free:
            wait = record.shut_until - now
            if wait > 0:
                return wait
            if record.in_flight:
                return self.first_delay
        record.in_flight += 1
        return 0.0

    def end(self, key: str, now: float, ok: bool | None, free: int | None = None) -> None:
        """An attempt begun is over: ``ok`` True, False (a failure), or None (no
        verdict: storage down, client gone)."""
        free = self.free if free is None else free
        record = self._records.get(key)
        if record is None:
            return
        record.in_flight = max(0, record.in_flight - 1)
        if ok and not self.success_forgives:
            ok = None  # an attempt that is over, and no more
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
        beyond = record.failures - free
        if beyond >= 0:
            record.shut_until = now + min(self.first_delay * 2**beyond, self.max_delay)
        self._records.move_to_end(key)
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)


class _Tally:
    """Failures per key from anyone, forgotten ``forget_after`` seconds after the last."""

    def __init__(self, forget_after: float, max_keys: int):
        self.forget_after = forget_after
        self.max_keys = max_keys
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def count(self, key: str, now: float) -> int:
        count, last = self._counts.get(key, (0, now))
        return count if now - last <= self.forget_after else 0

    def add(self, key: str, now: float) -> None:
        self._counts[key] = (self.count(key, now) + 1, now)
        self._counts.move_to_end(key)
        while len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)


class LoginThrottle:
    """The two budgets of the module, for an attempt by ``client`` at ``key`` (a username
    key, or another secret's own key such as ``id:<user>`` for ``current_password``)."""

    def __init__(
        self,
        free: int = 5,
        first_delay: float = 1.0,
        max_delay: float = 300.0,
        forget_after: float = 900.0,
        max_keys: int = 100_000,
        client_free: int = 50,
        attack_threshold: int = 20,
        attack_free: int = 1,
    ):
        self.pairs = _Budget(free, first_delay, max_delay, forget_after, max_keys)
        #: Failures at each account from every client: past ``attack_threshold`` it is
        #: under attack, and each client's free failures at it drop to ``attack_free``.
        self.accounts = _Tally(forget_after, max_keys)
        self.attack_threshold = attack_threshold
        self.attack_free = attack_free
        self.clients = _Budget(
            client_free, first_delay, max_delay, forget_after, max_keys, success_forgives=False
        )
        #: Attempts refused with 429, by the budget that refused them (for /metrics).
        self.refused = {"client_username": 0, "client": 0}
        #: Has the log said that forwarding headers from an untrusted peer were ignored?
        self.told_of_ignored_forwarding = False

    def begin(self, client: str, key: str, now: float) -> float:
        """Seconds to wait before ``client`` tries ``key`` again (0: go ahead, and call
        ``end``)."""
        client = client_key(client)
        wait = self.pairs.begin(f"{client} {key}", now, self._free(key, now))
        if wait:
            self.refused["client_username"] += 1
            return wait
        wait = self.clients.begin(client, now)
        if wait:
            self.pairs.end(f"{client} {key}", now, None)  # not attempted after all
            self.refused["client"] += 1
        return wait

    def end(self, client: str, key: str, now: float, ok: bool | None) -> None:
        """An attempt begun is over: ``ok`` True, False (a failure), or None (no verdict:
        storage down, client gone)."""
        client = client_key(client)
        self.pairs.end(f"{client} {key}", now, ok, self._free(key, now))
        self.clients.end(client, now, ok)
        if ok is False:
            self.accounts.add(key, now)

    def _free(self, key: str, now: float) -> int | None:
        """The free failures each client has at ``key`` now: fewer while it is under attack."""
        if self.accounts.count(key, now) >= self.attack_threshold:
            return self.attack_free
        return None
