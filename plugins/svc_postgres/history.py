"""Room event numbers and their history, in Postgres: what lets a client resume.

Two tables (migration 8):

- ``svc_room_numbers``: a row per room, its ``epoch`` (random, drawn when the row is
  made) and the ``seq`` of its last event.  Numbering an event is an ``UPDATE`` of that
  row inside the statement that publishes the event, so the row lock orders the numbering
  transactions, and as a NOTIFY is queued at commit, before the lock is released, every
  listener hears a room's events in number order.
- ``svc_room_events``: the last ``ROOM_HISTORY`` events of each room, as they were
  notified (the payload, with its numbers), and when.

Every statement that numbers locks the counter rows of *all* the rooms it will number in,
first, in room order (``svc_room_lock``): a batch of joins, leaves, messages and changes
touches several rooms, and two batches locking them in different orders would deadlock.
That lock also serialises presence decisions in a room (who is first in, last out), so the
presence functions need no advisory lock of their own any more.

How much to keep, ``ROOM_HISTORY``, is each process's own setting: the statement sets it
for its own transaction (``svc_room_keeping``, ``set_config(..., true)``), so no session
state is left behind on a connection a transaction pooler hands to someone else.  A caller
that does not set it (a process of the previous release, during a rolling restart) keeps
the default, 100.

Trimming costs one index probe per event: the event numbered ``seq`` deletes the one
numbered ``seq - ROOM_HISTORY``, the one that just fell out.  Age (``ROOM_HISTORY_TTL``) is
checked when the history is read, and every node's housekeeping deletes what is older (a
sweep every few seconds, by the ``at`` index), and the counter rows of rooms silent for
longer than that with nobody present (their next event draws a new epoch: nobody resumes
across it, and there was nothing left to resume from).
"""

from __future__ import annotations

