-- The blocklist and follow-ups (core/store/blocklist.py, core/store/follow_ups.py): not
-- routing state, written by the front door alone.

-- A block holds from created_at until unblocked_at or expires_at. Rows are never deleted (but
-- with their tenant): unblocking and expiry stay on record with who and when.
CREATE TABLE blocks (
    tenant_id    text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    block_id     bigint GENERATED ALWAYS AS IDENTITY,
    kind         text NOT NULL CHECK (kind IN ('customer', 'phone', 'email', 'ip')),
    value        text NOT NULL CHECK (length(value) BETWEEN 1 AND 320),
    reason       text NOT NULL DEFAULT '' CHECK (length(reason) <= 1000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    expires_at   timestamptz,
    unblocked_at timestamptz,
    unblocked_by text CHECK (length(unblocked_by) <= 200),
    PRIMARY KEY (tenant_id, block_id),
    CHECK (expires_at IS NULL OR expires_at > created_at)
);
-- The front door loads a tenant's blocks that are not unblocked (then drops the expired).
CREATE INDEX blocks_standing ON blocks (tenant_id, kind, value) WHERE unblocked_at IS NULL;
CREATE INDEX blocks_target ON blocks (tenant_id, kind, value, block_id DESC);

-- What blocked senders wrote, kept for the record (never routed). A provider's redelivery is
-- kept once.
CREATE TABLE blocked_messages (
    tenant_id           text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    blocked_message_id  bigint GENERATED ALWAYS AS IDENTITY,
    block_id            bigint NOT NULL,
    channel             text NOT NULL,
    external_id         text NOT NULL DEFAULT '',
    customer_id         text,
    conversation_id     text,
    content             text NOT NULL DEFAULT '' CHECK (length(content) <= 65536),
    attachments         jsonb NOT NULL DEFAULT '[]',
    provider_message_id text CHECK (length(provider_message_id) <= 256),
    received_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, blocked_message_id),
    FOREIGN KEY (tenant_id, block_id) REFERENCES blocks
);
CREATE UNIQUE INDEX blocked_messages_provider_id
    ON blocked_messages (tenant_id, channel, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX blocked_messages_block ON blocked_messages (tenant_id, block_id);

-- A left message's handled flag (the conversation itself is the shard's).
CREATE TABLE left_messages_handled (
    tenant_id       text NOT NULL,
    conversation_id text NOT NULL,
    handled_at      timestamptz NOT NULL DEFAULT now(),
    handled_by      text NOT NULL CHECK (length(handled_by) BETWEEN 1 AND 200),
    PRIMARY KEY (tenant_id, conversation_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations ON DELETE CASCADE
);
-- Left messages are listed from the closed conversations.
CREATE INDEX conversations_left_messages ON conversations (tenant_id, closed_at DESC)
    WHERE close_reason = 'left_message';
