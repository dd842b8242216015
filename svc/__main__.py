"""``python -m svc [serve | plugins [--check]]`` (also installed as the ``svc`` command)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import listen
from .broker.registry import broker_plugins
from .registry import PluginError, Registry
from .settings import Settings, SettingsError
from .storage.registry import storage_plugins
from .workers import WORKER_VARIABLE

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
    from .serving import say_error, settings_from_env

    try:
        settings = settings_from_env()
        if settings.workers > 1 and WORKER_VARIABLE not in os.environ:
            from .workers import supervise

            return supervise(settings)
        _run(settings)
    except SettingsError as exc:
        say_error(exc)
        return 2
    return 0


def _run(settings: Settings) -> None:
    # The port first: one in use is one line, before storage or broker is opened.
    worker = os.environ.get(WORKER_VARIABLE)
    sockets = listen.bind(settings.host, settings.port, LISTEN_BACKLOG, reuse_port=bool(worker))
    try:
        from aiohttp import web

        from .app import build_app
        from .connections import default_max_connections, gated_loop
        from .keys import CONNECTIONS, DRAIN
        from .loop import install_event_loop, loop_class
        from .serving import runner_options

        install_event_loop(settings.event_loop)  # uvloop unless EVENT_LOOP=asyncio (svc/loop.py)
        app = build_app(settings)
        if worker:
            from .workers import stop_with_parent

            app.on_startup.append(stop_with_parent)
        # SIGTERM and SIGINT are the drain's (svc/drain.py), not aiohttp's: the first opens the
        # DRAIN_SECONDS window (readiness 503, everything still served), then shuts down as
        # runner_options says. Under WORKERS the parent passes the signal on: each worker drains.
        # The loop gates the listening socket (MAX_CONNECTIONS) and says accept errors once.
        limit = settings.max_connections or default_max_connections()
        loop = gated_loop(loop_class(settings.event_loop), app[CONNECTIONS], limit)
        drain = app[DRAIN]
        drain.install(loop)
        app.on_startup.append(drain.now_serving)  # last: a signal before it stops start-up at once
        where = f"http://{settings.host}:{settings.port}"
        said = f"worker {worker} listening on {where}" if worker else f"listening on {where}"
        web.run_app(
            app,
            sock=sockets,
            loop=loop,
            handle_signals=False,
            # aiohttp's default of 128 overflows when a room's clients reconnect at once (a
            # deploy): the kernel drops the SYNs and each client retries a second later.
            # 2,048 is uvicorn's default; Linux caps it at net.core.somaxconn.
            backlog=LISTEN_BACKLOG,
            print=lambda _: log.info("%s", said),
            **runner_options(settings),
        )
    finally:
        for sock in sockets:
            sock.close()


if __name__ == "__main__":
    sys.exit(main())
