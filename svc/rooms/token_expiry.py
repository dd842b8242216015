"""A socket lives no longer than the tokens it joined with (auth on only).

Each socket that joined with tokens holds a :class:`TokenLife`: when its tokens were
issued (to tell, when a password is set anywhere, which sockets joined before it), and one
``loop.call_at`` handle that closes it with 4401 at the earliest ``exp`` of its tokens.
Renewal (an ``auth`` frame, checked above this layer) cancels that handle and arms a new
one: never more than one timer per socket, none at all with auth off.  A timer per socket
was measured against the +1 KiB budget per idle socket in bench/README.md ("Sockets and
their tokens").

The checks themselves (signatures, users, rooms) belong to the HTTP layer; this layer
only keeps the deadline and the stamp, and is told the results.
"""

from __future__ import annotations

import asyncio
import time

#: The close code of a socket whose token expired or was retired: 4000 + HTTP 401.
TOKEN_CLOSE = 4401

#: Why a socket was closed when a new password was set after its token was issued.
ISSUED_BEFORE_PASSWORD = "the token was issued before the password was last set; log in again"


class TokenLife:
    """The tokens of one socket: their issue stamp and the one timer of their expiry."""

    __slots__ = ("issued", "expires_at", "reason", "_timer")

    def __init__(self, issued: float, expires_at: float, reason: str):
        #: the login token's ``pat`` (the password it verified was set then) or ``iat``
        self.issued = issued
        #: the earliest ``exp`` of the socket's tokens (unix seconds)
        self.expires_at = expires_at
        #: why the socket closes at ``expires_at`` (which of its tokens expires first)
        self.reason = reason
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, close) -> None:
        """Call ``close(TOKEN_CLOSE, reason)`` at ``expires_at``."""
        self.cancel()
        self._timer = _call_at_wall(self.expires_at, close, self.reason)

    def renew(self, fresher: TokenLife, close) -> None:
        """Fresher tokens: the old deadline is cancelled and the new one armed."""
        self.issued, self.expires_at, self.reason = (
            fresher.issued,
            fresher.expires_at,
            fresher.reason,
        )
        self.arm(close)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def retired_by(self, password_set_at: float) -> bool:
        """Was the login token issued before a password set at ``password_set_at``?"""
        return self.issued < password_set_at


def _call_at_wall(when: float, close, reason: str) -> asyncio.TimerHandle:
    """A timer at wall-clock ``when``, on the loop's monotonic clock."""
    loop = asyncio.get_running_loop()
    return loop.call_at(loop.time() + (when - time.time()), close, TOKEN_CLOSE, reason)
