"""The ceiling for svc's Postgres paths: aiohttp + aiopg, one statement per request, the row
as JSON; no validation, no events, no middleware.

    python bench/ceilings/pg.py --port 8003 --dsn postgresql://postgres@127.0.0.1/bench_ceiling \
        [--uvloop]

Its own table ``ceiling_users`` (same shape as svc's ``users``), filled with ``u0``…``u999``.
- ``GET /users/{id}``: ``SELECT`` the row.
- ``PUT /users/{id}/profile``: merge the body into ``profile`` and bump ``version`` in one
  ``UPDATE … RETURNING`` (what svc's partial update does), answer the row.

Both statements are prepared on each pooled connection when the pool opens it and run as
``EXECUTE`` (``--plain`` sends them as plain statements): svc prepares its hot statements
(plugins/svc_postgres/prepared.py), and a ceiling that makes Postgres parse and plan every
statement is no ceiling for it.
"""

from __future__ import annotations

import argparse
import json

import aiopg
from aiohttp import web
from psycopg2.extras import Json

SCHEMA = """
CREATE TABLE IF NOT EXISTS ceiling_users (
    id text PRIMARY KEY, profile jsonb NOT NULL, version integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ceiling_users (id, profile, version)
SELECT 'u' || i, jsonb_build_object('username', 'u' || i), 1 FROM generate_series(0, 999) AS i
ON CONFLICT DO NOTHING;
"""
GET = "SELECT id, profile, version, created_at, updated_at FROM ceiling_users WHERE id = %s"
PUT = (
    "UPDATE ceiling_users SET profile = profile || %s, version = version + 1,"
    " updated_at = clock_timestamp() WHERE id = %s"
    " RETURNING id, profile, version, created_at, updated_at"
)
# psycopg2 interpolates %s on the client: EXECUTE carries the values as literals, typed by
# the declared parameter types, as svc's prepared statements do.
PREPARE = (
    "PREPARE ceiling_get (text) AS " + GET.replace("%s", "$1") + ";\n"
    "PREPARE ceiling_put (jsonb, text) AS " + PUT.replace("%s", "$1", 1).replace("%s", "$2")
)
EXECUTE = {GET: "EXECUTE ceiling_get (%s)", PUT: "EXECUTE ceiling_put (%s, %s)"}
POOL = web.AppKey("pool", aiopg.Pool)
TEXT = web.AppKey("text", dict)


def render(row) -> web.Response:
    body = {
        "id": row[0],
        "user_id": row[0],
        "profile": row[1],
        "version": row[2],
        "created_at": row[3].isoformat(),
        "updated_at": row[4].isoformat(),
    }
    return web.Response(body=json.dumps(body).encode(), content_type="application/json")


async def one(request: web.Request, sql: str, params) -> web.Response:
    async with request.app[POOL].acquire() as conn, conn.cursor() as cur:
        await cur.execute(request.app[TEXT][sql], params)
        row = await cur.fetchone()
    if row is None:
        raise web.HTTPNotFound()
    return render(row)


async def get_user(request: web.Request) -> web.Response:
    return await one(request, GET, (request.match_info["user_id"],))


async def put_profile(request: web.Request) -> web.Response:
    changes = json.loads(await request.read())
    return await one(request, PUT, (Json(changes), request.match_info["user_id"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--uvloop", action="store_true", help="as svc runs by default")
    parser.add_argument("--plain", action="store_true", help="no prepared statements")
    args = parser.parse_args()
    if args.uvloop:
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def prepare(conn: aiopg.Connection) -> None:
        async with conn.cursor() as cur:
            await cur.execute(PREPARE)

    async def pool_ctx(app: web.Application):
        # The table first: PREPARE needs it.
        async with aiopg.connect(args.dsn) as conn, conn.cursor() as cur:
            await cur.execute(SCHEMA)
        app[TEXT] = {GET: GET, PUT: PUT} if args.plain else EXECUTE
        app[POOL] = await aiopg.create_pool(
            args.dsn, minsize=1, maxsize=args.pool, on_connect=None if args.plain else prepare
        )
        yield
        app[POOL].close()
        await app[POOL].wait_closed()

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/", lambda request: web.json_response({"status": "ok"}))
    app.router.add_get("/users/{user_id}", get_user)
    app.router.add_put("/users/{user_id}/profile", put_profile)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
