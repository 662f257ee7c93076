-- The login log: the client address an agent signed in (or changed status) from, as the front
-- door saw the call (AgentStatusChanged.client_address; empty for changes the engine made).
ALTER TABLE agent_sessions ADD COLUMN client_address text NOT NULL DEFAULT '';
-- Attendance and the login log read a tenant's sessions by time.
CREATE INDEX agent_sessions_started ON agent_sessions (tenant_id, started_at);
