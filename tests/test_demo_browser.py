"""/demo and svc-client.js in real headless Chromium, against a real ``python -m svc``.

Two pages are "two devices": one saves a profile, the other shows it live; svc restarts
under them and they recover; one page closes and the other sees it leave.  Screenshots
go to pytest's temporary directory (printed on failure), never into the repository.
"""

from __future__ import annotations

import json
import time

import pytest
from browser_helpers import (
    CloseCodeServer,
    Crowd,
    SvcProcess,
    ThreadLoop,
    new_driver,
    require_chromium,
)

from svc.testing import unique_id

# The page's JavaScript in Chromium: once per CI run, not per Python (noxfile.py).
pytestmark = pytest.mark.browser

#: The issue's promise: a saved name shows on the other page within 2 s.
LIVE_WITHIN = 2.0
#: Everything else that must happen eventually (a restart, a login with bcrypt).
WAIT = 30.0


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def pages(tmp_path):
    """``pages()``: a new headless Chromium (its own empty profile); all quit at teardown,
    each screenshotted first (after a failure too)."""
    require_chromium()
    drivers = []

    def open_page():
        driver = new_driver(tmp_path)
        drivers.append(driver)
        return driver

    def close_page(driver) -> None:
        drivers.remove(driver)
        driver.quit()

    open_page.close = close_page
    yield open_page
    for number, driver in enumerate(drivers):
        path = tmp_path / f"page-{number}-last.png"
        driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        driver.quit()


@pytest.fixture
def svc_process(tmp_path):
    """``svc_process(**env)``: a started ``python -m svc`` with those settings."""
    started: list[SvcProcess] = []

    def start(**env) -> SvcProcess:
        process = SvcProcess(env, tmp_path / f"svc-{len(started)}.log")
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()
        print(f"svc log: {process.log_path}")


@pytest.fixture
def thread_loop():
    loop = ThreadLoop()
    yield loop
    loop.close()


# -- reading and driving a page --------------------------------------------------------------


def wait(driver, condition, timeout: float = WAIT, what: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: condition(d), f"waited {timeout} s for {what}"
    )


def status(driver) -> str:
    return driver.execute_script("return document.getElementById('status').dataset.status")


def cards(driver) -> dict[str, str]:
    """user id → the name shown on that member's card."""
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#members li')]"
        ".map(li => [li.dataset.userId, li.querySelector('.name').firstChild.textContent]))"
    )


def welcomes(driver) -> int:
    return driver.execute_script("return window.svcDemo?.client.welcomes ?? 0")


def open_demo(driver, base: str, room: str) -> None:
    driver.get(f"{base}/demo?room={room}")
    wait(driver, lambda d: d.execute_script("return document.readyState") == "complete")


def fill(driver, form_id: str, **values: str) -> None:
    from selenium.webdriver.common.by import By

    form = driver.find_element(By.ID, form_id)
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)


def click(driver, element_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, element_id).click()


def join_open(driver, base: str, room: str, user_id: str) -> None:
    open_demo(driver, base, room)
    fill(driver, "join-form", user_id=user_id)
    click(driver, "join-button")
    wait(driver, lambda d: status(d) == "open", what=f"{user_id} to be live in {room}")


def save_display_name(driver, name: str) -> None:
    fill(driver, "profile-form", display_name=name)
    click(driver, "save-button")


