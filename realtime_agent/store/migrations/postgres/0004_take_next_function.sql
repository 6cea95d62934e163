-- Taking the next waiting message in one round trip, with the semantics of
-- the transaction it replaces: lock the session row, then, in statements that
-- each see what was committed before the lock was granted (READ COMMITTED
-- gives every statement of a function a fresh snapshot), give the next
-- waiting user message the session's next turn and count that turn. An
-- archived session gives nothing. The function returns rows of
-- agent_messages: a migration that rebuilds that table, or renames or drops
-- its columns, must recreate the function (adding a column is fine).
CREATE FUNCTION ra_take_next(sid TEXT) RETURNS SETOF agent_messages
LANGUAGE plpgsql AS $$
DECLARE
    next BIGINT;
BEGIN
    SELECT next_turn INTO next FROM agent_sessions WHERE id = sid AND NOT archived FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
        UPDATE agent_messages SET turn = next
         WHERE id = (SELECT id FROM agent_messages
                      WHERE session_id = sid AND turn IS NULL AND role = 'user'
                      ORDER BY priority DESC, position LIMIT 1)
        RETURNING *;
    IF FOUND THEN
        UPDATE agent_sessions SET next_turn = next_turn + 1 WHERE id = sid;
    END IF;
END
$$;
