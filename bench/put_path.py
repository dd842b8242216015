"""How deep a ``PUT /users/{id}/profile`` goes on memory: the files and calls of svc on its way.

    python bench/put_path.py [--list]

One app (memory storage, memory broker), one member connected to one room, one PUT of
that member's profile; every Python call made in a file of ``svc/`` or ``plugins/`` from the
moment the PUT is sent until the member has read its ``profile_updated`` is counted (a
``sys.setprofile`` hook: calls, not lines).  The client's own calls are in neither folder.
Issue 26 counted ~25 calls over 19 files before the rooms became a one-way stack.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
from pathlib import Path

from aiohttp import ClientSession, web

from svc.app import create_app
from svc.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OURS = (str(ROOT / "svc") + "/", str(ROOT / "plugins") + "/")


async def main(listing: bool) -> None:
    app = create_app(Settings(bcrypt_rounds=4, database_url="memory://"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def hook(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(OURS):
            code = frame.f_code
            calls[(code.co_filename[len(str(ROOT)) + 1 :], code.co_qualname)] += 1

    try:
        async with ClientSession() as http:
            async with http.post(f"{base}/users", json={"username": "putpath"}) as reply:
                user = await reply.json()
            async with http.ws_connect(f"{base}/ws/room?user_id={user['id']}") as ws:
                while (await ws.receive_json())["type"] != "welcome":
                    pass
                await asyncio.sleep(0.3)  # presence of the join has gone out
                sys.setprofile(hook)
                async with http.put(
                    f"{base}/users/{user['id']}/profile", json={"bio": "counted"}
                ) as reply:
                    assert reply.status == 200, await reply.text()
                while (await ws.receive_json())["type"] != "profile_updated":
                    pass
                sys.setprofile(None)
    finally:
        sys.setprofile(None)
        await runner.cleanup()
    files = {path for path, _ in calls}
    print(f"{sum(calls.values())} calls ({len(calls)} distinct functions) over {len(files)} files")
    if listing:
        for (path, name), count in sorted(calls.items()):
            print(f"  {count:3d}  {path}  {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="every function and its count")
    asyncio.run(main(parser.parse_args().list))
