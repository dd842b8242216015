// svc-client.js: a room of svc, kept live in the browser.
//
// A dependency-free ES module (served by svc at /static/svc-client.js; copy it into your
// own app if you like). RoomClient keeps who is present in a room and each member's
// latest record, from the server's `welcome` and the frames after it; it ignores stale
// versions, and reconnects with backoff, resuming where it left off (the events it missed
// follow the welcome) or, when the server cannot, rebuilding its state from the new welcome.
// SvcApi is a thin fetch wrapper for the REST calls a page needs next to it.
// The API is documented in docs/client.md of the svc repository.

/** Backoff between reconnection attempts, in milliseconds. */
export const DEFAULT_BACKOFF = Object.freeze({ initial: 500, max: 10000, factor: 2, jitter: 0.3 });

/** Close codes after which reconnecting is pointless: the server refused this join.
 * 4503 (storage unavailable) is the one 4xxx code worth retrying. */
export function isFinalCloseCode(code) {
  return code >= 4000 && code <= 4999 && code !== 4503;
}

/** Whether record `a` supersedes record `b` of the same user id. */
export function isNewer(a, b) {
  if (!b) return true;
  // A user deleted and created again restarts at version 1: a later creation wins.
  if (a.created_at && b.created_at && a.created_at !== b.created_at) {
    return Date.parse(a.created_at) > Date.parse(b.created_at);
  }
  return a.version > b.version;
}

// Records seen for users not (yet) in our member list: a profile_updated may arrive a
// moment before the presence frame that announces the user. Bounded, oldest dropped first.
const MAX_PENDING = 1000;
const PAGE_LIMIT = 500;

/**
 * A live view of one room.
 *
 * Events (all CustomEvent, the payload in `event.detail`):
 * - `status`  {status, attempt, delay}: 'connecting' | 'open' | 'reconnecting' | 'closed'
 * - `welcome` {connectionId, memberCount, members, resumed}: (re)connected; the state was
 *             rebuilt from this welcome, or (resumed) kept, the missed events following
 * - `join`    {user}: a member arrived (after the welcome)
 * - `update`  {user, previous}: a member's record moved forward
 * - `leave`   {userId, user}: a member left
 * - `change`  {reason}: after any of the four above, and when memberCount moves: re-render here
 * - `message` {from, data}: another member's message
 * - `error`   {code, message}: the server refused one of our frames (the connection stays)
 * - `pong`    {}
 * - `auth`    {expiresAt}: the server took renewed tokens (`auth_ok`); unix seconds
 * - `close`   {code, reason, wasClean, willReconnect, delay}
 */
export class RoomClient extends EventTarget {
  /**
   * @param {string} room  the room id (1 to 64 of A-Z a-z 0-9 _ -)
   * @param {object} [options]
   * @param {string} [options.baseUrl]  svc's http(s) origin; default: the page's
   * @param {string} [options.userId]  join as this user (auth off); neither this nor a
   *     token: watch without being a member
   * @param {string|function} [options.token]  auth on: a JWT, or a function returning
   *     one (or a promise of one), called before every (re)connection and, to renew the
   *     open socket's tokens, a little before they expire. Sent in the first frame, never
   *     in the URL (which proxies log)
   * @param {string|function} [options.roomToken]  a private room: the room token your
   *     backend handed out, or a function returning one (or a promise), called like `token`
   * @param {object} [options.backoff]  overrides of DEFAULT_BACKOFF
   * @param {boolean} [options.pageMembers=true]  fetch the members a welcome leaves out
   *     (it lists at most 100) from GET /rooms/{room}/members
   * @param {boolean} [options.resume=true]  reconnect with `?since=<epoch>:<seq>`, so that
   *     only the events missed are sent, not a whole new welcome
   * @param {function} [options.WebSocket]  the WebSocket class (default: the global one)
   */
  constructor(room, options = {}) {
    super();
    this.room = room;
    this.baseUrl = (options.baseUrl ?? globalThis.location?.origin ?? "").replace(/\/+$/, "");
    this.userId = options.userId ?? null;
    this.token = options.token ?? null;
    this.roomToken = options.roomToken ?? null;
    /** Unix seconds at which the server closes this socket unless renewed, or null. */
    this.expiresAt = null;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.pageMembers = options.pageMembers ?? true;
    this.resume = options.resume ?? true;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    /** @type {Map<string, object>} user id → the latest record of each present member */
    this.members = new Map();
    /** Present users service-wide, as the server counts them (may exceed members.size). */
    this.memberCount = 0;
    this.connectionId = null;
    this.status = "idle";
    /** {code, reason, wasClean} of the last close, or null. */
    this.lastClose = null;
    /** Connections opened so far (1 + reconnections that reached the server). */
    this.welcomes = 0;
    /** How many of those welcomes resumed (kept the state, the missed events following). */
    this.resumes = 0;
    /** The room's history the state came from, and the last event applied: what a
     * reconnection resumes from (null from a server without resume). */
    this.epoch = null;
    this.seq = null;
    this._pending = new Map();
    this._ws = null;
    this._opening = false;
    this._attempt = 0;
    this._timer = null;
    this._stopped = true;
    this._generation = 0; // bumped by every welcome: late page fetches of an old one are dropped
    this._leftWhilePaging = null;
    this._sentTokens = null; // {token, room_token?} last sent: the members route needs one
    this._renewTimer = null;
  }

