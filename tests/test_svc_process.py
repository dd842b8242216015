"""The test helper that starts ``python -m svc``: it must never mistake another server
on its port for the child it started (a port picked free can be taken before the child
binds it, by another test's server or a parallel suite's)."""

from __future__ import annotations

from aiohttp import web
from svc_process import SvcProcess


async def test_a_port_taken_by_another_server_is_not_mistaken_for_svc(tmp_path, aiohttp_server):
    async def healthy(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    impostor = web.Application()
    impostor.router.add_get("/", healthy)
    taken = await aiohttp_server(impostor, host="127.0.0.1")
    svc = SvcProcess({"DATABASE_URL": "memory://"}, tmp_path / "svc.log")
    svc._move_to(taken.port)  # as if the port had been taken after it was picked
    await svc.start()
    try:
        assert svc.port != taken.port
        assert "already in use" in svc.log()  # the first attempt's end
    finally:
        await svc.stop()
