-- A tenant's channels: the web chat widget, WhatsApp numbers, LINE accounts, SMS numbers and
-- mailboxes, with what their gateways need. `secrets` holds provider tokens the gateways must
-- present in clear (they cannot be hashed): protect the database and its backups accordingly.
CREATE TABLE channels (
    tenant_id    text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    channel_id   text NOT NULL CHECK (channel_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    type         text NOT NULL CHECK (type IN ('web_chat', 'whatsapp', 'line', 'sms', 'email')),
    display_name text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    settings     jsonb NOT NULL DEFAULT '{}',
    secrets      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id)
);
