// The /demo page: a join form, your profile form, and the room's member cards, kept live by
// svc-client.js. Everything about the room's state lives in RoomClient; this file only draws.

import { RoomClient, SvcApi, SvcError, jwtClaims } from "./svc-client.js";

const PROFILE_FIELDS = ["display_name", "username", "bio", "email", "avatar_url"];
const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;
const LOG_LINES = 30;
/** The one room POST /demo/room-token signs for (demo-only; docs/auth.md). */
const DEMO_PRIVATE_ROOM = "demo-private";

const authOn = document.body.dataset.auth === "on";
const $ = (selector) => document.querySelector(selector);
const joinForm = $("#join-form");
const profileForm = $("#profile-form");

// svc is where this page came from, prefix included when a proxy mounts it under a path.
const baseUrl = new URL(".", location.href).href;
const api = new SvcApi({ baseUrl });
let client = null;
let me = null; // our user id
let formVersion = null; // the version the profile form was filled from
let formBaseline = {}; // the profile it was filled with: a save sends what differs
let formDirty = false;
const flashing = new Set();
// Demo-only: the page has no backend to get fresh tokens from, so it keeps what it logged in
// with, in memory (never stored), to log in again before the token expires. A real app asks
// its own backend (a session, a refresh token) instead.
let credentials = null;
let renewals = 0;

document.body.classList.add(authOn ? "auth" : "open");
const params = new URLSearchParams(location.search);
for (const name of ["room", "user_id", "username"]) {
  if (params.get(name)) joinForm.elements[name].value = params.get(name);
}
if (params.get("user")) joinForm.elements.user_id.value = params.get("user");
if (!authOn) joinForm.elements.user_id.required = true;

// -- joining ---------------------------------------------------------------------------

joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  join(false);
});
$("#signup-button").addEventListener("click", () => {
  if (joinForm.reportValidity()) join(true);
});

async function join(signUp) {
  const form = joinForm.elements;
  const room = form.room.value.trim();
  $("#join-error").textContent = "";
  try {
    if (authOn) {
      const username = form.username.value.trim();
      if (signUp) await api.createUser({ username, password: form.password.value });
      const { access_token: token } = await api.login(username, form.password.value);
      credentials = { username, password: form.password.value };
      me = SvcApi.tokenSubject(token);
    } else {
      me = form.user_id.value.trim();
      await ensureUser(me);
    }
    fillProfile(await api.getUser(me));
  } catch (err) {
    $("#join-error").textContent = describe(err);
    return;
  }
  // Token functions, not the tokens: RoomClient asks again on every reconnection and, to
  // renew the open socket, a little before they expire.
  const who = authOn ? { token: freshLoginToken } : { userId: me };
  if (authOn && room === DEMO_PRIVATE_ROOM) {
    try {
      await demoRoomToken(); // 404 where the server does not hand them out: say so now
    } catch (err) {
      $("#join-error").textContent =
        err instanceof SvcError && err.status === 404
          ? "The demo's private room is off on this server (DEMO_ROOM_TOKENS is not set)."
          : describe(err);
      return;
    }
    who.roomToken = demoRoomToken;
  }
  renewals = 0;
  client = new RoomClient(room, { baseUrl, ...who });
  for (const type of ["status", "change", "join", "leave", "update", "welcome", "close", "auth"]) {
    client.addEventListener(type, onRoomEvent);
  }
  client.connect();
  window.svcDemo = { client, api, me, renewals: () => renewals };
  $("#room-name").textContent = room;
  $("#me").textContent = `(${me})`;
  $("#join").classList.add("hidden");
  $("#room").classList.remove("hidden");
}

/** The login token, or a new one once half of its life is gone (demo-only: see above). */
async function freshLoginToken() {
  const { iat, exp } = jwtClaims(api.token);
  if (exp - Date.now() / 1000 > (exp - iat) / 2) return api.token;
  await api.login(credentials.username, credentials.password);
  return api.token;
}

/** A room token for the demo's private room, from svc's demo-only route. */
async function demoRoomToken() {
  return (await api.demoRoomToken()).room_token;
}

$("#private-button").addEventListener("click", () => {
  joinForm.elements.room.value = DEMO_PRIVATE_ROOM;
});

/** Open mode: a new id gets a user whose username is the id (or close to it). */
async function ensureUser(userId) {
  try {
    await api.getUser(userId);
    return;
  } catch (err) {
    if (!(err instanceof SvcError) || err.status !== 404) throw err;
  }
  let username = USERNAME.test(userId) ? userId : `${userId}-demo`.slice(0, 32).padEnd(3, "_");
  for (let tries = 0; ; tries += 1) {
    try {
      await api.updateProfile(userId, { username });
      return;
    } catch (err) {
      // Usernames are unique: someone has this one, so add a few random characters.
      if (!(err instanceof SvcError) || err.status !== 409 || tries >= 2) throw err;
      username = `${username.slice(0, 27)}-${Math.random().toString(36).slice(2, 6)}`;
    }
  }
}

$("#leave-button").addEventListener("click", () => {
  client?.close(1000, "left");
  client = null;
  $("#room").classList.add("hidden");
  $("#join").classList.remove("hidden");
  setStatus("idle", "not connected");
});

// -- the profile form -----------------------------------------------------------------

function fillProfile(user, { keepEmail = false } = {}) {
  // Email is private: room frames carry null, so one from a frame keeps the email we had.
  const profile = { ...user.profile };
  if (keepEmail) profile.email = formBaseline.email ?? null;
  for (const name of PROFILE_FIELDS) profileForm.elements[name].value = profile[name] ?? "";
  formBaseline = profile;
  formVersion = user.version;
  formDirty = false;
}