# -- the two devices ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_pages_see_edits_live_recover_from_a_restart_and_see_a_leave(
    pages, svc_process, postgres_url, tmp_path
):
    # Postgres keeps the users across the restart. BROKER_URL is explicit: one process
    # needs nothing more than the in-process broker.
    svc = svc_process(DATABASE_URL=postgres_url, BROKER_URL="memory://")
    room, alice, bob = unique_id("room"), unique_id("alice"), unique_id("bob")
    a, b = pages(), pages()
    join_open(a, svc.base, room, alice)
    join_open(b, svc.base, room, bob)
    wait(a, lambda d: bob in cards(d), what="A to see B arrive")
    wait(b, lambda d: alice in cards(d), what="B to see A")

    new_name = f"Alice {alice[-6:]}"
    save_display_name(a, new_name)
    saved = time.monotonic()
    wait(b, lambda d: cards(d)[alice] == new_name, LIVE_WITHIN, "B to show A's new name")
    print(f"A's save showed on B after {time.monotonic() - saved:.3f} s (measured from the click)")
    wait(a, lambda d: "Saved: version 2." in d.find_element("id", "profile-message").text)
    assert cards(a)[alice] == new_name
    a.save_screenshot(str(tmp_path / "a-after-save.png"))
    b.save_screenshot(str(tmp_path / "b-after-save.png"))

    # svc restarts under the open pages: they see it go, and come back on their own.
    svc.stop()
    for page in (a, b):
        wait(page, lambda d: status(d) != "open", what="the page to notice the restart")
    svc.start()
    for page in (a, b):
        wait(page, lambda d: status(d) == "open" and welcomes(d) == 2, what="a reconnection")
    wait(a, lambda d: bob in cards(d), what="A to see B again after the restart")
    wait(b, lambda d: cards(d).get(alice) == new_name, what="B to see A again, as saved")

    # Live again: B's edit reaches A.
    bob_name = f"Bob {bob[-6:]}"
    save_display_name(b, bob_name)
    wait(a, lambda d: cards(d).get(bob) == bob_name, what="A to show B's new name")

    # B closes: A sees B leave.
    pages.close(b)
    wait(a, lambda d: bob not in cards(d), what="A to see B leave")
    assert set(cards(a)) == {alice}
    a.save_screenshot(str(tmp_path / "a-after-b-left.png"))
    print(f"screenshots: {tmp_path}")


def test_with_auth_on_pages_sign_up_log_in_and_see_each_other(pages, svc_process, tmp_path):
    svc = svc_process(DATABASE_URL="memory://", JWT_SECRET_KEY="k" * 40)
    room = unique_id("room")
    names = {"a": unique_id("a")[:20], "b": unique_id("b")[:20]}
    a, b = pages(), pages()
    for page, key in ((a, "a"), (b, "b")):
        open_demo(page, svc.base, room)
        assert page.execute_script("return document.body.dataset.auth") == "on"
        fill(page, "join-form", username=names[key], password=f"password of {key}")
        click(page, "signup-button")
        wait(page, lambda d: status(d) == "open", what=f"{key} to sign up and join")
    me_a = a.execute_script("return window.svcDemo.me")
    wait(b, lambda d: me_a in cards(d), what="B to see A")

    fill(a, "profile-form", email="alice@example.org")
    save_display_name(a, "Alice with a token")
    wait(b, lambda d: cards(d)[me_a] == "Alice with a token", LIVE_WITHIN, "B to show A's name")
    wait(a, lambda d: "Saved" in d.find_element("id", "profile-message").text)
    # A's form keeps the email from A's own REST answer (room frames carry it as null).
    assert a.find_element("name", "email").get_attribute("value") == "alice@example.org"
    # A wrong password is refused with the server's message, and nothing joins.
    c = pages()
    open_demo(c, svc.base, room)
    fill(c, "join-form", username=names["a"], password="not the password")
    click(c, "join-button")
    wait(c, lambda d: d.find_element("id", "join-error").text != "", what="a login error")
    assert status(c) == "idle"
    a.save_screenshot(str(tmp_path / "a-auth.png"))


