-- Bots (core/store/bots.py): not routing state, written by the front door alone. A bot's
-- definition (name, channels, triggers, flow) is JSON of a schema version
-- (core/bots/codec.py); each version is a row, so what a conversation started with stays.

CREATE TABLE bots (
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    bot_id         text NOT NULL CHECK (length(bot_id) BETWEEN 1 AND 64),
    status         text NOT NULL CHECK (status IN ('draft', 'active', 'paused')),
    version        integer NOT NULL CHECK (version >= 1),  -- the newest
    webhook_secret text NOT NULL CHECK (length(webhook_secret) BETWEEN 32 AND 128),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    PRIMARY KEY (tenant_id, bot_id)
);

-- A version once served (published) is never changed: an edit adds the next version.
CREATE TABLE bot_versions (
    tenant_id      text NOT NULL,
    bot_id         text NOT NULL,
    version        integer NOT NULL CHECK (version >= 1),
    schema_version smallint NOT NULL CHECK (schema_version >= 1),
    definition     jsonb NOT NULL,
    published      boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL CHECK (length(updated_by) BETWEEN 1 AND 200),
    PRIMARY KEY (tenant_id, bot_id, version),
    FOREIGN KEY (tenant_id, bot_id) REFERENCES bots ON DELETE CASCADE
);
