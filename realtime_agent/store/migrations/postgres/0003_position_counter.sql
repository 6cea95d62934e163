-- The next message position is a counter on the session row, so appending a
-- message is one statement (the counter's UPDATE locks the row and reads its
-- latest value) instead of a lock, a MAX() and an insert in a transaction.
ALTER TABLE agent_sessions ADD COLUMN last_position BIGINT NOT NULL DEFAULT 0;
UPDATE agent_sessions s
   SET last_position = COALESCE((SELECT MAX(position) FROM agent_messages m WHERE m.session_id = s.id), 0);