def test_a_private_room_with_tokens_renewed_before_they_expire(pages, svc_process, tmp_path):
    """Tokens live 6 s: the pages stay in the private room for three times that, renewing
    through the demo's callbacks (a new login token, a new demo room token) in band."""
    lifetime = 6
    svc = svc_process(
        DATABASE_URL="memory://",
        BCRYPT_ROUNDS="4",  # each renewal logs in again: the round trip is what is tested
        JWT_SECRET_KEY="k" * 40,
        JWT_LIFETIME=str(lifetime),
        PRIVATE_ROOMS="demo-.*",
        DEMO_ROOM_TOKENS="true",
    )
    a, b = pages(), pages()
    for page, key in ((a, "a"), (b, "b")):
        open_demo(page, svc.base, "lobby")
        click(page, "private-button")
        fill(page, "join-form", username=unique_id(key)[:20], password=f"password of {key}")
        click(page, "signup-button")
        wait(page, lambda d: status(d) == "open", what=f"{key} to join the private room")
        assert page.find_element("id", "room-name").text == "demo-private"
    me_a, me_b = (p.execute_script("return window.svcDemo.me") for p in (a, b))
    wait(a, lambda d: me_b in cards(d), what="A to see B in the private room")
    joined = time.monotonic()

    # Three lifetimes later both are still in, on their first connection, having renewed.
    while time.monotonic() - joined < 3 * lifetime:
        for page in (a, b):
            assert status(page) == "open", page.execute_script(
                "return window.svcDemo.client.lastClose"
            )
        time.sleep(0.5)
    for page in (a, b):
        assert welcomes(page) == 1
        assert page.execute_script("return window.svcDemo.renewals()") >= 3
        assert "Tokens renewed" in page.find_element("id", "log").text
    save_display_name(b, "Bob, renewed")
    wait(a, lambda d: cards(d).get(me_b) == "Bob, renewed", LIVE_WITHIN, "A to see B's name")
    a.save_screenshot(str(tmp_path / "a-private-room.png"))
    assert me_a in cards(b)


# -- the client module's rules -------------------------------------------------------------------

_IMPORT = "const done = arguments[arguments.length - 1];\n"
_RUN = """
import('/static/svc-client.js').then(async (svc) => done(await run(svc)))
  .catch((error) => done({error: String(error && error.stack || error)}));
"""

_STATE_RULES = """
async function run({RoomClient}) {
  const client = new RoomClient('r', {pageMembers: false});
  const events = [];
  for (const type of ['join', 'leave', 'update', 'welcome', 'change', 'message', 'error', 'pong']) {
    client.addEventListener(type, (e) =>
      events.push([type, e.detail.user?.id ?? e.detail.userId ?? e.detail.reason ?? null]));
  }
  const user = (id, version, created = '2026-01-01T00:00:00Z', name = null) => ({
    id, user_id: id, version, created_at: created, updated_at: created,
    profile: {display_name: name, username: id, bio: null, email: null, avatar_url: null,
              avatar_urls: null}});
  const state = () => Object.fromEntries([...client.members].map(([id, u]) =>
    [id, [u.version, u.profile.display_name]]));
  const steps = {};
  const step = (name, frame) => { events.length = 0; if (frame) client.applyFrame(frame);
    steps[name] = {members: state(), count: client.memberCount, events: [...events]}; };
  step('welcome', {type: 'welcome', room: 'r', connection_id: 'c1', member_count: 2,
    members: [user('alice', 2, undefined, 'A2'), {...user('bob', 0, null), created_at: null}]});
  step('presence_repeats_welcome', {type: 'presence', room: 'r', member_count: 2,
    joined: [user('alice', 1, undefined, 'A1')], left: []});
  const updated = (...args) => ({type: 'profile_updated', room: 'r', ...user(...args)});
  const presence = (count, joined, left) =>
    ({type: 'presence', room: 'r', member_count: count, joined, left});
  step('stale_update', updated('alice', 2, undefined, 'old'));
  step('newer_update', updated('alice', 3, undefined, 'A3'));
  step('bob_gets_a_profile', updated('bob', 1, undefined, 'B1'));
  step('update_before_join', updated('carol', 5, undefined, 'C5'));
  step('join_with_older_record', presence(3, [user('carol', 4, undefined, 'C4')], []));
  step('leave', presence(2, [], ['bob', 'nobody']));
  step('leave_again', {type: 'presence', room: 'r', member_count: 2, joined: [], left: ['bob']});
  step('recreated_user', {type: 'profile_updated', room: 'r',
    ...user('alice', 1, '2026-02-01T00:00:00Z', 'new alice')});
  step('unknown_frame', {type: 'from_the_future', room: 'r'});
  step('message', {type: 'message', room: 'r', from: 'carol', data: {hi: 1}});
  step('new_welcome', {type: 'welcome', room: 'r', connection_id: 'c2', member_count: 1,
    members: [user('dave', 7, undefined, 'D7')]});
  step('old_pending_is_gone', {type: 'presence', room: 'r', member_count: 2,
    joined: [user('carol', 4, undefined, 'C4')], left: []});
  return steps;
}
"""