  /** Open the connection (again, after close()). Returns this. */
  connect() {
    this._stopped = false;
    clearTimeout(this._timer);
    this._timer = null;
    if (!this._ws && !this._opening) this._open();
    return this;
  }

  /** Leave the room for good: no reconnection. */
  close(code = 1000, reason = "") {
    this._stopped = true;
    clearTimeout(this._timer);
    this._timer = null;
    this._cancelRenewal();
    const ws = this._ws;
    this._ws = null; // its own close event is not ours to act on any more
    if (ws) ws.close(code, reason);
    if (this.status !== "closed") {
      this.lastClose = { code, reason, wasClean: true };
      this._emit("close", { ...this.lastClose, willReconnect: false, delay: null });
      this._setStatus("closed");
    }
  }

  /** Relay `data` (any JSON value, at most 8 KiB serialised) to the room's other connections. */
  send(data) {
    return this._send({ type: "message", data });
  }

  /** Ask for a `pong` (a liveness check of the connection). */
  ping() {
    return this._send({ type: "ping" });
  }

  /** The latest record of a present member, or undefined. */
  get(userId) {
    return this.members.get(userId);
  }

  /** Apply one server frame (already parsed). Public so that state handling can be tested
   * without a server and frames from elsewhere (a service worker, a replay) can be fed. */
  applyFrame(frame) {
    if (frame.type !== "welcome" && this._isRepeat(frame)) return undefined;
    switch (frame.type) {
      case "welcome":
        return this._onWelcome(frame);
      case "presence":
        return this._onPresence(frame);
      case "profile_updated":
        return this._onProfile(frame);
      case "message":
        return this._emit("message", { from: frame.from, data: frame.data });
      case "error":
        return this._emit("error", { code: frame.code, message: frame.message });
      case "pong":
        return this._emit("pong", {});
      case "auth_ok":
        this._renewBefore(frame.expires_at);
        return this._emit("auth", { expiresAt: frame.expires_at });
      default:
        return undefined; // a newer server's frame: ignored, as a client should
    }
  }

  // -- the connection ----------------------------------------------------------------

