-- Console sign-in (core/store/passwords.py, sessions.py, sign_in_log.py) and internal chat
-- between agents (core/store/team_chat.py): plain data the front door writes, not routing state.

-- An agent's console password (argon2id, its parameters in the hash) and the role their console
-- tokens get. Deleting the agent does not delete the row: sign-in looks agents up among the live
-- ones, so a removed agent signs in nobody.
CREATE TABLE agent_passwords (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    agent_id      text NOT NULL CHECK (length(agent_id) BETWEEN 1 AND 100),
    password_hash text NOT NULL CHECK (length(password_hash) <= 512),
    console_role  text NOT NULL DEFAULT 'agent'
                  CHECK (console_role IN ('agent', 'supervisor', 'admin')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, agent_id)
);

-- Sign-in by agent id or display name, compared without regard to case.
CREATE INDEX agents_login_id ON agents (tenant_id, lower(agent_id)) WHERE removed_at IS NULL;
CREATE INDEX agents_login_name ON agents (tenant_id, lower(profile ->> 'name'))
    WHERE removed_at IS NULL;

-- A console session is a chain of credentials (one per refresh) sharing session_id (the first
-- one's credential id) and session_started_at; each expires (expires_at), so the revocation
-- check ends its streams then as it does for a revocation.
ALTER TABLE api_credentials
    ADD COLUMN expires_at         timestamptz,
    ADD COLUMN session_id         text,
    ADD COLUMN session_started_at timestamptz,
    ADD CHECK ((session_id IS NULL) = (session_started_at IS NULL));
CREATE INDEX api_credentials_session ON api_credentials (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX api_credentials_agent_sessions ON api_credentials (tenant_id, agent_id)
    WHERE session_id IS NOT NULL;
-- The revocation check reads what was revoked or expired since its last look, every second.
CREATE INDEX api_credentials_revoked ON api_credentials (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX api_credentials_expires ON api_credentials (expires_at) WHERE expires_at IS NOT NULL;

-- The sign-in log: sign-ins, refreshes, sign-outs and refused attempts.
CREATE TABLE console_logins (
    login_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('sign_in', 'refresh', 'sign_out', 'failed')),
    at             timestamptz NOT NULL DEFAULT now(),
    agent_id       text CHECK (length(agent_id) BETWEEN 1 AND 100),
    login          text NOT NULL DEFAULT '' CHECK (length(login) <= 200),
    client_address text NOT NULL DEFAULT '' CHECK (length(client_address) <= 64),
    user_agent     text NOT NULL DEFAULT '' CHECK (length(user_agent) <= 512),
    failure        text CHECK (failure IN
                       ('unknown_login', 'wrong_password', 'no_password', 'rate_limited')),
    credential_id  text,
    CHECK ((kind = 'failed') = (failure IS NOT NULL))
);
CREATE INDEX console_logins_tenant ON console_logins (tenant_id, login_id);
CREATE INDEX console_logins_agent ON console_logins (tenant_id, agent_id, login_id);

-- Team chat. Messages are numbered per tenant by team_chat_counters, whose row is locked from
-- the number's taking to the commit: numbers commit in order, so what a reader sees is always a
-- prefix and "after id N" never skips a message still being written.
CREATE TABLE team_threads (
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    thread_id       text NOT NULL CHECK (length(thread_id) BETWEEN 1 AND 64),
    kind            text NOT NULL CHECK (kind IN ('direct', 'group')),
    title           text NOT NULL DEFAULT '' CHECK (length(title) <= 200),
    creator         text NOT NULL CHECK (length(creator) BETWEEN 1 AND 100),
    -- DIRECT: the two agent ids, sorted, joined by a newline (one thread per pair)
    direct_key      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_message_id bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, thread_id),
    UNIQUE (tenant_id, direct_key),
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);

CREATE TABLE team_thread_members (
    tenant_id text NOT NULL,
    thread_id text NOT NULL,
    agent_id  text NOT NULL CHECK (length(agent_id) BETWEEN 1 AND 100),
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, thread_id, agent_id),
    FOREIGN KEY (tenant_id, thread_id) REFERENCES team_threads ON DELETE CASCADE
);
CREATE INDEX team_thread_members_agent ON team_thread_members (tenant_id, agent_id, thread_id);

CREATE TABLE team_chat_counters (
    tenant_id       text PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    last_message_id bigint NOT NULL
);

CREATE TABLE team_messages (
    tenant_id  text NOT NULL,
    message_id bigint NOT NULL,
    thread_id  text NOT NULL,
    sender     text NOT NULL CHECK (length(sender) BETWEEN 1 AND 100),
    kind       text NOT NULL CHECK (kind IN ('text', 'thread_created')),
    body       text NOT NULL CHECK (length(body) <= 4000),
    request_id text CHECK (length(request_id) BETWEEN 1 AND 128),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id),
    FOREIGN KEY (tenant_id, thread_id) REFERENCES team_threads ON DELETE CASCADE
);
CREATE INDEX team_messages_thread ON team_messages (tenant_id, thread_id, message_id);
CREATE UNIQUE INDEX team_messages_request ON team_messages (tenant_id, sender, request_id)
    WHERE request_id IS NOT NULL;
