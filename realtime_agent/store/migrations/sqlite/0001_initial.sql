CREATE TABLE agent_sessions (
    id             TEXT PRIMARY KEY,
    character_id   INTEGER NOT NULL,
    autonomy_level INTEGER NOT NULL DEFAULT 1,
    status         TEXT NOT NULL DEFAULT 'idle',
    context        TEXT NOT NULL DEFAULT '{}',
    archived       INTEGER NOT NULL DEFAULT 0,
    seq_reserved   INTEGER NOT NULL DEFAULT 0,
    next_turn      INTEGER NOT NULL DEFAULT 1,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX idx_agent_sessions_character_id ON agent_sessions (character_id);

CREATE TABLE agent_messages (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES agent_sessions (id),
    position    INTEGER NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content     TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    client_id   TEXT,
    tool_calls  TEXT,
    call_id     TEXT,
    name        TEXT,
    is_error    INTEGER,
    turn        INTEGER,
    priority    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (session_id, position),
    UNIQUE (session_id, client_id)
);
CREATE INDEX idx_agent_messages_pending ON agent_messages (session_id, turn);