  async _open() {
    this._setStatus(this._attempt ? "reconnecting" : "connecting");
    const failed = (err, final) =>
      this._closed({ code: 1006, reason: String(err?.message ?? err), wasClean: false }, final);
    let url;
    try {
      url = this.socketUrl();
    } catch (err) {
      return failed(err, true); // a baseUrl that is no URL: retrying cannot help
    }
    let tokens = null;
    if (this.token) {
      this._opening = true;
      try {
        tokens = await this._freshTokens();
      } catch (err) {
        return failed(err, false); // a token refresh that failed (offline?): try again later
      } finally {
        this._opening = false;
      }
      if (this._stopped) return undefined;
    }
    let ws;
    try {
      ws = new this.WebSocket(url.href);
    } catch (err) {
      return failed(err, true); // a URL the browser will not even try
    }
    this._ws = ws;
    if (tokens) {
      // The first frame: svc waits up to 5 s for it, then answers with the welcome.
      ws.onopen = () => {
        if (this._ws === ws) ws.send(JSON.stringify({ type: "auth", ...tokens }));
      };
    }
    ws.onmessage = (event) => {
      if (this._ws !== ws || typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // svc sends strict JSON only; anything else is not ours to act on
      }
      this.applyFrame(frame);
    };
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._closed({ code: event.code, reason: event.reason, wasClean: event.wasClean });
    };
    return undefined;
  }

  /** Whether an event was applied already (a resume replays from our seq on); if not, it
   * moves the seq forward. Frames without a seq (pong, error, an old server) pass. */
  _isRepeat(frame) {
    if (typeof frame.seq !== "number") return false;
    if (this.seq !== null && frame.seq <= this.seq) return true;
    this.seq = frame.seq;
    return false;
  }

  /** The room's WebSocket URL (a URL object), without the token. */
  socketUrl() {
    const url = new URL(this.baseUrl || "/", globalThis.location?.href);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`baseUrl must be an http(s) URL, not ${this.baseUrl}`);
    }
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws/${encodeURIComponent(this.room)}`;
    url.search = "";
    url.hash = "";
    if (!this.token && this.userId) url.searchParams.set("user_id", this.userId);
    if (this.resume && this.epoch !== null && this.seq !== null) {
      url.searchParams.set("since", `${this.epoch}:${this.seq}`);
    }
    return url;
  }

  _closed(info, final = false) {
    this.lastClose = info;
    this._cancelRenewal();
    const willReconnect = !this._stopped && !final && !isFinalCloseCode(info.code);
    let delay = null;
    if (willReconnect) {
      const { initial, max, factor, jitter } = this.backoff;
      const base = Math.min(max, initial * factor ** this._attempt);
      delay = Math.round(base * (1 - jitter + 2 * jitter * Math.random()));
      this._attempt += 1;
      this._timer = setTimeout(() => {
        this._timer = null;
        if (!this._stopped && !this._ws && !this._opening) this._open();
      }, delay);
    } else {
      this._stopped = true;
    }
    this._emit("close", { ...info, willReconnect, delay });
    this._setStatus(willReconnect ? "reconnecting" : "closed", delay);
  }

  // -- tokens ------------------------------------------------------------------------------

  /** {token, room_token?} from the options (their functions called now). */
  async _freshTokens() {
    const call = (value) => (typeof value === "function" ? value() : value);
    const [token, roomToken] = await Promise.all([call(this.token), call(this.roomToken)]);
    const tokens = { token };
    if (roomToken) tokens.room_token = roomToken;
    this._sentTokens = tokens;
    return tokens;
  }

  /** Renew a little before `expiresAt` (a third of what is left, 2 s to 30 s before it:
   * the page's callbacks and a round trip must fit in that on a slow device), if a function
   * can give fresh tokens; a fixed token simply lives until it expires. */
  _renewBefore(expiresAt) {
    this._cancelRenewal();
    this.expiresAt = expiresAt ?? null;
    const renewable = typeof this.token === "function" || typeof this.roomToken === "function";
    if (expiresAt == null || !renewable || this._stopped) return;
    const left = expiresAt * 1000 - Date.now();
    const margin = Math.min(30000, Math.max(2000, left / 3));
    // At least a second apart (or half of what is left): callbacks that hand back the same
    // tokens must not make a renewal loop.
    const delay = Math.max(left - margin, Math.min(1000, left / 2));
    this._renewTimer = setTimeout(() => this._renew(), Math.max(0, delay));
  }

  async _renew() {
    this._renewTimer = null;
    const ws = this._ws;
    let tokens;
    try {
      tokens = await this._freshTokens();
    } catch (err) {
      // The page's callback failed (offline?): try again soon, while there is time.
      this._emit("error", { code: "token_refresh_failed", message: String(err?.message ?? err) });
      if (this._ws === ws && this.expiresAt != null) {
        this._renewTimer = setTimeout(() => this._renew(), 1000);
      }
      return;
    }
    // Answered by auth_ok (which schedules the next renewal) or an invalid_token error.
    if (this._ws === ws) this._send({ type: "auth", ...tokens });
  }

  _cancelRenewal() {
    clearTimeout(this._renewTimer);
    this._renewTimer = null;
  }

  _send(frame) {
    if (!this._ws || this._ws.readyState !== 1) return false;
    this._ws.send(JSON.stringify(frame));
    return true;
  }

  // -- the state -------------------------------------------------------------------------

  _onWelcome(frame) {
    this._attempt = 0; // the server took us: the next outage starts its backoff afresh
    this.welcomes += 1;
    this.connectionId = frame.connection_id;
    if (this._sentTokens) this._renewBefore(tokensExpiry(this._sentTokens));
    this.memberCount = frame.member_count;
    if (frame.resumed === true && frame.epoch === this.epoch && this.seq !== null) {
      // The server holds every event since our seq and sends them next, in order: the
      // state we hold carries on (a page fetch of the last welcome stays valid too).
      this.resumes += 1;
      this._setStatus("open");
      this._emit("welcome", {
        connectionId: this.connectionId,
        memberCount: this.memberCount,
        members: [...this.members.values()],
        resumed: true,
      });
      this._emit("change", { reason: "resumed" });
      return;
    }
    this._generation += 1;
    this.epoch = frame.epoch ?? null;
    this.seq = frame.seq ?? null;
    // Rebuilt, not merged: whatever happened while we were away is in this welcome.
    this.members = new Map();
    this._pending = new Map();
    this._leftWhilePaging = null; // an older welcome's paging is abandoned (generation)
    for (const user of frame.members) this.members.set(user.id, user);
    this._setStatus("open");
    this._emit("welcome", {
      connectionId: this.connectionId,
      memberCount: this.memberCount,
      members: [...this.members.values()],
      resumed: false,
    });
    this._emit("change", { reason: "welcome" });
    if (this.pageMembers && this.memberCount > this.members.size) {
      this._fetchRest(this._generation);
    }
  }

  _onPresence(frame) {
    // Set updates: a presence frame may repeat what the welcome already said.
    let changed = frame.member_count !== this.memberCount;
    this.memberCount = frame.member_count;
    for (const userId of frame.left) {
      this._pending.delete(userId);
      this._leftWhilePaging?.add(userId);
      const user = this.members.get(userId);
      if (user) {
        this.members.delete(userId);
        this._emit("leave", { userId, user });
        changed = true;
      }
    }
    for (const user of frame.joined) {
      this._leftWhilePaging?.delete(user.id);
      changed = this._merge(user, true) || changed;
    }
    if (changed) this._emit("change", { reason: "presence" });
  }

  _onProfile(frame) {
    const { type, room, ...user } = frame; // the rest is the whole user record
    if (this._merge(user, false)) this._emit("change", { reason: "profile_updated" });
  }

  /** Take `user` if it is newer than what we hold; `present`: it is known to be in the room. */
  _merge(user, present) {
    const previous = this.members.get(user.id);
    if (previous) {
      if (!isNewer(user, previous)) return false; // stale: an older version came late
      this.members.set(user.id, user);
      this._emit("update", { user, previous });
      return true;
    }
    const pending = this._pending.get(user.id);
    if (!present) {
      // Not announced yet: keep it for the presence frame that will follow.
      if (isNewer(user, pending)) {
        this._pending.delete(user.id);
        this._pending.set(user.id, user);
        if (this._pending.size > MAX_PENDING) {
          this._pending.delete(this._pending.keys().next().value);
        }
      }
      return false;
    }
    this._pending.delete(user.id);
    const latest = pending && isNewer(pending, user) ? pending : user;
    this.members.set(user.id, latest);
    this._emit("join", { user: latest });
    return true;
  }

  async _fetchRest(generation) {
    // The welcome listed the first members; page through the rest. Members who leave
    // meanwhile must not come back from a page read before they left.
    this._leftWhilePaging = new Set();
    let cursor = null;
    try {
      do {
        const url = new URL(
          `${this.baseUrl}/rooms/${encodeURIComponent(this.room)}/members`,
          globalThis.location?.href,
        );
        url.searchParams.set("limit", String(PAGE_LIMIT));
        if (cursor) url.searchParams.set("cursor", cursor);
        // A private room's members are for bearers of its room token.
        const roomToken = this._sentTokens?.room_token;
        const init = roomToken ? { headers: { Authorization: `Bearer ${roomToken}` } } : {};
        const response = await fetch(url, init);
        if (!response.ok || generation !== this._generation) return;
        const page = await response.json();
        if (generation !== this._generation) return;
        let changed = false;
        for (const user of page.members) {
          if (!this._leftWhilePaging.has(user.id)) changed = this._merge(user, true) || changed;
        }
        if (changed) this._emit("change", { reason: "members_page" });
        cursor = page.next_cursor;
      } while (cursor);
    } catch {
      // Network trouble: the members listed so far stay; the next welcome tries again.
    } finally {
      if (generation === this._generation) this._leftWhilePaging = null;
    }
  }

  _setStatus(status, delay = null) {
    // The same status again is news only as a new reconnection delay.
    if (status === this.status && delay == null) return;
    this.status = status;
    this._emit("status", { status, attempt: this._attempt, delay });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** The earliest `exp` (unix seconds) of the tokens, read without checking signatures. */
export function tokensExpiry(tokens) {
  const times = Object.values(tokens)
    .map((token) => {
      try {
        return jwtClaims(token).exp;
      } catch {
        return undefined;
      }
    })
    .filter((exp) => typeof exp === "number");
  return times.length ? Math.min(...times) : null;
}

/** The claims of a JWT, read without checking the signature (only the server can). */
export function jwtClaims(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "=")));
}

/** An error answer of svc: {status, code, message, fields}. */
export class SvcError extends Error {
  constructor(status, code, message, fields = null) {
    super(message);
    this.name = "SvcError";
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

/** The REST calls a live page needs, with the bearer token when there is one. */
export class SvcApi {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl]  svc's http(s) origin; default: the page's
   * @param {string} [options.token]  a JWT from login(); sent as Authorization: Bearer
   */
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl ?? globalThis.location?.origin ?? "").replace(/\/+$/, "");
    this.token = options.token ?? null;
  }

  /** POST /auth/token; keeps the token for the calls after it and returns it. */
  async login(username, password) {
    const answer = await this.request("POST", "/auth/token", { username, password });
    this.token = answer.access_token;
    return answer;
  }

  /** The user id a token was issued to (its `sub`), read without checking the signature. */
  static tokenSubject(token) {
    return jwtClaims(token).sub;
  }

  /** POST /demo/room-token: a room token for the demo's own private room (demo-only: it
   * answers only where the server sets DEMO_ROOM_TOKENS; real apps get one from their
   * own backend). */
  demoRoomToken() {
    return this.request("POST", "/demo/room-token");
  }

  getUser(userId) {
    return this.request("GET", `/users/${encodeURIComponent(userId)}`);
  }

  /** POST /users: body holds profile fields (username required), optional password and id. */
  createUser(body) {
    return this.request("POST", "/users", body);
  }

  /** PUT /users/{id}/profile: fields present are set, null clears one. `version`, when
   * given, is sent as If-Match: the update fails with 412 if the user moved on. */
  updateProfile(userId, changes, { version } = {}) {
    const headers = version === undefined ? {} : { "If-Match": `"${version}"` };
    return this.request("PUT", `/users/${encodeURIComponent(userId)}/profile`, changes, headers);
  }

  async request(method, path, body = undefined, headers = {}) {
    const init = { method, headers: { ...headers } };
    if (this.token) init.headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(this.baseUrl + path, init);
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok) {
      const error = json?.error ?? {};
      throw new SvcError(
        response.status,
        error.code ?? "http_error",
        error.message ?? `${method} ${path}: HTTP ${response.status}`,
        error.fields ?? null,
      );
    }
    return json;
  }
}
