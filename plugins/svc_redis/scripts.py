"""The Lua scripts that decide presence transitions atomically, and the keys they use.

Each svc process is a *node* (a random id).  With ``P`` the URL's prefix:

- ``P:nodes``: sorted set, node → the server time (ms) after which it is dead;
  every heartbeat pushes the node's deadline ``node_ttl`` ahead.
- ``P:held:NODE``: set of the (room, user) pairs NODE holds (its index, so a
  dead node's members can be found).
- ``P:holders:PAIR``: set of the nodes holding PAIR.
- ``P:room:ROOM``: sorted set (all scores 0, so in id order) of the users
  present in ROOM service-wide: paging is ``ZRANGE ... BYLEX`` after an id.
- ``P:bus``: the one pub/sub channel.  One channel is one order: every node
  sees every event in the same order, its own included.
- ``P:rooms_of:USER``: set of the rooms where USER is present (a change is numbered
  in each of them).
- ``P:epoch:ROOM``, ``P:seq:ROOM``, ``P:hist:ROOM``: the room's epoch, its last event
  number and its last ``ROOM_HISTORY`` events (``ms|payload``), all three expiring
  ``ROOM_HISTORY_TTL`` after the room's last event.  A room whose keys are gone (expired,
  or Redis restarted empty) draws a new epoch (server time and ``P:epochs``) at its next
  event: nobody resumes across the loss.

Every room event (a message, a presence transition, a change in each room where its user
is present) is numbered, kept and published by one script (:data:`_NUMBER`), so the
channel's order is the number order and nothing else can interleave.

A pair is ``len(room) ":" room user``: unambiguous whatever the ids hold.
A node holds a pair or does not (its own process counts the connections), so
joining twice is harmless: that is what lets a node re-join everything it
holds after Redis lost its state (a restart) or expired it (a long outage).

"First holder anywhere" is ``ZADD NX`` answering 1; "last one" is the
holders set becoming empty.  Both happen inside a script, as does the
``PUBLISH`` of the transition, so no other node can interleave.  Time is the
Redis server's (``TIME``), so clocks of the svc hosts do not matter.
"""

from __future__ import annotations


def pair(room_id: str, user_id: str) -> str:
    return f"{len(room_id)}:{room_id}{user_id}"


# Scripts call TIME then write: allowed with effects replication (the default
# since Redis 5; the call makes it explicit for Redis 3.2-4).
_EFFECTS = "if redis.replicate_commands then redis.replicate_commands() end\n"

_NOW_MS = """
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Room event numbers (see the module's docstring).  size: events kept (0: none); ttl: ms.
_NUMBER = (
    _NOW_MS
    + """
local function next_number(prefix, room, ttl)
    local ek = prefix .. ':epoch:' .. room
    local sk = prefix .. ':seq:' .. room
    local epoch = redis.call('GET', ek)
    if not epoch then
        local t = redis.call('TIME')
        epoch = t[1] .. t[2] .. '-' .. redis.call('INCR', prefix .. ':epochs')
        redis.call('SET', ek, epoch)
        redis.call('DEL', sk, prefix .. ':hist:' .. room)
    end
    local seq = redis.call('INCR', sk)
    redis.call('PEXPIRE', ek, ttl)
    redis.call('PEXPIRE', sk, ttl)
    return epoch, seq
end

local function keep(prefix, room, size, ttl, payload)
    if size > 0 then
        local hk = prefix .. ':hist:' .. room
        redis.call('RPUSH', hk, now_ms() .. '|' .. payload)
        redis.call('LTRIM', hk, -size, -1)
        redis.call('PEXPIRE', hk, ttl)
    end
end

local function publish_numbered(prefix, channel, room, size, ttl, payload)
    local epoch, seq = next_number(prefix, room, ttl)
    local stamped = string.sub(payload, 1, -2) .. ',"e":"' .. epoch .. '","q":' .. seq .. '}'
    keep(prefix, room, size, ttl, stamped)
    redis.call('PUBLISH', channel, stamped)
    return {epoch, seq}
end
"""
)

#: ARGV: prefix, channel, room, payload, size, ttl.  A room message: {epoch, seq}.
MESSAGE = (
    _EFFECTS
    + _NUMBER
    + """
return publish_numbered(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[4])
"""
)

#: ARGV: prefix, channel, user, payload, size, ttl.  A change, numbered in every room where
#: the user is present (``"q": {room: [epoch, seq]}``), kept in each and published once.
CHANGE = (
    _EFFECTS
    + _NUMBER
    + """
local prefix, channel, size, ttl = ARGV[1], ARGV[2], tonumber(ARGV[5]), tonumber(ARGV[6])
local rooms = redis.call('SMEMBERS', prefix .. ':rooms_of:' .. ARGV[3])
local payload = ARGV[4]
if #rooms > 0 then
    local numbers = {}
    for _, room in ipairs(rooms) do
        local epoch, seq = next_number(prefix, room, ttl)
        numbers[room] = {epoch, seq}
    end
    payload = string.sub(payload, 1, -2) .. ',"q":' .. cjson.encode(numbers) .. '}'
    for _, room in ipairs(rooms) do
        keep(prefix, room, size, ttl, payload)
    end
end
redis.call('PUBLISH', channel, payload)
return #rooms
"""
)

#: ARGV: prefix, room, ttl.  {epoch, last seq} (an epoch is drawn for a room without one).
POSITION = """
local prefix, room = ARGV[1], ARGV[2]
local ek = prefix .. ':epoch:' .. room
local epoch = redis.call('GET', ek)
if not epoch then
    local t = redis.call('TIME')
    epoch = t[1] .. t[2] .. '-' .. redis.call('INCR', prefix .. ':epochs')
    redis.call('SET', ek, epoch, 'PX', tonumber(ARGV[3]))
    redis.call('DEL', prefix .. ':seq:' .. room, prefix .. ':hist:' .. room)
    return {epoch, 0}