#: Migration 8.  Needs svc_presence (migration 2); replaces the presence functions (their
#: transitions are numbered now, and they answer the numbers) in presence.NUMBERED_SCHEMA.
SCHEMA = """
CREATE TABLE svc_room_numbers (
    room_id    text PRIMARY KEY,
    epoch      text NOT NULL,
    seq        bigint NOT NULL,
    touched_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE svc_room_events (
    room_id text NOT NULL,
    seq     bigint NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    payload text NOT NULL,
    PRIMARY KEY (room_id, seq)
);
CREATE INDEX svc_room_events_at ON svc_room_events (at);

-- A change is numbered in every room where its user is present.
CREATE INDEX svc_presence_user ON svc_presence (user_id);

CREATE FUNCTION svc_room_epoch() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT substr(md5(random()::text || clock_timestamp()::text), 1, 16)
$$;

-- The caller's ROOM_HISTORY, for this transaction only.
CREATE FUNCTION svc_room_keeping(size integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('svc.room_history', size::text, true);
END
$$;

CREATE FUNCTION svc_room_size() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('svc.room_history', true), '')::integer, 100)
$$;

-- Make the counter rows that are missing (a new epoch each; a stale history of the room
-- goes) and lock them all, in room order.  Again if one was swept in between (a room
-- silent past the TTL with nobody present): every room's row is locked on return.
CREATE FUNCTION svc_room_lock(rooms text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    wanted integer := (SELECT count(DISTINCT r) FROM unnest(rooms) AS r);
    locked integer;
BEGIN
    WHILE wanted > 0 LOOP
        WITH made AS (
            INSERT INTO svc_room_numbers (room_id, epoch, seq)
                SELECT r, svc_room_epoch(), 0 FROM (SELECT DISTINCT unnest(rooms) AS r) AS u
                ORDER BY r
                ON CONFLICT (room_id) DO NOTHING
                RETURNING room_id
        )
        DELETE FROM svc_room_events WHERE room_id IN (SELECT room_id FROM made);
        PERFORM 1 FROM svc_room_numbers WHERE room_id = ANY(rooms) ORDER BY room_id FOR UPDATE;
        GET DIAGNOSTICS locked = ROW_COUNT;
        EXIT WHEN locked = wanted;
    END LOOP;
END
$$;

-- The room's next number (its counter row locked by svc_room_lock, or locked now).
CREATE FUNCTION svc_room_number(room text, OUT room_epoch text, OUT room_seq bigint)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE svc_room_numbers AS n SET seq = n.seq + 1, touched_at = now()
        WHERE n.room_id = room RETURNING n.epoch, n.seq INTO room_epoch, room_seq;
    IF NOT FOUND THEN
        PERFORM svc_room_lock(ARRAY[room]);
        UPDATE svc_room_numbers AS n SET seq = n.seq + 1, touched_at = now()
            WHERE n.room_id = room RETURNING n.epoch, n.seq INTO room_epoch, room_seq;
    END IF;
END
$$;

-- Keep an event in the room's history, and drop the one that just fell out of it.
CREATE FUNCTION svc_room_keep(room text, number bigint, payload text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    size integer := svc_room_size();
BEGIN
    IF size > 0 THEN
        INSERT INTO svc_room_events AS e (room_id, seq, payload) VALUES (room, number, payload)
            ON CONFLICT (room_id, seq) DO UPDATE SET payload = excluded.payload, at = now();
        DELETE FROM svc_room_events WHERE room_id = room AND seq = number - size;
    END IF;
END
$$;

-- A JSON object's text with the room's epoch and number added (wire format: "e", "q").
CREATE FUNCTION svc_room_stamp(payload text, epoch text, number bigint)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT left(payload, -1) || ',"e":' || to_json(epoch)::text || ',"q":' || number || '}'
$$;

-- A batch of notifications, in order, in one transaction (publisher.py).  keys[i]: the
-- room of a message, the user of a change (NULL: not numbered, e.g. a password set).
-- Answers per item: 'EPOCH:SEQ' for a message, '{"room": ["EPOCH", SEQ], ...}' for a
-- change of a user present somewhere, else NULL.  Set-based: each room's counter is
-- bumped once by the number of the batch's events in it, and the history rows are
-- written by one INSERT and trimmed by one DELETE; only the stamping loops per item.
CREATE FUNCTION svc_publish(
    node text, channels text[], payloads text[], stored boolean[], keys text[]
) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    numbers text[] := array_fill(NULL::text, ARRAY[cardinality(channels)]);
    ev_item integer[];
    ev_room text[];
    ev_epoch text[];
    ev_seq bigint[];
    h_room text[] := '{}';
    h_seq bigint[] := '{}';
    h_payload text[] := '{}';
    size integer := svc_room_size();
    i integer;
    j integer := 1;
    from_j integer;
    p text;
    map text;
    stamped text;
BEGIN
    -- the batch's room events, in item order: a message in its room, a change in each
    -- room where its user is present (rooms in order, so the numbers are given in order)
    SELECT array_agg(e.item ORDER BY e.item, e.room), array_agg(e.room ORDER BY e.item, e.room)
        INTO ev_item, ev_room FROM (
            SELECT s.i AS item, keys[s.i] AS room FROM generate_subscripts(channels, 1) AS s(i)
                WHERE channels[s.i] = 'svc_messages' AND keys[s.i] IS NOT NULL
            UNION ALL
            SELECT s.i, r.room_id FROM generate_subscripts(channels, 1) AS s(i)
                CROSS JOIN LATERAL (SELECT DISTINCT room_id FROM svc_presence
                                    WHERE user_id = keys[s.i]) AS r
                WHERE channels[s.i] = 'svc_users' AND keys[s.i] IS NOT NULL
        ) AS e;
    IF ev_item IS NOT NULL THEN
        PERFORM svc_room_lock(ev_room);
        WITH ev AS (
            SELECT t.item, t.room, t.ord
            FROM unnest(ev_item, ev_room) WITH ORDINALITY AS t(item, room, ord)
        ), counts AS (
            SELECT room, count(*) AS n FROM ev GROUP BY room
        ), bumped AS (
            UPDATE svc_room_numbers AS c SET seq = c.seq + counts.n, touched_at = now()
                FROM counts WHERE c.room_id = counts.room
                RETURNING c.room_id, c.epoch, c.seq - counts.n AS base
        )
        SELECT array_agg(b.epoch ORDER BY ev.ord),
               array_agg(b.base + ev.nth ORDER BY ev.ord)
            INTO ev_epoch, ev_seq
            FROM (SELECT ev.*, row_number() OVER (PARTITION BY ev.room ORDER BY ev.ord) AS nth
                  FROM ev) AS ev
            JOIN bumped AS b ON b.room_id = ev.room;
    END IF;
    FOR i IN 1 .. coalesce(cardinality(channels), 0) LOOP
        p := payloads[i];
        IF ev_item IS NOT NULL AND j <= cardinality(ev_item) AND ev_item[j] = i THEN
            IF channels[i] = 'svc_messages' THEN
                p := svc_room_stamp(p, ev_epoch[j], ev_seq[j]);
                numbers[i] := ev_epoch[j] || ':' || ev_seq[j];
                h_room := h_room || ev_room[j];
                h_seq := h_seq || ev_seq[j];
                h_payload := h_payload || p;
                j := j + 1;
            ELSE
                from_j := j;
                map := NULL;
                WHILE j <= cardinality(ev_item) AND ev_item[j] = i LOOP
                    map := coalesce(map || ',', '{') || to_json(ev_room[j])::text
                        || ':[' || to_json(ev_epoch[j])::text || ',' || ev_seq[j] || ']';
                    j := j + 1;
                END LOOP;
                map := map || '}';
                stamped := left(p, -1) || ',"q":' || map || '}';
                h_room := h_room || ev_room[from_j:j - 1];
                h_seq := h_seq || ev_seq[from_j:j - 1];
                h_payload := h_payload || array_fill(stamped, ARRAY[j - from_j]);
                numbers[i] := map;
                IF octet_length(stamped) <= 7999 THEN
                    p := stamped;
                ELSIF strpos(p, ',"u":') > 0 THEN  -- the record stays behind (from storage)
                    stamped := left(p, strpos(p, ',"u":') - 1) || ',"q":' || map || '}';
                    IF octet_length(stamped) <= 7999 THEN
                        p := stamped;
                    END IF;  -- else it travels unnumbered (resume.md, "Status")
                END IF;
            END IF;
        END IF;
        PERFORM pg_notify(
            channels[i], CASE WHEN stored[i] THEN svc_message_put(node, p) ELSE p END);
    END LOOP;
    IF size > 0 AND cardinality(h_room) > 0 THEN
        INSERT INTO svc_room_events AS e (room_id, seq, payload)
            SELECT * FROM unnest(h_room, h_seq, h_payload)
            ON CONFLICT (room_id, seq) DO UPDATE SET payload = excluded.payload, at = now();
        -- each event drops the one that just fell out of its room's history
        DELETE FROM svc_room_events AS e USING unnest(h_room, h_seq) AS t(room, seq)
            WHERE e.room_id = t.room AND e.seq = t.seq - size;
    END IF;
    RETURN numbers;
END
$$;
"""

