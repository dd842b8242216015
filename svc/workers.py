"""``WORKERS=n``: ``python -m svc`` as a supervising parent and ``n`` worker processes.

Each worker is a whole ``python -m svc`` (its own interpreter: its own event loop,
hashing threads, collector settings and heap trim), started with a marker in its
environment, and binds the one port with ``SO_REUSEPORT``: the kernel spreads new
connections over the workers, and the broker joins them into one service as it joins
separate processes.  The parent does nothing but supervise:

- it holds the port (bound, not listening: svc.listen.claim), so a port in use is one
  line before any worker starts, and no other program takes it between two workers;
- a worker that dies is started again, with one log line naming it and how it ended;
  one that keeps dying soon after it started waits longer each time (0.5, 1, 2, 4 s),
  and after :data:`GIVE_UP` such deaths in a row the parent stops the others and exits
  1: a service that cannot be kept up says so to its own supervisor (systemd, Docker)
  rather than spinning;
- a worker that stops with a settings error (exit 2: the database refused, or did not
  answer within ``DATABASE_TIMEOUT``) on its first start stops the service with exit
  2, as one process would; on a later start it counts as a death like any other;
- ``SIGTERM`` or ``SIGINT`` is passed to every worker once, and the parent waits for
  them all (each drains as one process does); it exits 0 when every worker did;
- if the parent itself is killed, each worker finds the pipe it shares with it closed
  and stops as on ``SIGTERM``: no worker outlives its parent.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

log = logging.getLogger("svc.workers")

#: Set in each worker's environment (not settings: nothing an operator sets): its
#: number, the directory the workers share their metrics in (svc.http.worker_metrics),
#: and the pipe that closes when the parent is gone.
WORKER_VARIABLE = "SVC_WORKER"
WORKERS_DIR_VARIABLE = "SVC_WORKERS_DIR"
PARENT_FD_VARIABLE = "SVC_PARENT_FD"

#: A worker that dies sooner than this after it started died "soon".
SOON = 10.0
#: The wait before starting again a worker that died soon; doubled each time in a row.
FIRST_DELAY = 0.5
#: Deaths soon after start, in a row, of one worker after which the parent gives up.
GIVE_UP = 5
#: How often the parent looks at its workers, in seconds.
TICK = 0.1


class _Worker:
    def __init__(self, number: int):
        self.number = number
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.starts = 0
        self.deaths_in_a_row = 0
        self.start_at = 0.0


def supervise(settings) -> int:
    """Run ``settings.workers`` workers until a signal; the exit code of ``python -m svc``."""
    from . import listen

    held = listen.claim(settings.host, settings.port)  # SettingsError: one line, exit 2
    directory = tempfile.mkdtemp(prefix="svc-workers-")
    read_end, write_end = os.pipe()
    received: list[int] = []

    def on_signal(signum, frame) -> None:
        received.append(signum)

    before = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    env = {
        **os.environ,
        WORKERS_DIR_VARIABLE: directory,
        PARENT_FD_VARIABLE: str(read_end),
    }
    workers = [_Worker(n) for n in range(1, settings.workers + 1)]
    log.info("%d workers on http://%s:%s (WORKERS)", len(workers), settings.host, settings.port)
    try:
        return _watch(workers, env, read_end, received)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        for fd in (read_end, write_end):
            os.close(fd)
        for sock in held:
            sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def _watch(workers: list[_Worker], env: dict, read_end: int, received: list[int]) -> int:
    stopping: int | None = None  # the signal passed on to the workers
    failure = 0  # the exit code when the parent stops the service itself
    unclean = False
    while True:
        now = time.monotonic()
        if received and stopping is None:
            stopping = received[0]
            log.info(
                "%s: passed to every worker; waiting for them to finish",
                signal.Signals(stopping).name,
            )
            _signal_all(workers, stopping)
        for worker in workers:
            if worker.proc is None:
                if stopping is None and now >= worker.start_at:
                    _start(worker, env, read_end)
                continue
            code = worker.proc.poll()
            if code is None:
                continue
            pid, worker.proc = worker.proc.pid, None
            if stopping is not None:
                # Killed by the very signal passed on: it was still starting, with nothing
                # to drain (Python's own handler, before aiohttp's was set).
                if code not in (0, -stopping):
                    unclean = True
                    if not failure:
                        log.warning("worker %d (pid %d) ended: %s", worker.number, pid, _how(code))
                continue
            lived = now - worker.started
            if code == 2 and worker.starts == 1:
                # It said its one line (svc: error: ...): the others would say the same.
                failure = 2
            worker.deaths_in_a_row = worker.deaths_in_a_row + 1 if lived < SOON else 0
            if worker.deaths_in_a_row >= GIVE_UP:
                log.error(
                    "worker %d died %d times in a row within %g s of starting (last: %s); "
                    "stopping the service",
                    worker.number,
                    worker.deaths_in_a_row,
                    SOON,
                    _how(code),
                )
                failure = 1
            if failure:
                stopping = signal.SIGTERM
                _signal_all(workers, stopping)
                continue
            delay = FIRST_DELAY * 2 ** (worker.deaths_in_a_row - 1) if worker.deaths_in_a_row else 0
            log.warning(
                "worker %d (pid %d) died (%s) after %.1f s; starting it again in %g s",
                worker.number,
                pid,
                _how(code),
                lived,
                delay,
            )
            worker.start_at = now + delay
        if stopping is not None and all(worker.proc is None for worker in workers):
            return failure or int(unclean)
        time.sleep(TICK)


def _start(worker: _Worker, env: dict, read_end: int) -> None:
    worker.proc = subprocess.Popen(
        [sys.executable, "-m", "svc"],
        env={**env, WORKER_VARIABLE: str(worker.number)},
        pass_fds=(read_end,),
        # Its own session: a Ctrl-C in the terminal reaches the parent alone, which
        # passes it on once (a second signal would cut a worker's drain short).
        start_new_session=True,
    )
    worker.started = time.monotonic()
    worker.starts += 1
    log.info("worker %d started (pid %d)", worker.number, worker.proc.pid)


def _signal_all(workers: list[_Worker], signum: int) -> None:
    for worker in workers:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.send_signal(signum)


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


#: Set in a worker once it found its parent gone (svc.http.worker_metrics: nobody will
#: read or remove the metrics folder).  Not os.getppid(): the pipe closes as the parent
#: exits, a moment before its children are handed to another.
_parent_gone = False


def parent_is_gone() -> bool:
    return _parent_gone


async def stop_with_parent(app) -> None:
    """A worker's on_startup: when the parent is gone (its end of the pipe closed), stop
    as on ``SIGTERM``."""
    import asyncio

    fd = int(os.environ[PARENT_FD_VARIABLE])
    loop = asyncio.get_running_loop()

    def parent_gone() -> None:
        global _parent_gone
        _parent_gone = True
        loop.remove_reader(fd)
        log.warning("the supervising parent is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    loop.add_reader(fd, parent_gone)
