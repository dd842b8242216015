"""CORS, the socket's Origin check and its close codes, seen from a page of ANOTHER origin in
real headless Chromium (the demo's harness: tests/browser_helpers.py).

A bare aiohttp app on a second port serves a tiny page; a real ``python -m svc`` runs on
another port (another origin) with ``CORS_ORIGINS`` naming the page, with only
``CORS_ORIGIN_REGEX`` matching it, naming some other origin, or with no CORS at all.  The
page's own JavaScript fetches, PUTs with ``If-Match`` (a preflighted request) and opens a
socket; the assertions are about what the browser let that script see.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import jwt
import pytest
from browser_helpers import SvcProcess, ThreadLoop, free_port, new_driver, require_chromium

from svc.testing import unique_id

# The page's JavaScript in Chromium: once per CI run, not per Python (noxfile.py).
pytestmark = pytest.mark.browser

# The page: everything it does is here, so the browser runs it as a script of that origin.
PAGE = """<!doctype html>
<meta charset="utf-8"><title>another origin</title>
<script>
async function attempt(run) {  // a rejected fetch is what a CORS refusal looks like to JS
  try { return await run(); }
  catch (error) { return {rejected: `${error.name}: ${error.message}`}; }
}
async function answer(response) {
  return {status: response.status, etag: response.headers.get('ETag'),
          location: response.headers.get('Location'),
          wwwAuthenticate: response.headers.get('WWW-Authenticate'),
          body: await response.json()};
}
function socket(url) {  // the welcome, or how the socket closed: code and reason
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === 'welcome') { ws.close(1000); resolve({welcome: frame}); }
    };
    ws.onclose = (event) =>
      resolve({close: {code: event.code, reason: event.reason, wasClean: event.wasClean}});
  });
}
const put = (url, version, body, headers = {}) => fetch(url, {method: 'PUT', body:
  JSON.stringify(body), headers: {'Content-Type': 'application/json',
                                  'If-Match': `"${version}"`, ...headers}});