POSITION = "SELECT epoch, seq FROM svc_room_numbers WHERE room_id = %s"
#: A room with no events yet gets its counter row (and its epoch) when asked where it is.
CREATE = (
    "INSERT INTO svc_room_numbers (room_id, epoch, seq) VALUES (%s, svc_room_epoch(), 0)"
    " ON CONFLICT (room_id) DO NOTHING"
)
#: The room's epoch and last number, with the events kept after ``after`` (not expired).
HISTORY = (
    "SELECT n.epoch, n.seq, e.seq, e.payload FROM svc_room_numbers AS n"
    " LEFT JOIN svc_room_events AS e ON e.room_id = n.room_id AND e.seq > %s"
    " AND e.at > now() - %s * interval '1 second'"
    " WHERE n.room_id = %s ORDER BY e.seq"
)
#: Housekeeping: events past ROOM_HISTORY_TTL, and the counters of rooms silent that long
#: with nobody present.
SWEEP = (
    "WITH old AS (DELETE FROM svc_room_events WHERE at < now() - %s * interval '1 second')"
    " DELETE FROM svc_room_numbers AS n WHERE touched_at < now() - %s * interval '1 second'"
    " AND NOT EXISTS (SELECT 1 FROM svc_presence AS p WHERE p.room_id = n.room_id)"
)


def numbers_of(text: str | None) -> tuple[str | None, int | None]:
    """'EPOCH:SEQ' (what the functions answer for one room) → (epoch, seq)."""
    if not text:
        return None, None
    epoch, _, seq = text.rpartition(":")
    return epoch, int(seq)
