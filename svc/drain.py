"""Drain on ``SIGTERM``: readiness 503 for ``DRAIN_SECONDS`` while still serving, then shut down.

A balancer learns that a process is going away only from its health check: if the
process closed its port at the signal, what the balancer sent it before the next check
would be refused (a balancer that retries elsewhere copes; one that routes only by its
checks, a cloud load balancer, does not; nginx's default passive check marks the process
down, and in a rolling restart every process: docs/deploy.md).  So the first ``SIGTERM``
(or ``SIGINT``) only turns ``GET /health/ready`` to 503 ``draining``: requests and
WebSockets, old and new, are served as before, and each HTTP answer closes its connection
(http/middleware.py), so no idle keep-alive connection of the balancer is left to be cut when
the port closes.  When the window is over, the usual shutdown runs (``web.GracefulExit``:
stop accepting, 1001 to every socket, ``SHUTDOWN_TIMEOUT`` for requests in flight).  A
second signal during the window ends it at once: an operator pressing Ctrl-C twice means
now.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiohttp import web

log = logging.getLogger(__name__)


class Drain:
    """One process's drain window (``python -m svc`` installs its signal handlers)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        #: monotonic time the window opened, None before a signal
        self.started: float | None = None
        #: True once the app serves: a signal during start-up stops it at once
        self.serving = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def draining(self) -> bool:
        return self.started is not None

    def remaining(self) -> float:
        if self.started is None:
            return self.seconds
        return max(0.0, self.started + self.seconds - time.monotonic())

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take ``SIGTERM`` and ``SIGINT`` (in place of aiohttp's ``handle_signals``)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.signalled, signum, loop)

    async def now_serving(self, app: web.Application) -> None:
        """``on_startup``, last: from here on a signal opens the window."""
        self.serving = True

    def signalled(self, signum: int, loop: asyncio.AbstractEventLoop) -> None:
        name = signal.Signals(signum).name
        if self.started is None and self.seconds > 0 and self.serving:
            self.started = time.monotonic()
            self._timer = loop.call_later(self.seconds, self._shut_down)
            log.info(
                "%s: draining for %g s (readiness answers 503, requests and sockets are still "
                "served), then shutting down; another signal shuts down now",
                name,
                self.seconds,
            )
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            log.info("%s during the drain: shutting down now", name)
        self._shut_down()

    def _shut_down(self) -> None:
        # Raised from a loop callback, SystemExit leaves run_until_complete as aiohttp's own
        # signal handler's does: run_app then runs the runner's clean-up (1001, in-flight).
        raise web.GracefulExit()
