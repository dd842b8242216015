"""Room messages too big for a NOTIFY payload: a small table they pass through.

A message whose inline payload would pass NOTIFY's limit is stored in
``svc_messages`` by ``svc_message_put`` inside the very statement that
notifies its id (see :mod:`.publisher`), so it costs no extra round trip.
Every receiver reads it back by id; rows are deleted ``KEEP`` seconds later by
whichever node's housekeeping comes first.
"""

from __future__ import annotations

#: Seconds a stored message stays readable: far longer than any receiver needs.
KEEP = 30.0

SCHEMA = """
CREATE TABLE svc_messages (
    id      bigserial PRIMARY KEY,
    body    text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX svc_messages_sent_at ON svc_messages (sent_at);

-- Stores a message's payload; returns the notification that points at it.
CREATE FUNCTION svc_message_put(node text, payload text) RETURNS text LANGUAGE sql AS $$
    WITH stored AS (INSERT INTO svc_messages (body) VALUES ($2) RETURNING id)
    SELECT json_build_object('n', $1, 'i', id)::text FROM stored
$$;
"""

READ = "SELECT id, body FROM svc_messages WHERE id = ANY(%s)"
CLEAN = "DELETE FROM svc_messages WHERE sent_at < now() - %s * interval '1 second'"
