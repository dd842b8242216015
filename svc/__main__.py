"""``python -m svc [serve | plugins [--check]]`` (also installed as the ``svc`` command)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys

from .broker.registry import broker_plugins
from .logs import setup_logging
from .registry import PluginError, Registry
from .settings import Settings, SettingsError
from .storage.registry import scheme_of, storage_plugins

log = logging.getLogger("svc")

#: Connections the kernel holds for us before we accept them (see _run).
LISTEN_BACKLOG = 2048


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "plugins"],
        help="serve (the default) runs the service; plugins lists the storage and broker "
        "plugins installed",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="with plugins: import each one and say what is wrong with it",
    )
    args = parser.parse_args(argv)
    if args.command == "plugins":
        return list_plugins(check=args.check)
    return serve()


def list_plugins(check: bool = False) -> int:
    problems = 0
    for registry in (storage_plugins, broker_plugins):
        print(f"{registry.kind} ({registry.group}):")
        for scheme, info in registry.available().items():
            line = f"  {scheme:<12} {info.target:<40} {info.origin}"
            if check:
                problem = _check(registry, info)
                problems += problem is not None
                line += f"  {'ok' if problem is None else 'BROKEN: ' + problem}"
            print(line)
    return 1 if problems else 0


def _check(registry: Registry, info) -> str | None:
    """What is wrong with one plugin, or None: it imports, is of the right kind, and
    implements every abstract method (else it would fail only when svc builds it)."""
    try:
        cls = registry.load(info)
    except (PluginError, TypeError) as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a plugin's own import error, reported not raised
        return f"importing it failed: {type(exc).__name__}: {exc}"
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        return f"does not implement {', '.join(missing)}"
    return None


def serve() -> int:
    setup_logging("json" if _wants_json() else "text")
    try:
        settings = Settings.from_env()
        setup_logging(settings.log_format)
        _run(settings)
    except SettingsError as exc:
        # One line that names the variable: no traceback for an operator's typo.
        print(f"svc: error: {exc}", file=sys.stderr)
        return 2
    return 0


async def freeze_startup_heap(app) -> None:
    """What start-up built (modules, schemas, the OpenAPI document, plugins) lives as long as
    the process: moved out of the collector's sight, a full collection under load scans only
    what requests and sockets made.  (2,000 joins: 0.69 s -> 0.52 s of server CPU, a third
    of which was full collections; bench/memory_per_socket.py.)"""
    gc.collect()
    gc.freeze()


def _wants_json() -> bool:
    """LOG_FORMAT before the settings are read, so what is logged while reading them
    (warnings about lookalike variables) is already in that format.  A settings error
    itself is always the one plain ``svc: error:`` line on stderr."""
    import os

    return os.environ.get("LOG_FORMAT", "").strip().lower() == "json"


def _run(settings: Settings) -> None:
    from aiohttp import web

    from .app import create_app
    from .heap_trim import heap_trim_ctx
    from .keys import ORIGINS
    from .loop import install_event_loop

    install_event_loop(settings.event_loop)  # uvloop unless EVENT_LOOP=asyncio (svc/loop.py)
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
    app.on_startup.append(freeze_startup_heap)  # after cleanup_ctx: storage, broker, hub are up
    app.cleanup_ctx.append(heap_trim_ctx)  # after a burst of sockets, freed heap goes back
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=None,  # svc's own (ACCESS_LOG) is written by svc.http.observe
        # aiohttp's default of 128 overflows when a room's clients reconnect at once (a
        # deploy): the kernel drops the SYNs and each client retries a second later.
        # 2,048 is uvicorn's default; Linux caps it at net.core.somaxconn.
        backlog=LISTEN_BACKLOG,
        # SIGTERM: stop accepting, close sockets with 1001 (on_shutdown), let in-flight
        # requests finish for this long, then close the broker and storage; exit 0.
        shutdown_timeout=settings.shutdown_timeout,
        print=lambda _: log.info("listening on http://%s:%s", settings.host, settings.port),
    )


if __name__ == "__main__":
    sys.exit(main())
