ALTER TABLE agent_sessions ADD COLUMN pending_approval TEXT;
ALTER TABLE agent_messages ADD COLUMN steered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_sessions ADD COLUMN viewer_generation INTEGER NOT NULL DEFAULT 0;