def run_in_page(driver, script: str):
    result = driver.execute_async_script(_IMPORT + script + _RUN)
    assert "error" not in result, result.get("error")
    return result


def test_client_keeps_state_from_welcome_and_frames(pages, svc_process):
    svc = svc_process(DATABASE_URL="memory://")
    page = pages()
    open_demo(page, svc.base, "r")
    steps = run_in_page(page, _STATE_RULES)
    assert steps["welcome"]["members"] == {"alice": [2, "A2"], "bob": [0, None]}
    assert steps["welcome"]["count"] == 2
    assert steps["welcome"]["events"] == [["welcome", None], ["change", "welcome"]]
    # Set updates: a repeat of the welcome, even with an older record, changes nothing.
    assert steps["presence_repeats_welcome"]["members"] == steps["welcome"]["members"]
    assert steps["presence_repeats_welcome"]["events"] == []
    assert steps["stale_update"]["members"]["alice"] == [2, "A2"]
    assert steps["stale_update"]["events"] == []
    assert steps["newer_update"]["members"]["alice"] == [3, "A3"]
    assert steps["newer_update"]["events"] == [["update", "alice"], ["change", "profile_updated"]]
    assert steps["bob_gets_a_profile"]["members"]["bob"] == [1, "B1"]
    # A record that came before its presence frame is kept and wins over an older one.
    assert "carol" not in steps["update_before_join"]["members"]
    assert steps["join_with_older_record"]["members"]["carol"] == [5, "C5"]
    assert steps["join_with_older_record"]["events"] == [["join", "carol"], ["change", "presence"]]
    assert set(steps["leave"]["members"]) == {"alice", "carol"}
    assert steps["leave"]["events"] == [["leave", "bob"], ["change", "presence"]]
    assert steps["leave_again"]["events"] == []
    # Deleted and created again: version 1 of a later creation supersedes version 3.
    assert steps["recreated_user"]["members"]["alice"] == [1, "new alice"]
    assert steps["unknown_frame"]["events"] == []
    assert steps["message"]["events"] == [["message", None]]
    # A new welcome rebuilds the state: nothing of the old one survives.
    assert steps["new_welcome"]["members"] == {"dave": [7, "D7"]}
    assert steps["new_welcome"]["count"] == 1
    assert steps["old_pending_is_gone"]["members"]["carol"] == [4, "C4"]


def test_client_resumes_from_its_seq_and_rebuilds_on_any_other_welcome(pages, svc_process):
    """svc-client.js's resume, frame by frame: the `since` it reconnects with, a resumed
    welcome keeping the state, a replayed event dropped, any other welcome rebuilding."""
    svc = svc_process(DATABASE_URL="memory://")
    page = pages()
    open_demo(page, svc.base, "r")
    steps = run_in_page(page, _RESUME_RULES)
    assert steps["none"]["since"] is None  # nothing to resume from yet
    assert steps["first"] == {"since": "e1:4", "members": ["a"], "seq": 4, "resumes": 0}
    assert steps["after_events"]["since"] == "e1:6"
    assert steps["after_events"]["messages"] == [5]
    # resumed: the state is kept (the welcome lists nobody), the replay's repeat dropped
    assert steps["resumed"] == {
        "since": "e1:7",
        "members": ["a", "b"],
        "seq": 7,
        "resumes": 1,
        "messages": [5, 7],
        "count": 2,
    }
    assert steps["resume_off"]["since"] is None
    # another epoch, or resumed: false, is a first welcome again
    assert steps["new_epoch"] == {
        "since": "e2:1",
        "members": ["c"],
        "seq": 1,
        "resumes": 1,
        "messages": [5, 7],
        "count": 1,
    }
    assert steps["not_resumed"]["members"] == ["d"] and steps["not_resumed"]["since"] == "e2:3"


