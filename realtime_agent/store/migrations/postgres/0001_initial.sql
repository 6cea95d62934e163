CREATE TABLE agent_sessions (
    id             TEXT PRIMARY KEY,
    character_id   BIGINT NOT NULL,
    autonomy_level SMALLINT NOT NULL DEFAULT 1,
    status         TEXT NOT NULL DEFAULT 'idle',
    context        JSONB NOT NULL DEFAULT '{}',
    archived       BOOLEAN NOT NULL DEFAULT FALSE,
    seq_reserved   BIGINT NOT NULL DEFAULT 0,
    next_turn      BIGINT NOT NULL DEFAULT 1,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_agent_sessions_character_id ON agent_sessions (character_id);
-- Start-up recovery scans live sessions by status; archived ones are never read.
CREATE INDEX idx_agent_sessions_live_status ON agent_sessions (status) WHERE NOT archived;

CREATE TABLE agent_messages (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES agent_sessions (id),
    position    BIGINT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content     TEXT NOT NULL,
    timestamp   TIMESTAMPTZ NOT NULL,
    client_id   TEXT,
    tool_calls  JSONB,
    call_id     TEXT,
    name        TEXT,
    is_error    BOOLEAN,
    turn        BIGINT,
    priority    SMALLINT NOT NULL DEFAULT 0,
    UNIQUE (session_id, position),
    UNIQUE (session_id, client_id)
);
-- The conversation: (session_id, turn IS NOT NULL) ordered by (turn, position).
CREATE INDEX idx_agent_messages_turn ON agent_messages (session_id, turn, position);
-- The queue: waiting user messages, next first (take_next, pending, recovery).
CREATE INDEX idx_agent_messages_waiting ON agent_messages (session_id, priority DESC, position)
    WHERE turn IS NULL AND role = 'user';
