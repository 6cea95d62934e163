ALTER TABLE agent_sessions ADD COLUMN pending_approval TEXT;
ALTER TABLE agent_messages ADD COLUMN steered INTEGER NOT NULL DEFAULT 0;