window.probe = async (base, userId, room) => ({
  origin: location.origin,
  get: await attempt(async () => answer(await fetch(`${base}/users/${userId}`))),
  put: await attempt(async () => answer(
    await put(`${base}/users/${userId}/profile`, 1, {display_name: 'Set cross-origin'}))),
  stale: await attempt(async () => answer(
    await put(`${base}/users/${userId}/profile`, 1, {bio: 'a stale write'}))),
  socket: await socket(`${base.replace(/^http/, 'ws')}/ws/${room}?user_id=${userId}`),
});
window.probeAuth = async (base, username, password, room, badTokens) => {
  const out = {sockets: {}};
  out.signup = await attempt(async () => answer(await fetch(`${base}/users`, {method: 'POST',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({username, password})})));
  out.login = await attempt(async () => answer(await fetch(`${base}/auth/token`, {method: 'POST',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({username, password})})));
  const userId = out.signup.body && out.signup.body.id;
  out.unauthorized = await attempt(async () => answer(
    await put(`${base}/users/${userId}/profile`, 1, {bio: 'no token'})));
  const ws = `${base.replace(/^http/, 'ws')}/ws/${room}`;
  out.sockets.none = await socket(ws);
  for (const [name, token] of Object.entries(badTokens)) {
    out.sockets[name] = await socket(`${ws}?token=${encodeURIComponent(token)}`);
  }
  out.sockets.good = await socket(`${ws}?token=${out.login.body.access_token}`);
  return out;
};
</script>
<p>A page of another origin than svc.</p>
"""

RUN = """
const done = arguments[arguments.length - 1];
window[arguments[0]](...arguments[1]).then(done, (error) => done({error: String(error)}));
"""


class PageServer:
    """A bare aiohttp app serving :data:`PAGE` at ``/`` on a port of its own."""

    def __init__(self, thread_loop: ThreadLoop):
        self.thread_loop = thread_loop
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self._runner = None

    def start(self) -> None:
        from aiohttp import web

        async def page(request):
            return web.Response(text=PAGE, content_type="text/html")

        async def start():
            app = web.Application()
            app.router.add_get("/", page)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        self.thread_loop.run(start())

    def stop(self) -> None:
        if self._runner is not None:
            self.thread_loop.run(self._runner.cleanup())


@pytest.fixture
def page_server():
    require_chromium()
    thread_loop = ThreadLoop()
    server = PageServer(thread_loop)
    server.start()
    yield server
    server.stop()
    thread_loop.close()


@pytest.fixture
def browser(tmp_path):
    driver = new_driver(tmp_path)
    yield driver
    driver.save_screenshot(str(tmp_path / "page-last.png"))
    driver.quit()


@pytest.fixture
def start_svc(tmp_path):
    """``start_svc(**env)``: a started ``python -m svc`` (JSON logs, an access log line per
    request: the preflights show there)."""
    started: list[SvcProcess] = []

    def start(**env) -> SvcProcess:
        env = {"DATABASE_URL": "memory://", "LOG_FORMAT": "json", "ACCESS_LOG": "true", **env}
        process = SvcProcess(env, tmp_path / f"svc-{len(started)}.log")
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()
        print(f"svc log: {process.log_path}")


def run_in_page(driver, function: str, *args):
    result = driver.execute_async_script(RUN, function, list(args))
    assert "error" not in result, result["error"]
    return result


def http_json(method: str, url: str, body: dict | None = None) -> dict:
    """A request from the test itself (no Origin: not a browser, never subject to CORS)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def access_lines(svc: SvcProcess) -> list[str]:
    """``METHOD path status`` of every request svc logged (the process stays up)."""
    lines = []
    for line in svc.log_path.read_text().splitlines():
        entry = json.loads(line)
        if entry["logger"] == "svc.access" and "method" in entry:  # not a socket's open/close
            lines.append(f"{entry['method']} {entry['path']} {entry['status']}")
    return lines


def logged_access(svc: SvcProcess, line: str) -> bool:
    # The access line is written after the response: give it a moment to reach the file.
    deadline = time.monotonic() + 10
    while line not in access_lines(svc):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def no_errors_logged(svc: SvcProcess) -> list[str]:
    return [
        line
        for line in svc.log_path.read_text().splitlines()
        if json.loads(line)["level"] in ("ERROR", "CRITICAL") or "exc" in json.loads(line)
    ]


