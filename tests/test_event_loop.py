"""EVENT_LOOP: svc runs on uvloop by default, on asyncio's own loop when asked (svc/loop.py)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import uvloop
from svc_process import SvcProcess
from ws_helpers import frame_where

from svc.loop import install_event_loop
from svc.settings import Settings
from svc.testing import unique_id


def test_uvloop_is_the_default_and_asyncio_the_opt_out():
    assert Settings.from_env({}).event_loop == "uvloop"
    assert Settings.from_env({"EVENT_LOOP": " AsyncIO "}).event_loop == "asyncio"
    assert Settings.from_env({"EVENT_LOOP": "uvloop"}).event_loop == "uvloop"


def test_the_loops_made_after_install_are_the_chosen_ones():
    before = asyncio.get_event_loop_policy()
    try:
        for name, uv in [("uvloop", True), ("asyncio", False), ("uvloop", True)]:
            install_event_loop(name)
            loop = asyncio.new_event_loop()  # as aiohttp's run_app makes its loop
            try:
                assert isinstance(loop, uvloop.Loop) is uv, (name, loop)
            finally:
                loop.close()
    finally:
        asyncio.set_event_loop_policy(before)


@pytest.mark.parametrize(
    "env, said",
    [({}, "event loop: uvloop "), ({"EVENT_LOOP": "asyncio"}, "event loop: asyncio")],
)
async def test_svc_says_its_loop_once_and_serves_on_it(env, said, tmp_path):
    svc = await SvcProcess({"EVENT_LOOP": "", **env}, tmp_path / "svc.log").start()
    try:
        assert svc.log().count("event loop: ") == 1 and said in svc.log(), svc.log()
        async with aiohttp.ClientSession(svc.base) as http:
            user = unique_id()
            resp = await http.put(f"/users/{user}/profile", json={"username": user})
            assert resp.status == 201
            async with http.ws_connect(f"/ws/{unique_id('r')}?user_id={user}") as ws:
                assert (await ws.receive_json())["type"] == "welcome"
                resp = await http.put(f"/users/{user}/profile", json={"bio": "heard"})
                assert resp.status == 200
                frame = await frame_where(ws, lambda f: f["type"] == "profile_updated")
                assert frame["profile"]["bio"] == "heard"
    finally:
        await svc.stop()