_RESUME_RULES = """
async function run({RoomClient}) {
  const client = new RoomClient('r', {pageMembers: false, userId: 'a'});
  const messages = [];
  client.addEventListener('message', (e) => messages.push(e.detail.data));
  const user = (id, version) => ({id, user_id: id, version, created_at: null,
    updated_at: null, profile: {display_name: null, username: id, bio: null, email: null,
    avatar_url: null, avatar_urls: null}});
  const welcome = (members, epoch, seq, resumed) => ({type: 'welcome', room: 'r',
    connection_id: 'c', member_count: members.length, members, epoch, seq, resumed});
  const steps = {};
  const step = (name) => { steps[name] = {
    since: client.socketUrl().searchParams.get('since'), members: [...client.members.keys()],
    seq: client.seq, resumes: client.resumes, messages: [...messages],
    count: client.memberCount}; };
  step('none');
  client.applyFrame(welcome([user('a', 1)], 'e1', 4));
  step('first'); delete steps.first.messages; delete steps.first.count;
  client.applyFrame({type: 'message', room: 'r', from: 'b', data: 5, seq: 5});
  client.applyFrame({type: 'presence', room: 'r', joined: [user('b', 1)], left: [],
    member_count: 2, seq: 6});
  step('after_events');
  client.applyFrame({...welcome([], 'e1', 9, true), member_count: 2});
  client.applyFrame({type: 'presence', room: 'r', joined: [], left: ['b'], member_count: 1,
    seq: 6});  // already applied as seq 6: a repeat, dropped
  client.applyFrame({type: 'message', room: 'r', from: 'b', data: 5, seq: 5});  // repeat
  client.applyFrame({type: 'message', room: 'r', from: 'b', data: 7, seq: 7});
  step('resumed');
  client.resume = false; step('resume_off'); client.resume = true;
  client.applyFrame(welcome([user('c', 1)], 'e2', 1, true));  // another history
  step('new_epoch');
  client.applyFrame(welcome([user('d', 1)], 'e2', 3, false));
  step('not_resumed');
  return steps;
}
"""


_CROWD = """
async function run({RoomClient}) {
  const client = new RoomClient(ROOM);
  const welcome = new Promise((resolve) =>
    client.addEventListener('welcome', (e) => resolve(e.detail), {once: true}));
  client.connect();
  const first = await welcome;
  const deadline = Date.now() + 20000;
  while (client.members.size < client.memberCount && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const result = {listed: first.members.length, count: client.memberCount,
                  ids: [...client.members.keys()].sort()};
  client.close();
  return result;
}
"""


def test_client_pages_the_members_a_welcome_leaves_out(pages, svc_process, thread_loop):
    """A welcome lists 100 members; the module fetches the rest from the members route."""
    svc = svc_process(DATABASE_URL="memory://")
    room = unique_id("room")
    crowd = Crowd(svc.base, room, 103)
    thread_loop.run(crowd.open())
    try:
        page = pages()
        open_demo(page, svc.base, room)
        result = run_in_page(page, _CROWD.replace("ROOM", json.dumps(room)))
    finally:
        thread_loop.run(crowd.close())
    assert result["listed"] == 100
    assert result["count"] == 103
    assert result["ids"] == crowd.ids