#: name → (environment of svc from the page's origin, does it allow that page?)
CONFIGURATIONS = {
    "listed": (lambda origin: {"CORS_ORIGINS": f"https://app.example.com,{origin}"}, True),
    "regex_only": (lambda origin: {"CORS_ORIGIN_REGEX": re.escape(origin)}, True),
    "other_origin_listed": (lambda origin: {"CORS_ORIGINS": "https://app.example.com"}, False),
    "no_cors": (lambda origin: {}, False),
}


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_a_page_of_another_origin(name, page_server, browser, start_svc):
    env_for, allowed = CONFIGURATIONS[name]
    svc = start_svc(**env_for(page_server.origin))
    user_id, room = unique_id("xo"), unique_id("room")
    http_json("PUT", f"{svc.base}/users/{user_id}/profile", {"username": user_id})

    browser.get(page_server.origin + "/")
    out = run_in_page(browser, "probe", svc.base, user_id, room)
    assert out["origin"] == page_server.origin != svc.base  # truly another origin
    profile_path = f"/users/{user_id}/profile"
    stored = http_json("GET", f"{svc.base}/users/{user_id}")

    if allowed:
        assert out["get"]["status"] == 200
        assert out["get"]["etag"] == '"1"'  # exposed: the page can read the version
        assert out["get"]["body"]["id"] == user_id
        assert out["put"]["status"] == 200, out["put"]
        assert out["put"]["etag"] == '"2"'
        assert out["put"]["body"]["profile"]["display_name"] == "Set cross-origin"
        # The same If-Match again: the page reads the 412 and its JSON error.
        assert out["stale"]["status"] == 412
        assert set(out["stale"]["body"]["error"]) >= {"code", "message"}
        # The PUT with If-Match and a JSON body was preflighted, and the preflight passed.
        assert logged_access(svc, f"OPTIONS {profile_path} 200")
        assert logged_access(svc, f"PUT {profile_path} 200")
        welcome = out["socket"]["welcome"]
        assert welcome["room"] == room
        assert [m["id"] for m in welcome["members"]] == [user_id]
        assert stored["version"] == 2 and stored["profile"]["bio"] is None
    else:
        # The browser hides both answers from the script: fetch rejects (a TypeError).
        assert out["get"]["rejected"].startswith("TypeError"), out["get"]
        assert out["put"]["rejected"].startswith("TypeError"), out["put"]
        # The preflight failed (403 with CORS on, 405 with it off), so the PUT itself never
        # went: nothing stored changed.
        preflight = 403 if name == "other_origin_listed" else 405
        assert logged_access(svc, f"OPTIONS {profile_path} {preflight}")
        puts = [line for line in access_lines(svc) if line.startswith(f"PUT {profile_path}")]
        assert puts == [f"PUT {profile_path} 201"]  # the test's own, creating the user
        assert stored["version"] == 1 and stored["profile"]["display_name"] is None
        # The socket: upgraded, then closed with a code and reason the script can read.
        close = out["socket"]["close"]
        assert close["code"] == 4403, close
        assert "not allowed" in close["reason"] and page_server.origin in close["reason"]
        members = http_json("GET", f"{svc.base}/rooms/{room}/members")
        assert members["member_count"] == 0  # a refused socket never counted as present
    assert no_errors_logged(svc) == []


def test_with_auth_on_a_page_of_another_origin_reads_4401(page_server, browser, start_svc):
    secret = "s" * 40
    svc = start_svc(JWT_SECRET_KEY=secret, CORS_ORIGINS=page_server.origin)
    now = int(time.time())
    bad_tokens = {
        "garbage": "not-a-token",
        "wrong_key": jwt.encode({"sub": "someone", "iat": now, "exp": now + 60}, "x" * 40),
        "expired": jwt.encode({"sub": "someone", "iat": now - 120, "exp": now - 60}, secret),
    }
    username, room = unique_id("xa")[:30], unique_id("room")

    browser.get(page_server.origin + "/")
    out = run_in_page(browser, "probeAuth", svc.base, username, "a long password", room, bad_tokens)
    # Signing up and logging in work from there; Location and WWW-Authenticate are readable.
    assert out["signup"]["status"] == 201, out["signup"]
    user_id = out["signup"]["body"]["id"]
    assert out["signup"]["location"].endswith(f"/users/{user_id}")
    assert out["login"]["status"] == 200 and out["login"]["body"]["token_type"] == "bearer"
    assert out["unauthorized"]["status"] == 401
    assert out["unauthorized"]["wwwAuthenticate"].lower().startswith("bearer")
    assert out["unauthorized"]["body"]["error"]["code"]
    # Sockets: no token and each bad token close with 4401 and a reason the script reads.
    sockets = out["sockets"]
    assert sockets["none"]["close"]["code"] == 4401
    assert "token" in sockets["none"]["close"]["reason"]
    for name in bad_tokens:
        close = sockets[name]["close"]
        assert close["code"] == 4401, (name, close)
        assert "token" in close["reason"], (name, close)
    assert "expired" in sockets["expired"]["close"]["reason"]
    # The token it was given opens a socket from there.
    welcome = sockets["good"]["welcome"]
    assert [m["id"] for m in welcome["members"]] == [user_id]
    assert no_errors_logged(svc) == []