end
return {epoch, tonumber(redis.call('GET', prefix .. ':seq:' .. room) or '0')}
"""

#: ARGV: prefix, room.  {epoch or false, last seq, now (ms), kept entries...}.
HISTORY = (
    _NOW_MS
    + """
local prefix, room = ARGV[1], ARGV[2]
local epoch = redis.call('GET', prefix .. ':epoch:' .. room)
local seq = tonumber(redis.call('GET', prefix .. ':seq:' .. room) or '0')
local result = {epoch or false, seq, now_ms()}
for _, entry in ipairs(redis.call('LRANGE', prefix .. ':hist:' .. room, 0, -1)) do
    result[#result + 1] = entry
end
return result
"""
)

#: KEYS: nodes, held, holders, room.  ARGV: node, pair, user, channel, payload, prefix,
#: room, size, ttl.  Returns -1 when the node is not registered (expired, or Redis lost its
#: state): the caller registers again and re-joins all it holds.  Else 1 if
#: the user just became present (and the payload was numbered and published), 0 if not.
JOIN = (
    _EFFECTS
    + _NUMBER
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return -1 end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
if redis.call('ZADD', KEYS[4], 'NX', 0, ARGV[3]) == 1 then
    redis.call('SADD', ARGV[6] .. ':rooms_of:' .. ARGV[3], ARGV[7])
    publish_numbered(ARGV[6], ARGV[4], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[5])
    return 1
end
return 0
"""
)

#: KEYS: held, holders, room.  ARGV: node, pair, user, channel, payload, prefix, room,
#: size, ttl.  1 if the user just left (their last holder anywhere; published), else 0.
#: A pair the node does not hold (expired meanwhile) is 0: its departure was
#: announced when it was expired.
LEAVE = (
    _EFFECTS
    + _NUMBER
    + """
if redis.call('SREM', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[2]) > 0 then return 0 end
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('SREM', ARGV[6] .. ':rooms_of:' .. ARGV[3], ARGV[7])
publish_numbered(ARGV[6], ARGV[4], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[5])
return 1
"""
)

# Removes NODE and everything it held; announces the users only it held.
_DROP = """
local function drop(prefix, channel, node, size, ttl)
    local held = prefix .. ':held:' .. node
    for _, p in ipairs(redis.call('SMEMBERS', held)) do
        local n = tonumber(string.match(p, '^(%d+):'))
        local start = #tostring(n) + 2
        local room = string.sub(p, start, start + n - 1)
        local user = string.sub(p, start + n)
        local holders = prefix .. ':holders:' .. p
        redis.call('SREM', holders, node)
        if redis.call('SCARD', holders) == 0 then
            if redis.call('ZREM', prefix .. ':room:' .. room, user) == 1 then
                redis.call('SREM', prefix .. ':rooms_of:' .. user, room)
                local left = {t = 'p', r = room, u = user, p = false}
                publish_numbered(prefix, channel, room, size, ttl, cjson.encode(left))
            end
        end
    end
    redis.call('DEL', held)
    redis.call('ZREM', prefix .. ':nodes', node)
end
"""

#: KEYS: nodes.  ARGV: node, node_ttl (ms).  (Re-)registers the node.
REGISTER = (
    _EFFECTS
    + _NOW_MS
    + """
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)

#: KEYS: nodes.  ARGV: node, node_ttl (ms), prefix, channel, most nodes to expire, size, ttl.
#: Pushes the node's deadline ahead, if it is still registered (else registers
#: nothing: the caller re-joins first), then expires up to ARGV[5] dead nodes,
#: announcing who left with them.  Returns {1 if it was registered else 0,
#: the ids of the nodes it expired...}.
HEARTBEAT = (
    _EFFECTS
    + _NUMBER
    + _DROP
    + """
local now = now_ms()
local alive = 0
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
    alive = 1
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
local result = {alive}
for _, node in ipairs(dead) do
    drop(ARGV[3], ARGV[4], node, tonumber(ARGV[6]), tonumber(ARGV[7]))
    result[#result + 1] = node
end
return result
"""
)

#: ARGV: prefix, channel, node, size, ttl.  A clean goodbye: the node's members leave now.
GOODBYE = (
    _EFFECTS
    + _NUMBER
    + _DROP
    + """
drop(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
return 1
"""
)

#: KEYS: nodes.  ARGV: node, node_ttl (ms), prefix, channel, size, ttl, then for each pair
#: to hold: room, user, pair, payload.  (Re-)registers the node and holds every pair, as JOIN
#: does each (publishing the payload of a user who just became present).  Returns,
#: per pair, 1 if its user just became present, else 0.  The re-join after Redis
#: lost its state: one script for hundreds of pairs, not a round trip each.
REJOIN = (
    _EFFECTS
    + _NUMBER
    + """
local prefix, channel, node = ARGV[3], ARGV[4], ARGV[1]
local size, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), node)
local held = prefix .. ':held:' .. node
local joined = {}
for i = 7, #ARGV, 4 do
    local room, user, p = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    redis.call('SADD', held, p)
    redis.call('SADD', prefix .. ':holders:' .. p, node)
    if redis.call('ZADD', prefix .. ':room:' .. room, 'NX', 0, user) == 1 then
        redis.call('SADD', prefix .. ':rooms_of:' .. user, room)
        publish_numbered(prefix, channel, room, size, ttl, ARGV[i + 3])
        joined[#joined + 1] = 1
    else
        joined[#joined + 1] = 0
    end
end
return joined
"""
)