_CLOSE_CODES = """
async function run({RoomClient}) {
  const outcome = {};
  const closes = (client, n) => new Promise((resolve) => {
    const seen = [];
    client.addEventListener('close', (e) => {
      seen.push({code: e.detail.code, willReconnect: e.detail.willReconnect});
      if (seen.length === n) resolve([...seen]);
    });
  });
  const options = {baseUrl: BASE, backoff: {initial: 20, max: 100}};
  for (const code of [4401, 4403, 4404, 4422]) {  // refused: reconnecting cannot help
    const client = new RoomClient(`code${code}`, options);
    const seen = closes(client, 1);
    client.connect();
    outcome[code] = {closes: await seen, status: client.status, timer: client._timer};
  }
  for (const code of [4503, 1001, 1011, 1013]) {  // passing trouble: try again
    const client = new RoomClient(`code${code}`, options);
    const seen = closes(client, 3);
    client.connect();
    outcome[code] = {closes: await seen};
    client.close();
    outcome[code].status = client.status;
  }
  const flaky = new RoomClient('flaky', options);
  const statuses = [];
  flaky.addEventListener('status', (e) => statuses.push(e.detail.status));
  const welcomed = new Promise((resolve) => flaky.addEventListener('welcome', resolve));
  flaky.connect();
  await welcomed;
  outcome.flaky = {statuses: [...statuses], welcomes: flaky.welcomes,
                   lastClose: flaky.lastClose.code};
  flaky.close();
  outcome.flaky.after_close = flaky.status;

  const badUrl = new RoomClient('r', {baseUrl: 'ftp://example.org'});
  const badSeen = closes(badUrl, 1);
  badUrl.connect();
  outcome.bad_url = {closes: await badSeen, status: badUrl.status};

  let calls = 0;
  const token = async () => {  // a refresh that fails once, as offline
    calls += 1;
    if (calls === 1) throw new Error('offline');
    return 'token-' + calls;
  };
  const tokened = new RoomClient('tokened', {...options, token});
  const tokenSeen = closes(tokened, 1);
  const tokenWelcome = new Promise((resolve) => tokened.addEventListener('welcome', resolve));
  tokened.connect();
  outcome.tokened = {closes: await tokenSeen};
  await tokenWelcome;
  outcome.tokened.calls = calls;
  tokened.close();
  return outcome;
}
"""


def test_client_reconnects_unless_the_server_refused_the_join(pages, svc_process, thread_loop):
    svc = svc_process(DATABASE_URL="memory://")
    server = CloseCodeServer(thread_loop)
    server.start()
    try:
        page = pages()
        # The module comes from svc; sockets go to the test server, which /demo's CSP
        # (connect-src 'self') rightly forbids: /docs is a page of svc without one.
        page.get(f"{svc.base}/docs")
        outcome = run_in_page(page, _CLOSE_CODES.replace("BASE", json.dumps(server.base)))
    finally:
        server.stop()
    for code in ("4401", "4403", "4404", "4422"):
        assert outcome[code]["closes"] == [{"code": int(code), "willReconnect": False}], code
        assert outcome[code]["status"] == "closed"
        assert outcome[code]["timer"] is None
        assert server.connections[f"code{code}"] == 1
    for code in ("4503", "1001", "1011", "1013"):
        assert outcome[code]["closes"] == [{"code": int(code), "willReconnect": True}] * 3
        assert outcome[code]["status"] == "closed"
        assert server.connections[f"code{code}"] >= 3
    flaky = outcome["flaky"]
    assert flaky["statuses"] == ["connecting", "reconnecting", "open"]
    assert flaky["welcomes"] == 1 and flaky["lastClose"] == 4503
    assert flaky["after_close"] == "closed"
    # A baseUrl that is no http(s) URL is final; a token function that fails is retried.
    assert outcome["bad_url"]["closes"] == [{"code": 1006, "willReconnect": False}]
    assert outcome["bad_url"]["status"] == "closed"
    assert outcome["tokened"]["closes"] == [{"code": 1006, "willReconnect": True}]
    assert outcome["tokened"]["calls"] == 2
    assert server.connections["tokened"] == 1
    assert server.tokens["tokened"] == "token-2"  # in the first frame...
    assert server.url_tokens["tokened"] is None  # ...never in the URL, which proxies log


# -- resume: the server killed under two pages -------------------------------------------------

_COLLECT = """
window.got = [];
window.svcDemo.client.addEventListener('message', (e) => window.got.push(e.detail.data));
"""


def got(driver) -> list:
    return driver.execute_script("return window.got")


async def _send(base: str, room: str, data: list) -> None:
    """Messages from a member connected to ``base`` (svc reads a socket's frames in order:
    they are relayed before its close is)."""
    from svc.client import Room

    async with Room(base, room, user_id="sender", page_members=False) as sender:
        for item in data:
            await sender.send(item)


