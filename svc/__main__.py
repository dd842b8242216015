"""``python -m svc [serve | plugins]`` (also installed as the ``svc`` command)."""

from __future__ import annotations

import argparse
import logging
import sys

from .settings import Settings, SettingsError
from .storage import registry

log = logging.getLogger("svc")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "plugins"],
        help="serve (the default) runs the service; plugins lists the storage schemes installed",
    )
    args = parser.parse_args(argv)
    if args.command == "plugins":
        return list_plugins()
    return serve()


def list_plugins() -> int:
    for scheme, info in registry.available().items():
        print(f"{scheme:<12} {info.target:<40} {info.origin}")
    return 0


def serve() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings.from_env()
        _run(settings)
    except SettingsError as exc:
        # One line that names the variable: no traceback for an operator's typo.
        print(f"svc: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(settings: Settings) -> None:
    from aiohttp import web

    from .app import create_app

    # Not uvloop, though it gave +10% GET here: aiopg re-registers a recycled fd after a
    # failed connect, which uvloop refuses (aio-libs/aiopg#909, unfixed), so recovery
    # from a database outage would break.
    if not settings.auth_enabled:
        log.warning(
            "JWT_SECRET_KEY is not set: auth is off, anyone may change any user (open mode)"
        )
    log.info("storage: %s", registry.scheme_of(settings.database_url))
    app = create_app(settings)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=lambda _: log.info("listening on http://%s:%s", settings.host, settings.port),
    )


if __name__ == "__main__":
    sys.exit(main())
