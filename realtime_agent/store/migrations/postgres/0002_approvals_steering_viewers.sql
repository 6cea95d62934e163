ALTER TABLE agent_sessions ADD COLUMN pending_approval JSONB;
ALTER TABLE agent_messages ADD COLUMN steered BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE agent_sessions ADD COLUMN viewer_generation BIGINT NOT NULL DEFAULT 0;
