-- Usher's system of record. The engine's event log is the source of truth for routing state;
-- the other tables are the records people search and report on, written in the same
-- transactions as the events that change them.

CREATE TABLE tenants (
    tenant_id   text PRIMARY KEY CHECK (tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    settings    jsonb NOT NULL DEFAULT '{}',        -- TenantSettings: weights, timers, texts
    epoch       bigint NOT NULL DEFAULT 0,          -- bumped by every shard incarnation
    last_seq    bigint NOT NULL DEFAULT 0,          -- the tenant's latest event
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_credentials (
    credential_id text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    role          text NOT NULL CHECK (role IN ('gateway', 'agent', 'supervisor', 'admin')),
    agent_id      text,
    secret_hash   text NOT NULL,                     -- never the secret itself
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    CHECK (role <> 'agent' OR agent_id IS NOT NULL)
);

CREATE TABLE skills (
    tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    skill     text NOT NULL CHECK (length(skill) BETWEEN 1 AND 100),
    PRIMARY KEY (tenant_id, skill)
);

CREATE TABLE departments (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    department_id text NOT NULL CHECK (length(department_id) BETWEEN 1 AND 100),
    name          text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, department_id)
);

CREATE TABLE agents (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    agent_id      text NOT NULL CHECK (length(agent_id) BETWEEN 1 AND 100),
    profile       jsonb NOT NULL,                    -- AgentProfile: skills, capacity, departments
    status        text NOT NULL DEFAULT 'offline',
    custom_status text,
    removed_at    timestamptz,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
);

CREATE TABLE queues (
    tenant_id  text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    queue_id   text NOT NULL CHECK (length(queue_id) BETWEEN 1 AND 100),
    settings   jsonb NOT NULL,                       -- QueueSettings, business hours included
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, queue_id)
);

CREATE TABLE customers (
    tenant_id   text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id text NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 200),
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    phone       text CHECK (phone ~ '^\+[1-9][0-9]{4,14}$'),  -- E.164
    email       text CHECK (length(email) <= 320),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
CREATE INDEX customers_phone ON customers (tenant_id, phone);

CREATE TABLE customer_identities (
    tenant_id   text NOT NULL,
    channel     text NOT NULL,
    external_id text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 200),  -- wa_id, LINE userId
    customer_id text NOT NULL,
    PRIMARY KEY (tenant_id, channel, external_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers ON DELETE CASCADE
);

CREATE TABLE conversations (
    tenant_id         text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    conversation_id   text NOT NULL CHECK (length(conversation_id) BETWEEN 1 AND 200),
    channel           text NOT NULL,
    customer_id       text NOT NULL,
    state             text NOT NULL,
    queue_id          text,
    owner_agent_id    text,                          -- one column: at most one live owner
    last_agent_id     text,
    priority          integer NOT NULL DEFAULT 0,
    outcome           text,
    close_reason      text,
    tags              text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL,
    queued_at         timestamptz,
    assigned_at       timestamptz,
    first_response_at timestamptz,
    ended_at          timestamptz,
    closed_at         timestamptz,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id),
    CHECK (owner_agent_id IS NULL OR state IN ('active', 'wrap_up'))
);
CREATE INDEX conversations_customer ON conversations (tenant_id, customer_id, created_at);
CREATE INDEX conversations_created ON conversations (tenant_id, created_at);
CREATE INDEX conversations_agent ON conversations (tenant_id, last_agent_id, created_at);

CREATE TABLE conversation_notes (
    tenant_id       text NOT NULL,
    conversation_id text NOT NULL,
    note_id         bigint GENERATED ALWAYS AS IDENTITY,
    author          text NOT NULL,
    body            text NOT NULL CHECK (length(body) <= 10000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, conversation_id, note_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations ON DELETE CASCADE
);

CREATE TABLE messages (
    tenant_id           text NOT NULL,
    message_id          bigint GENERATED ALWAYS AS IDENTITY,
    conversation_id     text NOT NULL,
    channel             text NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sender              text NOT NULL CHECK (sender IN ('customer', 'agent', 'bot', 'system')),
    agent_id            text,
    content             text NOT NULL DEFAULT '' CHECK (length(content) <= 65536),
    attachments         jsonb NOT NULL DEFAULT '[]',  -- [{sha256, name, type, size}]
    provider_message_id text CHECK (length(provider_message_id) <= 256),
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id)
);
-- The arbiter of idempotent ingestion: a provider's id is stored once per tenant and channel.
CREATE UNIQUE INDEX messages_provider_id
    ON messages (tenant_id, channel, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX messages_conversation ON messages (tenant_id, conversation_id, message_id);

CREATE TABLE offers (
    tenant_id       text NOT NULL,
    offer_id        text NOT NULL,
    conversation_id text NOT NULL,
    agent_ids       text[] NOT NULL,
    broadcast       boolean NOT NULL,
    decision        jsonb NOT NULL,                  -- the explanation: candidates, filters, reason
    made_at         timestamptz NOT NULL,
    deadline        timestamptz NOT NULL,
    outcome         text,                            -- accepted, rejected, expired, rescinded
    resolved_at     timestamptz,
    PRIMARY KEY (tenant_id, offer_id)
);
-- At most one live offer per conversation.
CREATE UNIQUE INDEX offers_one_live ON offers (tenant_id, conversation_id) WHERE outcome IS NULL;

CREATE TABLE transfers (
    tenant_id       text NOT NULL,
    transfer_id     text NOT NULL,
    conversation_id text NOT NULL,
    from_agent      text NOT NULL,
    target          text NOT NULL CHECK (target IN ('agent', 'queue', 'department')),
    target_id       text NOT NULL,
    note            text NOT NULL DEFAULT '',
    requested_at    timestamptz NOT NULL,
    deadline        timestamptz,
    outcome         text,
    resolved_at     timestamptz,
    PRIMARY KEY (tenant_id, transfer_id)
);
CREATE UNIQUE INDEX transfers_one_pending ON transfers (tenant_id, conversation_id)
    WHERE outcome IS NULL;

-- The engine's events, append-only, a gap-free sequence per tenant. Replaying them rebuilds it.
CREATE TABLE events (
    tenant_id text NOT NULL,
    seq       bigint NOT NULL CHECK (seq > 0),
    epoch     bigint NOT NULL,
    at        timestamptz NOT NULL,
    type      text NOT NULL,
    payload   jsonb NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE TABLE agent_sessions (
    tenant_id     text NOT NULL,
    agent_id      text NOT NULL,
    status        text NOT NULL,
    custom_status text,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    PRIMARY KEY (tenant_id, agent_id, started_at)
);
CREATE INDEX agent_sessions_open ON agent_sessions (tenant_id, agent_id) WHERE ended_at IS NULL;
