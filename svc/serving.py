"""What serving svc takes besides the application: one place for ``python -m svc``, each
of its workers, and Gunicorn's ``svc.app:app_from_env``.

- the settings read from the environment, logging set up in ``LOG_FORMAT`` first;
- the start-up lines (open mode, storage and broker, origins);
- the collector: its thresholds, and a full collection after bursts (svc.collector);
- the runner's options: no aiohttp access log (svc writes its own), ``SHUTDOWN_TIMEOUT``.
"""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web

from .logs import setup_logging
from .settings import Settings, SettingsError
from .storage.registry import scheme_of
from .workers import WORKER_VARIABLE, WORKERS_DIR_VARIABLE

log = logging.getLogger("svc")

#: Gunicorn's code for "a worker failed to boot": its arbiter stops instead of
#: starting the worker again, and again.
GUNICORN_BOOT_ERROR = 3


def settings_from_env() -> Settings:
    """The settings, with logging set up in their ``LOG_FORMAT``; SettingsError if bad."""
    setup_logging("json" if _wants_json() else "text")
    settings = Settings.from_env()
    setup_logging(settings.log_format)
    return settings


def _wants_json() -> bool:
    """LOG_FORMAT before the settings are read, so what is logged while reading them
    (warnings about lookalike variables) is already in that format.  A settings error
    itself is always the one plain ``svc: error:`` line on stderr."""
    return os.environ.get("LOG_FORMAT", "").strip().lower() == "json"


def say_error(exc: SettingsError) -> None:
    # One line that names the variable: no traceback for an operator's typo.
    print(f"svc: error: {exc}", file=sys.stderr, flush=True)


def build_app(settings: Settings) -> web.Application:
    """The application as a server runs it: start-up lines said, the collector set, and,
    in a worker of ``WORKERS``, /metrics for the whole service."""
    from .app import create_app
    from .collector import collector_ctx
    from .keys import ORIGINS

    if not settings.auth_enabled:
        log.warning(
            "JWT_SECRET_KEY is not set: auth is off, anyone may change any user (open mode)"
        )
    log.info(
        "storage: %s; broker: %s",
        scheme_of(settings.database_url),
        scheme_of(settings.resolved_broker_url),
    )
    app = create_app(settings)
    log.info("%s", app[ORIGINS].describe())
    app.cleanup_ctx.append(collector_ctx)  # full collections after bursts, not during
    directory = os.environ.get(WORKERS_DIR_VARIABLE)
    if directory:
        from .http.worker_metrics import share

        share(app, directory, os.environ[WORKER_VARIABLE])
    return app


def runner_options(settings: Settings) -> dict:
    return {
        "access_log": None,  # svc's own (ACCESS_LOG) is written by svc.http.observe
        # SIGTERM: stop accepting, close sockets with 1001 (on_shutdown), let in-flight
        # requests finish for this long, then close the broker and storage.
        "shutdown_timeout": settings.shutdown_timeout,
    }


async def app_from_env() -> web.AppRunner:
    """Gunicorn's factory (``aiohttp.GunicornWebWorker``): the environment read exactly as
    ``python -m svc`` reads it.  A bad setting, or a database that refuses or does not
    answer, is the one ``svc: error:`` line and the worker exits with Gunicorn's boot
    error, so Gunicorn stops rather than starting it again and again."""
    try:
        settings = settings_from_env()
    except SettingsError as exc:
        say_error(exc)
        raise SystemExit(GUNICORN_BOOT_ERROR) from None
    if scheme_of(settings.database_url) == "memory":
        # Gunicorn does not tell its workers how many they are: say it, once per worker.
        log.warning(
            "DATABASE_URL is memory://: each Gunicorn worker has users of its own; "
            "with more than one worker, set DATABASE_URL to a shared database"
        )
    app = build_app(settings)
    # /metrics for every worker of this Gunicorn, each labelled by its pid.
    from .http.worker_metrics import share

    directory = _gunicorn_directory()
    if directory is not None:
        share(app, directory, str(os.getpid()))
    # Gunicorn passes the backlog (--backlog, 2048 by default) and signals; the runner is
    # returned so that svc's own options hold, not Gunicorn's graceful timeout.
    return _BootRunner(app, **runner_options(settings))


def _gunicorn_directory() -> str | None:
    """Where this Gunicorn's workers share their metrics: named after their parent (the
    arbiter) and, on Linux, the moment it started, so a later Gunicorn that gets the same
    pid never adds up an earlier one's counts.  None (each worker's /metrics its own, said
    in one line) if that name is taken by a folder another user could write to."""
    import tempfile
    from stat import S_ISDIR

    arbiter = os.getppid()
    try:
        with open(f"/proc/{arbiter}/stat") as stat:
            started = stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        started = "0"
    directory = os.path.join(tempfile.gettempdir(), f"svc-gunicorn-{arbiter}-{started}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    made = os.lstat(directory)
    if made.st_uid != os.getuid() or made.st_mode & 0o077 or not S_ISDIR(made.st_mode):
        # Another user's folder (or link) in a shared /tmp: its files would be read as ours.
        log.warning(
            "%s is not this user's private folder: /metrics answers for this worker only",
            directory,
        )
        return None
    return directory


class _BootRunner(web.AppRunner):
    """Storage and broker open in ``setup()`` (cleanup_ctx): their refusal is one line too."""

    async def setup(self) -> None:
        try:
            await super().setup()
        except SettingsError as exc:
            say_error(exc)
            raise SystemExit(GUNICORN_BOOT_ERROR) from None