def test_two_pages_resume_after_their_connections_die_and_miss_nothing(
    pages, svc_process, thread_loop
):
    """Both pages reach svc through a relay; the relay dies (every socket through it cut,
    its port closed: to the pages, their server is gone) and comes back on its port after
    ten messages and a profile change of a member who stayed were made on svc meanwhile.
    Each page resumes by itself, with every message once and in order, and the new
    profile, without a rebuild."""
    from browser_helpers import CuttableRelay

    svc = svc_process(DATABASE_URL="memory://")
    relay = CuttableRelay(thread_loop, svc.port)
    relay.start()
    room, alice, bob = unique_id("room"), unique_id("alice"), unique_id("bob")
    stayer = Crowd(svc.base, room, 1)  # a member connected to svc directly, throughout
    thread_loop.run(stayer.open())
    carol = stayer.ids[0]
    a, b = pages(), pages()
    join_open(a, relay.base, room, alice)
    join_open(b, relay.base, room, bob)
    for page in (a, b):
        page.execute_script(_COLLECT)
    thread_loop.run(_send(svc.base, room, list(range(5))))
    for page in (a, b):
        wait(page, lambda d: got(d) == list(range(5)), what="the messages before the cut")

    relay.cut()
    for page in (a, b):
        wait(page, lambda d: status(d) != "open", what="the page to notice the cut")
    thread_loop.run(_send(svc.base, room, list(range(5, 15))))
    thread_loop.run(_rename(svc.base, carol, "renamed while away"))
    relay.start()
    _both_resumed_whole((a, b), carol, {alice, bob, carol})
    thread_loop.run(stayer.close())
    relay.cut()


def _both_resumed_whole(pages: tuple, renamed: str, everyone: set) -> None:
    """Each page reconnected once, resumed, and holds the 15 messages once in order, the
    rename made while it was away and everyone present."""
    for page in pages:
        wait(page, lambda d: status(d) == "open" and welcomes(d) == 2, what="a reconnection")
    for page in pages:
        wait(page, lambda d: len(got(d)) >= 15, what="the messages sent while it was away")
        assert got(page) == list(range(15)), "nothing missed, nothing twice"
        assert page.execute_script("return window.svcDemo.client.resumes") == 1
        wait(page, lambda d: cards(d).get(renamed) == "renamed while away", what="the new name")
        wait(page, lambda d: set(cards(d)) == everyone, what="everyone present")


async def _rename(base: str, user_id: str, name: str) -> None:
    from svc.client import SvcClient

    async with SvcClient(base) as api:
        await api.update_profile(user_id, {"display_name": name})


@pytest.mark.postgres
@pytest.mark.redis
def test_two_pages_resume_after_their_server_is_killed_and_miss_nothing(
    pages, svc_process, postgres_url, redis_url, thread_loop
):
    """Both pages sit on process one; process two shares Postgres and Redis (which holds
    the rooms' history).  Process one is killed (SIGKILL: no goodbye); while it is down, ten
    messages and a profile change of a member on process two go through process two;
    process one starts again on its port.  Each page resumes by itself and has every
    message once, in order, and the new profile, without a new welcome's rebuild."""
    env = {"DATABASE_URL": postgres_url, "BROKER_URL": redis_url}
    one, two = svc_process(**env), svc_process(**env)
    room, alice, bob = unique_id("room"), unique_id("alice"), unique_id("bob")
    stayer = Crowd(two.base, room, 1)  # a member on process two, throughout
    thread_loop.run(stayer.open())
    carol = stayer.ids[0]
    a, b = pages(), pages()
    join_open(a, one.base, room, alice)
    join_open(b, one.base, room, bob)
    for page in (a, b):
        page.execute_script(_COLLECT)
    thread_loop.run(_send(two.base, room, list(range(5))))
    for page in (a, b):
        wait(page, lambda d: got(d) == list(range(5)), what="the messages before the kill")

    one.proc.kill()  # SIGKILL: the pages see their sockets drop (1006)
    one.proc.wait()
    for page in (a, b):
        wait(page, lambda d: status(d) != "open", what="the page to notice the kill")
    thread_loop.run(_send(two.base, room, list(range(5, 15))))
    thread_loop.run(_rename(two.base, carol, "renamed while away"))
    one.start()
    _both_resumed_whole((a, b), carol, {alice, bob, carol})
    thread_loop.run(stayer.close())
