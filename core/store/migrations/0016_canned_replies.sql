-- Canned replies (core/store/canned_replies.py): plain data the front door writes, not routing
-- state. A row with an owner is that agent's personal one; without, it is shared tenant-wide.

CREATE TABLE canned_reply_categories (
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    category_id    text NOT NULL CHECK (length(category_id) BETWEEN 1 AND 64),
    owner_agent_id text CHECK (length(owner_agent_id) BETWEEN 1 AND 100),
    display_name   text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    display_order  integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, category_id)
);
CREATE INDEX canned_reply_categories_owner
    ON canned_reply_categories (tenant_id, owner_agent_id, category_id);

CREATE TABLE canned_replies (
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    reply_id       text NOT NULL CHECK (length(reply_id) BETWEEN 1 AND 64),
    owner_agent_id text CHECK (length(owner_agent_id) BETWEEN 1 AND 100),
    category_id    text,
    shortcut       text NOT NULL DEFAULT '' CHECK (length(shortcut) <= 33),
    -- the shortcut normalized (NFKC, case-folded): unique per scope and language
    shortcut_key   text NOT NULL DEFAULT '' CHECK (length(shortcut_key) <= 200),
    title          text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body           text NOT NULL DEFAULT '' CHECK (length(body) <= 10000),
    language       text NOT NULL DEFAULT '' CHECK (length(language) <= 35),
    attachments    jsonb NOT NULL DEFAULT '[]',  -- [{sha256, name, type, size, uri}]
    -- shortcut, title and body normalized as search queries are (core/store/canned_replies.py)
    search_text    text NOT NULL DEFAULT '',
    use_count      bigint NOT NULL DEFAULT 0,
    last_used_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, reply_id),
    FOREIGN KEY (tenant_id, category_id) REFERENCES canned_reply_categories
);
CREATE UNIQUE INDEX canned_replies_shortcut
    ON canned_replies (tenant_id, coalesce(owner_agent_id, ''), shortcut_key, lower(language))
    WHERE shortcut_key <> '';
CREATE INDEX canned_replies_owner ON canned_replies (tenant_id, owner_agent_id, reply_id);
CREATE INDEX canned_replies_category ON canned_replies (tenant_id, category_id)
    WHERE category_id IS NOT NULL;

-- One row per message sent from a canned reply (keyed by the message, so a retried call counts
-- once): the usage per reply, agent and day that reports read. Kept when the reply is deleted.
CREATE TABLE canned_reply_uses (
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    message_id      bigint NOT NULL,
    reply_id        text NOT NULL,
    agent_id        text NOT NULL,
    conversation_id text NOT NULL,
    used_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX canned_reply_uses_reply ON canned_reply_uses (tenant_id, reply_id, used_at);
CREATE INDEX canned_reply_uses_time ON canned_reply_uses (tenant_id, used_at);

-- Which canned reply a message was sent from (written with the message by the shard's commit).
-- No CHECK, so adding it rewrites and scans nothing: the engine bounds the value.
ALTER TABLE messages ADD COLUMN canned_reply_id text;