profileForm.addEventListener("input", () => {
  formDirty = true;
});

profileForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const changes = {};
  for (const name of PROFILE_FIELDS) {
    const value = profileForm.elements[name].value.trim() || null; // empty clears a field
    if (value !== (formBaseline[name] ?? null)) changes[name] = value;
  }
  const message = $("#profile-message");
  message.className = "";
  if (!Object.keys(changes).length) {
    message.textContent = "Nothing changed.";
    return;
  }
  try {
    // If-Match: a change made elsewhere since the form was filled is not overwritten.
    const user = await api.updateProfile(me, changes, { version: formVersion || undefined });
    fillProfile(user);
    message.textContent = `Saved: version ${user.version}.`;
  } catch (err) {
    message.className = "error";
    if (err instanceof SvcError && err.status === 412) {
      fillProfile(await api.getUser(me));
      message.textContent = "Your profile changed elsewhere meanwhile: here it is now; try again.";
    } else {
      message.textContent = describe(err);
    }
  }
});

// -- the room ----------------------------------------------------------------------------

function onRoomEvent(event) {
  const { type, detail } = event;
  switch (type) {
    case "status":
      return showStatus(detail);
    case "welcome":
      if (detail.resumed) return log(`Resumed, nothing missed: ${detail.memberCount} present`);
      return log(
        client.welcomes > 1
          ? `Reconnected: ${detail.memberCount} present`
          : `Joined: ${detail.memberCount} present`,
      );
    case "join":
      return log(`${nameOf(detail.user)} joined`);
    case "leave":
      return log(`${nameOf(detail.user)} left`);
    case "update":
      flashing.add(detail.user.id);
      setTimeout(() => flashing.delete(detail.user.id), 1200);
      if (detail.user.id === me && !formDirty && detail.user.version > formVersion) {
        fillProfile(detail.user, { keepEmail: true }); // saved from another tab
      }
      return log(`${nameOf(detail.user)} updated (version ${detail.user.version})`);
    case "auth":
      renewals += 1;
      return log(`Tokens renewed: good until ${new Date(detail.expiresAt * 1000).toLocaleTimeString()}`);
    case "close":
      if (detail.willReconnect) return undefined;
      return log(`Disconnected (${detail.code}${detail.reason ? `: ${detail.reason}` : ""})`);
    case "change":
      return renderMembers();
    default:
      return undefined;
  }
}

function showStatus({ status, delay }) {
  const close = client?.lastClose;
  const text = {
    connecting: "connecting…",
    open: "live",
    reconnecting: delay == null ? "reconnecting…" : `reconnecting in ${(delay / 1000).toFixed(1)} s`,
    closed: close ? `closed (${close.code}${close.reason ? `: ${close.reason}` : ""})` : "closed",
  }[status];
  setStatus(status, text ?? status);
  if (status === "reconnecting" && delay != null) log(`Connection lost (${close?.code}); ${text}`);
}

function setStatus(status, text) {
  const pill = $("#status");
  pill.dataset.status = status;
  pill.textContent = text;
}

function renderMembers() {
  const users = [...client.members.values()].sort((a, b) =>
    nameOf(a).localeCompare(nameOf(b), undefined, { sensitivity: "base" }),
  );
  $("#member-count").textContent = `${client.memberCount} present`;
  $("#members").replaceChildren(...users.map(card));
}

function card(user) {
  const item = el("li", "card");
  item.dataset.userId = user.id;
  item.dataset.version = String(user.version);
  if (user.id === me) item.classList.add("me");
  if (flashing.has(user.id)) item.classList.add("flash");
  item.append(avatar(user));
  const body = el("div", "card-body");
  const title = el("div", "name", nameOf(user));
  if (user.id === me) title.append(el("span", "badge", "you"));
  body.append(title);
  const handle = user.profile.username ? `@${user.profile.username} · ` : "";
  body.append(el("div", "meta muted", `${handle}${user.id} · v${user.version}`));
  if (user.profile.bio) body.append(el("p", "bio", user.profile.bio));
  if (user.version === 0) body.append(el("p", "bio muted", "no profile yet"));
  item.append(body);
  return item;
}

function avatar(user) {
  const url = user.profile.avatar_url;
  if (url) {
    const img = el("img", "avatar");
    img.alt = "";
    img.referrerPolicy = "no-referrer";
    img.src = url;
    return img;
  }
  const initials = nameOf(user)
    .split(/[\s._-]+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((word) => word[0].toUpperCase())
    .join("");
  const circle = el("div", "avatar initials", initials || "?");
  circle.style.setProperty("--hue", String(hue(user.id)));
  return circle;
}

function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function nameOf(user) {
  return user?.profile?.display_name || user?.profile?.username || user?.id || "someone";
}

function log(text) {
  const line = el("li", "", `${new Date().toLocaleTimeString()}  ${text}`);
  const list = $("#log");
  list.prepend(line);
  while (list.children.length > LOG_LINES) list.lastChild.remove();
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function describe(err) {
  if (!(err instanceof SvcError)) return `Could not reach svc (${err.message ?? err}).`;
  const fields = err.fields
    ? Object.entries(err.fields)
        .map(([name, problems]) => `${name}: ${[].concat(problems).join(" ")}`)
        .join("; ")
    : "";
  return fields ? `${err.message} (${fields})` : err.message;
}
